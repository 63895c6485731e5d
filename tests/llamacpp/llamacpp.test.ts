// llama.cpp as the real client of our GGUF work, through node-llama-cpp (its prebuilt CPU build for Linux
// x64, pinned in package.json):
//
//   1. GGUF models in: for the fixture GGUF files (tools/gguf_write.py, llama.cpp's layout; llama, qwen2,
//      qwen3 and gemma3; F32, F16, BF16, and Q8_0 / Q4_0), llama.cpp's
//      next-token distribution at every position equals ours for the same file loaded by
//      src/loaders/gguf-model.ts, on token ids fed directly (tokenizers play no part).
//   2. GGUF LoRA out: llama.cpp loads the adapter.gguf we export (src/adapters/gguf-lora.ts) on the
//      base GGUF, applies it, and its distribution equals our model with the adapter merged into the
//      weights (src/adapters/merge.ts). Random non-zero A and B on every target module, so a wrong tensor
//      name, shape, transpose, q/k permutation or alpha/r scale shows at once.
//
// What is compared: node-llama-cpp gives probabilities, not logits, so both sides are compared as
// log-probabilities (log-softmax of our logits), which differ from logits by one constant per row.
// llama.cpp runs with an F32 KV cache and no flash attention, so with F32 weights both sides compute in
// f32 and differ by rounding only: we require max |Δ log p| ≤ 2e-4 (our own f32-vs-float64 golden bound
// is 1e-3 of the logits' scale). With F16/BF16 weights llama.cpp's CPU matmul also rounds the activations
// to F16/BF16 before each product (ggml's vec_dot_type), which we do not: the bound is then 2e-2 for F16
// (2^-11 relative per operand over a few layers) and 1.5e-1 for BF16 (2^-8). Q8_0 / Q4_0 files: we
// dequantise the weights to exactly the values llama.cpp uses, but llama.cpp quantises the activations to
// Q8_0 (8 bits per value, about 2^-8 relative, like BF16) before each quantised product: bound 1e-1. A
// wrong block layout (nibble order, scale) moves log p by whole units, far beyond any of these bounds.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getLlama, LlamaLogLevel, type Llama, type Token } from 'node-llama-cpp';
import { exportGgufAdapter } from '../../src/adapters/gguf-lora';
import { mergeLora, unmergeLora } from '../../src/adapters/merge';
import { loadModelFiles } from '../../src/loaders/model-files';
import { dirSource } from '../../src/loaders/sources.node';
import { loadModel } from '../../src/models';
import { forwardLogits } from '../../src/models/forward';
import { LoraState, type LoraArrays, type LoraConfig } from '../../src/models/lora';
import { linearModules } from '../../src/models/modules';
import { FIXTURES } from '../helpers/fixtures';
import { gpu, rng } from '../helpers/gpu';

const GGUF_DIR = join(FIXTURES, 'gguf');
const BOUND = { F32: 2e-4, F16: 2e-2, BF16: 1.5e-1, Q8_0: 1e-1, Q4_0: 1e-1 } as const;
/**
 * Gemma 3's GeGLU: llama.cpp's CPU GELU rounds its input to f16 and reads its output from an f16 table (ggml's
 * GGML_GELU_FP16), about 2^-11 relative on every MLP activation, which we compute in f32. So an F32 Gemma 3 file
 * is held to 5e-3 (measured 0.9e-3 to 1.5e-3), and a Q8_0 / Q4_0 one, whose activations llama.cpp also rounds
 * to Q8_0, to BF16's 1.5e-1 (measured 0.10 to 0.12).
 */
const boundOf = (file: string, type: keyof typeof BOUND): number =>
  !file.startsWith('gemma3') ? BOUND[type] : type === 'F32' ? 5e-3 : BOUND.BF16;

let llama: Llama;
let tmp: string;
beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  tmp = mkdtempSync(join(tmpdir(), 'weblora-llamacpp-'));
});
afterAll(async () => {
  await llama?.dispose();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** llama.cpp's log-probabilities (T, V) after each of `ids`, optionally with a LoRA adapter file. */
async function llamaCppLogProbs(modelPath: string, ids: number[], vocab: number, lora?: string): Promise<Float64Array> {
  const model = await llama.loadModel({ modelPath });
  try {
    const ctx = await model.createContext({
      contextSize: 64,
      batchSize: 64,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
      ...(lora ? { lora: { adapters: [{ filePath: lora, scale: 1 }] } } : {}),
    });
    try {
      const out = await ctx
        .getSequence()
        .controlledEvaluate(ids.map((t) => [t as Token, { generateNext: { probabilities: true } }]));
      const lp = new Float64Array(ids.length * vocab).fill(-Infinity);
      out.forEach((o, t) => {
        const probs = o?.next?.probabilities;
        if (!probs) throw new Error(`llama.cpp returned no probabilities at position ${t}`);
        for (const [tok, p] of probs) lp[t * vocab + tok] = Math.log(p);
      });
      return lp;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** log-softmax of each row of (T, V) logits, in float64. */
function logSoftmax(logits: Float32Array, T: number, V: number): Float64Array {
  const out = new Float64Array(T * V);
  for (let t = 0; t < T; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    const max = Math.max(...row);
    let sum = 0;
    for (const x of row) sum += Math.exp(x - max);
    const lse = max + Math.log(sum);
    for (let v = 0; v < V; v++) out[t * V + v] = row[v] - lse;
  }
  return out;
}

/** max |a − b| over entries where llama.cpp's probability is not negligible (p > 1e-12). */
function maxDiff(ours: Float64Array, theirs: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < ours.length; i++) if (theirs[i] > -27.6) worst = Math.max(worst, Math.abs(ours[i] - theirs[i]));
  return worst;
}

const MODELS: [string, keyof typeof BOUND][] = [
  ['llama-gqa-tied-f32.gguf', 'F32'],
  ['llama-gqa-tied-f16.gguf', 'F16'],
  ['llama-untied-bf16.gguf', 'BF16'],
  ['qwen2-bias-f32.gguf', 'F32'],
  ['qwen3-gqa-tied-f32.gguf', 'F32'],
  ['qwen3-untied-f16.gguf', 'F16'],
  ['qwen3-untied-q8_0.gguf', 'Q8_0'],
  ['qwen3-untied-q4_0.gguf', 'Q4_0'],
  ['gemma3-pattern-untied-f32.gguf', 'F32'],
  ['gemma3-final-softcap-f32.gguf', 'F32'],
  ['gemma3-final-softcap-q8_0.gguf', 'Q8_0'],
  ['gemma3-final-softcap-q4_0.gguf', 'Q4_0'],
];

describe('llama.cpp (node-llama-cpp) reads our GGUF models as we do', () => {
  it.each(MODELS)('%s: next-token log-probabilities at every position', async (file, type) => {
    const ctx = await gpu();
    const files = await loadModelFiles(dirSource(GGUF_DIR, file));
    const V = files.config.vocabSize;
    const T = 12;
    const ids = Array.from(rng(5).int(T, V));
    const model = await loadModel(ctx, files.config, files.weights, { dtype: 'f32' });
    const t = forwardLogits(model, null, Uint32Array.from(ids), 1, T);
    const ours = logSoftmax(await t.read(), T, V);
    t.free();
    model.weights.free();
    const theirs = await llamaCppLogProbs(join(GGUF_DIR, file), ids, V);
    const d = maxDiff(ours, theirs);
    const bound = boundOf(file, type);
    console.log(`MEASURED ${file}: max |Δ log p| vs llama.cpp = ${d.toExponential(2)} (bound ${bound})`);
    expect(d).toBeLessThanOrEqual(bound);
  });
});

const ADAPTERS: { base: string; type: keyof typeof BOUND; lc: LoraConfig; seed: number }[] = [
  {
    base: 'llama-gqa-tied-f32.gguf', // llama: q/k rows permuted, GQA (6 heads, 2 kv heads)
    type: 'F32',
    lc: {
      r: 3,
      alpha: 5,
      useRslora: false,
      dropout: 0,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    },
    seed: 1,
  },
  {
    base: 'qwen2-bias-f32.gguf', // qwen2: no permutation, q/k/v biases; rsLoRA's alpha/√r
    type: 'F32',
    lc: { r: 4, alpha: 6, useRslora: true, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'down_proj'] },
    seed: 2,
  },
  {
    base: 'qwen3-gqa-tied-f32.gguf', // qwen3: q/k norms after the adapted projections
    type: 'F32',
    lc: { r: 2, alpha: 16, useRslora: false, dropout: 0, targets: ['q_proj', 'k_proj', 'o_proj', 'up_proj'] },
    seed: 3,
  },
  {
    base: 'gemma3-final-softcap-f32.gguf', // gemma3: sliding and full layers, final soft cap, every target
    type: 'F32',
    lc: {
      r: 2,
      alpha: 3,
      useRslora: false,
      dropout: 0,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    },
    seed: 4,
  },
];

describe('llama.cpp applies our GGUF LoRA adapters as our merged model computes them', () => {
  it.each(ADAPTERS)('$base with r $lc.r, alpha $lc.alpha (rsLoRA $lc.useRslora)', async ({ base, type, lc, seed }) => {
    const ctx = await gpu();
    const files = await loadModelFiles(dirSource(GGUF_DIR, base));
    const cfg = files.config;
    const V = cfg.vocabSize;
    const g = rng(seed);
    const arrays: LoraArrays = new Map();
    for (const m of linearModules(cfg).filter((m) => lc.targets.includes(m.target)))
      arrays.set(m.path, {
        A: g.uniform(lc.r * m.inFeatures, -0.4, 0.4),
        B: g.uniform(m.outFeatures * lc.r, -0.4, 0.4),
      });
    const adapterPath = join(tmp, `${base}.adapter.gguf`);
    writeFileSync(adapterPath, exportGgufAdapter(cfg, lc, arrays, 'test adapter'));

    const T = 12;
    const ids = Array.from(g.int(T, V));
    const model = await loadModel(ctx, cfg, files.weights, { dtype: 'f32' });
    const lora = LoraState.fromArrays(ctx, cfg, lc, arrays);
    const merged = mergeLora(model.weights, lora);
    const t = forwardLogits(model, null, Uint32Array.from(ids), 1, T);
    const ours = logSoftmax(await t.read(), T, V);
    t.free();
    unmergeLora(merged);
    lora.free();
    model.weights.free();

    const theirs = await llamaCppLogProbs(join(GGUF_DIR, base), ids, V, adapterPath);
    const plain = await llamaCppLogProbs(join(GGUF_DIR, base), ids, V);
    const d = maxDiff(ours, theirs);
    const moved = maxDiff(plain, theirs);
    console.log(
      `MEASURED ${base} + adapter: max |Δ log p| vs llama.cpp = ${d.toExponential(2)} (bound ${boundOf(base, type)}); the adapter moves llama.cpp's log p by up to ${moved.toFixed(3)}`,
    );
    expect(moved, 'the adapter changes the model (else this test could not fail)').toBeGreaterThan(0.05);
    expect(d).toBeLessThanOrEqual(boundOf(base, type));
  });
});
