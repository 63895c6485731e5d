// Reading each step's loss and gradient norm one step late (Trainer.advance/drain, as Engine.run drives it):
// - the loss sequence is the one the blocking path gives: the same updates (they never depend on the
//   loss), and losses that differ only in how the per-row losses are summed: f32 on the GPU (one workgroup:
//   an invocation adds ceil(N / 256) non-negative values, then an 8-level tree, then the add into the
//   accumulator: relative error ≤ (ceil(N / 256) + 9)·u, allowed twice) vs float64 in JS before;
// - advance()/drain() and trainStep() give bit-identical losses and norms, and no step waits on a blocking readback.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countTargets } from '../../src/data/batch';
import { forwardBackward } from '../../src/training/step';
import { Engine } from '../../src/engine/engine';
import { pcgHash } from '../../src/kernels/rng.cpu';
import { dirSource } from '../../src/loaders/sources.node';
import { MAX_GRAD_ACCUM, type TrainSettings } from '../../src/training/settings';
import type { StepEvent } from '../../src/training/trainer';
import { BUNDLED, ROOT } from '../helpers/fixtures';
import { gpu } from '../helpers/gpu';

const FORTUNES = readFileSync(join(ROOT, 'public/datasets/fortunes.txt'), 'utf8').slice(0, 40_000);
const settings: Partial<TrainSettings> = {
  batchSize: 2,
  gradAccum: 2,
  seqLen: 32,
  steps: 5,
  evalEvery: 0,
  sampleEvery: 0,
  checkpointEvery: 0,
  dropout: 0.1,
  lr: 3e-3,
  warmupSteps: 1,
  seed: 3,
};
const u = 2 ** -24;
const control = { paused: false, stopped: false, waitIfPaused: async () => {} };

describe('one-step-late step figures', () => {
  it('give the loss sequence of the blocking path, and trainStep() the same figures bit for bit', async () => {
    const ctx = await gpu();
    const e = new Engine(ctx);
    await e.loadModel(dirSource(BUNDLED), 'f32');
    await e.loadDataset('fortunes.txt', FORTUNES, { seqLen: settings.seqLen!, valFraction: 0.1, seed: 3 });

    // Late: Engine.run (advance, drain at the end).
    const late: StepEvent[] = [];
    e.createTrainer(settings);
    const reads0 = ctx.readbackCount;
    await e.run(control, { onEvent: (ev) => ev.type === 'step' && late.push(ev) });
    expect(late.map((ev) => ev.step)).toEqual([1, 2, 3, 4, 5]);
    expect(ctx.readbackCount - reads0).toBe(0); // every figure came through readLater, none blocked a step

    // trainStep(): the same figures, bit for bit.
    const t2 = e.createTrainer(settings);
    const sync: StepEvent[] = [];
    while (!t2.done) sync.push(await t2.trainStep());
    expect(sync.map((ev) => [ev.loss, ev.gradNorm])).toEqual(late.map((ev) => [ev.loss, ev.gradNorm]));

    // The blocking path as it was: per-row losses read back and summed in float64, AdamW.update.
    const t3 = e.createTrainer(settings);
    const s = t3.job.settings;
    const before: number[] = [];
    let rows = 0;
    for (let step = 0; step < settings.steps!; step++) {
      const micro = [0, 1].map(() => t3.job.train.nextBatch(s.batchSize));
      const count = micro.reduce((n, b) => n + countTargets(b.targets), 0);
      let lossSum = 0;
      for (let i = 0; i < micro.length; i++) {
        const r = await forwardBackward(t3.job.model, t3.job.lora, micro[i], {
          gradScale: 1 / count,
          dropoutSeed: pcgHash((s.seed ^ pcgHash(step * MAX_GRAD_ACCUM + i)) >>> 0),
        });
        lossSum += r.lossSum;
        rows = micro[i].B * micro[i].T;
      }
      before.push(lossSum / count);
      t3.opt.update(t3.lr(step)).free();
    }
    const bound = 2 * (Math.ceil(rows / 256) + 9) * u * 2; // two micro-batches accumulate
    for (let i = 0; i < before.length; i++)
      expect(Math.abs(late[i].loss - before[i]) / before[i], `step ${i + 1}`).toBeLessThanOrEqual(bound);
    e.unloadModel();
  });
});
