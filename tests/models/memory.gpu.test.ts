// The memory estimate against what the model code really allocates: one training step of a small Llama,
// a small GPT-2 and a small Gemma 3 (four norms per layer, q/k norms, GeGLU) on the test GPU, with and without checkpointing, measured by the buffer allocator.

import { describe, expect, it } from 'vitest';
import { forwardBackward } from '../../src/training/step';
import { estimateMemory } from '../../src/models/memory';
import { expectedTensors, parseConfig, type ModelConfig } from '../../src/models/config';
import { modelFor } from '../../src/models/index';
import { LoraState } from '../../src/models/lora';
import { GpuWeights } from '../../src/models/weights';
import { AdamW } from '../../src/training/optimizer';
import { gpu, rng } from '../helpers/gpu';

const LLAMA = parseConfig({
  architectures: ['LlamaForCausalLM'],
  vocab_size: 512,
  hidden_size: 64,
  intermediate_size: 160,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 128,
  tie_word_embeddings: false,
});
const GPT2 = parseConfig({
  architectures: ['GPT2LMHeadModel'],
  vocab_size: 512,
  n_embd: 64,
  n_layer: 4,
  n_head: 4,
  n_positions: 128,
});

const GEMMA3 = parseConfig({
  architectures: ['Gemma3ForCausalLM'],
  vocab_size: 512,
  hidden_size: 64,
  intermediate_size: 160,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 24, // ≠ 64/4; q is 1.5·C wide, as gemma-3-270m's (1024 vs 640)
  sliding_window_pattern: 2,
  sliding_window: 16,
  max_position_embeddings: 128,
});

async function measure(cfg: ModelConfig, targets: string[], checkpointing: boolean) {
  const ctx = await gpu();
  const r = rng(7);
  const reader = new Map(
    [...expectedTensors(cfg)].map(([name, shape]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return [name, { shape, read: async () => r.uniform(n, -0.05, 0.05) }];
    }),
  );
  const B = 2,
    T = 64,
    rank = 8;
  await ctx.sync();
  ctx.alloc.trim();
  const live0 = ctx.alloc.liveBytes;
  const weights = await GpuWeights.load(ctx, cfg, reader, { dtype: 'f32' });
  const model = modelFor(cfg, weights);
  const lora = LoraState.init(ctx, cfg, { r: rank, alpha: 16, useRslora: false, dropout: 0, targets }, 1);
  const opt = new AdamW(lora, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0 });
  await ctx.sync();
  const resident = ctx.alloc.liveBytes - live0;
  ctx.alloc.trim();
  ctx.alloc.resetPeak();
  const before = ctx.alloc.allocatedBytes;
  const ids = r.int(B * T, cfg.vocabSize);
  const targetsIds = Uint32Array.from(ids, (_, i) => ids[(i + 1) % ids.length]);
  await forwardBackward(model, lora, { ids, targets: targetsIds, B, T }, { checkpointing });
  await ctx.sync();
  const stepPeak = ctx.alloc.peakBytes - before;
  opt.free();
  lora.free();
  weights.free();
  await ctx.sync();
  ctx.alloc.trim();
  const est = estimateMemory(cfg, { weightDtype: 'f32', batch: B, seqLen: T, rank, targets, checkpointing });
  return { resident, stepPeak, est };
}

describe('estimateMemory vs the allocator', () => {
  for (const [name, cfg, targets] of [
    ['llama', LLAMA, ['q_proj', 'v_proj', 'gate_proj']],
    ['gpt2', GPT2, ['c_attn', 'c_fc']],
    ['gemma3', GEMMA3, ['q_proj', 'v_proj', 'down_proj']],
  ] as const) {
    for (const checkpointing of [false, true]) {
      it(`${name}, checkpointing ${checkpointing}`, async () => {
        const { resident, stepPeak, est } = await measure(cfg, [...targets], checkpointing);
        const residentEst = est.weightBytes + est.loraBytes;
        const stepEst = est.activationBytes + est.logitsBytes;
        // Weights, LoRA, gradients and Adam moments: exact up to the allocator's size classes (measured: equal).
        expect(resident / residentEst).toBeGreaterThanOrEqual(0.99);
        expect(resident / residentEst).toBeLessThan(1.05);
        // A step's peak (live + pooled) vs activations + logits. Measured on lavapipe: 1.01 / 1.00 (llama),
        // 0.97 / 0.93 (gpt2), 0.98 / 0.94 (gemma3) with lora_grad's workspace counted (MEASURED below): the one-block gradient workspace is counted generously. The bound says the
        // estimate is never more than 10 % low and at most 25 % high.
        console.log(
          `MEASURED ${name} checkpointing ${checkpointing}: step peak / estimate ${(stepPeak / stepEst).toFixed(3)}`,
        );
        expect(stepPeak / stepEst).toBeGreaterThan(0.8);
        expect(stepPeak / stepEst).toBeLessThan(1.1);
      });
    }
  }
});
