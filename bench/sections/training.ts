// Training the bundled model: tokens/s and peak GPU bytes of a whole optimizer step (forward, backward,
// AdamW) at stated settings; activation checkpointing on vs off (time and memory, same run, interleaved);
// LoRA training memory vs what a full fine-tune of the same model would hold, from the same accounting;
// and a run of consecutive steps as the engine drives them (each step's figures read one step late), with
// the command stream it makes per step: dispatches, submits, bind groups created, blocking readbacks.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../src/engine/engine';
import type { GpuContext } from '../../src/gpu/context';
import { fmtBytes } from '../../src/util/format';
import { estimateMemory } from '../../src/models/memory';
import { dirSource } from '../../src/loaders/sources.node';
import type { TrainSettings } from '../../src/training/settings';
import { median, type Row, type Section } from '../harness';
import { fileTuneStore } from '../../src/engine/autotune-store.node';
import { setMatmulPolicy } from '../../src/kernels/matmul';
import { resolveSettings } from '../../src/training/settings';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BUNDLED_MODEL = resolve(root, 'public/models/weblora-llama-1m');
export const BUNDLED_DATA = resolve(root, 'public/datasets/fortunes.txt');

export const TRAINING_SETTINGS: Partial<TrainSettings> = {
  batchSize: 4,
  seqLen: 128,
  rank: 8,
  alpha: 16,
  dropout: 0.05,
  steps: 1000,
  evalEvery: 0,
  sampleEvery: 0,
  checkpointEvery: 0,
};
const REPS = 4;

export const trainingSection: Section = {
  name: 'training',
  title: `Training the bundled model (batch ${TRAINING_SETTINGS.batchSize} x ${TRAINING_SETTINGS.seqLen} tokens, r ${TRAINING_SETTINGS.rank}, q_proj+v_proj, AdamW step included)`,
  async run(ctx: GpuContext): Promise<Row[]> {
    // the autotuner (cached in .cache/matmul-autotune.json) with room to time every class of these settings
    const e = new Engine(ctx, { tuneStore: fileTuneStore(), tuneBudgetMs: 60_000, log: () => {} });
    const m = await e.loadModel(dirSource(BUNDLED_MODEL), 'f32');
    const tune = await e.tuneMatmul(
      m.files.config,
      resolveSettings({ ...TRAINING_SETTINGS, weightDtype: 'f32' }, m.files.config),
    );
    await e.loadDataset('fortunes.txt', readFileSync(BUNDLED_DATA, 'utf8').slice(0, 200_000), {
      seqLen: TRAINING_SETTINGS.seqLen!,
      valFraction: 0.05,
      seed: 1,
    });
    // checkpointing off and on with the autotuned matmuls, and off with every matmul on the baseline kernel
    const variants = { off: false, on: true, 'off, baseline matmul': false } as const;
    const times: Record<string, number[]> = { off: [], on: [], 'off, baseline matmul': [] };
    const peaks: Record<string, number> = { off: 0, on: 0, 'off, baseline matmul': 0 };
    for (let rep = -1; rep < REPS; rep++) {
      for (const [k, ck] of Object.entries(variants)) {
        setMatmulPolicy(ctx, k.includes('baseline') ? 'baseline' : undefined);
        const t = e.createTrainer({ ...TRAINING_SETTINGS, checkpointing: ck });
        await ctx.sync();
        ctx.alloc.trim(); // nothing pooled: the peak above `base` is what the step itself allocates
        ctx.alloc.resetPeak();
        const base = ctx.alloc.allocatedBytes; // resident: weights, adapter, gradients, Adam moments
        const ev = await t.trainStep();
        if (rep >= 0) {
          times[k].push(ev.stepMs);
          peaks[k] = Math.max(peaks[k], ctx.alloc.peakBytes - base);
        }
      }
    }
    setMatmulPolicy(ctx, undefined);
    const tokens = TRAINING_SETTINGS.batchSize! * TRAINING_SETTINGS.seqLen!;
    const base = median(times['off, baseline matmul']);
    const off = median(times.off),
      on = median(times.on);
    const cfg = m.files.config;
    const est = (checkpointing: boolean) =>
      estimateMemory(cfg, {
        weightDtype: 'f32',
        batch: TRAINING_SETTINGS.batchSize!,
        seqLen: TRAINING_SETTINGS.seqLen!,
        rank: TRAINING_SETTINGS.rank!,
        targets: ['q_proj', 'v_proj'],
        checkpointing,
        maxBindingBytes: ctx.limits.maxStorageBufferBindingSize,
      });
    const lora = est(false);
    // A full fine-tune holds every weight 4 times in f32 (weight, gradient, Adam m and v) plus the same
    // activations, and needs no LoRA state.
    const fullBytes = lora.weightBytes * 4 + lora.activationBytes + lora.logitsBytes;
    const resident = m.model.weights.bytes + e.lora!.paramCount * 4 * 4;
    const rows: Row[] = [
      {
        name: 'training tokens/s, checkpointing off',
        value: tokens / (off / 1000),
        unit: 'tok/s',
        note: `step ${off.toFixed(0)} ms (median of ${REPS})`,
      },
      {
        name: 'training tokens/s, checkpointing on',
        value: tokens / (on / 1000),
        unit: 'tok/s',
        note: `step ${on.toFixed(0)} ms`,
      },
      {
        name: 'training tokens/s, every matmul on baseline',
        value: tokens / (base / 1000),
        unit: 'tok/s',
        note: `step ${base.toFixed(0)} ms; autotuned / baseline step time x${(off / base).toFixed(2)}`,
      },
      {
        name: 'step time: checkpointing on / off',
        value: on / off,
        unit: 'x',
        note: 'recomputing each block in backward',
      },
      {
        name: 'step peak GPU bytes above resident, off',
        value: peaks.off / 1024 ** 2,
        unit: 'MiB',
        note: `resident (weights + LoRA + Adam) ${fmtBytes(resident)}`,
      },
      { name: 'step peak GPU bytes above resident, on', value: peaks.on / 1024 ** 2, unit: 'MiB', note: '' },
      {
        name: 'peak memory: checkpointing on / off',
        value: peaks.on / peaks.off,
        unit: 'x',
        note: 'activation memory only',
      },
      {
        name: 'LoRA training memory / full fine-tune',
        value: lora.totalBytes / fullBytes,
        unit: 'x',
        note: `estimates from src/models/memory.ts: LoRA ${fmtBytes(lora.totalBytes)}, full ${fmtBytes(fullBytes)}`,
      },
    ];
    rows.push(...(await streamRows(ctx, e)));
    // the autotuner's pick per shape class (chosen variant per shape), for the adapter this ran on
    for (const r0 of tune.results) {
      // as decided at load (timed, or left on the baseline when the budget ran out), when that load decided it
      const r = m.matmul.results.find((x) => x.shapeClass === r0.shapeClass && x.source !== 'cached') ?? r0;
      const t = r.ms
        ? Object.entries(r.ms)
            .map(([v, x]) => `${v} ${x!.toFixed(2)}`)
            .join(', ')
        : '';
      rows.push({
        name: `matmul ${r.shapeClass}`,
        value: NaN,
        unit: r.variant,
        note: `${r.source}${t ? ` (ms: ${t})` : ''}; ${r.what.join(', ')}`,
      });
    }
    e.unloadModel();
    return rows;
  },
};

const RUN_STEPS = 12;

/** Consecutive steps through Engine.run (checkpointing off): tokens/s over RUN_STEPS - 3 steps in the middle of
 * a run, and the command stream per step, counted over the same steps (the first two warm caches and pools). */
async function streamRows(ctx: GpuContext, e: Engine): Promise<Row[]> {
  const submit = ctx.device.queue.submit.bind(ctx.device.queue);
  let submits = 0;
  ctx.device.queue.submit = (b: Iterable<GPUCommandBuffer>) => (submits++, submit(b));
  try {
    e.createTrainer({ ...TRAINING_SETTINGS, steps: RUN_STEPS, checkpointing: false });
    await ctx.sync();
    const marks: { t: number; dispatches: number; submits: number; groups: number; reads: number }[] = [];
    const control = { paused: false, stopped: false, waitIfPaused: async () => {} };
    const mark = () =>
      marks.push({
        t: performance.now(),
        dispatches: ctx.dispatchCount,
        submits,
        groups: ctx.bindGroupCount,
        reads: ctx.readbackCount,
      });
    mark();
    await e.run(control, { onEvent: (ev) => ev.type === 'step' && mark() });
    // Between the events of steps 2 and RUN_STEPS - 1, RUN_STEPS - 3 steps were recorded (one step ahead of
    // the events when they come late, none ahead when they do not) and as many step intervals passed.
    const [a, b] = [marks[2], marks[RUN_STEPS - 1]];
    const n = RUN_STEPS - 3;
    const ms = (b.t - a.t) / n;
    const per = (k: 'dispatches' | 'submits' | 'groups' | 'reads') => (b[k] - a[k]) / n;
    return [
      {
        name: 'training tokens/s, consecutive steps',
        value: (TRAINING_SETTINGS.batchSize! * TRAINING_SETTINGS.seqLen!) / (ms / 1000),
        unit: 'tok/s',
        note: `${ms.toFixed(0)} ms a step, ${n} steps in the middle of one ${RUN_STEPS}-step run (Engine.run)`,
      },
      { name: 'dispatches per step', value: per('dispatches'), unit: '', note: 'same steps' },
      { name: 'submits per step', value: per('submits'), unit: '', note: 'queue.submit calls' },
      { name: 'bind groups created per step', value: per('groups'), unit: '', note: 'the rest come from the cache' },
      { name: 'blocking readbacks per step', value: per('reads'), unit: '', note: 'ctx.readBytes calls' },
    ];
  } finally {
    ctx.device.queue.submit = submit;
  }
}
