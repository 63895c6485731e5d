// The families of issue 11 read from their config.json as transformers reads it: Qwen3 (q/k norms, explicit
// head_dim), Llama 3.x (rope_scaling llama3 / linear, rope_theta 500000) and SmolLM3 (no_rope_layers), the
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

// config.json of the Hub checkpoints (trimmed of generation-only fields).
const QWEN3_06B = {
  architectures: ['Qwen3ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  head_dim: 128,
  hidden_act: 'silu',
  hidden_size: 1024,
  initializer_range: 0.02,
  intermediate_size: 3072,
  max_position_embeddings: 40960,
  max_window_layers: 28,
  model_type: 'qwen3',
  num_attention_heads: 16,
  num_hidden_layers: 28,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const LLAMA32_1B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: 128001,
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3',
  },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 128256,
};

const SMOLLM3_3B = {
  architectures: ['SmolLM3ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: null,
  eos_token_id: 128012,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 11008,
  max_position_embeddings: 65536,
  mlp_bias: false,
  model_type: 'smollm3',
  no_rope_layer_interval: 4,
  no_rope_layers: Array.from({ length: 36 }, (_, i) => ((i + 1) % 4 === 0 ? 0 : 1)),
  num_attention_heads: 16,
  num_hidden_layers: 36,
  num_key_value_heads: 4,
  pad_token_id: 128004,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 5000000.0,
  sliding_window: null,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: false,
  use_sliding_window: false,
  vocab_size: 128256,
};

describe('family registry', () => {
  it('every family answers for its architectures, tensors, modules, targets and memory', () => {
    for (const spec of Object.values(FAMILIES)) {
      expect(LORA_TARGETS[spec.family]).toEqual(spec.loraTargets);
      expect(DEFAULT_TARGETS[spec.family]).toEqual(spec.defaultTargets);
      for (const t of spec.defaultTargets) expect(spec.loraTargets).toContain(t);
    }
    // the model code reads exactly the checkpoint's tensors (+ nothing it does not load)
    for (const cfg of [parseConfig(QWEN3_06B), parseConfig(LLAMA32_1B), parseConfig(SMOLLM3_3B)]) {
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
});

describe('memory estimate of the issue-11 models (r 8, q/v, B 1 × T 512, checkpointing)', () => {
  it('Qwen3 0.6B and Llama 3.2 1B in f16 and f32', () => {
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
    for (const [n, e] of Object.entries({
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
      /"layer_types"\[0\] is "linear_attention"; WebLoRA implements "full_attention" layers/,
    );
  });

  it('Gemma 3n, Gemma 3 multimodal, and Gemma 3 text (next, not yet)', () => {
    const gemma = { hidden_size: 640, num_attention_heads: 4, num_hidden_layers: 18, vocab_size: 262144 };
    expect(() => parseConfig({ ...gemma, architectures: ['Gemma3nForCausalLM'] })).toThrow(
      /"Gemma3nForCausalLM" is not supported \(Gemma 3n .*\); WebLoRA loads LlamaForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel, Qwen3ForCausalLM, SmolLM3ForCausalLM/,
    );
    expect(() => parseConfig({ ...gemma, architectures: ['Gemma3ForConditionalGeneration'] })).toThrow(
      /"Gemma3ForConditionalGeneration" is not supported \(this is a Gemma 3 multimodal checkpoint/,
    );
    expect(() => parseConfig({ ...gemma, architectures: ['Gemma3ForCausalLM'] })).toThrow(
      /"Gemma3ForCausalLM" is not supported \(Gemma 3 text models .* are not yet supported/,
    );
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
