// A character-level tokenizer for exact-position tests: id = code point + 3, BOS = 1, EOS = 2.
// With `merge`, the pair "ab" is one token (id 1000), so a token can straddle a prompt/completion boundary.

import type { TextTokenizer } from '../../src/data/types';

export const BOS = 1;
export const EOS = 2;
export const AB = 1000;

export interface CharTokenizerOptions {
  bos?: boolean; // encode(text, true) starts with BOS
  eosOnEncode?: boolean; // encode(text, true) ends with EOS (like add_eos_token)
  merge?: boolean;
  chatTemplate?: string | null;
  eos?: boolean; // the tokenizer has an EOS at all
}

export function charTokenizer(o: CharTokenizerOptions = {}): TextTokenizer {
  const { bos = true, eosOnEncode = false, merge = false, chatTemplate = null, eos = true } = o;
  return {
    bosId: bos ? BOS : null,
    eosId: eos ? EOS : null,
    chatTemplate,
    specialTokens: { bos_token: '<s>', eos_token: '</s>' },
    encode(text: string, addSpecial: boolean): number[] {
      const ids: number[] = addSpecial && bos ? [BOS] : [];
      // "<s>" and "</s>" in the text are the special tokens (as a template writes them).
      for (let i = 0; i < text.length;) {
        if (text.startsWith('<s>', i)) (ids.push(BOS), (i += 3));
        else if (text.startsWith('</s>', i)) (ids.push(EOS), (i += 4));
        else if (merge && text.startsWith('ab', i)) (ids.push(AB), (i += 2));
        else {
          const c = text.codePointAt(i)!;
          ids.push(c + 3);
          i += c > 0xffff ? 2 : 1;
        }
      }
      if (addSpecial && eosOnEncode && eos) ids.push(EOS);
      return ids;
    },
    decode(ids: number[]): string {
      return ids
        .map((id) => (id === BOS ? '<s>' : id === EOS ? '</s>' : id === AB ? 'ab' : String.fromCodePoint(id - 3)))
        .join('');
    },
  };
}

/** Token ids of plain characters (no specials). */
export const chars = (s: string) => Array.from(s, (c) => c.codePointAt(0)! + 3);
