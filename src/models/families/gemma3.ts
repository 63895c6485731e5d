// Gemma 3 text (Gemma3ForCausalLM: gemma-3-270m, gemma-3-1b), as Hugging Face's modeling_gemma3.py computes it.
// x is (B·T, C); every norm is Gemma's RMSNorm, rmsnorm(x)·(1 + w) in f32:
//
//   x0  = embed_tokens[ids] · √C                 the normalizer rounded to the weight dtype, as HF does
//   n1  = rmsnorm(x)·(1 + input_layernorm)
//   q   = rmsnorm_per_head(q_proj(n1))·(1 + q_norm)   (B·T, Hq·D)     q_norm, k_norm: (D,)
//   k   = rmsnorm_per_head(k_proj(n1))·(1 + k_norm)   (B·T, Hkv·D)    v = v_proj(n1)  (B·T, Hkv·D)
//   q,k = rope(q), rope(k)      (inside the attention kernels) sliding layers: inv_freq from rope_local_base_freq, unscaled;
//                               full layers: from rope_theta with rope_scaling (linear for the larger Gemma 3s)
//   a   = softmax(cap_a(s·q·kᵀ) + mask)·v         s = query_pre_attn_scalar^-½; cap_a(z) = c·tanh(z / c) when
//                                                 attn_logit_softcapping is set; mask: causal, and on sliding
//                                                 layers position i sees keys i - sliding_window < j <= i
//   h   = x + rmsnorm(o_proj(a))·(1 + post_attention_layernorm)
//   n2  = rmsnorm(h)·(1 + pre_feedforward_layernorm)
//   out = h + rmsnorm(down_proj(gelu_tanh(gate_proj(n2)) · up_proj(n2)))·(1 + post_feedforward_layernorm)
//   logits = cap_f(rmsnorm(out_L)·(1 + model.norm) · embed_tokensᵀ)   cap_f: final_logit_softcapping, if set
//
// Which layers slide: layer_types ("sliding_attention" / "full_attention"), or, in configs saved before it
// existed, every sliding_window_pattern-th layer (default 6) is full and the others slide. Gemma's norm
// weights are stored as w (initialised to 0) and used as 1 + w: WebLoRA uploads 1 + w, rounded to f32 as HF's
// `1.0 + self.weight.float()` is, and runs the plain RMSNorm kernel. Tied embeddings (262,144 rows for the real
// models) by default; the chunked LM head (../head.ts) never holds B·T × V logits.

import { gatedLinear, headRmsnorm, linear, normLinears, rmsnorm, type LinearSpec } from '../../autograd/ops';
import type { Tape, Var } from '../../autograd/tape';
import { f16BitsToF32, f32ToF16Bits } from '../../gpu/f16';
import type { Tensor } from '../../gpu/tensor';
import { embedding_forward } from '../../kernels/embedding';
import type { LoraState } from '../lora';
import { frozenLinear, selfAttention, type CausalLM, type RunInfo } from '../model';
import type { GpuWeights } from '../weights';
import { llamaBlockFloatsPerRow, llamaLinears, llamaShaped, llamaTensors, llamaWeightNames, ropeOf } from './llama';
import type { ConfigReader, FamilySpec, Json, ModelConfig } from './types';

// ---- config ---------------------------------------------------------------------------------------------

const GELU_TANH = ['gelu_pytorch_tanh', 'gelu_new']; // the same function in transformers' ACT2FN

/** Per layer, whether it slides: layer_types, else sliding_window_pattern (Gemma3TextConfig's default 6). */
function slidingLayers(json: Json, r: ConfigReader, numLayers: number): boolean[] {
  const lt = json.layer_types;
  if (lt === undefined || lt === null) {
    const key = 'sliding_window_pattern' in json ? 'sliding_window_pattern' : '_sliding_window_pattern';
    const pattern = r.int(key, 6);
    return Array.from({ length: numLayers }, (_, i) => (i + 1) % pattern !== 0);
  }
  if (!Array.isArray(lt) || lt.length !== numLayers)
    r.fail(`"layer_types" is ${JSON.stringify(lt)}; expected one entry per layer (${numLayers})`);
  return (lt as unknown[]).map((t, i) => {
    if (t !== 'full_attention' && t !== 'sliding_attention')
      r.fail(`"layer_types"[${i}] is ${JSON.stringify(t)}; Gemma 3 layers are "sliding_attention" or "full_attention"`);
    return t === 'sliding_attention';
  });
}

/** A soft cap: null or absent = none, else a positive number. */
function softcap(r: ConfigReader, key: string): number | undefined {
  return r.has(key) ? r.num(key, 0) : undefined;
}

/**
 * RoPE of the full and the sliding layers: rope_theta (+ rope_scaling) and rope_local_base_freq, or the newer
 * rope_parameters keyed by layer type ({"full_attention": {...}, "sliding_attention": {...}}).
 */
function gemmaRope(json: Json, r: ConfigReader) {
  const rp = json.rope_parameters as Json | null | undefined;
  if (rp && typeof rp === 'object' && ('full_attention' in rp || 'sliding_attention' in rp)) {
    const full = ropeOf({ rope_parameters: rp.full_attention }, r, r.num('rope_theta', 1_000_000));
    const local = ropeOf({ rope_parameters: rp.sliding_attention }, r, r.num('rope_local_base_freq', 10_000));
    if (local.scaling)
      r.fail(
        `"rope_parameters.sliding_attention" scales RoPE; WebLoRA implements unscaled RoPE on Gemma 3's sliding layers`,
      );
    return { global: full, localTheta: local.theta };
  }
  return { global: ropeOf(json, r, 1_000_000), localTheta: r.num('rope_local_base_freq', 10_000) };
}

function parseGemma3(json: Json, r: ConfigReader, architecture: string): ModelConfig {
  if (r.bool('use_bidirectional_attention', false))
    r.fail(
      'use_bidirectional_attention: true (an embedding model such as EmbeddingGemma) is not supported; WebLoRA fine-tunes causal LMs',
    );
  if (r.bool('attention_bias', false))
    r.fail(
      `attention_bias: true (biases on q/k/v/o) is not supported; WebLoRA implements ${architecture} without them`,
    );
  const act = r.str('hidden_activation', 'gelu_pytorch_tanh');
  if (!GELU_TANH.includes(act))
    r.fail(`"hidden_activation" is "${act}"; WebLoRA implements Gemma 3's GeGLU with gelu_pytorch_tanh`);

  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numLayers = r.layers('num_hidden_layers');
  const numKvHeads = r.int('num_key_value_heads', 4); // Gemma3TextConfig's defaults, here and below
  if (numHeads % numKvHeads !== 0)
    r.fail(`num_attention_heads (${numHeads}) is not a multiple of num_key_value_heads (${numKvHeads})`);
  const headDim = r.int('head_dim', 256); // not hidden_size / heads: Gemma's own default
  if (headDim % 2 !== 0)
    r.fail(`head_dim (${headDim}) is odd; RoPE rotates pairs of dimensions, so WebLoRA needs an even head_dim`);

  const sliding = slidingLayers(json, r, numLayers);
  let slidingWindow: number | undefined;
  if (sliding.some((s) => s)) {
    if (json.sliding_window === null)
      r.fail(
        `"sliding_window" is null, but layers ${sliding.flatMap((s, i) => (s ? [i] : [])).join(', ')} are sliding-window layers (layer_types / sliding_window_pattern)`,
      );
    slidingWindow = r.int('sliding_window', 4096);
  }
  const rope = gemmaRope(json, r);
  const attnSoftcap = softcap(r, 'attn_logit_softcapping');
  const finalSoftcap = softcap(r, 'final_logit_softcapping');
  return {
    family: 'gemma3',
    architecture,
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: r.int('intermediate_size'),
    maxPositions: r.int('max_position_embeddings', 131072),
    normEps: r.num('rms_norm_eps', 1e-6),
    ropeTheta: rope.global.theta,
    ...(rope.global.scaling ? { ropeScaling: rope.global.scaling } : {}),
    ropeLocalTheta: rope.localTheta,
    qkNorm: true,
    slidingLayers: sliding,
    ...(slidingWindow !== undefined ? { slidingWindow } : {}),
    attnScale: 1 / Math.sqrt(r.num('query_pre_attn_scalar', 256)),
    ...(attnSoftcap !== undefined ? { attnSoftcap } : {}),
    ...(finalSoftcap !== undefined ? { finalSoftcap } : {}),
    tieEmbeddings: r.bool('tie_word_embeddings', true),
    attnBias: false,
    act: 'gelu_tanh',
    bosTokenId: r.tokenId('bos_token_id', 2),
    eosTokenId: r.tokenIds('eos_token_id', 1),
  };
}

// ---- tensors, memory --------------------------------------------------------------------------------------

/** The two norms around the MLP that the Llama-shaped block lacks. */
const MLP_NORMS = ['pre_feedforward_layernorm', 'post_feedforward_layernorm'];

function gemma3Tensors(cfg: ModelConfig): Map<string, number[]> {
  const m = llamaTensors(cfg); // with q_norm and k_norm (qkNorm), no biases
  for (let l = 0; l < cfg.numLayers; l++)
    for (const n of MLP_NORMS) m.set(`model.layers.${l}.${n}.weight`, [cfg.hiddenSize]);
  return m;
}

function gemma3WeightNames(cfg: ModelConfig) {
  const names = llamaWeightNames(cfg);
  for (let l = 0; l < cfg.numLayers; l++) for (const n of MLP_NORMS) names.small.push(`model.layers.${l}.${n}.weight`);
  return names;
}

/** The Qwen3 block's (q/k norms and their inputs included) plus, per row, the o_proj and down_proj outputs and
 * h that the post-attention, post- and pre-feedforward norms save (3C) less the C for h the Llama count holds
 * already, and those norms' rstd: 2C + 2. */
function gemma3BlockFloatsPerRow(cfg: ModelConfig): number {
  return llamaBlockFloatsPerRow(cfg) + 2 * cfg.hiddenSize + 2;
}

// ---- the model ----------------------------------------------------------------------------------------------

/** √C rounded to the weight dtype, as Gemma3TextScaledWordEmbedding's `embed_scale.to(weight.dtype)`. */
export function gemmaEmbedScale(hiddenSize: number, dtype: 'f32' | 'f16'): number {
  const s = Math.fround(Math.sqrt(hiddenSize)); // torch.tensor(hidden_size ** 0.5): float32
  return dtype === 'f16' ? f16BitsToF32(f32ToF16Bits(s)) : s;
}

export class Gemma3Model implements CausalLM {
  private readonly embedScale: number;

  constructor(
    readonly cfg: ModelConfig,
    readonly weights: GpuWeights,
  ) {
    this.embedScale = gemmaEmbedScale(cfg.hiddenSize, weights.dtype === 'f16' ? 'f16' : 'f32');
  }

  embed(ids: Tensor, _run: RunInfo): Tensor {
    return embedding_forward(ids, this.weights.embedding, undefined, undefined, this.embedScale);
  }

  block(i: number, tape: Tape, x: Var, lora: LoraState | null, run: RunInfo): Var {
    const c = this.cfg;
    const p = `model.layers.${i}`;
    const w = (name: string) => this.weights.get(`${p}.${name}`); // norm weights: 1 + w (storeSmall)
    // a norm, and with `residual` the residual connection after it (added as the norm is stored)
    const norm = (name: string, input: Var, residual?: Var) =>
      rmsnorm(tape, input, w(`${name}.weight`), c.normEps, `${p}.${name}`, residual);
    const spec = (name: string): LinearSpec => {
      const path = `${p}.${name}`;
      const branch = lora?.branch(tape, path, run.dropoutSeed ?? null) ?? null;
      return { w: frozenLinear(this.weights, path, false), lora: branch, name: path };
    };
    const lin = (name: string, input: Var) => {
      const s = spec(name);
      return linear(tape, input, s.w, s.lora, s.name);
    };
    const sliding = c.slidingLayers?.[i] ?? false;
    // RoPE inside the attention kernels; the tables hold each layer type's theta (and the full layers' rope_scaling)
    const rope = {
      invFreq: this.weights.get(sliding ? 'rope_local.inv_freq' : 'rope.inv_freq'),
      posOffset: run.posOffset,
    };

    // attention
    // n1 = input_layernorm(x); q (N, Hq·D), k and v (N, Hkv·D): the three read n1 (one dispatch for n1 and their
    // LoRA U's)
    const n1 = { w: w('input_layernorm.weight'), eps: c.normEps, name: `${p}.input_layernorm` };
    let [q, k, v] = normLinears(tape, x, n1, [
      spec('self_attn.q_proj'),
      spec('self_attn.k_proj'),
      spec('self_attn.v_proj'),
    ]);
    q = headRmsnorm(tape, q, w('self_attn.q_norm.weight'), c.normEps, `${p}.self_attn.q_norm`);
    k = headRmsnorm(tape, k, w('self_attn.k_norm.weight'), c.normEps, `${p}.self_attn.k_norm`);
    const attnOpts = {
      heads: c.numHeads,
      kvHeads: c.numKvHeads,
      headDim: c.headDim,
      seqLen: run.T,
      scale: c.attnScale,
      window: sliding ? c.slidingWindow : 0,
      softcap: c.attnSoftcap ?? 0,
      rope,
    };
    const a = selfAttention(tape, q, k, v, attnOpts, run, i, `${p}.attn`); // (N, Hq·D)
    // h = x + post_attention_layernorm(o_proj(a)): the residual comes after the norm, so it rides on the norm's
    // store (not on the matmul, as Llama's does)
    const h = norm('post_attention_layernorm', lin('self_attn.o_proj', a), x);

    // MLP
    const n2 = { w: w('pre_feedforward_layernorm.weight'), eps: c.normEps, name: `${p}.pre_feedforward_layernorm` };
    const [gate, up] = normLinears(tape, h, n2, [spec('mlp.gate_proj'), spec('mlp.up_proj')]); // (N, I) each
    // h + norm(down_proj(geglu(gate, up))), geglu's (N, I) made in down's U dispatch
    const down = gatedLinear(tape, 'geglu', gate, up, `${p}.geglu`, spec('mlp.down_proj'));
    return norm('post_feedforward_layernorm', down, h);
  }

  finalNorm(tape: Tape, x: Var): Var {
    return rmsnorm(tape, x, this.weights.get('model.norm.weight'), this.cfg.normEps, 'model.norm');
  }
}

// ---- the family -----------------------------------------------------------------------------------------------

export const gemma3: FamilySpec = {
  family: 'gemma3',
  name: 'Gemma 3 text',
  examples: ['google/gemma-3-270m', 'google/gemma-3-1b-pt'],
  architectures: ['Gemma3ForCausalLM'],
  modelType: 'gemma3_text',
  parseConfig: parseGemma3,
  tensors: gemma3Tensors,
  linears: llamaLinears,
  weightNames: gemma3WeightNames,
  // every small tensor of Gemma 3 is a norm weight, used as 1 + w (Gemma3RMSNorm: `1.0 + self.weight.float()`)
  storeSmall: (_name, data) => data.map((w) => 1 + w),
  loraTargets: llamaShaped.loraTargets,
  defaultTargets: ['q_proj', 'v_proj'], // PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING["gemma3_text"]
  blockFloatsPerRow: gemma3BlockFloatsPerRow,
  finalNormStatsPerRow: 1,
  model: (cfg, weights) => new Gemma3Model(cfg, weights),
};
