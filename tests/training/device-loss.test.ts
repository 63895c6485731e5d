// A GPU device lost in the middle of a training run (issue 12): the run stops with a DeviceLostError that
// says what happened and what comes next; the engine makes a new device, loads the weights onto it again,
// restores the adapter, the optimizer's moments and the data position from the last checkpoint, and the
// run finishes with losses bit-identical to a run that was never interrupted. The device is lost twice.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { DeviceLostError, type GpuContext } from '../../src/gpu/context';
import { createNodeContext } from '../../src/gpu/node';
import { dirSource } from '../../src/loaders/sources.node';
import { loadCheckpoint, saveCheckpoint } from '../../src/storage/checkpoints';
import { memoryStore } from '../../src/storage/kv';
import type { TrainSettings } from '../../src/training/settings';
import { BUNDLED, ROOT } from '../helpers/fixtures';
import { gpu } from '../helpers/gpu';

const TEXT = readFileSync(join(ROOT, 'public/datasets/fortunes.txt'), 'utf8').slice(0, 60_000);
const DATASET = { name: 'fortunes.txt', text: TEXT };
const settings: Partial<TrainSettings> = {
  batchSize: 2,
  seqLen: 32,
  steps: 9,
  evalEvery: 0,
  sampleEvery: 0,
  checkpointEvery: 0,
  dropout: 0.1, // the dropout streams must resume where they were, too
  lr: 3e-3,
  warmupSteps: 2,
  seed: 7,
};
const control = { paused: false, stopped: false, waitIfPaused: async () => {} };

const made: GpuContext[] = [];
afterAll(() => {
  for (const c of made) if (!c.lost) c.destroy();
});

describe('device loss in the middle of a run', () => {
  it('stops with a clear error; on a new device the run resumes from its checkpoint, bit-identical', async () => {
    const e = new Engine(await gpu(), {
      newDevice: async () => {
        const c = await createNodeContext();
        made.push(c);
        return c;
      },
    });
    await e.loadModel(dirSource(BUNDLED), 'f32');
    await e.loadDataset(DATASET.name, DATASET.text, { seqLen: 32, valFraction: 0.1, seed: 7 });

    // Uninterrupted.
    e.createTrainer(settings);
    const want: number[] = [];
    await e.run(control, { onEvent: (ev) => ev.type === 'step' && want.push(ev.loss) });
    expect(want).toHaveLength(9);

    // Checkpoints every 3 steps; the device is destroyed when step 5 is reported, and again at step 8.
    const store = memoryStore();
    const hooks = (loseAt: number) => ({
      onEvent: (ev: { type: string; step: number }) => {
        if (ev.type === 'step' && ev.step === loseAt) e.ctx.device.destroy();
      },
      onCheckpoint: async () => saveCheckpoint(store, await e.snapshot(DATASET)),
    });
    e.createTrainer({ ...settings, checkpointEvery: 3 });
    const lost: { error: unknown; resumedFrom: number }[] = [];
    for (const loseAt of [5, 8, Infinity]) {
      const ctx = e.ctx;
      const error = await e.run(control, hooks(loseAt)).then(
        () => null,
        (x) => x,
      );
      if (!error) break;
      expect(ctx.lost?.reason).toBe('destroyed');
      await e.recoverDevice();
      expect(e.ctx).not.toBe(ctx);
      expect(e.ctx.lost).toBeNull();
      const t = await e.restore((await loadCheckpoint(store))!);
      lost.push({ error, resumedFrom: t.step });
    }
    expect(lost.map((l) => l.resumedFrom)).toEqual([3, 6]);
    for (const { error } of lost) {
      expect(error).toBeInstanceOf(DeviceLostError);
      expect(String((error as Error).message)).toMatch(
        /^Training stopped at step \d: the GPU device was lost \(destroyed: .*\)\. Saved work is kept: a new device is made to continue, and a run resumes from its last checkpoint\./,
      );
    }
    const got = e.trainer!.history.map((h) => h.loss);
    console.log(`device lost ${lost.length} times; resumed from steps ${lost.map((l) => l.resumedFrom).join(', ')}`);
    expect(e.trainer!.done).toBe(true);
    expect(got).toEqual(want); // bit for bit: same data order, dropout streams, moments and GPU arithmetic
    e.unloadModel();
  }, 900_000);
});
