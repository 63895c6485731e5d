// Training on the bundled model, through the same Engine the studio's worker and the CLI use:
// - a run resumed from a checkpoint gives exactly the losses of an uninterrupted run (same seed), also from
//   a checkpoint stored in the layout of older versions (no pointer, no digest);
// - fine-tuning on a sample dataset lowers the validation loss by a clear margin;
// - a non-finite loss stops the run and keeps the adapter at its last good step.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { dirSource } from '../../src/loaders/sources.node';
import { loadCheckpoint, saveCheckpoint } from '../../src/storage/checkpoints';
import { memoryStore } from '../../src/storage/kv';
import type { TrainSettings } from '../../src/training/settings';
import { NonFiniteLossError, Trainer } from '../../src/training/trainer';
import { BUNDLED, ROOT } from '../helpers/fixtures';
import { gpu } from '../helpers/gpu';

const FORTUNES = readFileSync(join(ROOT, 'public/datasets/fortunes.txt'), 'utf8');
const small: Partial<TrainSettings> = {
  batchSize: 2,
  seqLen: 32,
  evalEvery: 0,
  sampleEvery: 0,
  checkpointEvery: 0,
  dropout: 0.1,
  lr: 3e-3,
  warmupSteps: 2,
  seed: 7,
};
const control = { paused: false, stopped: false, waitIfPaused: async () => {} };

async function engineWithData(text = FORTUNES.slice(0, 60_000), settings = small) {
  const ctx = await gpu();
  const e = new Engine(ctx);
  await e.loadModel(dirSource(BUNDLED), 'f32');
  await e.loadDataset('fortunes.txt', text, { seqLen: settings.seqLen!, valFraction: 0.1, seed: settings.seed! });
  return e;
}

describe('training the bundled model', () => {
  it('a run resumed from a checkpoint repeats the uninterrupted run exactly', async () => {
    const e = await engineWithData();
    const steps = 6;
    const full = e.createTrainer({ ...small, steps });
    const losses: number[] = [];
    await e.run(control, { onEvent: (ev) => ev.type === 'step' && losses.push(ev.loss) });
    expect(losses).toHaveLength(steps);

    // Interrupted: 3 steps, checkpoint through the store, throw the run away, restore, 3 more.
    const store = memoryStore();
    const first = e.createTrainer({ ...small, steps });
    const resumed: number[] = [];
    for (let i = 0; i < 3; i++) resumed.push((await first.trainStep()).loss);
    await saveCheckpoint(store, await e.snapshot({ name: 'fortunes.txt', text: FORTUNES.slice(0, 60_000) }));
    const dropRun = () => {
      e.disposeRun();
      e.lora?.free();
      e.lora = null;
    };
    dropRun();
    // The same snapshot as an older WebLoRA stored it (the checkpoint itself under checkpoint:current, no
    // pointer or digest) resumes the same way.
    const legacy = memoryStore();
    await legacy.set('checkpoint:current', await loadCheckpoint(store), 'the training checkpoint');
    const restored = await e.restore((await loadCheckpoint(store))!);
    expect(restored.step).toBe(3);
    while (!restored.done) resumed.push((await restored.trainStep()).loss);
    expect(resumed).toEqual(losses); // bit for bit: same data order, dropout streams and GPU arithmetic

    dropRun();
    // a run saved on other weights than the loaded ones is refused, naming both, before anything changes
    const int4Run = { ...(await loadCheckpoint(store))! };
    int4Run.settings = { ...int4Run.settings, weightDtype: 'int4' };
    await expect(e.restore(int4Run)).rejects.toThrow(/trained on int4 weights, but the model is loaded with f32/);
    expect(e.trainer).toBeNull();
    const fromLegacy = await e.restore((await loadCheckpoint(legacy))!);
    const resumedLegacy = losses.slice(0, 3);
    while (!fromLegacy.done) resumedLegacy.push((await fromLegacy.trainStep()).loss);
    expect(resumedLegacy).toEqual(losses);
    void full;
    e.unloadModel();
  });

  it('fine-tuning on fortunes lowers the validation loss by a clear margin', async () => {
    const settings: Partial<TrainSettings> = {
      ...small,
      dropout: 0,
      batchSize: 4,
      seqLen: 64,
      lr: 5e-3,
      rank: 8,
      alpha: 16,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      steps: 40,
      warmupSteps: 4,
    };
    const e = await engineWithData(FORTUNES.slice(0, 120_000), settings);
    const t = e.createTrainer(settings);
    const before = (await t.validate()).valLoss;
    await e.run(control, { onEvent: () => {} });
    const after = (await t.validate()).valLoss;
    console.log(`fortunes: validation loss ${before.toFixed(4)} -> ${after.toFixed(4)} in 40 steps`);
    // The base model never saw fortunes; 40 steps of LoRA should take a large bite out of the gap.
    expect(after).toBeLessThan(before - 0.3);
    e.unloadModel();
  });

  it('a non-finite loss stops the run with a clear message and keeps the last good adapter', async () => {
    const e = await engineWithData(FORTUNES.slice(0, 30_000));
    // Settings validation refuses such a learning rate, so build the run by hand to make it diverge.
    const base = e.createTrainer({ ...small, steps: 5 });
    const t = new Trainer({
      ...base.job,
      settings: { ...base.job.settings, lr: 1e30, maxGradNorm: 0, warmupSteps: 0, decay: 'constant' },
    });
    let err: unknown = null;
    let lastGood: Map<string, { A: Float32Array; B: Float32Array }> | null = null;
    try {
      for (;;) {
        lastGood = await e.lora!.read();
        await t.trainStep();
      }
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(NonFiniteLossError);
    expect(t.step).toBeGreaterThan(0); // it diverged after at least one good update
    expect(String((err as Error).message)).toMatch(/Lower the learning rate/);
    const now = await e.lora!.read();
    for (const [k, v] of now) {
      expect(v.A).toEqual(lastGood!.get(k)!.A);
      expect(v.B).toEqual(lastGood!.get(k)!.B);
    }
    t.free(); // the engine frees `base` with the run
    e.unloadModel();
  });
});
