// The soak: a long training run of the bundled model as the studio's worker drives it (Engine.run, with a
// validation pass, a sample and a checkpoint saved every 100 steps), watching what only shows
// over thousands of steps:
//   - GPU bytes held by callers after each checkpoint (the allocator's live bytes): the same every time, or
//     something allocates per step (or per checkpoint) and never frees;
//   - GPU bytes kept in the allocator's pool: bounded, or the pool grows with buffers nobody asks for again;
//   - the JS heap after a full garbage collection;
//   - the step time over windows (the median of the first and the last STEP_WINDOW steps): no drift. The wall
//     time also moves with the machine's load; the process's CPU time a step does not, so both are shown.
// `soak()` is also what tests/training/soak.test.ts runs, shorter, asserting the live bytes exactly.

import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Engine } from '../../src/engine/engine';
import type { GpuContext } from '../../src/gpu/context';
import { dirSource } from '../../src/loaders/sources.node';
import { saveCheckpoint } from '../../src/storage/checkpoints';
import { memoryStore } from '../../src/storage/kv';
import type { TrainSettings } from '../../src/training/settings';
import { fmtBytes } from '../../src/util/format';
import { median, type Row, type Section } from '../harness';
import { BUNDLED_DATA, BUNDLED_MODEL } from './training';

/** The run `npm run bench` soaks: 2,000 steps, a checkpoint (and a validation pass and a sample) every 100. */
export const SOAK_SETTINGS: Partial<TrainSettings> = {
  batchSize: 2,
  seqLen: 128,
  rank: 8,
  alpha: 16,
  dropout: 0.05,
  lr: 1e-3,
  steps: 2000,
  checkpointEvery: 100,
  evalEvery: 100,
  sampleEvery: 100,
  sampleTokens: 16,
  valFraction: 0.02,
  seed: 1,
};
const STEP_WINDOW = 100;

/** What the allocator and the JS heap hold right after a checkpoint was saved (the GPU idle). */
export interface SoakSample {
  step: number;
  liveBytes: number;
  pooledBytes: number;
  /** process.memoryUsage().heapUsed after a full garbage collection */
  heapBytes: number;
}

export interface SoakResult {
  /** Each step's wall time as the trainer reports it (from one step's figures to the next's). */
  stepMs: number[];
  /** The CPU time this process spent over the same intervals (user + system, all its threads: on a software
   * driver that is the GPU's work too). Unlike the wall time it does not grow when other processes share
   * the cores, so it is the figure that shows drift on a busy machine. */
  cpuMs: number[];
  losses: number[];
  /** One per checkpoint (every checkpointEvery steps), and one more at the end of the run. */
  samples: SoakSample[];
  peakBytes: number;
  /** The most GPU error checks the context held at a step's event (those of batches in flight): bounded by
   * what one step submits, however far apart the checkpoints are. */
  maxPendingChecks: number;
}

/** Node's garbage collector, reachable without --expose-gc on the command line (the bench and vitest run
 * plain node): the flag is set at run time and a fresh context picks up the `gc` global it adds. */
let gcFn: (() => void) | null = null;
function fullGc(): void {
  if (!gcFn) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

/**
 * Loads the bundled model on `ctx` (f32) and its fortunes dataset, trains a fresh adapter with `settings`
 * (their checkpointEvery must be > 0) through Engine.run, saving each checkpoint to an in-memory store
 * exactly as the worker saves it to IndexedDB (snapshot: the adapter and the AdamW moments read back), and
 * samples the allocator and the heap after each one and at the end. Unloads the model before returning.
 * `progress` hears each sample as it is taken (a long soak is otherwise silent for most of an hour).
 */
export async function soak(
  ctx: GpuContext,
  settings: Partial<TrainSettings>,
  progress?: (s: SoakSample, r: SoakResult) => void,
): Promise<SoakResult> {
  if (!(settings.checkpointEvery! > 0)) throw new Error('soak: settings.checkpointEvery must be > 0');
  const e = new Engine(ctx, { log: () => {} });
  await e.loadModel(dirSource(BUNDLED_MODEL), 'f32');
  const dataset = { name: 'fortunes.txt', text: readFileSync(BUNDLED_DATA, 'utf8').slice(0, 200_000) };
  await e.loadDataset(dataset.name, dataset.text, {
    seqLen: settings.seqLen!,
    valFraction: settings.valFraction ?? 0.05,
    seed: settings.seed ?? 1,
  });
  const store = memoryStore();
  const res: SoakResult = { stepMs: [], cpuMs: [], losses: [], samples: [], peakBytes: 0, maxPendingChecks: 0 };
  let cpu = process.cpuUsage();
  const checkpoint = async (step: number) => {
    await saveCheckpoint(store, await e.snapshot(dataset));
    await ctx.sync();
    fullGc();
    const a = ctx.alloc;
    res.samples.push({ step, liveBytes: a.liveBytes, pooledBytes: a.pooledBytes, heapBytes: heapUsed() });
    progress?.(res.samples.at(-1)!, res);
  };
  try {
    const t = e.createTrainer(settings);
    ctx.alloc.resetPeak();
    cpu = process.cpuUsage();
    const control = { paused: false, stopped: false, waitIfPaused: async () => {} };
    const how = await e.run(control, {
      onEvent: (ev) => {
        if (ev.type !== 'step') return;
        res.stepMs.push(ev.stepMs);
        const d = process.cpuUsage(cpu);
        cpu = process.cpuUsage();
        res.cpuMs.push((d.user + d.system) / 1000);
        res.losses.push(ev.loss);
        res.maxPendingChecks = Math.max(res.maxPendingChecks, ctx.pendingErrorChecks);
      },
      onCheckpoint: (tr) => checkpoint(tr.step),
    });
    if (how !== 'done') throw new Error(`soak: the run ended '${how}' at step ${t.step}`);
    await checkpoint(t.step); // Engine.run saves none at the very end; the worker does (on finishing)
    res.peakBytes = ctx.alloc.peakBytes;
  } finally {
    e.unloadModel();
  }
  return res;
}

function heapUsed(): number {
  return process.memoryUsage().heapUsed;
}

export const soakSection: Section = {
  name: 'soak',
  title: `Soak: ${SOAK_SETTINGS.steps} training steps of the bundled model (batch ${SOAK_SETTINGS.batchSize} x ${SOAK_SETTINGS.seqLen}), a checkpoint, validation and sample every ${SOAK_SETTINGS.checkpointEvery}`,
  async run(ctx: GpuContext): Promise<Row[]> {
    const t0 = performance.now();
    const r = await soak(ctx, SOAK_SETTINGS, (s, r) => {
      const last = r.stepMs.slice(-SOAK_SETTINGS.checkpointEvery!);
      console.log(
        `  step ${s.step}/${SOAK_SETTINGS.steps}: live ${fmtBytes(s.liveBytes)}, pooled ${fmtBytes(s.pooledBytes)}, heap ${fmtBytes(s.heapBytes)}, step ${median(last).toFixed(0)} ms (median of the last ${last.length}), ${((performance.now() - t0) / 60_000).toFixed(1)} min`,
      );
    });
    // "start" is the first checkpoint, after checkpointEvery warm steps (pools and caches filled); "end" the last
    const [first, last] = [r.samples[0], r.samples.at(-1)!];
    const mid = r.samples[r.samples.length >> 1];
    const every = SOAK_SETTINGS.checkpointEvery!;
    const lives = new Set(r.samples.map((s) => s.liveBytes));
    const pooledMax = Math.max(...r.samples.map((s) => s.pooledBytes));
    const windowMedians = (xs: number[]) => {
      const out: number[] = [];
      for (let i = 0; i + STEP_WINDOW <= xs.length; i += STEP_WINDOW) out.push(median(xs.slice(i, i + STEP_WINDOW)));
      return out;
    };
    const windows = windowMedians(r.stepMs);
    const [w0, w1] = [windows[0], windows.at(-1)!];
    const cpuWindows = windowMedians(r.cpuMs);
    const [c0, c1] = [cpuWindows[0], cpuWindows.at(-1)!];
    const MiB = (b: number) => b / 1024 ** 2;
    const kib = (b: number) => `${b >= 0 ? '+' : ''}${(b / 1024).toFixed(0)} KiB`;
    return [
      {
        name: 'GPU live bytes, first checkpoint',
        value: MiB(first.liveBytes),
        unit: 'MiB',
        note: `${first.liveBytes} B at step ${first.step}`,
      },
      {
        name: 'GPU live bytes, end',
        value: MiB(last.liveBytes),
        unit: 'MiB',
        note: `${last.liveBytes} B at step ${last.step}; ${lives.size === 1 ? 'the same' : `${lives.size} different values`} at all ${r.samples.length} checkpoints`,
      },
      {
        name: 'GPU pooled bytes, first checkpoint / end',
        value: MiB(last.pooledBytes),
        unit: 'MiB',
        note: `${fmtBytes(first.pooledBytes)} / ${fmtBytes(last.pooledBytes)}; at most ${fmtBytes(pooledMax)}; peak allocated ${fmtBytes(r.peakBytes)}`,
      },
      {
        name: 'JS heap after GC, first checkpoint',
        value: MiB(first.heapBytes),
        unit: 'MiB',
        note: 'process.memoryUsage().heapUsed',
      },
      {
        name: 'JS heap after GC, end',
        value: MiB(last.heapBytes),
        unit: 'MiB',
        note: `${kib(last.heapBytes - first.heapBytes)} over ${last.step - first.step} steps (the loss history grows by a step each step)`,
      },
      {
        name: 'JS heap growth over the second half',
        value: (last.heapBytes - mid.heapBytes) / 1024 / ((last.step - mid.step) / every),
        unit: `KiB / ${every} steps`,
        note: `from step ${mid.step} to ${last.step}: what is left once the code is warm`,
      },
      {
        name: `step time, median of the first ${STEP_WINDOW} steps`,
        value: w0,
        unit: 'ms',
        note: '',
      },
      {
        name: `step time, median of the last ${STEP_WINDOW} steps`,
        value: w1,
        unit: 'ms',
        note: `last / first x${(w1 / w0).toFixed(2)}; medians of the ${windows.length} windows from ${Math.min(...windows).toFixed(0)} to ${Math.max(...windows).toFixed(0)} ms`,
      },
      {
        name: `process CPU time a step, median of the first ${STEP_WINDOW} steps`,
        value: c0,
        unit: 'ms',
        note: 'user + system, every thread of this process (the software driver included)',
      },
      {
        name: `process CPU time a step, median of the last ${STEP_WINDOW} steps`,
        value: c1,
        unit: 'ms',
        note: `last / first x${(c1 / c0).toFixed(2)}; medians of the ${cpuWindows.length} windows from ${Math.min(...cpuWindows).toFixed(0)} to ${Math.max(...cpuWindows).toFixed(0)} ms`,
      },
      {
        name: 'training loss, first / last step',
        value: r.losses.at(-1)!,
        unit: '',
        note: `${r.losses[0].toFixed(3)} at step 1, ${r.losses.at(-1)!.toFixed(3)} at step ${r.losses.length}`,
      },
    ];
  },
};
