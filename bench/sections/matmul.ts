// Matmul throughput: GFLOP/s of C = A·Bᵀ (the weights' layout, y = x·W0ᵀ) and C = A·B at n = 256, 512, 1024,
// f32 and, where the adapter has shader-f16, with f16 B.
import type { GpuContext } from '../../src/gpu/context';
import { Tensor } from '../../src/gpu/tensor';
import { matmul, matmulRaw, matmulTile } from '../../src/kernels/matmul';
import { timeVariants, type Row, type Section } from '../harness';
import { benchRng } from './data';

export const matmulSection: Section = {
  name: 'matmul',
  title: 'Matmul, square n x n x n (GFLOP/s, higher is better)',
  async run(ctx: GpuContext): Promise<Row[]> {
    const sizes = [256, 512, 1024];
    const rows: Row[] = [];
    for (const n of sizes) {
      const R = benchRng(n);
      const a = Tensor.from(ctx, R.uniform(n * n), [n, n]);
      const b = Tensor.from(ctx, R.uniform(n * n), [n, n]);
      const b16 = ctx.hasF16 ? Tensor.from(ctx, R.uniform(n * n), [n, n], 'b16', 'f16') : null;
      const run = (bt: Tensor, transB: boolean) => () => {
        const c = matmul(a, bt, { transB });
        return () => c.free();
      };
      const variants: Record<string, () => () => void> = {
        'f32 A·Bᵀ': run(b, true),
        'f32 A·B': run(b, false),
      };
      if (b16) {
        variants['f16-weights A·Bᵀ'] = run(b16, true);
        variants['f16-weights A·B'] = run(b16, false);
      }
      const flops = 2 * n ** 3;
      const ms = await timeVariants(ctx, variants, { reps: n >= 1024 ? 3 : 5, inner: n <= 256 ? 4 : 1 });
      for (const [k, t] of Object.entries(ms)) {
        rows.push({
          name: `${k} n=${n}`,
          value: flops / t.median / 1e6,
          unit: 'GFLOP/s',
          note: `${t.median.toFixed(1)} ms; best ${(flops / t.min / 1e6).toFixed(2)} GFLOP/s`,
        });
      }
      [a, b, b16].forEach((t) => t?.free());
    }
    return rows;
  },
};

/** The tile-shape search behind matmulTile's choice, kept so it can be re-run on any adapter:
 * threads per workgroup (M x N) x rows per thread (each thread computes rows x 4 columns), at 512³. */
export const matmulTilesSection: Section = {
  name: 'matmul-tiles',
  title: 'Matmul tile shapes at 512³ (GFLOP/s, min of 5: a busy machine only ever adds time)',
  async run(ctx: GpuContext): Promise<Row[]> {
    const n = 512;
    const R = benchRng(1);
    const a = Tensor.from(ctx, R.uniform(n * n), [n, n]),
      b = Tensor.from(ctx, R.uniform(n * n), [n, n]);
    const c = Tensor.empty(ctx, [n, n]);
    const chosen = matmulTile(n, n);
    const variants: Record<string, () => void> = {};
    for (const [wgM, wgN, tm] of [
      [16, 16, 4],
      [8, 8, 4],
      [16, 16, 2],
      [8, 16, 8],
      [16, 16, 8],
      [8, 8, 8],
      [4, 16, 8],
    ]) {
      for (const transB of [true, false]) {
        const mark = wgM === chosen.wgM && wgN === chosen.wgN && tm === chosen.tm ? ' (default)' : '';
        variants[`${wgM}x${wgN} threads, ${tm}x4 each, ${transB ? 'A·Bᵀ' : 'A·B'}${mark}`] = () =>
          matmulRaw(
            ctx,
            { a: a.buf, b: b.buf, c: c.buf, M: n, N: n, K: n, lda: n, ldb: n, ldc: n, transA: false, transB },
            undefined,
            undefined,
            { wgM, wgN, tm },
          );
      }
    }
    const ms = await timeVariants(ctx, variants, { reps: 5 });
    [a, b, c].forEach((t) => t.free());
    return Object.entries(ms).map(([k, t]) => ({
      name: k,
      value: (2 * n ** 3) / t.min / 1e6,
      unit: 'GFLOP/s',
      note: `${t.min.toFixed(1)} ms`,
    }));
  },
};
