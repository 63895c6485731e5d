// Loss masks at exact token positions (character tokenizer) and packing into (N, T) sequences.

import { describe, expect, it } from 'vitest';
import { concatStream, IGNORE_INDEX, packSequences } from '../../src/data/pack';
import {
  joinRuleOf,
  LONG_CHARS,
  tokenizeExample,
  tokenizeExamples,
  type TokenizedExample,
} from '../../src/data/tokenize';
import { chatContextOf } from '../../src/data/chat';
import { parseExamples } from '../../src/data/formats';
import type { Example } from '../../src/data/types';
import { IGNORE_INDEX as KERNEL_IGNORE_INDEX } from '../../src/kernels/ignore_index';
import { AB, BOS, charTokenizer, chars, EOS } from './chartok';

const IG = IGNORE_INDEX;
const te = (ids: number[], train: number[]): TokenizedExample => ({
  ids: Uint32Array.from(ids),
  train: Uint8Array.from(train),
});
const plain = (t: TokenizedExample) => ({ ids: Array.from(t.ids), train: Array.from(t.train) });

describe('tokenizeExample: loss masks', () => {
  const tok = charTokenizer();

  it('prompt/completion: BOS and prompt masked, completion trained', () => {
    expect(plain(tokenizeExample({ prompt: 'ab', completion: 'cd' }, tok))).toEqual({
      ids: [BOS, ...chars('abcd')],
      train: [0, 0, 0, 1, 1],
    });
  });

  it('plain text: everything but BOS trained', () => {
    expect(plain(tokenizeExample({ prompt: '', completion: 'xyz' }, tok))).toEqual({
      ids: [BOS, ...chars('xyz')],
      train: [0, 1, 1, 1],
    });
  });

  it('without BOS nothing is masked in plain text', () => {
    expect(plain(tokenizeExample({ prompt: '', completion: 'xy' }, charTokenizer({ bos: false })))).toEqual({
      ids: chars('xy'),
      train: [1, 1],
    });
  });

  it('a token straddling the boundary goes to the completion (where encode(prompt) and encode(all) part)', () => {
    const merging = charTokenizer({ merge: true });
    // "xa" + "by": the whole text encodes as x, ab, y; encode("xa") = x, a.
    expect(plain(tokenizeExample({ prompt: 'xa', completion: 'by' }, merging))).toEqual({
      ids: [BOS, chars('x')[0], AB, chars('y')[0]],
      train: [0, 0, 1, 1],
    });
  });

  it('an EOS the tokenizer appends itself is part of the completion', () => {
    const eosTok = charTokenizer({ eosOnEncode: true });
    expect(plain(tokenizeExample({ prompt: 'a', completion: 'b' }, eosTok))).toEqual({
      ids: [BOS, ...chars('ab'), EOS],
      train: [0, 0, 1, 1],
    });
    expect(plain(tokenizeExample({ prompt: '', completion: 'b' }, eosTok))).toEqual({
      ids: [BOS, ...chars('b'), EOS],
      train: [0, 1, 1],
    });
  });

  it('multi-turn segments: only the trained segments, at their exact positions', () => {
    const ex: Example = {
      prompt: '',
      completion: '',
      addSpecial: false,
      segments: [
        { text: '<s>U:hi\nA:', train: false },
        { text: 'yo\n', train: true },
        { text: 'U:?\nA:', train: false },
        { text: '!\n', train: true },
      ],
    };
    const t = tokenizeExample(ex, tok);
    expect(Array.from(t.ids)).toEqual([BOS, ...chars('U:hi\nA:yo\nU:?\nA:!\n')]);
    const want = [0, ...'U:hi\nA:'.split('').map(() => 0), 1, 1, 1, ...'U:?\nA:'.split('').map(() => 0), 1, 1];
    expect(Array.from(t.train)).toEqual(want);
  });
});

describe('tokenizeExamples', () => {
  it('gives the event loop back and reports progress', async () => {
    const tok = charTokenizer();
    const examples = Array.from({ length: 50 }, (_, i) => ({ prompt: '', completion: `example ${i}` }));
    const progress: { done: number; total: number; tokens: number }[] = [];
    let timerRan = false;
    setTimeout(() => (timerRan = true), 0);
    const out = await tokenizeExamples(examples, tok, { sliceMs: -1, onProgress: (p) => progress.push(p) });
    expect(timerRan).toBe(true);
    expect(out.map(plain)).toEqual(examples.map((e) => plain(tokenizeExample(e, tok))));
    const tokens = out.reduce((s, t) => s + t.ids.length, 0);
    expect(progress.at(-1)).toEqual({ done: 50, total: 50, tokens });
    expect(progress.length).toBeGreaterThan(40); // a report at every slice (every example here)
    for (let i = 1; i < progress.length; i++) expect(progress[i].done).toBeGreaterThanOrEqual(progress[i - 1].done);
  });

  it('stops when its signal is aborted', async () => {
    const ctl = new AbortController();
    ctl.abort(new Error('cancelled by the test'));
    const examples = [{ prompt: '', completion: 'a' }];
    await expect(tokenizeExamples(examples, charTokenizer(), { sliceMs: -1, signal: ctl.signal })).rejects.toThrow(
      'cancelled by the test',
    );
  });
});

describe('long plain text in pieces', () => {
  it('a text without cut points, and a tokenizer whose pieces do not join, are encoded whole', async () => {
    const tok = charTokenizer();
    const noSpaces = { prompt: '', completion: 'a'.repeat(3 * LONG_CHARS) };
    const [t] = await tokenizeExamples([noSpaces], tok);
    expect(plain(t)).toEqual(plain(tokenizeExample(noSpaces, tok)));
    // Marks the start of every encode() call: pieces would carry extra marks, so no join rule holds.
    const marking = { ...tok, encode: (s: string, sp: boolean) => [7, ...tok.encode(s, sp)] };
    expect(joinRuleOf(marking)).toBe(null);
    const spaced = { prompt: '', completion: 'word '.repeat(LONG_CHARS) };
    const [m] = await tokenizeExamples([spaced], marking);
    expect(plain(m)).toEqual(plain(tokenizeExample(spaced, marking)));
    expect(m.ids.filter((id) => id === 7).length).toBe(1);
  });

  it('pieces keep BOS masked and an appended EOS trained', async () => {
    const tok = charTokenizer({ eosOnEncode: true });
    const ex = { prompt: '', completion: 'some words here '.repeat(LONG_CHARS / 4).trim() };
    const [t] = await tokenizeExamples([ex], tok);
    expect(plain(t)).toEqual(plain(tokenizeExample(ex, tok)));
    expect([t.ids[0], t.train[0], t.ids.at(-1), t.train.at(-1)]).toEqual([BOS, 0, EOS, 1]);
  });
});

describe('packSequences', () => {
  it('masks with the value the cross-entropy kernel ignores', () => {
    expect(IGNORE_INDEX).toBe(KERNEL_IGNORE_INDEX);
  });

  it('lays examples end to end with EOS between and cuts T+1 windows with stride T', () => {
    const a = te([BOS, 10, 11], [0, 1, 1]);
    const b = te([BOS, 20, 21], [0, 0, 1]); // 20 is a prompt token
    // stream: BOS 10 11 EOS BOS 20 21 EOS, trained: 0 1 1 1 0 0 1 1
    const p = packSequences([a, b], 4, EOS);
    expect(p.N).toBe(2);
    expect(Array.from(p.ids)).toEqual([BOS, 10, 11, EOS, BOS, 20, 21, EOS /* pad */]);
    expect(Array.from(p.targets)).toEqual([10, 11, EOS, IG /* BOS */, IG /* prompt 20 */, 21, EOS, IG /* pad */]);
  });

  it('does not add a second EOS after one the tokenizer appended; no separator without EOS', () => {
    const s = concatStream([te([5, EOS], [1, 1]), te([6], [1])], EOS);
    expect(Array.from(s.ids)).toEqual([5, EOS, 6, EOS]);
    expect(Array.from(concatStream([te([5], [1]), te([6], [1])], null).ids)).toEqual([5, 6]);
  });

  it('adds no EOS after a chat its template closed (eos: false), and one after the default chat layout', () => {
    // "{role}: {content}</s>" per message: the template ends each turn with the tokenizer's EOS itself.
    const tok = charTokenizer({
      chatTemplate: "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}",
    });
    const line = JSON.stringify({
      messages: [
        { role: 'user', content: 'q' },
        { role: 'assistant', content: 'a' },
        { role: 'user', content: 'r' },
      ],
    });
    const templated = parseExamples(line, { format: 'jsonl', chat: chatContextOf(tok) }).examples;
    const dflt = parseExamples(line, { format: 'jsonl' }).examples;
    expect([templated[0].eos, dflt[0].eos]).toEqual([false, true]);
    const [t] = templated.map((e) => tokenizeExample(e, tok));
    // The chat ends with the "</s>" the template wrote after the last turn; the next example follows it.
    const s = concatStream([t, te([BOS, 6], [0, 1])], EOS);
    expect(Array.from(s.ids)).toEqual([...Array.from(t.ids), BOS, 6, EOS]);
    expect(plain(t).ids.at(-1)).toBe(EOS);
    // A template whose last turn ends without EOS (the last message is a user turn in plain text) gets none.
    const open = { ...t, ids: t.ids.slice(0, -1), train: t.train.slice(0, -1) };
    expect(Array.from(concatStream([open], EOS).ids)).toEqual(Array.from(open.ids));
    // The default layout has no end-of-turn marker: packing ends it with a trained EOS.
    const [d] = dflt.map((e) => tokenizeExample(e, tok));
    expect(Array.from(concatStream([d], EOS).ids).at(-1)).toBe(EOS);
    expect(Array.from(concatStream([d], EOS).train).at(-1)).toBe(1);
  });

  it('trains every next-token pair of the stream exactly once, padding only the last window', () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const examples = Array.from({ length: 30 }, () => {
      const n = 1 + rand(20);
      return te(
        Array.from({ length: n }, () => 10 + rand(50)),
        Array.from({ length: n }, () => (rand(3) ? 1 : 0)),
      );
    });
    for (const T of [1, 3, 8, 64, 1000]) {
      const s = concatStream(examples, EOS);
      const p = packSequences(examples, T, EOS);
      const pairs: string[] = [];
      for (let n = 0; n < p.N; n++)
        for (let t = 0; t < T; t++)
          if (p.targets[n * T + t] !== IG) pairs.push(`${p.ids[n * T + t]}>${p.targets[n * T + t]}`);
      const want: string[] = [];
      for (let i = 1; i < s.ids.length; i++) if (s.train[i]) want.push(`${s.ids[i - 1]}>${s.ids[i]}`);
      expect(pairs).toEqual(want);
      expect(p.N).toBeLessThanOrEqual(Math.ceil((s.ids.length - 1) / T));
    }
  });

  it('drops windows with no trained target', () => {
    const longPrompt = te([BOS, 1, 1, 1, 1, 1, 1, 1, 1, 9], [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    // stream of 11 tokens (with EOS): windows at 0 (targets 1..4, all prompt), 4 (5..8 prompt), 8 (9, EOS)
    const p = packSequences([longPrompt], 4, EOS);
    expect(p.N).toBe(1);
    expect(Array.from(p.ids)).toEqual([1, 9, EOS, EOS]);
    expect(Array.from(p.targets)).toEqual([9, EOS, IG, IG]);
  });

  it('gives no sequence for fewer than two tokens and rejects a bad T', () => {
    expect(packSequences([te([5], [1])], 4, null).N).toBe(0);
    expect(() => packSequences([], 0, EOS)).toThrow(/positive integer/);
  });
});
