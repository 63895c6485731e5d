// Issue 10 §4: the time of a SmolLM2-135M-shaped training step on the bench's driver (lavapipe: real execution),
// on a software driver cut to fit about a minute: 2 of the 30 layers (each layer and the head at full width: hidden 576, 9/3 heads,
// head_dim 64, intermediate 1536, vocab 49152, tied head), B 1 x T 128, r 8, LoRA on all 7 linears, random
// weights; on a real GPU (not a software adapter) the whole model at B 8 x T 512. The step is the Trainer's own trainStep (forward, backward, AdamW, its readbacks), timed end to end.
// Every kernel choice is whatever the tree makes; to compare old and new kernels in one run, add an entry to
// VARIANTS that forces a variant around its steps (the entries run interleaved, like the other sections).
// Run alone: node bench/run.mjs steptime (or npm run bench -- steptime).
import type { GpuContext } from '../../src/gpu/context';
import { median, type Row, type Section } from '../harness';
import { smolLM2Trainer, type SmolStep } from './smollm2';

/** On a software driver the cut above; on a real GPU the issue's own target shape, the whole model at B 8 x T 512
 * (the figure to hold against 30,000 tok/s). */
const SOFTWARE: SmolStep = { layers: 2, B: 1, T: 128, rank: 8 };
const REAL_GPU: SmolStep = { layers: 30, B: 8, T: 512, rank: 8 };
const shapeFor = (ctx: GpuContext): SmolStep => (ctx.softwareAdapter ? SOFTWARE : REAL_GPU);
const REPS = 3;

interface Variant {
  name: string;
  /** Forces the variant's kernels; returns the undo. */
  select(): () => void;
}
const VARIANTS: Variant[] = [{ name: 'kernels as the tree chooses them', select: () => () => {} }];

export const steptimeSection: Section = {
  name: 'steptime',
  title: `SmolLM2-135M-shaped training step on this driver (software drivers: ${SOFTWARE.layers} of 30 layers, B ${SOFTWARE.B} x T ${SOFTWARE.T}; a real GPU: all ${REAL_GPU.layers}, B ${REAL_GPU.B} x T ${REAL_GPU.T}; r 8, all 7 targets, random weights)`,
  async run(ctx: GpuContext): Promise<Row[]> {
    const SHAPE = shapeFor(ctx);
    const { trainer, free } = await smolLM2Trainer(ctx, SHAPE);
    const times: number[][] = VARIANTS.map(() => []);
    const dispatches: number[] = VARIANTS.map(() => 0);
    try {
      for (let rep = -1; rep < REPS; rep++) {
        for (const [i, v] of VARIANTS.entries()) {
          const undo = v.select();
          try {
            await ctx.sync();
            const before = ctx.dispatchCount;
            const ev = await trainer.trainStep();
            dispatches[i] = ctx.dispatchCount - before;
            if (rep >= 0) times[i].push(ev.stepMs);
          } finally {
            undo();
          }
        }
      }
    } finally {
      await ctx.sync();
      free();
    }
    const tokens = SHAPE.B * SHAPE.T;
    return VARIANTS.map((v, i) => {
      const ms = median(times[i]);
      return {
        name: `step time, ${SHAPE.layers} layers, B ${SHAPE.B} x T ${SHAPE.T}, ${v.name}`,
        value: ms,
        unit: 'ms',
        note: `${((tokens * 1000) / ms).toFixed(0)} tok/s; min ${Math.min(...times[i]).toFixed(0)} ms; median of ${REPS} after a warm-up; ${dispatches[i]} dispatches`,
      };
    });
  },
};
