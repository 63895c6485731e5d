// Matmul throughput: GFLOP/s of C = A·Bᵀ (the weights' layout, y = x·W0ᵀ) and C = A·B at n = 256, 512, 1024,
// f32 and, where the adapter has shader-f16, with f16 B.
import type { GpuContext } from '../../src/gpu/context';
import { Tensor } from '../../src/gpu/tensor';
import { matmul } from '../../src/kernels/matmul';
import { timeVariants, type Row, type Section } from '../harness';
import { benchRng } from './data';

export const matmulSection: Section = {
  name: 'matmul',
  title: 'Matmul, square n x n x n (GFLOP/s, higher is better)',
  async run(ctx: GpuContext): Promise<Row[]> {
    const slow = ctx.adapterName.toLowerCase().includes('swiftshader');
    const sizes = slow ? [256, 512] : [256, 512, 1024]; // 1024³ takes ~15 s a launch on SwiftShader
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
      for (const [k, t] of Object.entries(ms)) rows.push({ name: `${k} n=${n}`, value: flops / t / 1e6, unit: 'GFLOP/s', note: `${t.toFixed(1)} ms` });
      [a, b, b16].forEach((t) => t?.free());
    }
    return rows;
  },
};
