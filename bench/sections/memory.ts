// Memory of the frozen base per weights choice (f32, f16, int8, int4; src/models/weights.ts), and one QLoRA
// step on an int4 base.
//
// Resident weights: GpuWeights.load of random weights of SmolLM2-135M, Qwen3-0.6B and Llama-3.2-1B shapes
// (the Hub configs of tests/models/hub-configs.ts) on the stub device of bench/record-devices.ts, which runs
// nothing and allocates nothing but goes through the real allocator: the bytes are the product's own
// accounting of what it would hold (buffers as sized, before pooling), for each choice, next to the estimate
// the studio shows before loading (src/models/memory.ts). The weights come as already stored in each choice
// (zero F16 bytes, zero Q8_0 / Q4_0 blocks), so nothing is converted or quantized: only the bytes matter here.
//
// The QLoRA step: a Llama-3.2-1B-shaped model with an int4 base on the real driver, cut to MEMORY_LAYERS
// layers (default 2 of 16: the full model's step takes many minutes on a software GPU), the full 128,256-row
// vocabulary, LoRA r 8 on all 7 linears, B 1 × T 64: the allocator's peak live bytes over one training step,
// and what was resident before it (weights, LoRA, Adam).
//
// Run alone: node bench/run.mjs memory
import type { GpuContext } from '../../src/gpu/context';
import { expectedTensors, LORA_TARGETS, parseConfig, type ModelConfig } from '../../src/models/config';
import { loadModel } from '../../src/models/index';
import { estimateMemory } from '../../src/models/memory';
import { LoraState } from '../../src/models/lora';
import { quantizable, quantLayout } from '../../src/gpu/quant';
import {
  GpuWeights,
  quantKindOf,
  WEIGHTS_CHOICES,
  type TensorReader,
  type WeightsChoice,
} from '../../src/models/weights';
import { resolveSettings } from '../../src/training/settings';
import { Trainer } from '../../src/training/trainer';
import { LLAMA32_1B, QWEN3_06B } from '../../tests/models/hub-configs';
import type { Row, Section } from '../harness';
import { stubContext } from '../record-devices';
import { randomWeights, smolLM2Config } from './smollm2';

const MiB = 2 ** 20;

/**
 * Zero weights already stored as `choice` keeps them (F16 bytes, Q8_0 / Q4_0 blocks where the rows split into
 * blocks, else float32), so the load takes its as-stored paths and only allocates: the bytes held do not depend
 * on the values, and quantizing 1.2 B values four times over is minutes of CPU on a busy machine.
 */
function storedWeights(cfg: ModelConfig, choice: WeightsChoice): Map<string, TensorReader> {
  const kind = quantKindOf(choice);
  return new Map(
    [...expectedTensors(cfg)].map(([name, shape]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const cols = shape[shape.length - 1];
      const r: TensorReader = { shape, read: async () => new Float32Array(n) };
      if (shape.length === 2 && kind && quantizable(cols)) {
        const l = quantLayout(kind, n / cols, cols);
        r.dtype = kind === 'q8' ? 'Q8_0' : 'Q4_0';
        r.quant = async () => ({
          kind,
          rows: n / cols,
          cols,
          q: new Uint32Array(l.quantBytes / 4),
          scales: new Uint32Array(l.scalesBytes / 4),
        });
      } else if (shape.length === 2) {
        r.dtype = 'F16';
        r.readBytes = async () => new Uint8Array(2 * n);
      }
      return [name, r];
    }),
  );
}

async function residentRows(): Promise<Row[]> {
  const ctx = await stubContext({ f16: true });
  const models: [string, ModelConfig][] = [
    ['SmolLM2-135M', smolLM2Config()],
    ['Qwen3-0.6B', parseConfig(QWEN3_06B)],
    ['Llama-3.2-1B', parseConfig(LLAMA32_1B)],
  ];
  const rows: Row[] = [];
  for (const [name, cfg] of models) {
    let f32 = 0;
    for (const choice of WEIGHTS_CHOICES) {
      const live0 = ctx.alloc.liveBytes;
      const w = await GpuWeights.load(ctx, cfg, storedWeights(cfg, choice), { dtype: choice });
      const resident = ctx.alloc.liveBytes - live0;
      const est = estimateMemory(cfg, {
        weightDtype: choice,
        hasF16: true,
        batch: 1,
        seqLen: 64,
        rank: 8,
        targets: ['q_proj'],
        checkpointing: false,
      }).weightBytes;
      if (choice === 'f32') f32 = resident;
      rows.push({
        name: `${name} ${choice} weights`,
        value: resident / MiB,
        unit: 'MiB',
        note: `${((100 * resident) / f32).toFixed(1)} % of f32; tensors ${(w.bytes / MiB).toFixed(1)} MiB, estimate ${(est / MiB).toFixed(1)} MiB (the rest: allocator size classes)${w.notes.length ? '; ' + w.notes[0] : ''}`,
      });
      w.free();
    }
  }
  return rows;
}

async function qloraStepRows(ctx: GpuContext): Promise<Row[]> {
  const layers = Number(process.env.MEMORY_LAYERS ?? 2);
  const cfg = parseConfig({ ...LLAMA32_1B, num_hidden_layers: layers });
  const [B, T] = [1, 64];
  await ctx.sync();
  ctx.alloc.trim();
  const live0 = ctx.alloc.liveBytes;
  const t0 = performance.now();
  const model = await loadModel(ctx, cfg, randomWeights(cfg), { dtype: 'int4' });
  const loadS = (performance.now() - t0) / 1000;
  const settings = resolveSettings(
    { rank: 8, alpha: 16, dropout: 0, targets: [...LORA_TARGETS.llama], batchSize: B, seqLen: T, weightDtype: 'int4' },
    cfg,
  );
  const lora = LoraState.init(
    ctx,
    cfg,
    { r: 8, alpha: 16, useRslora: false, dropout: 0, targets: settings.targets },
    settings.seed,
  );
  let seed = 1;
  const trainer = new Trainer({
    ctx,
    model,
    lora,
    settings,
    train: {
      nextBatch: (b: number) => {
        const ids = Uint32Array.from({ length: b * T + 1 }, (_, i) => (i * 7919 + seed * 104729) % cfg.vocabSize);
        seed++;
        return { B: b, T, ids: ids.subarray(0, b * T), targets: ids.slice(1) };
      },
      state: () => ({ seed }),
    },
    val: [],
    totalSteps: 10,
  });
  await trainer.trainStep(); // warm: pipelines and the allocator's pools
  await ctx.sync();
  const resident = ctx.alloc.liveBytes - live0;
  ctx.alloc.resetPeak();
  const t1 = performance.now();
  const step = await trainer.trainStep();
  const stepS = (performance.now() - t1) / 1000;
  const peak = ctx.alloc.peakLiveBytes - live0;
  const est = estimateMemory(cfg, {
    weightDtype: 'int4',
    hasF16: ctx.hasF16,
    batch: B,
    seqLen: T,
    rank: 8,
    targets: settings.targets,
    checkpointing: false,
  });
  trainer.free();
  lora.free();
  model.weights.free();
  const what = `Llama-3.2-1B shapes cut to ${layers} of 16 layers, int4 base, r 8 all 7 linears, B ${B} × T ${T}`;
  return [
    { name: 'QLoRA step: resident before', value: resident / MiB, unit: 'MiB', note: what },
    {
      name: 'QLoRA step: peak live',
      value: peak / MiB,
      unit: 'MiB',
      note: `estimate ${(est.totalBytes / MiB).toFixed(1)} MiB; loss ${step.loss.toFixed(3)} (ln V ${Math.log(cfg.vocabSize).toFixed(3)})`,
    },
    { name: 'QLoRA step: load (quantize + upload)', value: loadS, unit: 's' },
    { name: 'QLoRA step: one step', value: stepS, unit: 's' },
  ];
}

export const memorySection: Section = {
  name: 'memory',
  title: 'Frozen base memory per weights choice (f32 / f16 / int8 / int4) and one QLoRA step',
  async run(ctx) {
    const rows = await residentRows();
    if (process.env.MEMORY_STEP !== '0') rows.push(...(await qloraStepRows(ctx)));
    return rows;
  },
};
