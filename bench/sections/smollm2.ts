// A trainer on random weights of SmolLM2-135M's shapes (Llama, hidden 576, 30 layers, 9/3 heads, head_dim 64,
// intermediate 1536, vocab 49152, tied head), optionally cut to fewer layers, for the GPU shape report and the
// step-time section. Everything after the weights is the product's own code: model, LoRA state, Trainer.
import type { Batch } from '../../src/data/batch';
import type { GpuContext } from '../../src/gpu/context';
import { parseConfig, expectedTensors, LORA_TARGETS, type ModelConfig } from '../../src/models/config';
import { loadModel } from '../../src/models/index';
import { LoraState } from '../../src/models/lora';
import type { TensorReader } from '../../src/models/weights';
import { resolveSettings } from '../../src/training/settings';
import { Trainer, type BatchSource } from '../../src/training/trainer';

/** SmolLM2-135M's config.json fields that fix the shapes (HuggingFaceTB/SmolLM2-135M). */
export function smolLM2Config(numLayers = 30): ModelConfig {
  return parseConfig({
    architectures: ['LlamaForCausalLM'],
    vocab_size: 49152,
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: numLayers,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    head_dim: 64,
    max_position_embeddings: 8192,
    rms_norm_eps: 1e-5,
    rope_theta: 100000,
    tie_word_embeddings: true,
  });
}

/** Deterministic uniform values in (-a, a) (mulberry32). */
function uniform(n: number, a: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = a * (2 * (((t ^ (t >>> 14)) >>> 0) / 4294967296) - 1);
  }
  return out;
}

/** Random weights of the config's shapes: norms 1, every matrix uniform with std 0.02 (the init range). */
export function randomWeights(cfg: ModelConfig): Map<string, TensorReader> {
  const m = new Map<string, TensorReader>();
  let seed = 1;
  for (const [name, shape] of expectedTensors(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const s = seed++;
    const read = async () => (shape.length === 1 ? new Float32Array(n).fill(1) : uniform(n, 0.02 * Math.sqrt(3), s));
    m.set(name, { shape, read });
  }
  return m;
}

/** Batches of random token ids (B, T), the targets the next ids (no masked rows). */
function randomBatches(V: number, T: number): BatchSource {
  let seed = 7;
  return {
    nextBatch(B: number): Batch {
      const u = uniform(B * T + 1, 0.5, seed++);
      const ids = Uint32Array.from(u, (x) => Math.min(V - 1, Math.floor((x + 0.5) * V)));
      return { B, T, ids: ids.subarray(0, B * T), targets: ids.slice(1) };
    },
    state: () => ({ seed }),
  };
}

export interface SmolStep {
  B: number;
  T: number;
  layers?: number;
  rank?: number;
  checkpointing?: boolean;
}

/** A Trainer of SmolLM2-135M shapes with LoRA on all 7 linears of every layer; `free()` releases everything. */
export async function smolLM2Trainer(ctx: GpuContext, o: SmolStep): Promise<{ trainer: Trainer; free(): void }> {
  const cfg = smolLM2Config(o.layers ?? 30);
  const model = await loadModel(ctx, cfg, randomWeights(cfg), { dtype: 'f32' });
  const settings = resolveSettings(
    {
      rank: o.rank ?? 8,
      alpha: 16,
      dropout: 0.05,
      targets: [...LORA_TARGETS.llama],
      batchSize: o.B,
      seqLen: o.T,
      checkpointing: o.checkpointing ?? false,
    },
    cfg,
  );
  const lora = LoraState.init(
    ctx,
    cfg,
    { r: settings.rank, alpha: settings.alpha, useRslora: false, dropout: settings.dropout, targets: settings.targets },
    settings.seed,
  );
  const trainer = new Trainer({
    ctx,
    model,
    lora,
    settings,
    train: randomBatches(cfg.vocabSize, o.T),
    val: [],
    totalSteps: 1000,
  });
  return {
    trainer,
    free() {
      trainer.free();
      lora.free();
      model.weights.free();
    },
  };
}
