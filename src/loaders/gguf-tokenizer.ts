// A GGUF file's tokenizer (tokenizer.ggml.* metadata) as the tokenizer.json + tokenizer_config.json that
// @huggingface/tokenizers reads, for the two kinds llama.cpp's convert_hf_to_gguf.py writes for our families:
//
//   gpt2   byte-level BPE (Llama 3, Qwen2/2.5/3, SmolLM): tokens are the HF vocabulary in id order,
//          merges are "left right" strings in rank order; tokenizer.ggml.pre names the pre-tokenizer
//          (the regex that splits text before BPE), one entry of PRE_TOKENIZERS each.
//   llama  SentencePiece BPE (Llama 2, TinyLlama, our bundled model): tokens are pieces with "▁" for space,
//          scores rank them; the HF fast tokenizer is BPE with byte fallback whose merges are every split
//          of a piece into two pieces, ranked by the merged piece's score (as transformers'
//          SentencePieceExtractor derives them from tokenizer.model).
//
// token_type (llama.cpp's llama_token_type): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
// 6 byte. Control and user-defined tokens become added tokens (control ones special), as in tokenizer.json.

import type { GgufValue } from './gguf';
import { ModelLoadError } from './sources';

type Json = Record<string, unknown>;

const LLAMA3_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** A regex split then byte-level mapping without its own regex, as Llama 3's and Qwen2's tokenizer.json. */
function splitThenBytes(regex: string) {
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  };
}
const GPT2_BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };

/** tokenizer.ggml.pre -> the tokenizer.json pieces it stands for (llama.cpp's llama-vocab.cpp names). */
const PRE_TOKENIZERS: Record<string, { preTokenizer: Json; normalizer: Json | null; ignoreMerges: boolean }> = {
  'llama-bpe': { preTokenizer: splitThenBytes(LLAMA3_REGEX), normalizer: null, ignoreMerges: true },
  qwen2: { preTokenizer: splitThenBytes(QWEN2_REGEX), normalizer: { type: 'NFC' }, ignoreMerges: false },
  smollm: { preTokenizer: GPT2_BYTE_LEVEL, normalizer: null, ignoreMerges: false },
  'gpt-2': { preTokenizer: GPT2_BYTE_LEVEL, normalizer: null, ignoreMerges: false },
  default: { preTokenizer: GPT2_BYTE_LEVEL, normalizer: null, ignoreMerges: false },
};

const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 };

export interface GgufTokenizerFiles {
  tokenizerJson: Json;
  tokenizerConfigJson: Json;
}

function fail(fileName: string, problem: string): never {
  throw new ModelLoadError(`${fileName}: ${problem}`);
}

function strings(meta: Map<string, GgufValue>, key: string, fileName: string, required: boolean): string[] | null {
  const v = meta.get(key);
  if (v === undefined) {
    if (required) fail(fileName, `has no "${key}"; a llama.cpp model file carries its tokenizer there`);
    return null;
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) fail(fileName, `"${key}" is not a list of strings`);
  return v as string[];
}

function numbers(meta: Map<string, GgufValue>, key: string, n: number, fileName: string): number[] | null {
  const v = meta.get(key);
  if (v === undefined) return null;
  if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === 'number'))
    fail(fileName, `"${key}" is not a list of ${n} numbers, one per token`);
  return v as number[];
}

function optionalId(meta: Map<string, GgufValue>, key: string, n: number, fileName: string): number | null {
  const v = meta.get(key);
  if (v === undefined) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= n)
    fail(fileName, `"${key}" is ${String(v)}; expected a token id below ${n}`);
  return v as number;
}

/**
 * SentencePiece pieces and scores -> BPE merges: every split of a piece into two pieces, the pieces ranked
 * by score (highest first, ties by id), splits of one piece by (left id, right id).
 */
export function mergesFromScores(tokens: string[], scores: number[], types: number[] | null): string[] {
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (!ids.has(t)) ids.set(t, i);
  });
  const order = tokens.map((_, i) => i).filter((i) => (types ? types[i] === TOKEN_TYPE.NORMAL : true));
  order.sort((a, b) => scores[b] - scores[a] || a - b);
  const merges: string[] = [];
  for (const id of order) {
    const chars = Array.from(tokens[id]);
    const local: [number, number, string][] = [];
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join('');
      const right = chars.slice(k).join('');
      const l = ids.get(left);
      const r = ids.get(right);
      if (l !== undefined && r !== undefined) local.push([l, r, `${left} ${right}`]);
    }
    local.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (const [, , m] of local) merges.push(m);
  }
  return merges;
}

/** The tokenizer.json and tokenizer_config.json a GGUF file's tokenizer.ggml.* metadata stands for. */
export function ggufTokenizer(meta: Map<string, GgufValue>, fileName: string): GgufTokenizerFiles {
  const model = meta.get('tokenizer.ggml.model');
  if (typeof model !== 'string') fail(fileName, 'has no tokenizer.ggml.model; it carries no tokenizer');
  const tokens = strings(meta, 'tokenizer.ggml.tokens', fileName, true)!;
  const n = tokens.length;
  const types = numbers(meta, 'tokenizer.ggml.token_type', n, fileName);
  const bos = optionalId(meta, 'tokenizer.ggml.bos_token_id', n, fileName);
  const eos = optionalId(meta, 'tokenizer.ggml.eos_token_id', n, fileName);
  const unk = optionalId(meta, 'tokenizer.ggml.unknown_token_id', n, fileName);
  const addBosValue = meta.get('tokenizer.ggml.add_bos_token');
  const addBos = typeof addBosValue === 'boolean' ? addBosValue : model === 'llama';
  const template = meta.get('tokenizer.chat_template');

  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (!(t in vocab)) vocab[t] = i;
  });
  const added = tokens
    .map((t, i) => ({ t, i, type: types?.[i] ?? TOKEN_TYPE.NORMAL }))
    .filter(({ type, i }) => type === TOKEN_TYPE.CONTROL || type === TOKEN_TYPE.USER_DEFINED || i === unk)
    .map(({ t, i, type }) => ({
      id: i,
      content: t,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: type === TOKEN_TYPE.USER_DEFINED,
      special: type !== TOKEN_TYPE.USER_DEFINED,
    }));
  const bosToken = bos === null ? null : tokens[bos];
  const postProcessor =
    addBos && bosToken !== null
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bosToken, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: bosToken, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: bosToken, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [bosToken]: { id: bosToken, ids: [bos], tokens: [bosToken] } },
        }
      : null;

  let tokenizerJson: Json;
  if (model === 'gpt2') {
    const pre = meta.get('tokenizer.ggml.pre') ?? 'default';
    const p = PRE_TOKENIZERS[String(pre)];
    if (!p)
      fail(
        fileName,
        `its tokenizer's pre-tokenizer "${String(pre)}" (tokenizer.ggml.pre) is not one WebLoRA knows (${Object.keys(PRE_TOKENIZERS).join(', ')})`,
      );
    const merges = strings(meta, 'tokenizer.ggml.merges', fileName, true)!;
    tokenizerJson = {
      version: '1.0',
      added_tokens: added,
      normalizer: p.normalizer,
      pre_tokenizer: p.preTokenizer,
      post_processor: postProcessor,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: p.ignoreMerges,
        vocab,
        merges,
      },
    };
  } else if (model === 'llama') {
    const scores = numbers(meta, 'tokenizer.ggml.scores', n, fileName);
    if (!scores) fail(fileName, 'has a SentencePiece tokenizer without tokenizer.ggml.scores');
    // SentencePiece's dummy prefix: a "▁" before the text, stripped again on decoding (Llama 2). Gemma's
    // tokenizers have none: llama.cpp's converter writes tokenizer.ggml.add_space_prefix = false for them.
    const spacePrefix = meta.get('tokenizer.ggml.add_space_prefix') !== false;
    const replaceSpace = { type: 'Replace', pattern: { String: ' ' }, content: '▁' };
    tokenizerJson = {
      version: '1.0',
      added_tokens: added,
      normalizer: spacePrefix
        ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, replaceSpace] }
        : replaceSpace,
      pre_tokenizer: null,
      post_processor: postProcessor,
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          ...(spacePrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
        ],
      },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: unk === null ? null : tokens[unk],
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: true,
        byte_fallback: true,
        ignore_merges: false,
        vocab,
        merges: mergesFromScores(tokens, scores!, types),
      },
    };
  } else {
    fail(
      fileName,
      `its tokenizer is "${model}" (tokenizer.ggml.model); WebLoRA reads "gpt2" (byte-level BPE) and "llama" (SentencePiece) tokenizers`,
    );
  }
  const tokenizerConfigJson: Json = {
    add_bos_token: addBos,
    ...(bosToken !== null ? { bos_token: bosToken } : {}),
    ...(eos !== null ? { eos_token: tokens[eos] } : {}),
    ...(unk !== null ? { unk_token: tokens[unk] } : {}),
    ...(typeof template === 'string' ? { chat_template: template } : {}),
  };
  return { tokenizerJson, tokenizerConfigJson };
}
