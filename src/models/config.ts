// Hugging Face config.json -> ModelConfig, read the way transformers reads it (LlamaConfig, Qwen2Config,
// GPT2Config): absent optional fields take transformers' defaults. The fields that fix tensor shapes
// (vocab size, width, depth, heads, MLP width) are required: transformers would silently default them to
// a 7B model's values, which only turns into a confusing shape mismatch later.

export type Family = 'llama' | 'qwen2' | 'gpt2';

export interface ModelConfig {
  family: Family;
  architecture: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  maxPositions: number;
  normEps: number;
  /** RoPE base (llama, qwen2). 0 for gpt2, which has learned positions instead. */
  ropeTheta: number;
  tieEmbeddings: boolean;
  /** q/k/v biases (qwen2; gpt2 has all biases) */
  attnBias: boolean;
  act: 'silu' | 'gelu_tanh';
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
}

export const SUPPORTED_ARCHITECTURES: Record<string, Family> = {
  LlamaForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  GPT2LMHeadModel: 'gpt2',
};
const MODEL_TYPES: Record<string, string> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  gpt2: 'GPT2LMHeadModel',
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Json = Record<string, unknown>;

function reader(json: Json, fileName: string) {
  const fail = (msg: string): never => {
    throw new ConfigError(`${fileName}: ${msg}`);
  };
  const has = (k: string) => json[k] !== undefined && json[k] !== null;
  const int = (k: string, dflt?: number): number => {
    if (!has(k)) {
      if (dflt === undefined)
        fail(`required field "${k}" is missing; a config.json saved by transformers always has it`);
      return dflt!;
    }
    const v = json[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
      fail(`"${k}" is ${JSON.stringify(v)}; expected a positive integer`);
    return v as number;
  };
  const num = (k: string, dflt: number): number => {
    if (!has(k)) return dflt;
    const v = json[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      fail(`"${k}" is ${JSON.stringify(v)}; expected a positive number`);
    return v as number;
  };
  const bool = (k: string, dflt: boolean): boolean => {
    if (!has(k)) return dflt;
    if (typeof json[k] !== 'boolean') fail(`"${k}" is ${JSON.stringify(json[k])}; expected true or false`);
    return json[k] as boolean;
  };
  const str = (k: string, dflt: string): string => {
    if (!has(k)) return dflt;
    if (typeof json[k] !== 'string') fail(`"${k}" is ${JSON.stringify(json[k])}; expected a string`);
    return json[k] as string;
  };
  const tokenId = (k: string, dflt: number | null): number | null => {
    if (!(k in json)) return dflt;
    const v = json[k];
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      fail(`"${k}" is ${JSON.stringify(v)}; expected a token id`);
    return v as number;
  };
  const tokenIds = (k: string, dflt: number | null): number | number[] | null => {
    const v = json[k];
    if (Array.isArray(v)) {
      if (!v.every((x) => Number.isSafeInteger(x) && x >= 0))
        fail(`"${k}" is ${JSON.stringify(v)}; expected token ids`);
      return [...(v as number[])];
    }
    return tokenId(k, dflt);
  };
  return { fail, has, int, num, bool, str, tokenId, tokenIds };
}

function architectureOf(json: Json, fileName: string): string {
  const supported = Object.keys(SUPPORTED_ARCHITECTURES).join(', ');
  const archs = json.architectures;
  if (Array.isArray(archs) && archs.length > 0) {
    const known = archs.find((a) => typeof a === 'string' && a in SUPPORTED_ARCHITECTURES);
    if (known) return known;
    throw new ConfigError(
      `${fileName}: architecture ${archs.map((a) => JSON.stringify(a)).join(', ')} is not supported; WebLoRA loads ${supported}. Pick a model of one of those families.`,
    );
  }
  const mt = json.model_type;
  if (typeof mt === 'string' && mt in MODEL_TYPES) return MODEL_TYPES[mt];
  throw new ConfigError(
    `${fileName}: neither "architectures" nor a known "model_type" (${JSON.stringify(mt ?? null)}) says which model this is; WebLoRA loads ${supported}.`,
  );
}

/** rope_scaling / rope_parameters: only plain RoPE (null or rope_type "default") is implemented. */
function ropeThetaOf(json: Json, r: ReturnType<typeof reader>): number {
  for (const k of ['rope_scaling', 'rope_parameters']) {
    const v = json[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'object' || Array.isArray(v)) r.fail(`"${k}" is ${JSON.stringify(v)}; expected null or an object`);
    const o = v as Json;
    const type = o.rope_type ?? o.type ?? 'default';
    if (type !== 'default')
      r.fail(
        `"${k}" uses rope_type ${JSON.stringify(type)}, which WebLoRA does not implement (only plain RoPE, rope_scaling: null). Pick a model without RoPE scaling.`,
      );
    if (k === 'rope_parameters' && o.rope_theta !== undefined) {
      if (typeof o.rope_theta !== 'number' || !(o.rope_theta > 0))
        r.fail(`"rope_parameters.rope_theta" is ${JSON.stringify(o.rope_theta)}; expected a positive number`);
      return o.rope_theta as number;
    }
  }
  return r.num('rope_theta', 10000.0);
}

function headsAndDim(r: ReturnType<typeof reader>, hidden: number, heads: number, kvHeads: number): number {
  if (heads % kvHeads !== 0)
    r.fail(`num_attention_heads (${heads}) is not a multiple of num_key_value_heads (${kvHeads})`);
  if (r.has('head_dim')) return r.int('head_dim');
  if (hidden % heads !== 0)
    r.fail(`hidden_size (${hidden}) is not divisible by num_attention_heads (${heads}) and no head_dim is given`);
  return hidden / heads;
}

function parseLlamaLike(
  json: Json,
  r: ReturnType<typeof reader>,
  family: 'llama' | 'qwen2',
  architecture: string,
): ModelConfig {
  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  // num_key_value_heads: null -> num_attention_heads in both; absent -> the __init__ default, which is
  // None (so num_attention_heads) in LlamaConfig but 32 in Qwen2Config.
  const kvDefault = family === 'qwen2' && !('num_key_value_heads' in json) ? 32 : numHeads;
  const numKvHeads = r.int('num_key_value_heads', kvDefault);
  const headDim = headsAndDim(r, hiddenSize, numHeads, numKvHeads);
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu' && act !== 'swish')
    r.fail(`hidden_act "${act}" is not supported for ${architecture}; WebLoRA implements SwiGLU with silu`);
  if (family === 'llama') {
    if (r.bool('attention_bias', false))
      r.fail(
        'attention_bias: true (biases on q/k/v/o) is not supported; WebLoRA implements Llama without attention biases',
      );
    if (r.bool('mlp_bias', false))
      r.fail('mlp_bias: true is not supported; WebLoRA implements Llama without MLP biases');
  } else {
    // Qwen2Config: sliding_window is None unless use_sliding_window; then layers listed as
    // "sliding_attention" in layer_types (default: those from max_window_layers on) slide.
    if (r.bool('use_sliding_window', false)) {
      const numLayers = r.int('num_hidden_layers');
      const mwl = json.max_window_layers ?? 28;
      if (typeof mwl !== 'number' || !Number.isSafeInteger(mwl) || mwl < 0)
        r.fail(`"max_window_layers" is ${JSON.stringify(mwl)}; expected a non-negative integer`);
      const layerTypes = json.layer_types;
      const sliding = Array.isArray(layerTypes)
        ? layerTypes.map((t, i) => (t === 'sliding_attention' ? i : -1)).filter((i) => i >= 0)
        : Array.from({ length: Math.max(0, numLayers - (mwl as number)) }, (_, k) => (mwl as number) + k);
      if (sliding.length > 0)
        r.fail(
          `sliding-window attention is in use (use_sliding_window: true, layers ${sliding[0]}..${sliding[sliding.length - 1]}); WebLoRA implements full causal attention only`,
        );
    }
  }
  return {
    family,
    architecture,
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    numLayers: r.int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: r.int('intermediate_size'),
    maxPositions: r.int('max_position_embeddings', family === 'llama' ? 2048 : 32768),
    normEps: r.num('rms_norm_eps', 1e-6),
    ropeTheta: ropeThetaOf(json, r),
    tieEmbeddings: r.bool('tie_word_embeddings', false),
    attnBias: family === 'qwen2', // Qwen2 always has q/k/v biases (and none on o_proj)
    act: 'silu',
    bosTokenId: r.tokenId('bos_token_id', family === 'llama' ? 1 : null),
    eosTokenId: r.tokenIds('eos_token_id', family === 'llama' ? 2 : null),
  };
}

function parseGpt2(json: Json, r: ReturnType<typeof reader>, architecture: string): ModelConfig {
  const hiddenSize = r.int('n_embd');
  const numHeads = r.int('n_head');
  if (hiddenSize % numHeads !== 0) r.fail(`n_embd (${hiddenSize}) is not divisible by n_head (${numHeads})`);
  const act = r.str('activation_function', 'gelu_new');
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh')
    r.fail(`activation_function "${act}" is not supported; WebLoRA implements GPT-2's tanh GELU (gelu_new)`);
  if (!r.bool('scale_attn_weights', true)) r.fail('scale_attn_weights: false is not supported');
  if (r.bool('scale_attn_by_inverse_layer_idx', false))
    r.fail('scale_attn_by_inverse_layer_idx: true is not supported');
  if (!r.bool('tie_word_embeddings', true))
    r.fail('tie_word_embeddings: false is not supported for GPT-2; WebLoRA uses wte as the LM head');
  return {
    family: 'gpt2',
    architecture,
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    numLayers: r.int('n_layer'),
    numHeads,
    numKvHeads: numHeads,
    headDim: hiddenSize / numHeads,
    intermediateSize: r.int('n_inner', 4 * hiddenSize), // n_inner: null -> 4 * n_embd
    maxPositions: r.int('n_positions', 1024),
    normEps: r.num('layer_norm_epsilon', 1e-5),
    ropeTheta: 0,
    tieEmbeddings: true,
    attnBias: true,
    act: 'gelu_tanh',
    bosTokenId: r.tokenId('bos_token_id', 50256),
    eosTokenId: r.tokenIds('eos_token_id', 50256),
  };
}

/** config.json (parsed JSON) -> ModelConfig. Throws ConfigError naming the file and the problem. */
export function parseConfig(json: unknown, fileName = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ConfigError(`${fileName}: expected a JSON object`);
  const j = json as Json;
  const architecture = architectureOf(j, fileName);
  const family = SUPPORTED_ARCHITECTURES[architecture];
  const r = reader(j, fileName);
  return family === 'gpt2' ? parseGpt2(j, r, architecture) : parseLlamaLike(j, r, family, architecture);
}

/** Every tensor name in a Hugging Face checkpoint of this config -> its shape (GPT-2 Conv1D as [in, out]). */
export function expectedTensors(cfg: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const { hiddenSize: H, vocabSize: V, intermediateSize: I, numHeads, numKvHeads, headDim } = cfg;
  if (cfg.family === 'gpt2') {
    m.set('transformer.wte.weight', [V, H]);
    m.set('transformer.wpe.weight', [cfg.maxPositions, H]);
    for (let l = 0; l < cfg.numLayers; l++) {
      const p = `transformer.h.${l}.`;
      m.set(p + 'ln_1.weight', [H]);
      m.set(p + 'ln_1.bias', [H]);
      m.set(p + 'attn.c_attn.weight', [H, 3 * H]);
      m.set(p + 'attn.c_attn.bias', [3 * H]);
      m.set(p + 'attn.c_proj.weight', [H, H]);
      m.set(p + 'attn.c_proj.bias', [H]);
      m.set(p + 'ln_2.weight', [H]);
      m.set(p + 'ln_2.bias', [H]);
      m.set(p + 'mlp.c_fc.weight', [H, I]);
      m.set(p + 'mlp.c_fc.bias', [I]);
      m.set(p + 'mlp.c_proj.weight', [I, H]);
      m.set(p + 'mlp.c_proj.bias', [H]);
    }
    m.set('transformer.ln_f.weight', [H]);
    m.set('transformer.ln_f.bias', [H]);
    return m;
  }
  const Q = numHeads * headDim;
  const KV = numKvHeads * headDim;
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
    m.set(p + 'post_attention_layernorm.weight', [H]);
    m.set(p + 'mlp.gate_proj.weight', [I, H]);
    m.set(p + 'mlp.up_proj.weight', [I, H]);
    m.set(p + 'mlp.down_proj.weight', [H, I]);
  }
  m.set('model.norm.weight', [H]);
  if (!cfg.tieEmbeddings) m.set('lm_head.weight', [V, H]);
  return m;
}

/** Number of parameters, tied embeddings counted once (as model.num_parameters() does). */
export function paramCount(cfg: ModelConfig): number {
  let n = 0;
  for (const shape of expectedTensors(cfg).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * Module names LoRA may target, as PEFT's target_modules spells them: the one list per family, read by
 * settings validation, module selection, and the page (through the engine's model summary).
 */
export const LORA_TARGETS: Record<Family, string[]> = {
  llama: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  qwen2: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  // attn.c_proj and mlp.c_proj are both "c_proj", as in PEFT (suffix match on the module name).
  gpt2: ['c_attn', 'c_proj', 'c_fc'],
};

/** PEFT's defaults (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
export const DEFAULT_TARGETS: Record<Family, string[]> = {
  llama: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  gpt2: ['c_attn'],
};
