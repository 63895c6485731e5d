import { selectModules } from '../../src/models/modules';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_TARGETS,
  expectedTensors,
  LORA_TARGETS,
  paramCount,
  parseConfig,
} from '../../src/models/config';
import { TINY_CONFIGS } from './fixtures';

// The config.json fields of real Hub models (as saved by transformers), trimmed of training-only fields.
const SMOLLM2_135M = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 0,
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 576,
  initializer_range: 0.041666666666666664,
  intermediate_size: 1536,
  is_llama_config: true,
  max_position_embeddings: 8192,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_interleaved: false,
  rope_scaling: null,
  rope_theta: 100000,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 49152,
};
const TINYLLAMA = {
  architectures: ['LlamaForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 2048,
  intermediate_size: 5632,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 22,
  num_key_value_heads: 4,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  vocab_size: 32000,
};
const QWEN25_05B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: 'silu',
  hidden_size: 896,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};
const GPT2 = {
  activation_function: 'gelu_new',
  architectures: ['GPT2LMHeadModel'],
  attn_pdrop: 0.1,
  bos_token_id: 50256,
  embd_pdrop: 0.1,
  eos_token_id: 50256,
  initializer_range: 0.02,
  layer_norm_epsilon: 1e-5,
  model_type: 'gpt2',
  n_ctx: 1024,
  n_embd: 768,
  n_head: 12,
  n_layer: 12,
  n_positions: 1024,
  resid_pdrop: 0.1,
  summary_activation: null,
  vocab_size: 50257,
};

const without = (o: Record<string, unknown>, ...keys: string[]) =>
  Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));

describe('parseConfig', () => {
  it('reads a Llama config (SmolLM2-135M) and counts its published 134,515,008 parameters', () => {
    const c = parseConfig(SMOLLM2_135M);
    expect(c).toEqual({
      family: 'llama',
      architecture: 'LlamaForCausalLM',
      vocabSize: 49152,
      hiddenSize: 576,
      numLayers: 30,
      numHeads: 9,
      numKvHeads: 3,
      headDim: 64,
      intermediateSize: 1536,
      maxPositions: 8192,
      normEps: 1e-5,
      ropeTheta: 100000,
      tieEmbeddings: true,
      attnBias: false,
      act: 'silu',
      bosTokenId: 0,
      eosTokenId: 0,
    });
    expect(paramCount(c)).toBe(134_515_008);
  });

  it('reads TinyLlama (untied lm_head, GQA 32/4): 1,100,048,384 parameters', () => {
    const c = parseConfig(TINYLLAMA);
    expect([c.numKvHeads, c.headDim, c.tieEmbeddings, c.ropeTheta]).toEqual([4, 64, false, 10000]);
    expect(expectedTensors(c).get('lm_head.weight')).toEqual([32000, 2048]);
    expect(paramCount(c)).toBe(1_100_048_384);
  });

  it('reads a Qwen2 config (Qwen2.5-0.5B, q/k/v biases): 494,032,768 parameters', () => {
    const c = parseConfig(QWEN25_05B);
    expect([c.family, c.attnBias, c.numKvHeads, c.headDim, c.ropeTheta, c.tieEmbeddings]).toEqual([
      'qwen2',
      true,
      2,
      64,
      1e6,
      true,
    ]);
    const t = expectedTensors(c);
    expect(t.get('model.layers.3.self_attn.k_proj.bias')).toEqual([128]);
    expect(t.has('model.layers.3.self_attn.o_proj.bias')).toBe(false);
    expect(paramCount(c)).toBe(494_032_768);
  });

  it('reads a GPT-2 config (n_embd, n_layer, n_head, n_positions; n_inner absent -> 4·n_embd): 124,439,808 parameters', () => {
    const c = parseConfig(GPT2);
    expect(c).toEqual({
      family: 'gpt2',
      architecture: 'GPT2LMHeadModel',
      vocabSize: 50257,
      hiddenSize: 768,
      numLayers: 12,
      numHeads: 12,
      numKvHeads: 12,
      headDim: 64,
      intermediateSize: 3072,
      maxPositions: 1024,
      normEps: 1e-5,
      ropeTheta: 0,
      tieEmbeddings: true,
      attnBias: true,
      act: 'gelu_tanh',
      bosTokenId: 50256,
      eosTokenId: 50256,
    });
    expect(parseConfig({ ...GPT2, n_inner: null }).intermediateSize).toBe(3072);
    expect(parseConfig({ ...GPT2, n_inner: 1000 }).intermediateSize).toBe(1000);
    expect(paramCount(c)).toBe(124_439_808);
  });

  it('rejects an unsupported architecture, naming it and listing the supported ones', () => {
    const err = () =>
      parseConfig({ ...TINYLLAMA, architectures: ['PhiForCausalLM'], model_type: 'phi' }, 'my/config.json');
    expect(err).toThrow(ConfigError);
    expect(err).toThrow(/my\/config\.json.*"PhiForCausalLM".*LlamaForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel/);
    expect(() => parseConfig({ model_type: 'bert' })).toThrow(/"bert".*LlamaForCausalLM/);
    expect(() => parseConfig('nope')).toThrow(/JSON object/);
  });

  it('refuses an absurd layer count at once, before building any per-layer table', () => {
    // A hostile config: a billion layers with per-layer tables (sliding window, NoPE) that would hang the parse.
    for (const cfg of [
      { ...QWEN25_05B, num_hidden_layers: 1e9, use_sliding_window: true },
      { ...TINYLLAMA, num_hidden_layers: 1025 },
      { ...GPT2, n_layer: 1e9 },
    ]) {
      expect(() => parseConfig(cfg, 'c.json')).toThrow(
        /c\.json: "(num_hidden_layers|n_layer)" is \d+; WebLoRA supports models of at most 1024 layers/,
      );
    }
    expect(parseConfig({ ...TINYLLAMA, num_hidden_layers: 1024 }).numLayers).toBe(1024);
  });

  it('falls back to model_type when architectures is absent', () => {
    expect(parseConfig(without(GPT2, 'architectures')).architecture).toBe('GPT2LMHeadModel');
  });

  it('requires the fields that fix tensor shapes', () => {
    for (const k of ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size']) {
      expect(() => parseConfig(without(TINYLLAMA, k), 'c.json')).toThrow(
        new RegExp(`c\\.json: required field "${k}" is missing`),
      );
    }
    for (const k of ['n_embd', 'n_layer', 'n_head', 'vocab_size'])
      expect(() => parseConfig(without(GPT2, k))).toThrow(new RegExp(`"${k}" is missing`));
    expect(() => parseConfig({ ...TINYLLAMA, hidden_size: '2048' })).toThrow(
      /"hidden_size" is "2048"; expected a positive integer/,
    );
  });

  it('takes transformers defaults for absent optional fields', () => {
    const minimal = {
      architectures: ['LlamaForCausalLM'],
      vocab_size: 100,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
    };
    const l = parseConfig(minimal);
    expect([
      l.numKvHeads,
      l.headDim,
      l.maxPositions,
      l.normEps,
      l.ropeTheta,
      l.tieEmbeddings,
      l.bosTokenId,
      l.eosTokenId,
    ]).toEqual([4, 8, 2048, 1e-6, 10000, false, 1, 2]);
    expect(parseConfig({ ...minimal, num_key_value_heads: null }).numKvHeads).toBe(4);
    // Qwen2Config's __init__ default for num_key_value_heads is 32 (not num_attention_heads), and no bos/eos.
    const q = parseConfig({
      ...minimal,
      architectures: ['Qwen2ForCausalLM'],
      num_attention_heads: 32,
      hidden_size: 64,
    });
    expect([q.numKvHeads, q.maxPositions, q.tieEmbeddings, q.bosTokenId, q.eosTokenId]).toEqual([
      32,
      32768,
      false,
      null,
      null,
    ]);
    const g = parseConfig({ architectures: ['GPT2LMHeadModel'], vocab_size: 100, n_embd: 32, n_layer: 1, n_head: 2 });
    expect([g.maxPositions, g.normEps, g.intermediateSize, g.bosTokenId]).toEqual([1024, 1e-5, 128, 50256]);
  });

  it('uses head_dim when given and checks head arithmetic', () => {
    const c = parseConfig({ ...TINY_CONFIGS.llama, head_dim: 8 });
    expect(expectedTensors(c).get('model.layers.0.self_attn.q_proj.weight')).toEqual([32, 16]);
    expect(expectedTensors(c).get('model.layers.0.self_attn.o_proj.weight')).toEqual([16, 32]);
    expect(() => parseConfig({ ...TINY_CONFIGS.llama, num_key_value_heads: 3 })).toThrow(/not a multiple/);
    expect(() => parseConfig({ ...TINY_CONFIGS.llama, num_attention_heads: 5, num_key_value_heads: 5 })).toThrow(
      /not divisible/,
    );
  });

  it('accepts eos_token_id lists (Llama 3 style) and rope_parameters', () => {
    expect(parseConfig({ ...TINYLLAMA, eos_token_id: [128001, 128009] }).eosTokenId).toEqual([128001, 128009]);
    expect(
      parseConfig({
        ...without(TINYLLAMA, 'rope_theta'),
        rope_parameters: { rope_type: 'default', rope_theta: 500000 },
      }).ropeTheta,
    ).toBe(500000);
    expect(parseConfig({ ...TINYLLAMA, rope_scaling: { rope_type: 'default' } }).ropeTheta).toBe(10000);
  });

  it('rejects options the model code does not implement, saying which', () => {
    // llama3 and linear scaling are implemented since issue 11 (tests/models/families.test.ts); an
    // incomplete llama3 block and any other rope_type are refused, naming the field and what is supported.
    expect(() => parseConfig({ ...TINYLLAMA, rope_scaling: { rope_type: 'llama3', factor: 8 } })).toThrow(
      /"rope_scaling.low_freq_factor".*rope_type "llama3"/,
    );
    expect(() => parseConfig({ ...TINYLLAMA, rope_scaling: { type: 'yarn', factor: 2 } })).toThrow(
      /"rope_scaling.type" is "yarn".*"default", "linear" and "llama3"/,
    );
    // Qwen2's sliding windows are implemented (tests/models/families.test.ts); a layer marked sliding
    // without a window is refused, as transformers refuses it.
    const w = parseConfig({ ...QWEN25_05B, use_sliding_window: true, max_window_layers: 21 });
    expect([w.slidingLayers?.lastIndexOf(false), w.slidingWindow]).toEqual([20, 32768]);
    expect(
      parseConfig({ ...QWEN25_05B, use_sliding_window: true, max_window_layers: 24 }).slidingLayers,
    ).toBeUndefined();
    const types = Array.from({ length: 24 }, (_, i) => (i === 5 ? 'sliding_attention' : 'full_attention'));
    expect(() => parseConfig({ ...QWEN25_05B, use_sliding_window: false, layer_types: types })).toThrow(
      /"layer_types" marks layers 5 "sliding_attention", but no sliding window is set/,
    );
    expect(() => parseConfig({ ...TINYLLAMA, attention_bias: true })).toThrow(/attention_bias/);
    expect(() => parseConfig({ ...TINYLLAMA, mlp_bias: true })).toThrow(/mlp_bias/);
    expect(() => parseConfig({ ...TINYLLAMA, hidden_act: 'gelu' })).toThrow(/hidden_act "gelu"/);
    expect(() => parseConfig({ ...GPT2, activation_function: 'relu' })).toThrow(/activation_function "relu"/);
    expect(() => parseConfig({ ...GPT2, scale_attn_by_inverse_layer_idx: true })).toThrow(
      /scale_attn_by_inverse_layer_idx/,
    );
  });
});

describe('expectedTensors', () => {
  it('lists GPT-2 small tensors as in the HF checkpoint, Conv1D weights as [in, out]', () => {
    const t = expectedTensors(parseConfig(GPT2));
    expect(t.size).toBe(2 + 12 * 12 + 2);
    expect(t.get('transformer.wte.weight')).toEqual([50257, 768]);
    expect(t.get('transformer.wpe.weight')).toEqual([1024, 768]);
    expect(t.get('transformer.h.11.attn.c_attn.weight')).toEqual([768, 2304]);
    expect(t.get('transformer.h.0.attn.c_attn.bias')).toEqual([2304]);
    expect(t.get('transformer.h.0.mlp.c_fc.weight')).toEqual([768, 3072]);
    expect(t.get('transformer.h.0.mlp.c_proj.weight')).toEqual([3072, 768]);
    expect(t.get('transformer.ln_f.bias')).toEqual([768]);
    expect(t.has('lm_head.weight')).toBe(false);
  });

  it('lists Llama tensors in HF [out, in] layout, with GQA k/v widths', () => {
    const t = expectedTensors(parseConfig(SMOLLM2_135M));
    expect(t.size).toBe(1 + 30 * 9 + 1);
    expect(t.get('model.embed_tokens.weight')).toEqual([49152, 576]);
    expect(t.get('model.layers.29.self_attn.k_proj.weight')).toEqual([192, 576]);
    expect(t.get('model.layers.0.mlp.down_proj.weight')).toEqual([576, 1536]);
    expect(t.get('model.norm.weight')).toEqual([576]);
    expect(t.has('lm_head.weight')).toBe(false);
  });
});

describe('LoRA targets', () => {
  it('has PEFT names and defaults', () => {
    expect(LORA_TARGETS.llama).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    expect(LORA_TARGETS.gpt2).toEqual(['c_attn', 'c_proj', 'c_fc']);
    expect(DEFAULT_TARGETS).toEqual({
      llama: ['q_proj', 'v_proj'],
      qwen2: ['q_proj', 'v_proj'],
      gpt2: ['c_attn'],
      qwen3: ['q_proj', 'v_proj'],
      smollm3: ['q_proj', 'v_proj'],
      gemma3: ['q_proj', 'v_proj'],
      mistral: ['q_proj', 'v_proj'],
    });
  });

  it('sizes the modules: GPT-2 c_attn at r = 8 is 294,912 trainable parameters (the PEFT figure)', () => {
    const g = parseConfig(GPT2);
    const mods = selectModules(g, ['c_attn']);
    expect(mods.length).toBe(12);
    expect(mods[0]).toMatchObject({
      path: 'transformer.h.0.attn.c_attn',
      target: 'c_attn',
      layer: 0,
      inFeatures: 768,
      outFeatures: 2304,
    });
    expect(mods.reduce((s, m) => s + 8 * (m.inFeatures + m.outFeatures), 0)).toBe(294_912);
    // c_proj selects both attn.c_proj and mlp.c_proj, as PEFT's suffix match does.
    expect(
      selectModules(g, ['c_proj'])
        .filter((m) => m.layer === 0)
        .map((m) => [m.path, m.inFeatures, m.outFeatures]),
    ).toEqual([
      ['transformer.h.0.attn.c_proj', 768, 768],
      ['transformer.h.0.mlp.c_proj', 3072, 768],
    ]);
    const l = selectModules(parseConfig(SMOLLM2_135M), DEFAULT_TARGETS.llama);
    expect(l.slice(0, 2).map((m) => [m.path, m.inFeatures, m.outFeatures])).toEqual([
      ['model.layers.0.self_attn.q_proj', 576, 576],
      ['model.layers.0.self_attn.v_proj', 576, 192],
    ]);
    expect(() => selectModules(g, ['q_proj'])).toThrow(
      /"q_proj" does not exist in GPT2LMHeadModel; choose from c_attn, c_proj, c_fc/,
    );
  });
});
