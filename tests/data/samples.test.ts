// The sample datasets in public/datasets load, tokenise with the bundled model's tokenizer, and carry
// the loss exactly where they should; long plain text encoded in pieces equals encoding it whole.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prepareDataset } from '../../src/data/dataset';
import { detectFormat } from '../../src/data/formats';
import { joinRuleOf, LONG_CHARS, tokenizeExample, tokenizeExamples } from '../../src/data/tokenize';
import { TextTokenizer } from '../../src/loaders/tokenizer';
import { charTokenizer } from './chartok';

const ROOT = join(__dirname, '..', '..');
const MODEL = join(ROOT, 'public', 'models', 'weblora-llama-1m');
const DATASETS = join(ROOT, 'public', 'datasets');

const tok = new TextTokenizer(
  JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8')),
  JSON.parse(readFileSync(join(MODEL, 'tokenizer_config.json'), 'utf8')),
);

interface IndexEntry {
  name: string;
  file: string;
  format: string;
  description: string;
  licence: string;
  source: string;
  bytes: number;
  examples: number;
}
const index = JSON.parse(readFileSync(join(DATASETS, 'index.json'), 'utf8')) as IndexEntry[];

/** The decoded runs of consecutive trained tokens. The decoder drops one leading space per run. */
function trainedRuns(ids: Uint32Array, train: Uint8Array): string[] {
  const runs: string[] = [];
  let cur: number[] = [];
  for (let i = 0; i <= ids.length; i++) {
    if (i < ids.length && train[i]) cur.push(ids[i]);
    else if (cur.length) {
      runs.push(tok.decode(cur));
      cur = [];
    }
  }
  return runs;
}

describe('sample datasets', () => {
  it('index.json lists 3 files with every field, each file within 400 KB', () => {
    expect(index.map((d) => d.file)).toEqual(['fortunes.txt', 'jargon-define.jsonl', 'courtroom-chat.jsonl']);
    for (const d of index) {
      for (const k of ['name', 'file', 'format', 'description', 'licence', 'source'] as const)
        expect(d[k].length).toBeGreaterThan(3);
      const bytes = readFileSync(join(DATASETS, d.file)).length;
      expect(bytes).toBe(d.bytes);
      expect(bytes).toBeLessThanOrEqual(400 * 1024);
      const text = readFileSync(join(DATASETS, d.file), 'utf8');
      expect(detectFormat(text, d.file).format).toBe(d.format);
      expect(detectFormat(text, d.name).format).toBe(d.format); // by content alone (the page passes the display name)
    }
  });

  for (const d of index) {
    it(`${d.file}: tokenises with the bundled tokenizer, loss exactly on the completions`, async () => {
      const text = readFileSync(join(DATASETS, d.file), 'utf8');
      const data = await prepareDataset({ name: d.file, text }, tok, { seqLen: 128, valFraction: 0.05, seed: 0 });
      const s = data.stats();
      expect(s.examples).toBe(d.examples);
      expect(data.trainSequences).toBeGreaterThan(50);
      expect(data.valSequences).toBeGreaterThan(2);
      expect(data.tokenized.every((t) => !t.ids.includes(0))).toBe(true); // no <unk>: byte fallback covers all
      for (let i = 0; i < data.examples.length; i++) {
        const ex = data.examples[i];
        const t = data.tokenized[i];
        const want = ex.segments ? ex.segments.filter((g) => g.train).map((g) => g.text) : [ex.completion];
        expect(trainedRuns(t.ids, t.train)).toEqual(want.map((w) => w.replace(/^ /, '')));
      }
      if (d.file === 'courtroom-chat.jsonl') {
        // Rendered with the tokenizer's template: one BOS (from the template), "User: ...\nAssistant: ...\n".
        const first = data.tokenized[0];
        expect(first.ids[0]).toBe(tok.bosId);
        expect(first.ids.filter((id) => id === tok.bosId).length).toBe(1);
        expect(tok.decode(Array.from(first.ids))).toBe(
          "<s> User: Are you married?\nAssistant: No, I'm divorced.\nUser: And what did your husband do before you divorced him?\nAssistant: A lot of things I didn't know about.\n",
        );
        expect(s.maskedFraction).toBeGreaterThan(0.3);
      } else if (d.file === 'jargon-define.jsonl') {
        expect(tok.decode(Array.from(data.tokenized[1].ids))).toBe(
          '<s> Define: 1TBS\nThe “One True Brace Style”; see indent style.',
        );
      } else {
        expect(s.maskedFraction).toBeCloseTo(s.examples / s.tokens, 12); // only the BOS of each fortune
      }
    });
  }
});

describe('long plain text', () => {
  it('the bundled tokenizer joins pieces with drop-space, the char tokenizer with keep-space', () => {
    expect(joinRuleOf(tok)).toBe('drop-space');
    expect(joinRuleOf(charTokenizer())).toBe('keep-space');
  });

  it('encoded in pieces, with progress between them, equals encoding it whole', async () => {
    // ~5 pieces of fortunes joined into one paragraph (no blank lines).
    const text = readFileSync(join(DATASETS, 'fortunes.txt'), 'utf8')
      .slice(0, 5 * LONG_CHARS)
      .replace(/\s+/g, ' ')
      .trim();
    for (const t of [tok, charTokenizer()]) {
      const ex = { prompt: '', completion: text };
      const reports: number[] = [];
      const [pieces] = await tokenizeExamples([ex], t, { sliceMs: -1, onProgress: (p) => reports.push(p.tokens) });
      const whole = tokenizeExample(ex, t);
      expect(Array.from(pieces.ids)).toEqual(Array.from(whole.ids));
      expect(Array.from(pieces.train)).toEqual(Array.from(whole.train));
      expect(reports.length).toBeGreaterThan(4); // a report between pieces, not just at the end
    }
  });
});
