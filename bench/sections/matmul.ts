// Matmul throughput: GFLOP/s of C = A·Bᵀ (the weights' layout, y = x·W0ᵀ) and C = A·B at n = 256, 512, 1024,
// f32 and, where the adapter has shader-f16, with f16 B; then a frozen weight of SmolLM2-135M's shape stored as
// f32, f16, q8 and q4 blocks (read and dequantized in registers), with time and bytes of W0 read as ratios to f32.
import type { GpuContext } from '../../src/gpu/context';
import { quantize } from '../../src/gpu/quant';
import { Tensor } from '../../src/gpu/tensor';
import {
  MATMUL_VARIANTS,
  bBytesPerValue,
  matmul,
  matmulRaw,
  matmulTile,
  variantAvailable,
  type BDtype,
} from '../../src/kernels/matmul';
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
    rows.push(...(await quantizedWeightRows(ctx)));
    return rows;
  },
};

/** SmolLM2-135M's gate_proj W0 (1536, 576) at 256 tokens: y = x·W0ᵀ and dx = dy·W0 with W0 stored as f32, f16 (where
 * the adapter has shader-f16), q8 and q4. The note gives the time and W0's bytes read as ratios to f32: on a
 * bandwidth-bound GPU the time follows the bytes; on a software driver the dequantizing arithmetic shows. */
async function quantizedWeightRows(ctx: GpuContext): Promise<Row[]> {
  const [T, OUT, IN] = [256, 1536, 576];
  const R = benchRng(7);
  const w = R.uniform(OUT * IN, -0.1, 0.1);
  const x = Tensor.from(ctx, R.uniform(T * IN), [T, IN]);
  const dy = Tensor.from(ctx, R.uniform(T * OUT), [T, OUT]);
  const weights: [BDtype, Tensor][] = [['f32', Tensor.from(ctx, w, [OUT, IN])]];
  if (ctx.hasF16) weights.push(['f16', Tensor.from(ctx, w, [OUT, IN], 'w16', 'f16')]);
  for (const kind of ['q8', 'q4'] as const) weights.push([kind, Tensor.fromQuant(ctx, quantize(kind, w, OUT, IN))]);
  const variants: Record<string, () => () => void> = {};
  for (const [d, t] of weights) {
    variants[`${d} y = x·W0ᵀ`] = () => {
      const c = matmul(x, t, { transB: true });
      return () => c.free();
    };
    variants[`${d} dx = dy·W0`] = () => {
      const c = matmul(dy, t);
      return () => c.free();
    };
  }
  const flops = 2 * T * OUT * IN;
  const ms = await timeVariants(ctx, variants, { reps: 5 });
  const rows: Row[] = [];
  for (const [k, t] of Object.entries(ms)) {
    const [d, ...rest] = k.split(' ');
    const f32 = ms[`f32 ${rest.join(' ')}`];
    const bytes = bBytesPerValue(d as BDtype) / bBytesPerValue('f32');
    rows.push({
      name: `W0 ${d} ${rest.join(' ')} (SmolLM2 gate_proj, ${T} tokens)`,
      value: flops / t.median / 1e6,
      unit: 'GFLOP/s',
      note: `${t.median.toFixed(1)} ms; time x${(t.median / f32.median).toFixed(2)} of f32, W0 bytes read x${bytes.toFixed(3)}`,
    });
  }
  [x, dy, ...weights.map(([, t]) => t)].forEach((t) => t.free());
  return rows;
}

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

/** Every matmul variant (src/kernels/matmul.ts) at square sizes and at LoRA shapes of SmolLM2-135M (N = 4096 tokens,
 * hidden 576, MLP 1536), interleaved, with the ratio to today's kernel (baseline) measured in the same rounds. */
export const matmulVariantsSection: Section = {
  name: 'matmul-variants',
  title: 'Matmul variants, y = x·Wᵀ (GFLOP/s; ratio to baseline in the note)',
  async run(ctx: GpuContext): Promise<Row[]> {
    const shapes: [string, number, number, number][] = [
      ['n=256', 256, 256, 256],
      ['n=512', 512, 512, 512],
      ['n=1024', 1024, 1024, 1024],
      ['4096x576x576 (q_proj)', 4096, 576, 576],
      ['4096x1536x576 (gate_proj)', 4096, 1536, 576],
      ['dA 8x576, K 4096 tokens (Gᵀ·x)', 8, 576, 4096],
    ];
    const rows: Row[] = [];
    for (const [label, M, N, K] of shapes) {
      const dA = M === 8;
      const R = benchRng(M + N + K);
      // y = x·Wᵀ: a (M, K), b (N, K); dA = Gᵀ·x: a (K, M), b (K, N)
      const a = Tensor.from(ctx, R.uniform(M * K), dA ? [K, M] : [M, K]);
      const b = Tensor.from(ctx, R.uniform(N * K), dA ? [K, N] : [N, K]);
      const c = Tensor.empty(ctx, [M, N]);
      const m = {
        a: a.buf,
        b: b.buf,
        c: c.buf,
        M,
        N,
        K,
        lda: dA ? M : K,
        ldb: dA ? N : K,
        ldc: N,
        transA: dA,
        transB: !dA,
      };
      const variants: Record<string, () => void> = {};
      for (const v of MATMUL_VARIANTS) {
        if (!variantAvailable(ctx, v)) continue;
        if (v.startsWith('splitk') && M * N > 1 << 16) continue; // a 4 x 4 tile per workgroup: for skinny C only
        variants[v] = () => matmulRaw(ctx, m, undefined, undefined, undefined, v);
      }
      const flops = 2 * M * N * K;
      const big = flops > 2e9;
      const ms = await timeVariants(ctx, variants, { reps: big ? 2 : 3, inner: flops < 1e8 ? 4 : 1 });
      const base = ms.baseline;
      for (const [k, t] of Object.entries(ms)) {
        rows.push({
          name: `${k} ${label}`,
          value: flops / t.median / 1e6,
          unit: 'GFLOP/s',
          note: `${t.median.toFixed(1)} ms; x${(base.median / t.median).toFixed(2)} vs baseline (minima x${(base.min / t.min).toFixed(2)})`,
        });
      }
      [a, b, c].forEach((t) => t.free());
    }
    return rows;
  },
};
