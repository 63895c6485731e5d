// The families of issue 11 read from their config.json as transformers reads it: Qwen3 (q/k norms, explicit
// head_dim), Llama 3.x (rope_scaling llama3 / linear, rope_theta 500000), SmolLM3 (no_rope_layers), Gemma 3
// text (layer_types / sliding_window_pattern, two RoPE bases, query_pre_attn_scalar, soft caps) and Mistral
// (sliding_window, explicit head_dim), the
// registry every other module reads from, and the errors for what WebLoRA does not implement. The RoPE
// frequency table is checked bit for bit against transformers' own float32 computation, which
// tools/golden.py ran (tests/fixtures/llama3-scaled/golden.safetensors, rope_inv_freq_hf_f32); the models
// themselves against the oracle in golden.test.ts.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rope_inv_freq, type RopeScaling } from '../../src/kernels/rope';
import { rope_inv_freq_f64 } from '../../src/kernels/rope.cpu';
import { DEFAULT_TARGETS, expectedTensors, LORA_TARGETS, paramCount, parseConfig } from '../../src/models/config';
import { FAMILIES } from '../../src/models/families';
import { estimateMemory } from '../../src/models/memory';
import { linearModules, selectModules } from '../../src/models/modules';
import { exportAdapter, importAdapter } from '../../src/adapters/peft';
import { TINY_CONFIGS } from '../loaders/fixtures';
import { weightNames } from '../../src/models/weights';
import { goldenCases, readGolden } from '../helpers/fixtures';
import { GEMMA3_270M, LLAMA32_1B, MISTRAL_7B_V01, MISTRAL_NEMO, QWEN3_06B, SMOLLM3_3B } from './hub-configs';

// gemma-3-1b's config.json, saved before layer_types existed: sliding_window_pattern instead.
const GEMMA3_1B = {
  architectures: ['Gemma3ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  attn_logit_softcapping: null,
  bos_token_id: 2,
  cache_implementation: 'hybrid',
  eos_token_id: [1, 106],
  final_logit_softcapping: null,
  head_dim: 256,
  hidden_activation: 'gelu_pytorch_tanh',
  hidden_size: 1152,
  initializer_range: 0.02,
  intermediate_size: 6912,
  max_position_embeddings: 32768,
  model_type: 'gemma3_text',
  num_attention_heads: 4,
  num_hidden_layers: 26,
  num_key_value_heads: 1,
  pad_token_id: 0,
  query_pre_attn_scalar: 256,
  rms_norm_eps: 1e-6,
  rope_local_base_freq: 10000,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: 512,
  sliding_window_pattern: 6,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 262144,
};

describe('family registry', () => {
  it('every family answers for its architectures, tensors, modules, targets and memory', () => {
    for (const spec of Object.values(FAMILIES)) {
      expect(LORA_TARGETS[spec.family]).toEqual(spec.loraTargets);
      expect(DEFAULT_TARGETS[spec.family]).toEqual(spec.defaultTargets);
      for (const t of spec.defaultTargets) expect(spec.loraTargets).toContain(t);
    }
    // the model code reads exactly the checkpoint's tensors (+ nothing it does not load)
    const hubConfigs = [QWEN3_06B, LLAMA32_1B, SMOLLM3_3B, GEMMA3_270M, GEMMA3_1B, MISTRAL_7B_V01, MISTRAL_NEMO];
    for (const cfg of hubConfigs.map((j) => parseConfig(j))) {
      const w = weightNames(cfg);
      expect(new Set([...w.large, ...w.small, ...w.tables])).toEqual(new Set(expectedTensors(cfg).keys()));
      const shapes = expectedTensors(cfg);
      for (const m of linearModules(cfg)) expect(shapes.get(`${m.path}.weight`)).toEqual([m.outFeatures, m.inFeatures]);
    }
  });
});

describe('Qwen3', () => {
  it('reads Qwen3-0.6B: head_dim 128 ≠ 1024/16, q/k norms, tied; 0.44B parameters besides the embedding', () => {
    const c = parseConfig(QWEN3_06B);
    expect(c).toMatchObject({ family: 'qwen3', headDim: 128, numHeads: 16, numKvHeads: 8, qkNorm: true });
    expect([c.tieEmbeddings, c.attnBias, c.ropeTheta, c.ropeScaling ?? null]).toEqual([true, false, 1e6, null]);
    const t = expectedTensors(c);
    expect(t.get('model.layers.0.self_attn.q_proj.weight')).toEqual([2048, 1024]);
    expect(t.get('model.layers.0.self_attn.o_proj.weight')).toEqual([1024, 2048]);
    expect(t.get('model.layers.27.self_attn.q_norm.weight')).toEqual([128]);
    expect(t.get('model.layers.27.self_attn.k_norm.weight')).toEqual([128]);
    expect(t.has('model.layers.0.self_attn.q_proj.bias')).toBe(false);
    expect(t.has('lm_head.weight')).toBe(false);
    // the model card: 0.6B parameters, 0.44B non-embedding
    expect(paramCount(c)).toBe(596_049_920);
    expect(paramCount(c) - 151936 * 1024).toBe(440_467_456);
    expect(parseConfig({ ...QWEN3_06B, tie_word_embeddings: false }).tieEmbeddings).toBe(false);
  });

  it('needs head_dim, which Qwen3Config always writes', () => {
    const { head_dim: _, ...noHeadDim } = QWEN3_06B;
    expect(() => parseConfig(noHeadDim)).toThrow(/"head_dim" is missing/);
  });
});

describe('Llama 3.x', () => {
  it('reads Llama 3.2 1B: rope_theta 500000 and rope_scaling llama3; 1.24B parameters', () => {
    const c = parseConfig(LLAMA32_1B);
    expect(c.ropeTheta).toBe(500000);
    expect(c.ropeScaling).toEqual({
      type: 'llama3',
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 8192,
    });
    expect(paramCount(c)).toBe(1_235_814_400);
    // transformers >= 4.56 spells it rope_parameters, with rope_theta inside
    const { rope_scaling, rope_theta: _, ...rest } = LLAMA32_1B;
    const v5 = parseConfig({ ...rest, rope_parameters: { ...rope_scaling, rope_theta: 500000 } });
    expect([v5.ropeTheta, v5.ropeScaling]).toEqual([500000, c.ropeScaling]);
    expect(parseConfig({ ...LLAMA32_1B, rope_scaling: { rope_type: 'linear', factor: 4 } }).ropeScaling).toEqual({
      type: 'linear',
      factor: 4,
    });
  });

  it('computes inv_freq bit for bit as transformers does in float32 (llama3, all three bands)', async () => {
    const c = goldenCases().find((x) => x.name === 'llama3-scaled');
    expect(c, 'fixture tests/fixtures/llama3-scaled').toBeDefined();
    const g = await readGolden(c!.dir);
    const cfg = parseConfig(JSON.parse(readFileSync(join(c!.dir, 'config.json'), 'utf8')));
    const want = await g.f32('rope_inv_freq_hf_f32');
    const got = rope_inv_freq(cfg.headDim, cfg.ropeTheta, cfg.ropeScaling);
    expect(Array.from(got)).toEqual(Array.from(want));
    // the three bands are all there: kept, smoothed, divided by the factor
    const plain = rope_inv_freq(cfg.headDim, cfg.ropeTheta);
    const ratio = Array.from(got, (x, i) => plain[i] / x);
    expect(ratio[0]).toBe(1);
    expect(ratio[1]).toBeGreaterThan(1);
    expect(ratio[1]).toBeLessThan(32);
    expect(ratio.slice(2).every((r) => Math.abs(r - 32) < 1e-5)).toBe(true);
  });

  it('the f32 table stays within 8 ulp of the float64 maths (linear and llama3 at Llama 3.2 scale)', () => {
    const cases: [number, number, RopeScaling | null][] = [
      [64, 500000, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 }],
      [128, 500000, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 }],
      [64, 10000, { type: 'linear', factor: 4 }],
      [6, 10000, null],
    ];
    for (const [D, theta, sc] of cases) {
      const f32 = rope_inv_freq(D, theta, sc);
      const f64 = rope_inv_freq_f64(D, theta, sc);
      for (let i = 0; i < D / 2; i++) expect(Math.abs(f32[i] - f64[i])).toBeLessThanOrEqual(8 * 2 ** -24 * f64[i]);
    }
  });
});

describe('Qwen2 / Qwen3 sliding windows (use_sliding_window, max_window_layers, layer_types)', () => {
  // Qwen2Config / Qwen3Config.__post_init__: sliding_window = sliding_window if use_sliding_window else
  // None; layer_types absent -> "sliding_attention" for layers i >= max_window_layers when sliding_window
  // is not None. Qwen2Attention: sliding_window on the layers layer_types marks sliding.
  const slides = (c: { slidingLayers?: boolean[] }) => (c.slidingLayers ?? []).flatMap((s, i) => (s ? [i] : []));

  it('slides the layers from max_window_layers on, with sliding_window (absent: 4096)', () => {
    const c = parseConfig({ ...QWEN3_06B, use_sliding_window: true, sliding_window: 512, max_window_layers: 20 });
    expect([slides(c), c.slidingWindow]).toEqual([[20, 21, 22, 23, 24, 25, 26, 27], 512]);
    expect(c.slidingLayers).toHaveLength(28);
    const { sliding_window: _, ...noWindow } = QWEN3_06B;
    expect(parseConfig({ ...noWindow, use_sliding_window: true, max_window_layers: 27 })).toMatchObject({
      slidingWindow: 4096,
    });
    // max_window_layers absent: 28 (the config default), so none of 28 layers slides
    const { max_window_layers: __, ...noMwl } = QWEN3_06B;
    expect(parseConfig({ ...noMwl, use_sliding_window: true }).slidingLayers).toBeUndefined();
  });

  it('use_sliding_window false, or sliding_window null, is plain causal attention', () => {
    for (const extra of [
      { use_sliding_window: false, max_window_layers: 0 },
      { use_sliding_window: true, sliding_window: null, max_window_layers: 0 },
    ]) {
      const c = parseConfig({ ...QWEN3_06B, ...extra });
      expect([c.slidingLayers, c.slidingWindow]).toEqual([undefined, undefined]);
    }
  });

  it('layer_types, when given, chooses the sliding layers (max_window_layers is then unused)', () => {
    const layer_types = Array.from({ length: 28 }, (_, i) => (i % 3 === 1 ? 'sliding_attention' : 'full_attention'));
    const c = parseConfig({ ...QWEN3_06B, use_sliding_window: true, sliding_window: 64, layer_types });
    expect([slides(c), c.slidingWindow]).toEqual([[1, 4, 7, 10, 13, 16, 19, 22, 25], 64]);
    // ... and a sliding layer without a window is refused, as transformers' mask code refuses it.
    expect(() => parseConfig({ ...QWEN3_06B, use_sliding_window: false, layer_types })).toThrow(
      /"layer_types" marks layers 1, 4, .* "sliding_attention", but no sliding window is set/,
    );
  });

  it('Qwen2 (the same switches); a window no sequence reaches is plain causal', () => {
    const qwen2 = { ...QWEN3_06B, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' };
    const c = parseConfig({ ...qwen2, use_sliding_window: true, sliding_window: 4, max_window_layers: 26 });
    expect([c.family, slides(c), c.slidingWindow]).toEqual(['qwen2', [26, 27], 4]);
    const huge = parseConfig({ ...qwen2, use_sliding_window: true, sliding_window: 2 ** 30, max_window_layers: 0 });
    expect(huge.slidingLayers).toBeUndefined();
    expect(() => parseConfig({ ...qwen2, use_sliding_window: true, sliding_window: 0, max_window_layers: 0 })).toThrow(
      /"sliding_window" is 0/,
    );
  });
});

describe('SmolLM3', () => {
  it('reads SmolLM3-3B: every 4th layer without RoPE', () => {
    const c = parseConfig(SMOLLM3_3B);
    expect(c.family).toBe('smollm3');
    expect(c.ropeLayers!.map((x) => (x ? 1 : 0))).toEqual(SMOLLM3_3B.no_rope_layers);
    expect(c.ropeLayers!.filter((x) => !x).length).toBe(9);
    // absent: built from no_rope_layer_interval as SmolLM3Config does
    const { no_rope_layers: _, ...rest } = SMOLLM3_3B;
    expect(parseConfig({ ...rest, no_rope_layer_interval: 3 }).ropeLayers!.slice(0, 6)).toEqual([
      true,
      true,
      false,
      true,
      true,
      false,
    ]);
    expect(() => parseConfig({ ...SMOLLM3_3B, no_rope_layers: [1, 0] })).toThrow(/"no_rope_layers".*36 entries/);
  });

  it('slides its NoPE layers when use_sliding_window and sliding_window are set (SmolLM3Config)', () => {
    const c = parseConfig({ ...SMOLLM3_3B, use_sliding_window: true, sliding_window: 256 });
    expect(c.slidingWindow).toBe(256);
    expect(c.slidingLayers).toEqual(c.ropeLayers!.map((rope) => !rope));
    expect(
      parseConfig({ ...SMOLLM3_3B, use_sliding_window: true, sliding_window: null }).slidingLayers,
    ).toBeUndefined();
    expect(
      parseConfig({ ...SMOLLM3_3B, use_sliding_window: false, sliding_window: 256 }).slidingLayers,
    ).toBeUndefined();
  });
});

describe('Gemma 3 text', () => {
  const sliding270 = GEMMA3_270M.layer_types.map((t) => t === 'sliding_attention');

  it('reads gemma-3-270m: 268M parameters (170M of them the tied 262,144 × 640 embedding), 5 of 6 layers sliding', () => {
    const c = parseConfig(GEMMA3_270M);
    expect(c).toMatchObject({
      family: 'gemma3',
      headDim: 256, // ≠ 640 / 4
      numHeads: 4,
      numKvHeads: 1,
      qkNorm: true,
      tieEmbeddings: true,
      act: 'gelu_tanh',
      slidingWindow: 512,
      ropeTheta: 1e6,
      ropeLocalTheta: 1e4,
      bosTokenId: 2,
      eosTokenId: 1,
    });
    expect(c.slidingLayers).toEqual(sliding270);
    expect(c.attnScale).toBe(1 / 16); // query_pre_attn_scalar 256
    expect([c.attnSoftcap, c.finalSoftcap, c.ropeScaling]).toEqual([undefined, undefined, undefined]);
    const t = expectedTensors(c);
    expect(t.get('model.layers.0.self_attn.q_proj.weight')).toEqual([1024, 640]);
    expect(t.get('model.layers.0.self_attn.k_proj.weight')).toEqual([256, 640]);
    expect(t.get('model.layers.17.self_attn.q_norm.weight')).toEqual([256]);
    expect(t.get('model.layers.17.pre_feedforward_layernorm.weight')).toEqual([640]);
    expect(t.get('model.layers.17.post_feedforward_layernorm.weight')).toEqual([640]);
    expect(t.has('lm_head.weight')).toBe(false);
    // per layer 5,570,560 linear + 3,072 norm weights; the embedding 167,772,160; the final norm 640
    expect(paramCount(c)).toBe(268_098_176);
    expect(paramCount(c) - 262144 * 640).toBe(100_326_016);
  });

  it('reads gemma-3-1b (sliding_window_pattern 6, two eos ids): 999,885,952 parameters', () => {
    const c = parseConfig(GEMMA3_1B);
    expect(c.slidingLayers).toEqual(Array.from({ length: 26 }, (_, i) => (i + 1) % 6 !== 0));
    expect(c.eosTokenId).toEqual([1, 106]);
    expect(paramCount(c)).toBe(999_885_952);
    // the form written without layer_types or the pattern: Gemma3TextConfig's default pattern 6
    const { sliding_window_pattern: _, ...noPattern } = GEMMA3_1B;
    expect(parseConfig(noPattern).slidingLayers).toEqual(c.slidingLayers);
    // larger Gemma 3s scale RoPE linearly on the full layers only; soft caps when set
    const scaled = parseConfig({ ...GEMMA3_1B, rope_scaling: { rope_type: 'linear', factor: 8 } });
    expect([scaled.ropeScaling, scaled.ropeLocalTheta]).toEqual([{ type: 'linear', factor: 8 }, 10000]);
    const capped = parseConfig({ ...GEMMA3_1B, attn_logit_softcapping: 50, final_logit_softcapping: 30 });
    expect([capped.attnSoftcap, capped.finalSoftcap]).toEqual([50, 30]);
  });

  it('reads the per-layer-type rope_parameters of newer transformers', () => {
    const { rope_theta: _t, rope_local_base_freq: _l, rope_scaling: _s, ...rest } = GEMMA3_270M;
    const c = parseConfig({
      ...rest,
      rope_parameters: {
        full_attention: { rope_type: 'linear', factor: 8, rope_theta: 1000000 },
        sliding_attention: { rope_type: 'default', rope_theta: 10000 },
      },
    });
    expect([c.ropeTheta, c.ropeScaling, c.ropeLocalTheta]).toEqual([1e6, { type: 'linear', factor: 8 }, 1e4]);
  });

  it('LoRA: PEFT defaults q_proj, v_proj; all 7 linears targetable; q_proj is C -> Hq·head_dim', () => {
    expect(DEFAULT_TARGETS.gemma3).toEqual(['q_proj', 'v_proj']);
    expect(LORA_TARGETS.gemma3).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    const c = parseConfig(GEMMA3_270M);
    expect(selectModules(c, ['q_proj', 'v_proj']).length).toBe(36);
    expect(selectModules(c, ['q_proj'])[0]).toMatchObject({ inFeatures: 640, outFeatures: 1024 });
  });
});

describe('Mistral', () => {
  it('reads Mistral 7B v0.1: sliding_window 4096 on every layer, GQA 32/8, untied; 7.24B parameters', () => {
    const c = parseConfig(MISTRAL_7B_V01);
    expect(c).toMatchObject({ family: 'mistral', headDim: 128, numHeads: 32, numKvHeads: 8, tieEmbeddings: false });
    expect([c.attnBias, c.qkNorm ?? false, c.ropeLayers ?? null, c.ropeTheta]).toEqual([false, false, null, 10000]);
    expect([c.slidingLayers, c.slidingWindow]).toEqual([Array(32).fill(true), 4096]);
    expect(paramCount(c)).toBe(7_241_732_096);
    expect(expectedTensors(c).get('lm_head.weight')).toEqual([32000, 4096]);
  });

  it('sliding_window: null is plain causal, absent is 4096 (MistralConfig default)', () => {
    const full = parseConfig({ ...MISTRAL_7B_V01, sliding_window: null });
    expect([full.slidingLayers, full.slidingWindow]).toEqual([undefined, undefined]);
    const { sliding_window: _, ...noWindow } = MISTRAL_7B_V01;
    expect(parseConfig(noWindow).slidingWindow).toBe(4096);
    expect(() => parseConfig({ ...MISTRAL_7B_V01, sliding_window: 0 })).toThrow(
      /"sliding_window" is 0; expected a positive integer/,
    );
    // Absent num_key_value_heads is 8, MistralConfig's default; null is num_attention_heads.
    const { num_key_value_heads: __, ...noKv } = MISTRAL_7B_V01;
    expect(parseConfig({ ...noKv, num_attention_heads: 16 }).numKvHeads).toBe(8);
    expect(parseConfig({ ...MISTRAL_7B_V01, num_key_value_heads: null }).numKvHeads).toBe(32);
  });

  it('reads Mistral NeMo: explicit head_dim 128 ≠ 5120/32, q_proj 5120 -> 4096', () => {
    const c = parseConfig(MISTRAL_NEMO);
    expect([c.headDim, c.slidingLayers, c.ropeTheta]).toEqual([128, undefined, 1e6]);
    expect(expectedTensors(c).get('model.layers.0.self_attn.q_proj.weight')).toEqual([4096, 5120]);
    expect(expectedTensors(c).get('model.layers.39.self_attn.o_proj.weight')).toEqual([5120, 4096]);
  });
});

describe('memory estimate of the issue-11 models (r 8, q/v, B 1 × T 512, checkpointing)', () => {
  it('Qwen3 0.6B, Llama 3.2 1B, gemma-3-270m and gemma-3-1b in f16 and f32', () => {
    const opts = { batch: 1, seqLen: 512, rank: 8, targets: ['q_proj', 'v_proj'], checkpointing: true };
    const gib = (n: number) => n / 1024 ** 3;
    const q16 = estimateMemory(parseConfig(QWEN3_06B), { ...opts, weightDtype: 'f16' });
    const q32 = estimateMemory(parseConfig(QWEN3_06B), { ...opts, weightDtype: 'f32' });
    const l16 = estimateMemory(parseConfig(LLAMA32_1B), { ...opts, weightDtype: 'f16' });
    const l32 = estimateMemory(parseConfig(LLAMA32_1B), { ...opts, weightDtype: 'f32' });
    // weights: 2 or 4 bytes per matrix entry (the norms are f32 either way)
    expect(gib(q16.weightBytes)).toBeCloseTo(1.11, 2);
    expect(gib(q32.weightBytes)).toBeCloseTo(2.22, 2);
    expect(gib(l16.weightBytes)).toBeCloseTo(2.3, 1);
    expect(gib(l32.weightBytes)).toBeCloseTo(4.6, 1);
    expect(q32.totalBytes).toBeGreaterThan(q16.totalBytes);
    // Gemma 3: the 262,144-row tied table dominates; the head never holds B·T × V logits
    const g16 = estimateMemory(parseConfig(GEMMA3_270M), { ...opts, weightDtype: 'f16' });
    const g32 = estimateMemory(parseConfig(GEMMA3_270M), { ...opts, weightDtype: 'f32' });
    const b16 = estimateMemory(parseConfig(GEMMA3_1B), { ...opts, weightDtype: 'f16' });
    const b32 = estimateMemory(parseConfig(GEMMA3_1B), { ...opts, weightDtype: 'f32' });
    // 268,098,176 parameters, 55,936 of them norm weights (18·(4·640 + 2·256) + 640) (f32 either way)
    expect(g16.weightBytes).toBe((268_098_176 - 55_936) * 2 + 55_936 * 4);
    expect(g32.weightBytes).toBe(268_098_176 * 4);
    expect(g16.largestTensorName).toBe('model.embed_tokens.weight');
    expect(g16.largestIsTable).toBe(true);
    expect(g16.logitsBytes).toBeLessThan((512 * 262144 * 4) / 50); // a chunk, not (B·T, V)
    expect(gib(b16.weightBytes)).toBeCloseTo(1.86, 2);
    for (const [n, e] of Object.entries({
      'gemma-3-270m f16': g16,
      'gemma-3-270m f32': g32,
      'gemma-3-1b f16': b16,
      'gemma-3-1b f32': b32,
      'Qwen3-0.6B f16': q16,
      'Qwen3-0.6B f32': q32,
      'Llama-3.2-1B f16': l16,
      'Llama-3.2-1B f32': l32,
    }))
      console.log(
        `MEASURED estimate ${n}: total ${gib(e.totalBytes).toFixed(2)} GiB (weights ${gib(e.weightBytes).toFixed(2)}, activations ${gib(e.activationBytes).toFixed(2)})`,
      );
  });
});

describe('bad input: an error naming the field and what is supported', () => {
  it('an unknown rope_type', () => {
    expect(() => parseConfig({ ...LLAMA32_1B, rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(
      /"rope_scaling.rope_type" is "yarn".*"default", "linear" and "llama3"/,
    );
    expect(() => parseConfig({ ...QWEN3_06B, rope_scaling: { rope_type: 'dynamic', factor: 2 } })).toThrow(
      /"rope_scaling.rope_type" is "dynamic"/,
    );
    const { rope_scaling: _, ...rest } = LLAMA32_1B;
    expect(() =>
      parseConfig({ ...rest, rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1 } }),
    ).toThrow(/"rope_scaling.high_freq_factor" is null; rope_type "llama3" needs a positive number/);
  });

  it('Qwen3.5-style linear_attention layers', () => {
    const layer_types = Array.from({ length: 28 }, (_, i) => (i % 4 === 3 ? 'full_attention' : 'linear_attention'));
    expect(() => parseConfig({ ...QWEN3_06B, layer_types })).toThrow(
      /"layer_types"\[0\] is "linear_attention"; WebLoRA implements "full_attention" and "sliding_attention" layers/,
    );
  });

  it('Gemma 3n and Gemma 3 multimodal checkpoints (Gemma 3 text loads)', () => {
    const gemma = { hidden_size: 640, num_attention_heads: 4, num_hidden_layers: 18, vocab_size: 262144 };
    expect(() => parseConfig({ ...gemma, architectures: ['Gemma3nForCausalLM'] })).toThrow(
      /"Gemma3nForCausalLM" is not supported \(Gemma 3n .*\); WebLoRA loads LlamaForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel, Qwen3ForCausalLM, SmolLM3ForCausalLM, Gemma3ForCausalLM, MistralForCausalLM/,
    );
    expect(() =>
      parseConfig({ architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3', text_config: gemma }),
    ).toThrow(
      /"Gemma3ForConditionalGeneration" is not supported \(this is a Gemma 3 multimodal checkpoint.*"text_config"/,
    );
    expect(parseConfig(GEMMA3_270M).family).toBe('gemma3');
    // without "architectures", model_type gemma3_text is the text model
    const { architectures: _, ...noArch } = GEMMA3_270M;
    expect(parseConfig(noArch).architecture).toBe('Gemma3ForCausalLM');
  });

  it('Gemma 3 text: each bad field is named', () => {
    const bad = (patch: Record<string, unknown>, re: RegExp) =>
      expect(() => parseConfig({ ...GEMMA3_270M, ...patch })).toThrow(re);
    const lt: string[] = [...GEMMA3_270M.layer_types];
    lt[3] = 'linear_attention';
    bad(
      { layer_types: lt },
      /"layer_types"\[3\] is "linear_attention"; Gemma 3 layers are "sliding_attention" or "full_attention"/,
    );
    bad({ layer_types: lt.slice(0, 17) }, /"layer_types" is .*; expected one entry per layer \(18\)/);
    bad({ sliding_window: null }, /"sliding_window" is null, but layers 0, 1, 2, 3, 4, 6.* are sliding-window layers/);
    bad({ sliding_window: 0 }, /"sliding_window" is 0; expected a positive integer/);
    bad({ sliding_window_pattern: 0, layer_types: null }, /"sliding_window_pattern" is 0; expected a positive integer/);
    bad({ query_pre_attn_scalar: -1 }, /"query_pre_attn_scalar" is -1; expected a positive number/);
    bad({ final_logit_softcapping: 'big' }, /"final_logit_softcapping" is "big"; expected a positive number/);
    bad({ attn_logit_softcapping: 0 }, /"attn_logit_softcapping" is 0; expected a positive number/);
    bad(
      { hidden_activation: 'silu' },
      /"hidden_activation" is "silu"; WebLoRA implements Gemma 3's GeGLU with gelu_pytorch_tanh/,
    );
    bad({ head_dim: 255 }, /head_dim \(255\) is odd/);
    bad({ num_key_value_heads: 3 }, /num_attention_heads \(4\) is not a multiple of num_key_value_heads \(3\)/);
    bad({ use_bidirectional_attention: true }, /use_bidirectional_attention: true .*EmbeddingGemma/);
    bad({ attention_bias: true }, /attention_bias: true/);
    bad({ rope_local_base_freq: 'x' }, /"rope_local_base_freq" is "x"; expected a positive number/);
    bad({ rope_scaling: { rope_type: 'yarn', factor: 4 } }, /"rope_scaling.rope_type" is "yarn"/);
    // a config whose layers all use full attention needs no window
    const full = parseConfig({ ...GEMMA3_270M, layer_types: lt.map(() => 'full_attention'), sliding_window: null });
    expect([full.slidingWindow, full.slidingLayers!.some((x) => x)]).toEqual([undefined, false]);
  });

  it('a head_dim that does not divide', () => {
    const { head_dim: _, ...noHeadDim } = LLAMA32_1B;
    expect(() => parseConfig({ ...noHeadDim, num_attention_heads: 30, num_key_value_heads: 10 })).toThrow(
      /hidden_size \(2048\) is not divisible by num_attention_heads \(30\) and no head_dim is given/,
    );
    expect(() => parseConfig({ ...QWEN3_06B, head_dim: 63 })).toThrow(/head_dim \(63\) is odd; RoPE rotates pairs/);
    expect(() => parseConfig({ ...QWEN3_06B, num_key_value_heads: 3 })).toThrow(
      /num_attention_heads \(16\) is not a multiple of num_key_value_heads \(3\)/,
    );
  });
});

/** Tensor names in a safetensors file's header. */
function readSafetensorsNames(bytes: Uint8Array): string[] {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return Object.keys(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)))).filter(
    (k) => k !== '__metadata__',
  );
}

describe('PEFT adapters of the new families', () => {
  it('export under PEFT module names (base_model.model.model.layers.i.self_attn.q_proj...) and import back', () => {
    const card = {
      name: 'a',
      baseModel: 'b',
      dataset: 'd',
      settings: {},
      trainLoss: null,
      valLoss: null,
      sample: null,
    };
    for (const json of [
      TINY_CONFIGS.qwen3,
      TINY_CONFIGS.smollm3,
      TINY_CONFIGS.mistral,
      TINY_CONFIGS.gemma3,
      { ...TINY_CONFIGS.llama, rope_scaling: LLAMA32_1B.rope_scaling },
    ]) {
      const cfg = parseConfig(json);
      const lc = { r: 2, alpha: 4, useRslora: false, dropout: 0, targets: ['q_proj', 'k_proj', 'o_proj', 'down_proj'] };
      const arrays = new Map(
        selectModules(cfg, lc.targets).map((m, k) => [
          m.path,
          {
            A: Float32Array.from({ length: 2 * m.inFeatures }, (_, i) => (k + i) / 64),
            B: Float32Array.from({ length: 2 * m.outFeatures }, (_, i) => (k - i) / 64),
          },
        ]),
      );
      const files = exportAdapter(cfg, lc, arrays, card);
      const pc = JSON.parse(files['adapter_config.json']);
      expect(pc.target_modules).toEqual(['down_proj', 'k_proj', 'o_proj', 'q_proj']);
      expect(pc.fan_in_fan_out).toBe(false);
      const imp = importAdapter(files, cfg, 'b');
      expect([...imp.arrays.keys()].sort()).toEqual([...arrays.keys()].sort());
      expect(imp.arrays.has('model.layers.0.self_attn.q_proj')).toBe(true);
      const names = readSafetensorsNames(files['adapter_model.safetensors']);
      expect(names).toContain('base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight');
      expect(names).toContain('base_model.model.model.layers.0.mlp.down_proj.lora_B.weight');
      for (const [p, a] of arrays) {
        expect(Array.from(imp.arrays.get(p)!.A)).toEqual(Array.from(a.A));
        expect(Array.from(imp.arrays.get(p)!.B)).toEqual(Array.from(a.B));
      }
    }
    // Qwen3's q_proj is C -> Hq·head_dim (16 -> 4·6), not C -> C
    expect(selectModules(parseConfig(TINY_CONFIGS.qwen3), ['q_proj'])[0]).toMatchObject({
      inFeatures: 16,
      outFeatures: 24,
    });
  });
});
