// Split, order and resume: deterministic by seed, a cursor restored from its JSON state continues with
// exactly the same batches, and the prepared dataset's batches and stats.

import { describe, expect, it } from 'vitest';
import type { Batch } from '../../src/data/batch';
import { DataCursor, permutation, prepareDataset, splitExamples, batchesOf } from '../../src/data/dataset';
import { IGNORE_INDEX, packSequences } from '../../src/data/pack';
import type { TokenizedExample } from '../../src/data/tokenize';
import { DatasetError } from '../../src/data/types';
import { BOS, charTokenizer, EOS } from './chartok';

const te = (k: number, n: number): TokenizedExample => ({
  ids: Uint32Array.from({ length: n }, (_, i) => 100 * k + i),
  train: new Uint8Array(n).fill(1),
});
const examples = Array.from({ length: 40 }, (_, k) => te(k + 1, 5 + (k % 7)));
const firstIds = (xs: TokenizedExample[]) => xs.map((e) => e.ids[0]);
const batchKey = (b: Batch) => `${b.B}x${b.T}:${Array.from(b.ids).join(',')}|${Array.from(b.targets).join(',')}`;

describe('permutation', () => {
  it('is a permutation, the same for the same (seed, epoch), different otherwise', () => {
    const p = permutation(100, 3, 0);
    expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(Array.from(permutation(100, 3, 0))).toEqual(Array.from(p));
    expect(Array.from(permutation(100, 3, 1))).not.toEqual(Array.from(p));
    expect(Array.from(permutation(100, 4, 0))).not.toEqual(Array.from(p));
    expect(Array.from(p)).not.toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});

describe('splitExamples', () => {
  it('splits by example, deterministically by seed, with round(fraction · n) in validation', () => {
    const a = splitExamples(examples, 0.1, 42);
    expect(a.val.length).toBe(4);
    expect(a.train.length).toBe(36);
    expect(new Set([...firstIds(a.train), ...firstIds(a.val)]).size).toBe(40);
    const b = splitExamples(examples, 0.1, 42);
    expect(firstIds(b.val)).toEqual(firstIds(a.val));
    expect(firstIds(splitExamples(examples, 0.1, 43).val)).not.toEqual(firstIds(a.val));
    // order within each part is the file's order
    expect(firstIds(a.train)).toEqual([...firstIds(a.train)].sort((x, y) => x - y));
  });

  it('keeps at least one validation example and one training example', () => {
    expect(splitExamples(examples, 0.001, 1).val.length).toBe(1);
    expect(splitExamples(examples.slice(0, 2), 0.9, 1)).toMatchObject({ train: { length: 1 }, val: { length: 1 } });
    expect(splitExamples(examples, 0, 1).val.length).toBe(0);
    expect(() => splitExamples(examples, 1, 1)).toThrow(DatasetError);
  });

  it('splits a single example inside its tokens (the tail goes to validation)', () => {
    const one = te(1, 100);
    const s = splitExamples([one], 0.2, 0);
    expect(Array.from(s.train[0].ids)).toEqual(Array.from(one.ids.slice(0, 80)));
    expect(Array.from(s.val[0].ids)).toEqual(Array.from(one.ids.slice(80)));
  });
});

describe('DataCursor', () => {
  const seqs = packSequences(examples, 8, EOS);

  it('visits every sequence once per epoch, in a seeded order, and moves to the next epoch', () => {
    const c = new DataCursor(seqs, { seed: 5 });
    const seen: string[] = [];
    for (let n = 0; n < seqs.N; n++) seen.push(Array.from(c.nextBatch(1).ids).join(','));
    expect(c.state()).toEqual({ epoch: 0, index: seqs.N, seed: 5 });
    const all = Array.from({ length: seqs.N }, (_, n) => Array.from(seqs.ids.subarray(n * 8, n * 8 + 8)).join(','));
    expect([...seen].sort()).toEqual([...all].sort());
    expect(seen).not.toEqual(all);
    const epoch1 = [Array.from(c.nextBatch(1).ids).join(',')];
    expect(c.state()).toEqual({ epoch: 1, index: 1, seed: 5 });
    for (let n = 1; n < seqs.N; n++) epoch1.push(Array.from(c.nextBatch(1).ids).join(','));
    expect([...epoch1].sort()).toEqual([...all].sort());
    expect(epoch1).not.toEqual(seen); // a new order each epoch
  });

  it('a fresh cursor from a saved JSON state yields the same subsequent batches', () => {
    const a = new DataCursor(seqs, { seed: 9 });
    for (let i = 0; i < 7; i++) a.nextBatch(3); // runs past the end of epoch 0 (N < 21)
    const saved = JSON.parse(JSON.stringify(a.state()));
    const b = new DataCursor(seqs, saved);
    for (let i = 0; i < 10; i++) expect(batchKey(b.nextBatch(3))).toBe(batchKey(a.nextBatch(3)));
    expect(b.state()).toEqual(a.state());
  });

  it('batches are (B, T) with targets shifted by one', () => {
    const b = new DataCursor(seqs, { seed: 1 }).nextBatch(4);
    expect(b).toMatchObject({ B: 4, T: 8 });
    expect(b.ids.length).toBe(32);
    for (let r = 0; r < 4; r++)
      for (let t = 0; t < 7; t++)
        if (b.targets[r * 8 + t] !== IGNORE_INDEX && b.ids[r * 8 + t + 1] !== EOS)
          expect(b.targets[r * 8 + t]).toBe(b.ids[r * 8 + t + 1]);
  });

  it('rejects a malformed state or one past the end of the data', () => {
    expect(() => new DataCursor(seqs, { epoch: -1, index: 0, seed: 1 })).toThrow(/not \{epoch, index, seed\}/);
    expect(() => new DataCursor(seqs, { epoch: 0, index: seqs.N + 1, seed: 1 })).toThrow(
      /dataset or sequence length changed/,
    );
  });
});

describe('prepareDataset', () => {
  const tok = charTokenizer();
  const text = Array.from({ length: 30 }, (_, i) =>
    JSON.stringify({ prompt: `Q${i}:`, completion: `answer ${i}` }),
  ).join('\n');

  it('parses, tokenises with progress, splits and packs; stats and summary agree', async () => {
    const calls: number[][] = [];
    const d = await prepareDataset({ name: 'qa.jsonl', text }, tok, {
      seqLen: 16,
      valFraction: 0.2,
      seed: 3,
      onProgress: (done, total, tokens) => calls.push([done, total, tokens]),
    });
    expect(d.format).toBe('jsonl');
    expect(calls.at(-1)!.slice(0, 2)).toEqual([30, 30]);
    const s = d.stats();
    expect(s.examples).toBe(30);
    expect(d.split.val.length).toBe(6);
    // each example: BOS + "Qi:" + "answer i" ; masked = BOS + prompt
    const tokens = Array.from({ length: 30 }, (_, i) => 1 + `Q${i}:`.length + `answer ${i}`.length).reduce(
      (a, b) => a + b,
    );
    const masked = Array.from({ length: 30 }, (_, i) => 1 + `Q${i}:`.length).reduce((a, b) => a + b);
    expect(s.tokens).toBe(tokens);
    expect(s.maskedFraction).toBeCloseTo(masked / tokens, 12);
    // trained targets in train: completion chars + EOS of each train example
    const trainTargets = d.split.train.reduce((c, e) => c + e.train.reduce((x, f) => x + f, 0) + 1, 0);
    expect(s.trainTargets).toBe(trainTargets);
    expect(d.summary()).toMatchObject({
      name: 'qa.jsonl',
      format: 'jsonl',
      columns: null,
      column: null,
      examples: 30,
      tokens,
      trainSequences: d.trainSequences,
      valSequences: d.valSequences,
    });
    expect(d.summary().preview[0]).toEqual({ prompt: 'Q0:', completion: 'answer 0' });
    expect(d.valSequences).toBeGreaterThan(0);
  });

  it('val batches cover the validation sequences in order; repack changes only T', async () => {
    const d = await prepareDataset({ name: 'qa.jsonl', text }, tok, { seqLen: 16, valFraction: 0.2, seed: 3 });
    const vb = d.valBatches(3);
    expect(vb.map((b) => b.B).reduce((a, b) => a + b)).toBe(d.valSequences);
    expect(vb.flatMap((b) => Array.from(b.ids))).toEqual(Array.from(d.val.ids));
    expect(batchesOf(d.val, 1000)).toHaveLength(1);
    const r = d.repack(8);
    expect(r.seqLen).toBe(8);
    expect(r.stats().trainTargets).toBe(d.stats().trainTargets);
    expect(r.trainSequences).toBeGreaterThan(d.trainSequences);
  });

  it('the same seed gives the same batches; a cursor resumes from a checkpointed state', async () => {
    const d1 = await prepareDataset({ name: 'qa.jsonl', text }, tok, { seqLen: 16, valFraction: 0.2, seed: 3 });
    const d2 = await prepareDataset({ name: 'qa.jsonl', text }, tok, { seqLen: 16, valFraction: 0.2, seed: 3 });
    const c1 = d1.cursor(11);
    const c2 = d2.cursor(11);
    for (let i = 0; i < 5; i++) expect(batchKey(c1.nextBatch(2))).toBe(batchKey(c2.nextBatch(2)));
    const resumed = d2.cursor(11, JSON.parse(JSON.stringify(c1.state())));
    for (let i = 0; i < 5; i++) expect(batchKey(resumed.nextBatch(2))).toBe(batchKey(c1.nextBatch(2)));
    expect(() => d1.cursor(11, { epoch: 'x' })).toThrow(DatasetError);
  });

  it('a plain-text file with one paragraph still gets a validation sequence; chat is masked by the template', async () => {
    const d = await prepareDataset(
      { name: 'one.txt', text: 'a single paragraph without blank lines, '.repeat(10) },
      tok,
      { seqLen: 32, valFraction: 0.1, seed: 0 },
    );
    expect(d.examples.length).toBe(1);
    expect(d.valSequences).toBeGreaterThan(0);
    const chatTok = charTokenizer({
      chatTemplate:
        "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}",
    });
    const line = JSON.stringify({
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'yo' },
      ],
    });
    const c = await prepareDataset({ name: 'c.jsonl', text: [line, line].join('\n') }, chatTok, {
      seqLen: 64,
      valFraction: 0,
      seed: 0,
    });
    expect(Array.from(c.tokenized[0].ids.slice(0, 2))).toEqual([BOS, 'u'.charCodeAt(0) + 3]); // one BOS, from the template
    const trained = c.tokenized[0].ids.filter((_, i) => c.tokenized[0].train[i]);
    expect(chatTok.decode(Array.from(trained))).toBe(' yo\n');
  });

  it('a dataset too small for any training sequence says what to do', async () => {
    await expect(
      prepareDataset({ name: 'x.jsonl', text: '{"text": "c"}' }, charTokenizer({ bos: false, eos: false }), {
        seqLen: 8,
        valFraction: 0,
        seed: 0,
      }),
    ).rejects.toThrow(/no training sequence/);
  });
});
