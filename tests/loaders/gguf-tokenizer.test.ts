// GGUF tokenizers (tokenizer.ggml.*, src/loaders/gguf-tokenizer.ts) against the tokenizer.json they were
// written from by tools/gguf_write.py, as llama.cpp's convert_hf_to_gguf.py writes them:
//   - SentencePiece ("llama"): the bundled model's tokenizer.model (pieces, scores, types); our merges are
//     rebuilt from the scores, and must tokenize as its tokenizer.json and as sentencepiece itself
//     (tests/fixtures/tokenizer/bundled_cases.json, ids from sentencepiece);
//   - byte-level BPE ("gpt2"): small tokenizers laid out as Llama 3's (pre "llama-bpe", BOS added,
//     ignore_merges) and Qwen2's (pre "qwen2", NFC, no BOS), with special tokens.
// Every text must encode to the same ids (with and without special tokens) and decode back the same.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bytesSource } from '../../src/loaders/byte-source';
import { readGgufHeader } from '../../src/loaders/gguf';
import { ggufTokenizer, mergesFromScores } from '../../src/loaders/gguf-tokenizer';
import { TextTokenizer } from '../../src/loaders/tokenizer';
import { BUNDLED, FIXTURES } from '../helpers/fixtures';

const GGUF_DIR = join(FIXTURES, 'gguf');
const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

async function fromGguf(file: string): Promise<TextTokenizer> {
  const h = await readGgufHeader(bytesSource(readFileSync(join(GGUF_DIR, file))), file);
  const t = ggufTokenizer(h.metadata, file);
  return new TextTokenizer(t.tokenizerJson, t.tokenizerConfigJson);
}

const bundledCases: [string, number[]][] = json(join(FIXTURES, 'tokenizer/bundled_cases.json')).cases;
const TEXTS = [
  'Hello world',
  ' leading space, and trailing  ',
  '  runs   of\tspaces\n\n\nand newlines\r\n',
  "don't I'LL we've THEY'RE",
  'numbers 1234567 and 3.14159, 2^10 = 1024',
  'ümlauts ß, accents é è (composed) and e\u0301 (decomposed)',
  'CJK 中文字符 and emoji 😀👍🏽 and a lone ‍ joiner',
  'code: if (x != y) { return a[i]->b; } // done',
  '',
  ...bundledCases.slice(0, 12).map((c) => c[0]),
];

function expectSame(got: TextTokenizer, want: TextTokenizer, texts: string[]) {
  expect(got.bosId).toBe(want.bosId);
  expect(got.eosId).toBe(want.eosId);
  expect(got.vocabSize).toBe(want.vocabSize);
  for (const text of texts) {
    for (const special of [true, false]) {
      const ids = want.encode(text, special);
      expect(got.encode(text, special), `${JSON.stringify(text)} (special ${special})`).toEqual(ids);
      expect(got.decode(ids), JSON.stringify(text)).toBe(want.decode(ids));
    }
  }
}

describe('GGUF tokenizers tokenize as the tokenizer.json they came from', () => {
  it('SentencePiece (the bundled model): merges rebuilt from scores; ids as sentencepiece gives them', async () => {
    const want = new TextTokenizer(json(join(BUNDLED, 'tokenizer.json')), json(join(BUNDLED, 'tokenizer_config.json')));
    const got = await fromGguf('spm-weblora-llama-1m.tokenizer.gguf');
    expectSame(got, want, TEXTS);
    for (const [text, ids] of bundledCases) expect(got.encode(text, false), text.slice(0, 40)).toEqual(ids);
  });

  it('the rebuilt SentencePiece merges are the bundled tokenizer.json merges, in order', async () => {
    const h = await readGgufHeader(
      bytesSource(readFileSync(join(GGUF_DIR, 'spm-weblora-llama-1m.tokenizer.gguf'))),
      'spm.gguf',
    );
    const merges = mergesFromScores(
      h.metadata.get('tokenizer.ggml.tokens') as string[],
      h.metadata.get('tokenizer.ggml.scores') as number[],
      h.metadata.get('tokenizer.ggml.token_type') as number[],
    );
    const want = json(join(BUNDLED, 'tokenizer.json')).model.merges.map((m: string | string[]) =>
      Array.isArray(m) ? m.join(' ') : m,
    );
    expect(merges).toEqual(want);
  });

  it.each(['llama3', 'qwen2'])('byte-level BPE laid out as %s, with its special tokens', async (kind) => {
    const dir = join(GGUF_DIR, `bpe-${kind}`);
    const want = new TextTokenizer(json(join(dir, 'tokenizer.json')), json(join(dir, 'tokenizer_config.json')));
    const got = await fromGguf(`bpe-${kind}.tokenizer.gguf`);
    const specials = kind === 'llama3' ? '<|begin_of_text|>hi<|eot_id|> x' : '<|im_start|>user\nhi<|im_end|>';
    expectSame(got, want, [...TEXTS, specials]);
    expect(got.chatTemplate).toBe(want.chatTemplate);
    expect(got.encode('hi', true)[0] === got.bosId).toBe(kind === 'llama3');
  });

  it('SentencePiece without the dummy prefix (add_space_prefix false, as Gemma’s): no "▁" added or stripped', async () => {
    const file = 'spm-weblora-llama-1m.tokenizer.gguf';
    const h = await readGgufHeader(bytesSource(readFileSync(join(GGUF_DIR, file))), file);
    const meta = new Map(h.metadata);
    const tok = (m: typeof meta) => {
      const t = ggufTokenizer(m, file);
      return new TextTokenizer(t.tokenizerJson, t.tokenizerConfigJson);
    };
    const withPrefix = tok(meta);
    meta.set('tokenizer.ggml.add_space_prefix', false);
    const without = tok(meta);
    // "the" alone: with the prefix it is the text " the" (the piece "▁the"); without, the bare "the"
    expect(without.encode('the', false)).not.toEqual(withPrefix.encode('the', false));
    expect(without.encode(' the', false)).toEqual(withPrefix.encode('the', false));
    for (const text of ['the cat', ' leading space', 'Hello world.'])
      expect(without.decode(without.encode(text, false)), text).toBe(text);
    meta.set('tokenizer.ggml.add_space_prefix', true);
    expect(tok(meta).encode('the cat', false)).toEqual(withPrefix.encode('the cat', false));
  });

  it('names an unknown pre-tokenizer and an unknown tokenizer model', () => {
    const meta = new Map<string, string | string[]>([
      ['tokenizer.ggml.model', 'gpt2'],
      ['tokenizer.ggml.pre', 'deepseek-coder'],
      ['tokenizer.ggml.tokens', ['a']],
      ['tokenizer.ggml.merges', []],
    ]);
    expect(() => ggufTokenizer(meta, 'm.gguf')).toThrow(
      /m\.gguf: its tokenizer's pre-tokenizer "deepseek-coder" \(tokenizer\.ggml\.pre\) is not one WebLoRA knows/,
    );
    meta.set('tokenizer.ggml.model', 't5');
    expect(() => ggufTokenizer(meta, 'm.gguf')).toThrow(/m\.gguf: its tokenizer is "t5" \(tokenizer\.ggml\.model\)/);
  });
});
