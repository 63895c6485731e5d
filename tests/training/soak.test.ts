// A short soak (the bench's `soak` section, bench/sections/soak.ts, at 200 steps and a small batch): training
// the bundled model through Engine.run with a checkpoint, a validation pass and a sample every 20 steps must
// hold exactly the same GPU buffers after every checkpoint (a buffer allocated per step or per checkpoint
// and never freed would add to the allocator's live bytes), and keep its pool bounded.

import { describe, expect, it } from 'vitest';
import { soak } from '../../bench/sections/soak';
import { gpu } from '../helpers/gpu';

const STEPS = 200;
const EVERY = 20;

describe('a 200-step run with checkpoints', () => {
  it('holds the same GPU bytes after every checkpoint, and its pool stays bounded', async () => {
    const ctx = await gpu();
    const r = await soak(ctx, {
      batchSize: 2,
      seqLen: 32,
      rank: 4,
      steps: STEPS,
      checkpointEvery: EVERY,
      evalEvery: EVERY,
      sampleEvery: EVERY,
      sampleTokens: 8,
      valFraction: 0.005,
      lr: 1e-3,
      seed: 3,
    });
    expect(r.stepMs).toHaveLength(STEPS);
    expect(r.losses.every(Number.isFinite)).toBe(true);
    // checkpoints at 20, 40, ..., 180 (none at the last step: the run is done), then one at the end
    expect(r.samples.map((s) => s.step)).toEqual([
      ...Array.from({ length: STEPS / EVERY - 1 }, (_, i) => (i + 1) * EVERY),
      STEPS,
    ]);
    const first = r.samples[0];
    for (const s of r.samples)
      expect(s.liveBytes, `live bytes after the checkpoint at step ${s.step}`).toBe(first.liveBytes);
    // The pool holds what one step, one validation pass, one sample and one checkpoint free: after the first
    // round of each it must not grow.
    for (const s of r.samples)
      expect(s.pooledBytes, `pooled bytes after the checkpoint at step ${s.step}`).toBeLessThanOrEqual(
        first.pooledBytes,
      );
    // Between checkpoints only the figures of each step are read (readLater): the error checks of the batches
    // that passed must not pile up (3 submits a step would make 60 by each checkpoint).
    expect(r.maxPendingChecks).toBeLessThanOrEqual(6);
    // The run freed everything it held: the model is unloaded, the adapter and optimizer with it.
    expect(ctx.alloc.liveBytes).toBe(0);
  }, 300_000); // ~40 s on lavapipe on a quiet machine; a loaded one (other processes on the cores) takes longer
});
