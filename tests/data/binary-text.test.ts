// A binary file (or UTF-16 text) picked as a dataset is refused with a message that names the file and
// says it looks binary; Latin-1 prose with a few accents is still read (its bad bytes are a small share).

import { describe, expect, it } from 'vitest';
import { MAX_REPLACEMENT_SHARE, parseExamples } from '../../src/data/formats';
import { DatasetError } from '../../src/data/types';

/** What the page does with a picked file: File.text() decodes UTF-8 with replacement characters. */
const asPageReadsIt = (bytes: Uint8Array) => new TextDecoder('utf-8').decode(bytes);

function errorOf(f: () => unknown): DatasetError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return e as DatasetError;
  }
  throw new Error('expected a DatasetError');
}

describe('binary files given as text datasets', () => {
  it('refuses a PNG-like file renamed .txt, naming it', () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
    const m = errorOf(() => parseExamples(asPageReadsIt(png), { fileName: 'photo.txt' })).message;
    expect(m).toMatch(/^"photo\.txt" looks binary, not text: it holds NUL bytes \(the first at character 8\)/);
  });

  it('refuses bytes without NULs when most of them are not UTF-8', () => {
    const bytes = Uint8Array.from({ length: 3000 }, (_, i) => 0x80 + ((i * 37) % 120)); // high bytes only
    const m = errorOf(() => parseExamples(asPageReadsIt(bytes), { fileName: 'blob.bin' })).message;
    expect(m).toMatch(
      /^"blob\.bin" looks binary, not text: \d+ of its \d+ characters \(\d+\.\d%\) are not valid UTF-8/,
    );
  });

  it('says UTF-16 text may be UTF-16', () => {
    const text = 'hello world, this is UTF-16 text\n\nand a second document';
    const u16 = new Uint8Array(2 + text.length * 2);
    u16.set([0xff, 0xfe]);
    for (let i = 0; i < text.length; i++) u16[2 + 2 * i] = text.charCodeAt(i);
    const m = errorOf(() => parseExamples(asPageReadsIt(u16), { fileName: 'notes.txt' })).message;
    expect(m).toMatch(/"notes\.txt" looks binary.*may be UTF-16 text, so save it as UTF-8/);
  });

  it('reads Latin-1 prose whose few accented bytes fall under the threshold', () => {
    const latin1 = Uint8Array.from('Le café est très bon.\n\nÀ bientôt, dit-il.', (c) => c.charCodeAt(0));
    const text = asPageReadsIt(latin1);
    const bad = [...text].filter((c) => c === '\ufffd').length;
    expect(bad).toBe(4);
    expect(bad / text.length).toBeLessThan(MAX_REPLACEMENT_SHARE);
    expect(parseExamples(text, { fileName: 'fr.txt' }).examples).toHaveLength(2);
  });

  it('names the file in front of a line error when the file name is known', () => {
    const m = errorOf(() => parseExamples('{"text": "a"}\n{"text": 5}\n', { fileName: 'd.jsonl' })).message;
    expect(m).toBe('"d.jsonl", line 2: "text" must be a string');
  });
});
