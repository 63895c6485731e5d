// What a model family is, as the rest of WebLoRA reads it. Each family (./llama.ts, ./qwen2.ts, ./qwen3.ts,
// ./smollm3.ts, ./gemma3.ts, ./mistral.ts, ./gpt2.ts) exports one FamilySpec; ./index.ts lists them. A Hugging Face config.json is
// parsed into a ModelConfig by its family's spec, the way transformers' <Family>Config reads it: absent
// optional fields take transformers' defaults; the fields that fix tensor shapes are required.

import type { CausalLM } from '../model';
import type { GpuWeights } from '../weights';
import type { RopeScaling } from '../../kernels/rope';

export type Family = 'llama' | 'qwen2' | 'gpt2' | 'qwen3' | 'smollm3' | 'gemma3' | 'mistral';

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
  /** RoPE base (llama, qwen2/3, smollm3). 0 for gpt2, which has learned positions instead. */
  ropeTheta: number;
  /** rope_scaling / rope_parameters of type linear or llama3; absent or null: plain RoPE. */
  ropeScaling?: RopeScaling | null;
  /** Per layer, whether it applies RoPE (SmolLM3's no_rope_layers: 0 = NoPE); absent: every layer does. */
  ropeLayers?: boolean[];
  /** Per-head RMSNorm of q and k over head_dim before RoPE (Qwen3's q_norm, k_norm). */
  qkNorm?: boolean;
  /** Per layer, whether its attention is a sliding window of `slidingWindow` keys: position i sees keys j
   * with i − W < j ≤ i (Gemma 3's layer_types; Mistral: every layer when sliding_window is set). */
  slidingLayers?: boolean[];
  slidingWindow?: number;
  /** RoPE base of the sliding layers (Gemma 3's rope_local_base_freq; plain RoPE, no scaling). */
  ropeLocalTheta?: number;
  /** Attention score scale; absent: 1/sqrt(headDim). Gemma 3: query_pre_attn_scalar^-½. */
  attnScale?: number;
  /** Soft caps c·tanh(x / c) of the attention scores and of the final logits (Gemma 3's attn_logit_softcapping,
   * final_logit_softcapping); absent: none. */
  attnSoftcap?: number;
  finalSoftcap?: number;
  tieEmbeddings: boolean;
  /** q/k/v biases (qwen2; gpt2 has all biases) */
  attnBias: boolean;
  act: 'silu' | 'gelu_tanh';
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export type Json = Record<string, unknown>;

export interface LinearModule {
  /** Full HF module path, e.g. `model.layers.0.self_attn.q_proj` or `transformer.h.0.attn.c_attn`. */
  path: string;
  /** The name PEFT's target_modules match, e.g. `q_proj`, `c_attn`, `c_proj`. */
  target: string;
  layer: number;
  /** Position among its layer's linear modules, in the order the forward pass runs them. */
  slot: number;
  inFeatures: number;
  outFeatures: number;
  /** GPT-2 Conv1D stores the weight as (IN, OUT). */
  transposed: boolean;
  hasBias: boolean;
}

/** The tensors the model code reads, by how they are stored (see ../weights.ts). */
export interface WeightNames {
  /** Linear weights: weightDtype. */
  large: string[];
  /** Norm weights, biases, learned positions: f32. */
  small: string[];
  /** [embedding table, LM head table if untied]: row chunks in weightDtype. */
  tables: string[];
}

export interface FamilySpec {
  family: Family;
  /** What the studio calls the family, and public Hub repos that load as it (shown where a model is picked). */
  name: string;
  examples: string[];
  /** HF architectures (config.json "architectures") and model_type this family loads. */
  architectures: string[];
  modelType: string;
  /** config.json -> ModelConfig; `r` reads fields and fails with the file's name. */
  parseConfig(json: Json, r: ConfigReader, architecture: string): ModelConfig;
  /** Every tensor name in a Hugging Face checkpoint -> its shape (GPT-2 Conv1D as [in, out]). */
  tensors(cfg: ModelConfig): Map<string, number[]>;
  /** The linear modules of layer `layer`, in the order the block runs them. */
  linears(cfg: ModelConfig, layer: number): LinearModule[];
  weightNames(cfg: ModelConfig): WeightNames;
  /** How a small tensor's values are stored on the GPU, when not as read (Gemma's norms: 1 + w). */
  storeSmall?(name: string, data: Float32Array): Float32Array;
  /** Module names LoRA may target (PEFT target_modules spelling), and PEFT's defaults for the family. */
  loraTargets: string[];
  defaultTargets: string[];
  /** f32 values one block saves per row for backward (excluding LoRA U's), and the final norm's stats. */
  blockFloatsPerRow(cfg: ModelConfig): number;
  finalNormStatsPerRow: number;
  /** The model code: embedding, the block's forward, the final norm. */
  model(cfg: ModelConfig, weights: GpuWeights): CausalLM;
}

export type ConfigReader = ReturnType<typeof reader>;

/** The most layers a config may declare: far above any model that fits a browser tab, and low enough that
 * per-layer tables built while parsing (sliding-window layers, RoPE layers) stay small for hostile configs. */
export const MAX_LAYERS = 1024;

export function reader(json: Json, fileName: string) {
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
  const layers = (k: string): number => {
    const n = int(k);
    if (n > MAX_LAYERS) fail(`"${k}" is ${n}; WebLoRA supports models of at most ${MAX_LAYERS} layers`);
    return n;
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
  return { fail, has, int, layers, num, bool, str, tokenId, tokenIds };
}
