import { describe, expect, it } from 'vitest';
import { maxBaseTokenId, maxTokenId, TextTokenizer, TokenizerError } from '../../src/loaders/tokenizer';
import { tinyTokenizer } from './fixtures';

describe('TextTokenizer over @huggingface/tokenizers', () => {
  it('encodes with byte-level BPE merges and decodes back exactly', () => {
    const { json, config } = tinyTokenizer();
    const tok = new TextTokenizer(json, config);
    // " the" -> Ġ t h e -> merges "Ġ t", "h e", "Ġt he" -> one token (id 260); "in" -> id 262.
    expect(tok.encode(' the', false)).toEqual([260]);
    expect(tok.encode('in', false)).toEqual([262]);
    expect(tok.encode('Hi', false)).toEqual([72, 105]); // bytes of 'H', 'i'
    for (const text of ['the cat sat in the hat', '  two  spaces\nand a newline', 'ünïcödé → 🙂', 'x<|endoftext|>y']) {
      expect(tok.decode(tok.encode(text, false))).toBe(text);
    }
    expect(tok.encode('a<|endoftext|>b', false)).toEqual([97, 256, 98]); // added special token is matched whole
    expect(tok.decode([97, 256, 98], true)).toBe('ab');
    expect(tok.encode('', false)).toEqual([]);
    expect(tok.decode([])).toBe('');
  });

  it('reads bos/eos from tokenizer_config (string or AddedToken object), vocab size and chat template', () => {
    const { json, config } = tinyTokenizer({ bos: true });
    const tok = new TextTokenizer(json, config);
    expect(tok.bosId).toBe(257);
    expect(tok.eosId).toBe(256);
    expect(tok.vocabSize).toBe(263); // 256 bytes + 2 specials + 5 merges
    expect(tok.chatTemplate).toContain('messages');
    expect(new TextTokenizer(json, config, '{{ override }}').chatTemplate).toBe('{{ override }}');
    expect(new TextTokenizer(json, {}).chatTemplate).toBeNull();
    expect(new TextTokenizer(json, {}).bosId).toBeNull();
  });

  it('an added token past the embedding (Gemma 3: <image_soft_token> = vocab_size) loads, and text that produces it is refused', () => {
    const { json, config } = tinyTokenizer();
    const t0 = (json.added_tokens as Record<string, unknown>[])[0];
    const withImage = {
      ...json,
      added_tokens: [...(json.added_tokens as Record<string, unknown>[]), { ...t0, id: 263, content: '<img>' }],
    };
    expect(maxTokenId(withImage)).toBe(263);
    expect(maxBaseTokenId(withImage)).toBeLessThan(263); // what the loader checks against vocab_size
    const tok = new TextTokenizer(withImage, config, null, 263); // a 263-row embedding
    expect(tok.encode('the cat', false).every((id) => id < 263)).toBe(true);
    expect(() => tok.encode('a <img> here', false)).toThrow(/"<img>" \(id 263\).*263 rows/);
  });

  it('adds BOS only when asked (Llama-style TemplateProcessing)', () => {
    const { json, config } = tinyTokenizer({ bos: true });
    const tok = new TextTokenizer(json, config);
    expect(tok.encode('Hi', true)).toEqual([257, 72, 105]);
    expect(tok.encode('Hi', false)).toEqual([72, 105]);
  });

  it('computes the largest id over vocab and added tokens, and rejects a file without a model', () => {
    expect(maxTokenId(tinyTokenizer({ extraIds: 1000 }).json)).toBe(1000);
    expect(
      maxTokenId({
        model: {
          type: 'Unigram',
          vocab: [
            ['a', 0],
            ['b', -1],
            ['c', -2],
          ],
        },
      }),
    ).toBe(2);
    expect(() => new TextTokenizer({ added_tokens: [] })).toThrow(TokenizerError);
  });
});
