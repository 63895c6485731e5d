// Llama (Llama 2, Llama 3.x, SmolLM2, TinyLlama, our bundled model): LlamaForCausalLM, and the Llama-shaped
// block that Qwen2, Qwen3, SmolLM3 and Mistral reuse with their switches (./qwen2.ts, ./qwen3.ts,
// ./smollm3.ts, ./mistral.ts).
// As Hugging Face's modeling_llama.py computes it, x is (B·T, C):
//
//   n1  = rmsnorm(x) · input_layernorm
//   q   = q_proj(n1)  (B·T, Hq·D)    k = k_proj(n1), v = v_proj(n1)  (B·T, Hkv·D)
//   q,k = rmsnorm per head · q_norm, k_norm                             (Qwen3 only: qkNorm)
//   q,k = rope(q), rope(k)                                              (unless the layer is NoPE: SmolLM3)
//   h   = x + o_proj(attention(q, k, v))                               causal, GQA: Hq/Hkv queries per kv head;
//                                                                      (RoPE runs inside the attention kernels)
//                                                                       sliding window W on sliding layers
//                                                                       (Mistral; Qwen2/3, SmolLM3 when set)
//   n2  = rmsnorm(h) · post_attention_layernorm
//   out = h + down_proj(silu(gate_proj(n2)) · up_proj(n2))
//   logits = rmsnorm(out_L) · model.norm · lm_headᵀ                     (embed_tokens when tied)
//
// RoPE's inverse frequencies come from rope_theta and, for Llama 3.x, rope_scaling (linear or llama3),
// computed on the CPU exactly as transformers does (src/kernels/rope.ts rope_inv_freq).

import { gatedLinear, headRmsnorm, linear, normLinears, rmsnorm, type LinearSpec } from '../../autograd/ops';
import type { Tape, Var } from '../../autograd/tape';
import type { Tensor } from '../../gpu/tensor';
import { embedding_forward } from '../../kernels/embedding';
import type { RopeScaling } from '../../kernels/rope';
import type { LoraState } from '../lora';
import { frozenLinear, selfAttention, type CausalLM, type RunInfo } from '../model';
import type { GpuWeights } from '../weights';
import type { ConfigReader, FamilySpec, Json, LinearModule, ModelConfig, WeightNames } from './types';

// ---- config ---------------------------------------------------------------------------------------------

/** The defaults transformers' <Family>Config.__init__ gives absent fields. */
export interface LlamaLikeDefaults {
  /** num_key_value_heads when the key is absent (null always means num_attention_heads). */
  kvHeads: (numHeads: number) => number;
  maxPositions: number;
  ropeTheta: number;
  tie: boolean;
  bos: number | null;
  eos: number | null;
  /** Whether head_dim must be in the file (Qwen3Config always writes it). */
  headDimRequired: boolean;
}

const ROPE_TYPES = '"default", "linear" and "llama3"';

/** rope_scaling / rope_parameters -> (theta, scaling), as transformers' rope_config_validation reads them. */
export function ropeOf(
  json: Json,
  r: ConfigReader,
  thetaDefault: number,
): { theta: number; scaling: RopeScaling | null } {
  let theta = r.num('rope_theta', thetaDefault);
  let scaling: RopeScaling | null = null;
  for (const k of ['rope_scaling', 'rope_parameters']) {
    const v = json[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'object' || Array.isArray(v)) r.fail(`"${k}" is ${JSON.stringify(v)}; expected null or an object`);
    const o = v as Json;
    if (k === 'rope_parameters' && o.rope_theta !== undefined) {
      if (typeof o.rope_theta !== 'number' || !(o.rope_theta > 0))
        r.fail(`"rope_parameters.rope_theta" is ${JSON.stringify(o.rope_theta)}; expected a positive number`);
      theta = o.rope_theta as number;
    }
    const type = o.rope_type ?? o.type ?? 'default';
    const field = `${k}.${o.rope_type !== undefined ? 'rope_type' : 'type'}`;
    const pos = (name: string): number => {
      const x = o[name];
      if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0)
        r.fail(
          `"${k}.${name}" is ${JSON.stringify(x ?? null)}; rope_type ${JSON.stringify(type)} needs a positive number`,
        );
      return x as number;
    };
    if (type === 'default') continue;
    if (type === 'linear') scaling = { type: 'linear', factor: pos('factor') };
    else if (type === 'llama3') {
      scaling = {
        type: 'llama3',
        factor: pos('factor'),
        lowFreqFactor: pos('low_freq_factor'),
        highFreqFactor: pos('high_freq_factor'),
        originalMaxPositions: pos('original_max_position_embeddings'),
      };
      if (!(scaling.highFreqFactor > scaling.lowFreqFactor))
        r.fail(
          `"${k}": high_freq_factor (${scaling.highFreqFactor}) must be larger than low_freq_factor (${scaling.lowFreqFactor})`,
        );
    } else
      r.fail(
        `"${field}" is ${JSON.stringify(type)}, which WebLoRA does not implement; it implements rope_type ${ROPE_TYPES}.`,
      );
  }
  return { theta, scaling };
}

function headsAndDim(r: ConfigReader, hidden: number, heads: number, kvHeads: number, required: boolean): number {
  if (heads % kvHeads !== 0)
    r.fail(`num_attention_heads (${heads}) is not a multiple of num_key_value_heads (${kvHeads})`);
  let D: number;
  if (r.has('head_dim') || required) D = r.int('head_dim');
  else {
    if (hidden % heads !== 0)
      r.fail(`hidden_size (${hidden}) is not divisible by num_attention_heads (${heads}) and no head_dim is given`);
    D = hidden / heads;
  }
  if (D % 2 !== 0)
    r.fail(`head_dim (${D}) is odd; RoPE rotates pairs of dimensions, so WebLoRA needs an even head_dim`);
  return D;
}

/** layer_types: only attention layers WebLoRA implements (Qwen3.5 / Qwen3-Next mix in linear attention). */
function checkLayerTypes(json: Json, r: ConfigReader, numLayers: number): string[] | null {
  const lt = json.layer_types;
  if (lt === undefined || lt === null) return null;
  if (!Array.isArray(lt) || lt.length !== numLayers)
    r.fail(`"layer_types" is ${JSON.stringify(lt)}; expected one entry per layer (${numLayers})`);
  (lt as unknown[]).forEach((t, i) => {
    if (t !== 'full_attention' && t !== 'sliding_attention')
      r.fail(
        `"layer_types"[${i}] is ${JSON.stringify(t)}; WebLoRA implements "full_attention" and "sliding_attention" layers`,
      );
  });
  return lt as string[];
}

/** Windows at least this long see every key of any sequence WebLoRA runs: plain causal (the kernels' bound). */
export const FULL_WINDOW = 1 << 30;

/**
 * A family's sliding-window switches as its config's __post_init__ leaves them: `window` is
 * config.sliding_window (null: none), `defaults` the layers that slide when layer_types is absent.
 */
export interface SlidingRule {
  window: number | null;
  defaults: (numLayers: number) => number[];
}

/**
 * Which layers slide, as the modeling code decides: a layer slides when layer_types (given, else the
 * family's defaults) says "sliding_attention", with window config.sliding_window; position i then sees
 * keys j with i − W < j ≤ i (create_sliding_window_causal_mask). A sliding layer without a window is what
 * transformers refuses too ("Could not find a `sliding_window` argument").
 */
function slidingOf(
  r: ConfigReader,
  layerTypes: string[] | null,
  rule: SlidingRule,
  numLayers: number,
): Pick<ModelConfig, 'slidingLayers' | 'slidingWindow'> {
  const sliding = layerTypes
    ? layerTypes.flatMap((t, i) => (t === 'sliding_attention' ? [i] : []))
    : rule.defaults(numLayers);
  if (sliding.length === 0) return {};
  if (rule.window === null)
    r.fail(
      `"layer_types" marks layers ${sliding.join(', ')} "sliding_attention", but no sliding window is set (sliding_window is null, or use_sliding_window is false); transformers cannot run this config either`,
    );
  const W = rule.window!;
  if (W >= FULL_WINDOW) return {}; // no sequence is that long: plain causal attention
  const slidingLayers = Array<boolean>(numLayers).fill(false);
  for (const i of sliding) slidingLayers[i] = true;
  return { slidingLayers, slidingWindow: W };
}

/**
 * Qwen2Config / Qwen3Config: sliding_window counts only while use_sliding_window is true (absent: 4096,
 * null: none), and by default the layers from max_window_layers on slide.
 */
export function qwenSliding(json: Json, r: ConfigReader): SlidingRule {
  const on = r.bool('use_sliding_window', false);
  const window = on && json.sliding_window !== null ? r.int('sliding_window', 4096) : null;
  return { window, defaults: (L) => (window === null ? [] : maxWindowLayers(json, r, L)) };
}

/** Layers from max_window_layers on (Qwen2Config / Qwen3Config default layer_types). */
export function maxWindowLayers(json: Json, r: ConfigReader, numLayers: number): number[] {
  const mwl = json.max_window_layers ?? 28;
  if (typeof mwl !== 'number' || !Number.isSafeInteger(mwl) || mwl < 0)
    r.fail(`"max_window_layers" is ${JSON.stringify(mwl)}; expected a non-negative integer`);
  return Array.from({ length: Math.max(0, numLayers - (mwl as number)) }, (_, k) => (mwl as number) + k);
}

/**
 * The fields every Llama-shaped family shares, sliding-window layers included (`sliding`: the family's
 * rule; null for families whose config has no layer_types windows: Llama, Mistral); the family sets
 * attnBias, qkNorm and ropeLayers after.
 */
export function parseLlamaLike(
  json: Json,
  r: ConfigReader,
  family: ModelConfig['family'],
  architecture: string,
  d: LlamaLikeDefaults,
  sliding: SlidingRule | null,
): ModelConfig {
  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numLayers = r.layers('num_hidden_layers');
  const numKvHeads = r.int('num_key_value_heads', 'num_key_value_heads' in json ? numHeads : d.kvHeads(numHeads));
  const headDim = headsAndDim(r, hiddenSize, numHeads, numKvHeads, d.headDimRequired);
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu' && act !== 'swish')
    r.fail(`hidden_act "${act}" is not supported for ${architecture}; WebLoRA implements SwiGLU with silu`);
  const layerTypes = checkLayerTypes(json, r, numLayers);
  const windows = sliding ? slidingOf(r, layerTypes, sliding, numLayers) : {};
  const rope = ropeOf(json, r, d.ropeTheta);
  return {
    family,
    architecture,
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: r.int('intermediate_size'),
    maxPositions: r.int('max_position_embeddings', d.maxPositions),
    normEps: r.num('rms_norm_eps', 1e-6),
    ropeTheta: rope.theta,
    ...(rope.scaling ? { ropeScaling: rope.scaling } : {}),
    tieEmbeddings: r.bool('tie_word_embeddings', d.tie),
    attnBias: false,
    act: 'silu',
    bosTokenId: r.tokenId('bos_token_id', d.bos),
    eosTokenId: r.tokenIds('eos_token_id', d.eos),
    ...windows,
  };
}

/** attention_bias / mlp_bias: the Llama-shaped families here have neither. */
export function refuseBiases(r: ConfigReader, architecture: string): void {
  if (r.bool('attention_bias', false))
    r.fail(
      `attention_bias: true (biases on q/k/v/o) is not supported; WebLoRA implements ${architecture} without attention biases`,
    );
  if (r.bool('mlp_bias', false))
    r.fail(`mlp_bias: true is not supported; WebLoRA implements ${architecture} without MLP biases`);
}

// ---- tensors, linear modules, memory ----------------------------------------------------------------------

export function llamaTensors(cfg: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const { hiddenSize: H, vocabSize: V, intermediateSize: I, numHeads, numKvHeads, headDim: D } = cfg;
  const Q = numHeads * D;
  const KV = numKvHeads * D;
  m.set('model.embed_tokens.weight', [V, H]);
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(p + 'input_layernorm.weight', [H]);
    m.set(p + 'self_attn.q_proj.weight', [Q, H]);
    m.set(p + 'self_attn.k_proj.weight', [KV, H]);
    m.set(p + 'self_attn.v_proj.weight', [KV, H]);
    if (cfg.attnBias) {
      m.set(p + 'self_attn.q_proj.bias', [Q]);
      m.set(p + 'self_attn.k_proj.bias', [KV]);
      m.set(p + 'self_attn.v_proj.bias', [KV]);
    }
    m.set(p + 'self_attn.o_proj.weight', [H, Q]);
    if (cfg.qkNorm) {
      m.set(p + 'self_attn.q_norm.weight', [D]);
      m.set(p + 'self_attn.k_norm.weight', [D]);
    }
    m.set(p + 'post_attention_layernorm.weight', [H]);
    m.set(p + 'mlp.gate_proj.weight', [I, H]);
    m.set(p + 'mlp.up_proj.weight', [I, H]);
    m.set(p + 'mlp.down_proj.weight', [H, I]);
  }
  m.set('model.norm.weight', [H]);
  if (!cfg.tieEmbeddings) m.set('lm_head.weight', [V, H]);
  return m;
}

export function llamaLinears(cfg: ModelConfig, layer: number): LinearModule[] {
  const C = cfg.hiddenSize;
  const q = cfg.numHeads * cfg.headDim;
  const kv = cfg.numKvHeads * cfg.headDim;
  const F = cfg.intermediateSize;
  let slot = 0;
  const m = (path: string, inFeatures: number, outFeatures: number, hasBias: boolean): LinearModule => ({
    path: `model.layers.${layer}.${path}`,
    target: path.split('.').pop()!,
    layer,
    slot: slot++,
    inFeatures,
    outFeatures,
    transposed: false,
    hasBias,
  });
  return [
    m('self_attn.q_proj', C, q, cfg.attnBias),
    m('self_attn.k_proj', C, kv, cfg.attnBias),
    m('self_attn.v_proj', C, kv, cfg.attnBias),
    m('self_attn.o_proj', q, C, false),
    m('mlp.gate_proj', C, F, false),
    m('mlp.up_proj', C, F, false),
    m('mlp.down_proj', F, C, false),
  ];
}

export function llamaWeightNames(cfg: ModelConfig): WeightNames {
  const large: string[] = [];
  const small: string[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    for (const m of llamaLinears(cfg, i)) {
      large.push(`${m.path}.weight`);
      if (m.hasBias) small.push(`${m.path}.bias`);
    }
  }
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    small.push(`${p}.input_layernorm.weight`, `${p}.post_attention_layernorm.weight`);
    if (cfg.qkNorm) small.push(`${p}.self_attn.q_norm.weight`, `${p}.self_attn.k_norm.weight`);
  }
  small.push('model.norm.weight');
  return {
    large,
    small,
    tables: cfg.tieEmbeddings ? ['model.embed_tokens.weight'] : ['model.embed_tokens.weight', 'lm_head.weight'],
  };
}

/** Floats saved per row by one block (see src/models/memory.ts), excluding the LoRA U's. */
export function llamaBlockFloatsPerRow(cfg: ModelConfig): number {
  const C = cfg.hiddenSize;
  const I = cfg.intermediateSize;
  const Q = cfg.numHeads * cfg.headDim;
  const KV = cfg.numKvHeads * cfg.headDim;
  // x, n1, h, n2 (4C) + q, attn out (2Q) + k, v (2KV) + gate, up, act (3I) + lse + 2 rstd
  const base = 4 * C + 2 * Q + 2 * KV + 3 * I + cfg.numHeads + 2;
  // Qwen3: q and k before their norm (Q + KV) and one rstd per head and row
  return cfg.qkNorm ? base + Q + KV + cfg.numHeads + cfg.numKvHeads : base;
}

// ---- the model ----------------------------------------------------------------------------------------------

export class LlamaModel implements CausalLM {
  constructor(
    readonly cfg: ModelConfig,
    readonly weights: GpuWeights,
  ) {}

  embed(ids: Tensor, _run: RunInfo): Tensor {
    return embedding_forward(ids, this.weights.embedding);
  }

  block(i: number, tape: Tape, x: Var, lora: LoraState | null, run: RunInfo): Var {
    const c = this.cfg;
    const p = `model.layers.${i}`;
    const w = (name: string) => this.weights.get(`${p}.${name}`);
    const spec = (name: string): LinearSpec => {
      const path = `${p}.${name}`;
      const branch = lora?.branch(tape, path, run.dropoutSeed ?? null) ?? null;
      return { w: frozenLinear(this.weights, path, false), lora: branch, name: path };
    };
    const lin = (name: string, input: Var, residual?: Var) => {
      const s = spec(name);
      return linear(tape, input, s.w, s.lora, s.name, residual);
    };
    // RoPE of q and k happens inside the attention kernels (the table holds rope_theta and rope_scaling)
    const usesRope = c.ropeLayers?.[i] ?? true;
    const rope = usesRope ? { invFreq: this.weights.get('rope.inv_freq'), posOffset: run.posOffset } : undefined;

    // attention
    // n1 = input_layernorm(x); q (N, Hq·D), k and v (N, Hkv·D): the three read n1 (one dispatch for n1 and their
    // LoRA U's)
    const n1 = { w: w('input_layernorm.weight'), eps: c.normEps, name: `${p}.input_layernorm` };
    let [q, k, v] = normLinears(tape, x, n1, [
      spec('self_attn.q_proj'),
      spec('self_attn.k_proj'),
      spec('self_attn.v_proj'),
    ]);
    if (c.qkNorm) {
      q = headRmsnorm(tape, q, w('self_attn.q_norm.weight'), c.normEps, `${p}.self_attn.q_norm`);
      k = headRmsnorm(tape, k, w('self_attn.k_norm.weight'), c.normEps, `${p}.self_attn.k_norm`);
    }
    const a = selfAttention(
      tape,
      q,
      k,
      v,
      {
        heads: c.numHeads,
        kvHeads: c.numKvHeads,
        headDim: c.headDim,
        seqLen: run.T,
        window: c.slidingLayers?.[i] ? c.slidingWindow : 0,
        rope,
      },
      run,
      i,
      `${p}.attn`,
    ); // (N, Hq·D)
    const h = lin('self_attn.o_proj', a, x); // x + o_proj(a): the residual added by the matmul

    // MLP
    const n2 = { w: w('post_attention_layernorm.weight'), eps: c.normEps, name: `${p}.post_attention_layernorm` };
    const [gate, up] = normLinears(tape, h, n2, [spec('mlp.gate_proj'), spec('mlp.up_proj')]); // (N, I) each
    // h + down_proj(swiglu(gate, up)), swiglu's (N, I) made in down's U dispatch
    return gatedLinear(tape, 'swiglu', gate, up, `${p}.swiglu`, spec('mlp.down_proj'), h);
  }

  finalNorm(tape: Tape, x: Var): Var {
    return rmsnorm(tape, x, this.weights.get('model.norm.weight'), this.cfg.normEps, 'model.norm');
  }
}

/** What every Llama-shaped family shares; a family spreads this and overrides what differs. */
export const llamaShaped = {
  tensors: llamaTensors,
  linears: llamaLinears,
  weightNames: llamaWeightNames,
  loraTargets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  defaultTargets: ['q_proj', 'v_proj'], // PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
  blockFloatsPerRow: llamaBlockFloatsPerRow,
  finalNormStatsPerRow: 1,
  model: (cfg: ModelConfig, weights: GpuWeights): CausalLM => new LlamaModel(cfg, weights),
};

// ---- the family -----------------------------------------------------------------------------------------------

export const llama: FamilySpec = {
  ...llamaShaped,
  family: 'llama',
  name: 'Llama (Llama 2, Llama 3.x, SmolLM2, TinyLlama)',
  examples: ['HuggingFaceTB/SmolLM2-135M', 'TinyLlama/TinyLlama-1.1B-Chat-v1.0', 'unsloth/Llama-3.2-1B'],
  architectures: ['LlamaForCausalLM'],
  modelType: 'llama',
  parseConfig(json, r, architecture) {
    // LlamaConfig: num_key_value_heads None -> num_attention_heads; rope_scaling for Llama 3.x.
    refuseBiases(r, architecture);
    const defaults = {
      kvHeads: (h: number) => h,
      maxPositions: 2048,
      ropeTheta: 10000,
      tie: false,
      bos: 1,
      eos: 2,
      headDimRequired: false,
    };
    return parseLlamaLike(json, r, 'llama', architecture, defaults, null);
  },
};
