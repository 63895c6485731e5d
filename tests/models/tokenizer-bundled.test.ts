// The bundled model's tokenizer.json (converted from sentencepiece by tools/sp_to_tokenizer_json.py)
// must give exactly sentencepiece's ids in @huggingface/tokenizers, and decode must round-trip.
// The fixture (tests/fixtures/tokenizer/bundled_cases.json) holds ~1500 (text, ids) pairs written by
// tools/pretrain.py with sentencepiece 0.1.97: held-out lines of the pretraining sources, fortunes
// (never seen by the tokenizer), and hand-made cases (whitespace runs, digits, punctuation, non-ASCII,
// emoji, control characters, angle-bracket text). Ids are integers: the check is exact equality.
// Known, intended difference (as for every HF Llama tokenizer): the literal text "<s>" / "</s>" / "<unk>"
// is matched as the special token by @huggingface/tokenizers but spelled out by sentencepiece, so the
// fixture holds no such text.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { BUNDLED, FIXTURES } from '../helpers/fixtures';

const tokenizerJson = JSON.parse(readFileSync(join(BUNDLED, 'tokenizer.json'), 'utf8'));
const tokenizerConfig = JSON.parse(readFileSync(join(BUNDLED, 'tokenizer_config.json'), 'utf8'));
const fixture = JSON.parse(readFileSync(join(FIXTURES, 'tokenizer/bundled_cases.json'), 'utf8')) as {
  cases: [string, number[]][];
};

describe('bundled tokenizer (weblora-llama-1m) vs sentencepiece', () => {
  const tok = new Tokenizer(tokenizerJson, tokenizerConfig);

  it('has the Llama layout: 2048 pieces, <unk>=0 <s>=1 </s>=2, byte fallback', () => {
    const vocab = tokenizerJson.model.vocab as Record<string, number>;
    expect(Object.keys(vocab).length).toBe(2048);
    expect([vocab['<unk>'], vocab['<s>'], vocab['</s>']]).toEqual([0, 1, 2]);
    expect(vocab['<0x0A>']).toBeDefined();
    expect(tokenizerJson.model.byte_fallback).toBe(true);
    expect(fixture.cases.length).toBeGreaterThan(1000);
  });

  it('encodes every fixture text to sentencepiece ids', () => {
    const bad: string[] = [];
    for (const [text, want] of fixture.cases) {
      const got = tok.encode(text, { add_special_tokens: false }).ids;
      if (got.length !== want.length || got.some((id, i) => id !== want[i])) {
        bad.push(`${JSON.stringify(text)}: got [${got.join(',')}], sentencepiece [${want.join(',')}]`);
      }
    }
    expect(bad.slice(0, 5), `${bad.length} of ${fixture.cases.length} texts differ`).toEqual([]);
  });

  it('prepends <s> with add_special_tokens and decodes back to the exact text', () => {
    const bad: string[] = [];
    for (const [text, want] of fixture.cases) {
      const ids = tok.encode(text, { add_special_tokens: true }).ids;
      expect(ids[0]).toBe(1);
      expect(ids.slice(1)).toEqual(want);
      const back = tok.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
      // sentencepiece itself does not round-trip a leading space (its dummy-prefix "▁" is stripped once),
      // nor text that already holds a literal "▁" (it decodes as a space): skip exactly those texts.
      if (back !== text && !text.includes('▁')) bad.push(`${JSON.stringify(text)} -> ${JSON.stringify(back)}`);
    }
    expect(bad.slice(0, 5), `${bad.length} texts do not round-trip`).toEqual([]);
  });
});
