// A GGUF model file (llama.cpp's format, ./gguf.ts) read as the Hugging Face model folder the rest of
// WebLoRA knows: its metadata becomes a config.json, its tokenizer.ggml.* keys a tokenizer.json
// (./gguf-tokenizer.ts), and its tensors the canonical Hugging Face names, validated against the shapes the
// config implies exactly as model-files.ts validates safetensors.
//
// What convert_hf_to_gguf.py changes on the way in, undone here:
//   names    model.layers.N.self_attn.q_proj.weight -> blk.N.attn_q.weight, ... (GGUF_LAYER_NAMES below)
//   shapes   ggml's ne is the PyTorch shape reversed (./gguf.ts gives PyTorch order already)
//   Q and K  for the llama architecture only, the rows of q_proj and k_proj (weights and biases) are
//            permuted per head from HF's "rotate half" RoPE layout to llama.cpp's interleaved pairs:
//            GGUF row 2j+i of a head = HF row i·D/2 + j (i ∈ {0,1}, j < D/2). Qwen2/Qwen3/Gemma 3 use
//            llama.cpp's NEOX RoPE, which is HF's layout, and are not permuted.
//   norms    for gemma3, every norm weight is stored as 1 + w (Gemma's x·(1 + w) as llama.cpp's plain x·w):
//            read() gives w back. Exact whenever 1 + w is in [0.5, 2^24) (f32 subtraction is exact there);
//            below 0.5, w may be off by half an f32 ulp of w − 1.
//
// Tensor types: F32, F16, BF16; Q8_0 and Q4_0 with dtype 'Q8_0' / 'Q4_0', read() dequantising them to float32
// and quant() handing the blocks as they are (src/gpu/quant.ts's layout, for a quantised frozen weight);
// any other type is refused by name.
//
// One entry of GGUF_ARCHES per family; a family with extra tensors adds their names to GGUF_LAYER_NAMES.

import { fromGgmlBlocks } from '../gpu/quant';
import { expectedTensors, parseConfig, type ModelConfig } from '../models/config';
import type { ByteSource } from './byte-source';
import { decodeGgufFloat, GgufError, readGgufHeader, type GgufHeader, type GgufValue } from './gguf';
import { ggufTokenizer } from './gguf-tokenizer';
import type { ModelFiles, WeightIndex, WeightInfo } from './model-files';
import { ModelLoadError } from './sources';
import { maxTokenId, TextTokenizer } from './tokenizer';

export interface GgufArch {
  /** The Hugging Face architecture and model_type it becomes. */
  architecture: string;
  modelType: string;
  /** convert_hf_to_gguf.py permuted q_proj / k_proj rows for llama.cpp's interleaved RoPE. */
  permuteQK: boolean;
  /** Added to every norm weight (HF names ending in norm.weight) by the converter: Gemma's x·(1 + w) norms are
   * stored as 1 + w, llama.cpp's plain x·w. The loader subtracts it. */
  normShift?: number;
  /** Layer tensor names that differ from GGUF_LAYER_NAMES. */
  layerNames?: Record<string, string>;
  /** config.json fields of this family beyond the common ones (configOf). */
  config?: (r: MetaReader, key: (s: string) => string, json: Record<string, unknown>, fileName: string) => void;
}

/** general.architecture -> the family it loads as. */
export const GGUF_ARCHES: Record<string, GgufArch> = {
  llama: { architecture: 'LlamaForCausalLM', modelType: 'llama', permuteQK: true },
  qwen2: { architecture: 'Qwen2ForCausalLM', modelType: 'qwen2', permuteQK: false },
  qwen3: { architecture: 'Qwen3ForCausalLM', modelType: 'qwen3', permuteQK: false },
  gemma3: {
    architecture: 'Gemma3ForCausalLM',
    modelType: 'gemma3_text',
    permuteQK: false, // llama.cpp runs Gemma 3 with NEOX RoPE: HF's layout
    normShift: 1,
    layerNames: {
      post_attention_layernorm: 'post_attention_norm', // Gemma's norm after o_proj, not the one before the MLP
      pre_feedforward_layernorm: 'ffn_norm',
      post_feedforward_layernorm: 'post_ffw_norm',
    },
    config: gemma3Config,
  },
};

/** Hugging Face module (under model.layers.N.) -> GGUF tensor (under blk.N.), as llama.cpp's tensor_mapping.py. */
export const GGUF_LAYER_NAMES: Record<string, string> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  'self_attn.q_norm': 'attn_q_norm',
  'self_attn.k_norm': 'attn_k_norm',
  post_attention_layernorm: 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};
const GGUF_GLOBAL_NAMES: Record<string, string> = {
  'model.embed_tokens': 'token_embd',
  'model.norm': 'output_norm',
  lm_head: 'output',
};

/** A Hugging Face tensor or module name -> its GGUF name in `arch` (null when GGUF has no such tensor). */
export function ggufName(hfName: string, arch?: GgufArch): string | null {
  const m = /^model\.layers\.(\d+)\.(.+?)(\.weight|\.bias)?$/.exec(hfName);
  if (m) {
    const g = arch?.layerNames?.[m[2]] ?? GGUF_LAYER_NAMES[m[2]];
    return g ? `blk.${m[1]}.${g}${m[3] ?? ''}` : null;
  }
  const g = /^(.+?)(\.weight|\.bias)?$/.exec(hfName)!;
  const base = GGUF_GLOBAL_NAMES[g[1]];
  return base ? base + (g[2] ?? '') : null;
}

function metaError(fileName: string, problem: string): never {
  throw new ModelLoadError(`${fileName}: ${problem}`);
}

/**
 * llama.cpp stores eps and rope_theta as float32: 1e-5 comes back as 9.99999974737875e-6. Give the shortest
 * decimal that is the same float32 (1e-5), which is what config.json held; other numbers are unchanged.
 */
function shortestF32(x: number): number {
  if (Number.isInteger(x) || Math.fround(x) !== x) return x;
  for (let p = 1; p <= 9; p++) {
    const d = Number(x.toPrecision(p));
    if (Math.fround(d) === x) return d;
  }
  return x;
}

/** Reads GGUF metadata by key with type checks, naming the key and the file in errors. */
function metaReader(meta: Map<string, GgufValue>, fileName: string) {
  const get = (k: string) => meta.get(k);
  const num = (k: string, dflt?: number): number => {
    const v = get(k);
    if (v === undefined) {
      if (dflt === undefined)
        metaError(fileName, `the metadata key "${k}" is missing; llama.cpp writes it for this architecture`);
      return dflt!;
    }
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) metaError(fileName, `"${k}" is ${String(v)}; expected a number`);
    return shortestF32(n as number);
  };
  const str = (k: string): string | null => {
    const v = get(k);
    if (v === undefined) return null;
    if (typeof v !== 'string') metaError(fileName, `"${k}" is ${String(v)}; expected a string`);
    return v as string;
  };
  return { get, num, str };
}

type MetaReader = ReturnType<typeof metaReader>;

/**
 * Gemma 3 (llama.cpp's gemma3: convert_hf_to_gguf.py's Gemma3Model, read by src/models/gemma3.cpp):
 *
 *   attention.sliding_window          sliding_window; 0 = no sliding layers (llama.cpp's n_swa = 0)
 *   attention.sliding_window_pattern  a period p (default 6; the converter writes none): layer i slides unless
 *                                     i % p == p − 1, which is HF's sliding_window_pattern; p = 0: all slide
 *   rope.freq_base / rope.freq_base_swa   rope_theta (full layers) / rope_local_base_freq (sliding, default 1e4)
 *   final_logit_softcapping           final_logit_softcapping (absent or 0 = none)
 *   attention.key_length              head_dim; query_pre_attn_scalar is implied: llama.cpp scales scores by
 *                                     1/√head_dim, or by 1/√(hidden/heads) for the 62-layer model (27B)
 *   embedding scale                   implied: √hidden, as Gemma's scaled embedding
 *
 * llama.cpp's gemma3 has no attention soft cap (the converter asserts attn_logit_softcapping is None), so a
 * file that sets one is refused rather than run two ways.
 */
function gemma3Config(r: MetaReader, k: (s: string) => string, json: Record<string, unknown>, fileName: string) {
  const layers = json.num_hidden_layers as number;
  const windowKey = k('attention.sliding_window');
  if (r.get(windowKey) === undefined)
    metaError(
      fileName,
      `the metadata key "${windowKey}" is missing; llama.cpp's converter writes it for every Gemma 3 model (0 for a model without sliding-window layers)`,
    );
  const window = r.num(windowKey);
  const patternKey = k('attention.sliding_window_pattern');
  const p = r.get(patternKey);
  if (Array.isArray(p))
    metaError(
      fileName,
      `"${patternKey}" is an array; llama.cpp reads Gemma 3's as one period (it would ignore the array and use 6), so the file is ambiguous`,
    );
  const period = r.num(patternKey, 6);
  if (!Number.isInteger(period) || period < 0)
    metaError(fileName, `"${patternKey}" is ${String(p)}; expected a period of layers (a whole number ≥ 0)`);
  if (!Number.isInteger(window) || window < 0)
    metaError(fileName, `"${windowKey}" is ${window}; expected a number of tokens (a whole number ≥ 0)`);
  const slides = (i: number) => window > 0 && (period === 0 || i % period < period - 1);
  json.layer_types = Array.from({ length: layers }, (_, i) => (slides(i) ? 'sliding_attention' : 'full_attention'));
  if (window > 0) json.sliding_window = window;
  json.rope_local_base_freq = r.num(k('rope.freq_base_swa'), 10000);
  const attnCap = r.num(k('attn_logit_softcapping'), 0);
  if (attnCap !== 0)
    metaError(
      fileName,
      `"${k('attn_logit_softcapping')}" is ${attnCap}, but llama.cpp's gemma3 has no attention soft cap (it ignores the key), so the file is ambiguous`,
    );
  const finalCap = r.num(k('final_logit_softcapping'), 0);
  json.final_logit_softcapping = finalCap > 0 ? finalCap : null;
  json.query_pre_attn_scalar =
    layers === 62 ? (json.hidden_size as number) / (json.num_attention_heads as number) : json.head_dim;
  json.hidden_activation = 'gelu_pytorch_tanh';
}

/**
 * llama.cpp stores Llama 3.1+ RoPE scaling as a rope_freqs tensor of per-frequency divisors. WebLoRA's RoPE
 * takes transformers' llama3 parameters: accept the file when the divisors are exactly those of the
 * published Llama 3.x parameters (low 1, high 4, original context 8192) with the file's largest divisor as
 * the factor, and say so otherwise.
 */
function llama3Scaling(freqs: Float32Array, headDim: number, theta: number, fileName: string) {
  const factor = Math.max(...freqs);
  const [low, high, orig] = [1, 4, 8192];
  const lowWavelen = orig / low;
  const highWavelen = orig / high;
  for (let i = 0; i < freqs.length; i++) {
    const freq = 1 / theta ** ((2 * i) / headDim);
    const wavelen = (2 * Math.PI) / freq;
    let want: number;
    if (wavelen < highWavelen) want = 1;
    else if (wavelen > lowWavelen) want = factor;
    else {
      const smooth = (orig / wavelen - low) / (high - low);
      want = 1 / ((1 - smooth) / factor + smooth);
    }
    if (Math.abs(freqs[i] - want) > 1e-4 * want)
      metaError(
        fileName,
        `its rope_freqs tensor (Llama 3.x RoPE scaling) does not match the llama3 parameters WebLoRA recognises (factor ${factor}, low 1, high 4, original context 8192) at frequency ${i}: ${freqs[i]} vs ${want}`,
      );
  }
  return {
    rope_type: 'llama3',
    factor,
    low_freq_factor: low,
    high_freq_factor: high,
    original_max_position_embeddings: orig,
  };
}

/** config.json as transformers would write it for this GGUF model. */
async function configOf(
  header: GgufHeader,
  arch: GgufArch,
  archName: string,
  src: ByteSource,
  fileName: string,
): Promise<Record<string, unknown>> {
  const r = metaReader(header.metadata, fileName);
  const k = (s: string) => `${archName}.${s}`;
  const hidden = r.num(k('embedding_length'));
  const heads = r.num(k('attention.head_count'));
  const emb = header.tensors.get('token_embd.weight');
  if (!emb) metaError(fileName, 'has no token_embd.weight tensor; it is not a complete model');
  const json: Record<string, unknown> = {
    architectures: [arch.architecture],
    model_type: arch.modelType,
    vocab_size: emb!.shape[0],
    hidden_size: hidden,
    intermediate_size: r.num(k('feed_forward_length')),
    num_hidden_layers: r.num(k('block_count')),
    num_attention_heads: heads,
    num_key_value_heads: r.num(k('attention.head_count_kv'), heads),
    head_dim: r.num(k('attention.key_length'), hidden / heads),
    max_position_embeddings: r.num(k('context_length')),
    rms_norm_eps: r.num(k('attention.layer_norm_rms_epsilon')),
    rope_theta: r.num(k('rope.freq_base'), 10000),
    tie_word_embeddings: !header.tensors.has('output.weight'),
    attention_bias: header.tensors.has('blk.0.attn_q.bias'),
    bos_token_id: r.num('tokenizer.ggml.bos_token_id', -1) >= 0 ? r.num('tokenizer.ggml.bos_token_id') : null,
    eos_token_id: r.num('tokenizer.ggml.eos_token_id', -1) >= 0 ? r.num('tokenizer.ggml.eos_token_id') : null,
  };
  const valueLength = r.num(k('attention.value_length'), json.head_dim as number);
  if (valueLength !== json.head_dim)
    metaError(fileName, `key_length ${json.head_dim} and value_length ${valueLength} differ; WebLoRA needs them equal`);
  const scaling = r.str(k('rope.scaling.type'));
  if (scaling === 'linear') json.rope_scaling = { rope_type: 'linear', factor: r.num(k('rope.scaling.factor')) };
  else if (scaling !== null && scaling !== 'none')
    metaError(
      fileName,
      `"${k('rope.scaling.type')}" is "${scaling}"; WebLoRA implements plain, linear and llama3 RoPE`,
    );
  arch.config?.(r, k, json, fileName);
  const freqs = header.tensors.get('rope_freqs.weight');
  if (freqs) {
    if (freqs.type !== 'F32') metaError(fileName, `rope_freqs.weight is ${freqs.type}; llama.cpp writes it as F32`);
    const bytes = await src.read(header.dataOffset + freqs.begin, header.dataOffset + freqs.end);
    json.rope_scaling = llama3Scaling(
      decodeGgufFloat('F32', bytes, 'rope_freqs.weight'),
      json.head_dim as number,
      json.rope_theta as number,
      fileName,
    );
  }
  return json;
}

/**
 * Reorders the rows of a q or k tensor from llama.cpp's interleaved RoPE pairs back to HF's halves
 * (see the header): `rows` rows of `rowBytes` bytes, in heads of D rows.
 */
export function unpermuteRows(bytes: Uint8Array, rows: number, rowBytes: number, heads: number): Uint8Array {
  const D = rows / heads;
  const half = D / 2;
  const out = new Uint8Array(bytes.byteLength);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < half; j++) {
        const hf = h * D + i * half + j;
        const gg = h * D + 2 * j + i;
        out.set(bytes.subarray(gg * rowBytes, (gg + 1) * rowBytes), hf * rowBytes);
      }
  return out;
}

/** The inverse of unpermuteRows: HF rows to llama.cpp's order (used for LoRA B of q_proj / k_proj). */
export function permuteRows(data: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const D = rows / heads;
  const half = D / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < half; j++) {
        const hf = h * D + i * half + j;
        const gg = h * D + 2 * j + i;
        out.set(data.subarray(hf * cols, (hf + 1) * cols), gg * cols);
      }
  return out;
}

/** What the converter added to this tensor's values (Gemma's norm weights: 1), or 0. */
function normShift(arch: GgufArch, hfName: string): number {
  return arch.normShift && hfName.endsWith('norm.weight') ? arch.normShift : 0;
}

/** Heads a llama-arch q or k tensor is permuted over (null when the tensor is not permuted). */
function permutedHeads(cfg: ModelConfig, arch: GgufArch, hfName: string): number | null {
  if (!arch.permuteQK) return null;
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return cfg.numHeads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return cfg.numKvHeads;
  return null;
}

export function ggufArchOf(header: GgufHeader, fileName: string): { arch: GgufArch; name: string } {
  const r = metaReader(header.metadata, fileName);
  const type = r.str('general.type');
  if (type === 'adapter')
    metaError(
      fileName,
      'is a LoRA adapter (general.type = adapter), not a model; load the base model and import the adapter',
    );
  const name = r.str('general.architecture');
  if (name === null) metaError(fileName, 'has no general.architecture; it is not a llama.cpp model file');
  const arch = GGUF_ARCHES[name!];
  if (!arch)
    metaError(
      fileName,
      `its architecture "${name}" (general.architecture) is not supported; WebLoRA loads GGUF models of ${Object.keys(GGUF_ARCHES).join(', ')}`,
    );
  return { arch, name: name! };
}

/**
 * Loads and validates a GGUF model file into ModelFiles. Weights are read lazily, tensor by tensor.
 * `name` is the file's name (the model's name in config.json's _name_or_path), `fileName` how errors name it.
 */
export async function loadGgufModelFiles(src: ByteSource, name: string, fileName = name): Promise<ModelFiles> {
  let header: GgufHeader;
  try {
    header = await readGgufHeader(src, fileName);
  } catch (e) {
    if (e instanceof GgufError) throw new ModelLoadError(e.message);
    throw e;
  }
  const { arch, name: archName } = ggufArchOf(header, fileName);
  const configJson = { _name_or_path: name, ...(await configOf(header, arch, archName, src, fileName)) };
  const config = parseConfig(configJson, `${fileName} (its GGUF metadata as config.json)`);
  const tok = ggufTokenizer(header.metadata, fileName);
  const maxId = maxTokenId(tok.tokenizerJson);
  if (maxId >= config.vocabSize)
    metaError(
      fileName,
      `its tokenizer has token id ${maxId} but token_embd.weight has only ${config.vocabSize} rows; the file is inconsistent`,
    );
  let tokenizer: TextTokenizer;
  try {
    tokenizer = new TextTokenizer(tok.tokenizerJson, tok.tokenizerConfigJson, null);
  } catch (e) {
    metaError(fileName, `its tokenizer (tokenizer.ggml.*) could not be built: ${(e as Error).message}`);
  }

  const weights: WeightIndex = new Map();
  const missing: string[] = [];
  for (const [hfName, shape] of expectedTensors(config)) {
    const gName = ggufName(hfName, arch);
    const t = gName ? header.tensors.get(gName) : undefined;
    if (!t || !gName) {
      missing.push(gName ?? hfName);
      continue;
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      metaError(
        fileName,
        `tensor "${gName}" has shape [${t.shape.join(', ')}] (PyTorch order) but its metadata implies [${shape.join(', ')}]`,
      );
    const blocks = t.type === 'Q8_0' || t.type === 'Q4_0' ? t.type : null;
    if (t.type !== 'F32' && t.type !== 'F16' && t.type !== 'BF16' && !blocks)
      metaError(
        fileName,
        `tensor "${gName}" is ${t.type}. WebLoRA reads F32, F16, BF16, Q8_0 and Q4_0 GGUF models; other quantisations need kernels WebLoRA does not have yet. Pick an F16, BF16, F32, Q8_0 or Q4_0 GGUF of this model`,
      );
    const heads = permutedHeads(config, arch, hfName);
    const [rows, cols] = [shape[0], shape.length > 1 ? shape[1] : 1];
    const where = `tensor "${gName}" in ${fileName}`;
    // The stored bytes, q/k rows back in HF's order. A row of Q8_0 / Q4_0 is a whole number of blocks (ggml
    // needs cols % 32 == 0), so rows of blocks move like rows of floats: unpermuteRows works on either.
    const stored = async () => {
      const raw = await src.read(header.dataOffset + t.begin, header.dataOffset + t.end);
      return heads === null ? raw : unpermuteRows(raw, rows, raw.byteLength / rows, heads);
    };
    // A shifted norm weight is handed as its Hugging Face values in F32, so that its bytes agree with read().
    const shift = normShift(arch, hfName);
    const read = async () => {
      const x = decodeGgufFloat(t.type, await stored(), where);
      return shift ? x.map((v) => v - shift) : x;
    };
    weights.set(hfName, {
      name: hfName,
      storedName: gName,
      dtype: shift ? 'F32' : (t.type as WeightInfo['dtype']),
      shape: [...t.shape],
      file: fileName,
      readBytes: shift ? async () => new Uint8Array((await read()).buffer) : stored,
      read,
      ...(blocks && shape.length === 2
        ? { quant: async () => fromGgmlBlocks(blocks, await stored(), rows, cols) }
        : {}),
    });
  }
  if (missing.length > 0)
    metaError(
      fileName,
      `lacks ${missing.length} tensor${missing.length > 1 ? 's' : ''} its metadata implies: ${missing
        .slice(0, 5)
        .map((n) => `"${n}"`)
        .join(', ')}${missing.length > 5 ? ', …' : ''}`,
    );
  return {
    config,
    configJson,
    tokenizerJson: tok.tokenizerJson,
    tokenizerConfigJson: tok.tokenizerConfigJson,
    generationConfig: null,
    chatTemplate: tokenizer.chatTemplate,
    tokenizer,
    weights,
  };
}
