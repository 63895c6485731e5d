// The LM head with its cross-entropy and input gradient (src/models/head.ts headLoss, wantGrad), at the
// bundled model's shapes (N 512, V 2048, C 128) and SmolLM2-135M's (N 512, V 49152, C 576): time of one
// call (warm median of a GPU round trip) and the GPU bytes it allocates above what was resident (peak).
import type { GpuContext } from '../../src/gpu/context';
import { Tensor } from '../../src/gpu/tensor';
import { headLoss } from '../../src/models/head';
import { fmtBytes } from '../../src/util/format';
import { timeVariants, type Row, type Section } from '../harness';
import { benchRng } from './data';

const SHAPES = [
  { what: 'bundled', N: 512, V: 2048, C: 128, reps: 5, warmup: 1 },
  // ~60 GFLOP a call, about a minute on lavapipe: one timed call after the bundled shape has compiled the kernels
  { what: 'SmolLM2-135M', N: 512, V: 49152, C: 576, reps: 1, warmup: 0 },
];

export const headSection: Section = {
  name: 'head',
  title: 'LM head + cross-entropy + dx (headLoss with gradient), f32 table',
  async run(ctx: GpuContext): Promise<Row[]> {
    const rows: Row[] = [];
    for (const { what, N, V, C, reps, warmup } of SHAPES) {
      const R = benchRng(N + V + C);
      const x = Tensor.from(ctx, R.uniform(N * C), [N, C]);
      const table = Tensor.from(ctx, R.uniform(V * C, -0.05, 0.05), [V, C]);
      const targets = Uint32Array.from({ length: N }, (_, i) => (i * 7919) % V);
      const chunks = [{ table, rowStart: 0 }];
      const call = () => {
        const { losses, dx } = headLoss(x, chunks, V, targets, 1 / N, true);
        return () => [losses, dx!].forEach((t) => t.free());
      };
      const t = await timeVariants(ctx, { head: call }, { reps, warmup });
      await ctx.sync();
      ctx.alloc.trim();
      ctx.alloc.resetPeak();
      const base = ctx.alloc.allocatedBytes;
      call()();
      await ctx.sync();
      const peak = ctx.alloc.peakBytes - base;
      const shape = `${what}: N ${N}, V ${V}, C ${C}`;
      rows.push({ name: `${shape}, time`, value: t.head.median, unit: 'ms', note: `min ${t.head.min.toFixed(1)} ms` });
      rows.push({ name: `${shape}, peak above resident`, value: peak / 2 ** 20, unit: 'MiB', note: fmtBytes(peak) });
      [x, table].forEach((tt) => tt.free());
    }
    return rows;
  },
};
