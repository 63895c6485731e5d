// Real model shapes on an adapter whose storage bindings are 128 MiB (lavapipe): GPT-2 small's wte
// (50257 x 768 f32 = 154 MB) and SmolLM2-135M must load and run. Random weights of the real shapes;
// the parts that deal with the split table are checked against plain CPU sums:
//   - the embedding gathers rows from both chunks,
//   - the LM head's logits h·wteᵀ over every chunk and row block,
//   - the head's input gradient dx = dlogits·wte accumulated over chunks,
// and a LoRA training step runs and frees everything it made.
//
// Bounds: f32 dot products of length C = 768 with |terms| ~ 1e-3: |diff| <= 1e-4·max|want| + 1e-6.

import { describe, expect, it } from 'vitest';
import { forwardBackward } from '../../src/training/step';
import { forwardHidden } from '../../src/models/forward';
import { Tensor } from '../../src/gpu/tensor';
import { embedding_forward } from '../../src/kernels/embedding';
import { headLogits, headLoss } from '../../src/models/head';
import { loadModel } from '../../src/models';
import { expectedTensors, parseConfig, type ModelConfig } from '../../src/models/config';
import { LoraState } from '../../src/models/lora';
import type { TensorReader } from '../../src/models/weights';
import { gpu, rng } from '../helpers/gpu';

const GPT2_SMALL = {
  architectures: ['GPT2LMHeadModel'],
  model_type: 'gpt2',
  vocab_size: 50257,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_positions: 1024,
  layer_norm_epsilon: 1e-5,
};
const SMOLLM2_135M = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  tie_word_embeddings: true,
};

/** Random weights of the shapes the config implies, made when read (norm weights near 1). */
function randomReaders(cfg: ModelConfig, seed: number): Map<string, TensorReader & { data?: Float32Array }> {
  const m = new Map<string, TensorReader & { data?: Float32Array }>();
  let i = 0;
  for (const [name, shape] of expectedTensors(cfg)) {
    const s = seed + i++;
    const isNorm = /(ln_\d|ln_f|norm|layernorm)\.weight$/.test(name);
    const r: TensorReader & { data?: Float32Array } = {
      shape,
      async read() {
        const n = shape.reduce((a, b) => a * b, 1);
        const g = rng(s);
        const d = isNorm ? g.uniform(n, 0.9, 1.1) : g.uniform(n, -0.02, 0.02);
        if (/wte|embed_tokens/.test(name)) r.data = d;
        return d;
      },
    };
    m.set(name, r);
  }
  return m;
}

function maxErr(got: Float32Array, want: Float64Array) {
  let w = 0,
    d = 0;
  for (let i = 0; i < want.length; i++) {
    w = Math.max(w, Math.abs(want[i]));
    d = Math.max(d, Math.abs(got[i] - want[i]));
  }
  return { d, bound: 1e-4 * w + 1e-6 };
}

describe('models larger than one storage binding', () => {
  it('GPT-2 small: the 154 MB wte is split, and embedding, logits, head gradient and a LoRA step are right', async () => {
    const ctx = await gpu();
    expect(ctx.limits.maxStorageBufferBindingSize).toBeLessThan(50257 * 768 * 4); // the point of the test
    const live0 = ctx.alloc.liveBytes;
    const cfg = parseConfig(GPT2_SMALL);
    const readers = randomReaders(cfg, 11);
    const model = await loadModel(ctx, cfg, readers, { dtype: 'f32' });
    const chunks = model.weights.embedding;
    expect(chunks.length).toBeGreaterThan(1);
    const wte = readers.get('transformer.wte.weight')!.data!;
    const [V, C] = [50257, 768];
    const ids = Uint32Array.from([5, 50256, 43700, 12345, 49999, 0]); // rows in every chunk, the last row too
    const T = ids.length;

    // Embedding rows from every chunk.
    const idsT = Tensor.fromU32(ctx, ids, [T]);
    const emb = embedding_forward(idsT, chunks);
    const embGot = await emb.read();
    const embWant = new Float64Array(T * C);
    ids.forEach((id, t) => {
      for (let c = 0; c < C; c++) embWant[t * C + c] = wte[id * C + c];
    });
    expect(maxErr(embGot, embWant).d).toBe(0);
    [idsT, emb].forEach((t) => t.free());

    // Logits over all chunks, from the GPU's own final hidden state.
    const h = forwardHidden(model, null, Tensor.fromU32(ctx, ids, [T]), { B: 1, T, posOffset: 0 });
    const hv = await h.read();
    const logits = headLogits(h, chunks, V);
    const lv = await logits.read();
    logits.free();
    const want = new Float64Array(T * V);
    for (let t = 0; t < T; t++)
      for (let v = 0; v < V; v++) {
        let s = 0;
        for (let c = 0; c < C; c++) s += hv[t * C + c] * wte[v * C + c];
        want[t * V + v] = s;
      }
    const le = maxErr(lv, want);
    expect(le.d).toBeLessThanOrEqual(le.bound);

    // Head gradient: dx = (softmax − onehot)·gradScale · wte, summed over chunks.
    const targets = Uint32Array.from([7, 44000, 3, 50000, 1, 2]);
    const { losses, dx } = headLoss(h, chunks, V, targets, 1 / T, true);
    const dxv = await dx!.read();
    [losses, dx!, h].forEach((t) => t.free());
    const dxWant = new Float64Array(T * C);
    for (let t = 0; t < T; t++) {
      let mx = -Infinity;
      for (let v = 0; v < V; v++) mx = Math.max(mx, want[t * V + v]);
      let z = 0;
      for (let v = 0; v < V; v++) z += Math.exp(want[t * V + v] - mx);
      for (let v = 0; v < V; v++) {
        const g = (Math.exp(want[t * V + v] - mx) / z - (v === targets[t] ? 1 : 0)) / T;
        for (let c = 0; c < C; c++) dxWant[t * C + c] += g * wte[v * C + c];
      }
    }
    const de = maxErr(dxv, dxWant);
    expect(de.d).toBeLessThanOrEqual(de.bound);

    // A LoRA training step through all 12 layers and the split head.
    const lora = LoraState.init(ctx, cfg, { r: 8, alpha: 16, useRslora: false, dropout: 0, targets: ['c_attn'] }, 1);
    const r = await forwardBackward(model, lora, { ids, targets, B: 1, T });
    expect(Number.isFinite(r.lossSum)).toBe(true);
    const g = await lora.readGrads();
    expect([...g.values()].some((x) => x.B.some((v) => v !== 0))).toBe(true);
    lora.free();
    model.weights.free();
    ctx.flush();
    expect(ctx.alloc.liveBytes).toBe(live0);
  });

  it('SmolLM2-135M shapes load and run a LoRA step (GQA 9/3 heads, head dim 64, 30 layers)', async () => {
    const ctx = await gpu();
    const live0 = ctx.alloc.liveBytes;
    const cfg = parseConfig(SMOLLM2_135M);
    const model = await loadModel(ctx, cfg, randomReaders(cfg, 5), { dtype: 'f32' });
    const lora = LoraState.init(
      ctx,
      cfg,
      { r: 4, alpha: 8, useRslora: false, dropout: 0, targets: ['q_proj', 'v_proj'] },
      2,
    );
    const ids = Uint32Array.from([1, 100, 49151, 2000]);
    const r = await forwardBackward(
      model,
      lora,
      { ids, targets: Uint32Array.from([100, 49151, 2000, 3]), B: 1, T: 4 },
      { checkpointing: true },
    );
    // Random weights of std ~0.01 give nearly uniform logits: the loss is close to ln(V).
    expect(Math.abs(r.lossSum / r.count - Math.log(cfg.vocabSize))).toBeLessThan(0.5);
    lora.free();
    model.weights.free();
    ctx.flush();
    expect(ctx.alloc.liveBytes).toBe(live0);
  });
});
