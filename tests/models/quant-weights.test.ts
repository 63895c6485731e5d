// A model whose frozen weights are q8 / q4 blocks (src/gpu/quant.ts) computes the same function as the model whose
// f32 weights hold dequantize(blocks): the kernels read the blocks and dequantize in registers, never expanding a
// weight in GPU memory. A small Llama (GQA, tied embeddings; hidden 64, intermediate 96, 4 heads of 16, so that
// the columns of every linear and of the table are multiples of 32) is loaded in f32 with every 2-D weight's values
// replaced by dequantize(quantize(w)); its logits, loss and LoRA gradients (dA and dB of every target, with
// dropout) are then compared with the same model after its linears and its table are swapped for the quantized
// tensors themselves (GpuWeights.swap; the table's row chunks replaced). Every product sums the same f32 values in
// the same order, so the two agree bit for bit (the f32 rounding bound, at its tightest).
import { describe, expect, it } from 'vitest';
import { dequantize, quantize, quantizable, type QuantBlocks, type QuantKind } from '../../src/gpu/quant';
import { Tensor } from '../../src/gpu/tensor';
import { loadModel } from '../../src/models';
import { expectedTensors, parseConfig } from '../../src/models/config';
import { forwardLogits } from '../../src/models/forward';
import { LoraState, type LoraArrays } from '../../src/models/lora';
import type { CausalLM } from '../../src/models/model';
import type { TensorReader } from '../../src/models/weights';
import { forwardBackward } from '../../src/training/step';
import { TINY_CONFIGS } from '../loaders/fixtures';
import { gpu, rng } from '../helpers/gpu';

const CFG = parseConfig({
  ...TINY_CONFIGS.llama,
  hidden_size: 64,
  intermediate_size: 96,
  num_attention_heads: 4,
  num_key_value_heads: 2,
});
const EMBED = 'model.embed_tokens.weight';

/** Random weights; the blocks of every quantizable 2-D weight; readers that give dequantize(blocks) for those. */
function checkpoint(kind: QuantKind) {
  const r = rng(kind === 'q8' ? 1 : 2);
  const blocks = new Map<string, QuantBlocks>();
  const readers = new Map<string, TensorReader>();
  for (const [name, shape] of expectedTensors(CFG)) {
    const n = shape.reduce((a, b) => a * b, 1);
    let values: Float32Array =
      shape.length === 2 ? r.normal(n, 0.15) : Float32Array.from(r.normal(n, 0.1), (x) => 1 + x);
    if (shape.length === 2 && quantizable(shape[1])) {
      const qb = quantize(kind, values, shape[0], shape[1]);
      blocks.set(name, qb);
      values = dequantize(qb);
    }
    readers.set(name, { shape, read: async () => values });
  }
  return { blocks, readers };
}

/** Test helper (until GpuWeights uploads blocks itself): puts the quantized tensors in place of the model's f32
 * weights and table; returns what it replaced, for restoreF32. */
function swapInQuantized(model: CausalLM, blocks: Map<string, QuantBlocks>) {
  const ctx = model.weights.ctx;
  const w = model.weights;
  const old = new Map<string, Tensor>();
  for (const [name, qb] of blocks) {
    if (name === EMBED) continue;
    old.set(name, w.swap(name, Tensor.fromQuant(ctx, qb, name)));
  }
  const tied = w.lmHead === w.embedding;
  const table = { embedding: w.embedding, lmHead: w.lmHead };
  w.embedding = [{ table: Tensor.fromQuant(ctx, blocks.get(EMBED)!, EMBED), rowStart: 0 }];
  if (tied) w.lmHead = w.embedding;
  return { old, table, tied };
}

function restoreF32(model: CausalLM, s: ReturnType<typeof swapInQuantized>) {
  const w = model.weights;
  for (const [name, t] of s.old) w.swap(name, t).free();
  for (const c of w.embedding) c.table.free();
  w.embedding = s.table.embedding;
  w.lmHead = s.table.lmHead;
}

describe.each(['q8', 'q4'] as const)('a model with %s weights', (kind) => {
  it('gives the logits, loss and LoRA gradients of f32 weights holding dequantize(blocks), bit for bit', async () => {
    const ctx = await gpu();
    const { blocks, readers } = checkpoint(kind);
    // every linear and the table are quantized (the norms are 1-D)
    expect([...blocks.keys()].length).toBe(1 + CFG.numLayers * 7);
    const model = await loadModel(ctx, CFG, readers, { dtype: 'f32' });
    expect(model.weights.lmHead).toBe(model.weights.embedding); // tied: one table for both

    // LoRA on every linear, with B nonzero (so that dA is too) and dropout
    const lc = {
      r: 4,
      alpha: 8,
      useRslora: false,
      dropout: 0.1,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    };
    const init = await LoraState.init(ctx, CFG, lc, 3).read();
    const r = rng(9);
    const arrays: LoraArrays = new Map([...init].map(([k, v]) => [k, { A: v.A, B: r.normal(v.B.length, 0.1) }]));
    const B = 2,
      T = 9;
    const ids = r.int(B * T, CFG.vocabSize);
    const targets = r.int(B * T, CFG.vocabSize);

    const run = async () => {
      const logits = forwardLogits(model, null, ids, B, T);
      const z = await logits.read();
      logits.free();
      const lora = LoraState.fromArrays(ctx, CFG, lc, arrays);
      const { lossSum } = await forwardBackward(model, lora, { ids, targets, B, T }, { dropoutSeed: 5 });
      const g = await lora.readGrads();
      lora.free();
      return { z, lossSum, g };
    };
    const f = await run();
    const s = swapInQuantized(model, blocks);
    for (const name of s.old.keys()) expect(model.weights.get(name).dtype).toBe(kind);
    const q = await run();
    restoreF32(model, s);

    expect(Number.isFinite(f.lossSum)).toBe(true);
    expect(q.lossSum).toBe(f.lossSum);
    expect(Array.from(q.z)).toEqual(Array.from(f.z));
    expect([...q.g.keys()]).toEqual([...f.g.keys()]);
    expect(q.g.size).toBe(CFG.numLayers * 7);
    for (const [k, v] of f.g) {
      expect(
        v.A.some((x) => x !== 0),
        `${k} dA`,
      ).toBe(true);
      expect(Array.from(q.g.get(k)!.A), `${k} dA`).toEqual(Array.from(v.A));
      expect(Array.from(q.g.get(k)!.B), `${k} dB`).toEqual(Array.from(v.B));
    }
    model.weights.free();
  });
});
