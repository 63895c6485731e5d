// Fuzzing dataset files in every format through the data pipeline as the studio runs it (bytes decoded
// as File.text() does, then src/data/dataset.ts's prepareDataset: parse, tokenise, split, pack): binary
// files, UTF-16 and Latin-1 text, NUL bytes, a 10 MB single line, empty and whitespace-only files,
// CSV/TSV with ragged rows and quotes, JSONL with every kind of bad line, and random mutations of valid
// files. Each must finish in its bound and succeed or throw an error naming the file. Seeded.

import { describe, it } from 'vitest';
import { prepareDataset } from '../../src/data/dataset';
import { charTokenizer } from '../data/chartok';
import { enc, mutateBytes, prng, report, runCase, tally } from './harness';

const SEED = 0xda7a;
const tok = charTokenizer({ bos: false });
const asFileText = (bytes: Uint8Array) => new TextDecoder('utf-8').decode(bytes);

const VALID: Record<string, string> = {
  'notes.txt': 'First document, a few words.\n\nSecond one\nwith two lines.\n\n\nThird.',
  'data.jsonl': [
    '{"text": "plain text"}',
    '{"prompt": "Q: 2+2?", "completion": " 4"}',
    '{"instruction": "Say hi", "input": "", "output": "hi"}',
    '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}',
  ].join('\n'),
  'data.json': '[{"text": "one"}, {"prompt": "a", "completion": "b"}]',
  'table.csv': 'id,text,label\n1,"hello, world",x\n2,"she said ""hi""",y\n3,"multi\nline",z\n',
  'table.tsv': 'id\ttext\n1\thello\n2\tworld\n',
  noext: '{"text": "sniffed as jsonl"}\n{"text": "second"}',
};

async function prepare(name: string, bytes: Uint8Array, format?: string): Promise<void> {
  await prepareDataset({ name, text: asFileText(bytes), format }, tok, { seqLen: 16, valFraction: 0.1, seed: 1 });
}

function utf16le(s: string, bom = true): Uint8Array {
  const out = new Uint8Array((bom ? 2 : 0) + 2 * s.length);
  if (bom) out.set([0xff, 0xfe]);
  for (let i = 0; i < s.length; i++) {
    out[(bom ? 2 : 0) + 2 * i] = s.charCodeAt(i) & 0xff;
    out[(bom ? 2 : 0) + 2 * i + 1] = s.charCodeAt(i) >> 8;
  }
  return out;
}

describe('fuzz: datasets', () => {
  it('every format: hostile files and mutations of valid ones', async () => {
    const r = prng(SEED);
    const t = tally('datasets');
    // A hang bound, not a speed test: the 10 MB single lines take ~5 s of CPU; 23-50 s were seen at load 20 on 2 cores.
    const spec = (label: string, file: string) => ({ label, file, boundMs: 60000 });
    const hostile: [string, Uint8Array, string?][] = [
      ['binary.txt', Uint8Array.from({ length: 4096 }, () => r.int(256))],
      ['binary.jsonl', Uint8Array.from({ length: 4096 }, () => r.int(256))],
      ['image.csv', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52])],
      ['utf16.txt', utf16le('hello\n\nworld')],
      ['utf16-nobom.jsonl', utf16le('{"text": "a"}\n', false)],
      ['utf16.csv', utf16le('id,text\n1,a\n')],
      ['latin1.txt', Uint8Array.from('Le café est très bon.\n\nÀ bientôt.', (c) => c.charCodeAt(0))],
      ['latin1-heavy.txt', Uint8Array.from('éàèùâêîôûçëïü'.repeat(50), (c) => c.charCodeAt(0))],
      ['nul-in-middle.jsonl', enc('{"text": "a\u0000b"}\n')],
      ['escaped-nul.jsonl', enc('{"text": "a\\u0000b"}\n')],
      ['one-line-10MB.txt', enc('word '.repeat(2 << 20))],
      ['one-line-10MB.jsonl', enc(JSON.stringify({ text: 'x'.repeat(10 << 20) }))],
      ['one-line-10MB.csv', enc('text\n' + 'y'.repeat(10 << 20))],
      ['empty.txt', new Uint8Array(0)],
      ['empty.jsonl', new Uint8Array(0)],
      ['spaces.txt', enc(' \t\n\r\n   \n')],
      ['bom-only.txt', new Uint8Array([0xef, 0xbb, 0xbf])],
      ['newlines.csv', enc('\n\n\n\n')],
      ['header-only.csv', enc('id,text\n')],
      ['ragged.csv', enc('a,b,c\n1,2\n3,4,5,6\n')],
      ['ragged-text.csv', enc('id,text\n1\n')],
      ['open-quote.csv', enc('id,text\n1,"never closed\n2,x\n')],
      ['after-quote.csv', enc('id,text\n1,"a"b\n')],
      ['only-quotes.csv', enc('""""""\n""\n')],
      ['quote-storm.tsv', enc('"'.repeat(100_000))],
      [
        'many-columns.csv',
        enc(Array.from({ length: 5000 }, (_, i) => `c${i}`).join(',') + '\n' + '1,'.repeat(4999) + 'x\n'),
      ],
      ['crlf.csv', enc('id,text\r\n1,"a\r\nb"\r\n2,c\r\n')],
      ['bad-json.jsonl', enc('{"text": "a"}\n{"text": "b",}\n')],
      ['list-line.jsonl', enc('[1, 2]\n')],
      ['null-line.jsonl', enc('null\n')],
      ['number-line.jsonl', enc('42\n')],
      ['string-line.jsonl', enc('"text"\n')],
      ['nested-deep.jsonl', enc('{"text": ' + '['.repeat(50_000) + ']'.repeat(50_000) + '}\n')],
      ['proto.jsonl', enc('{"__proto__": {"text": "x"}}\n')],
      ['text-number.jsonl', enc('{"text": 5}\n')],
      ['text-null.jsonl', enc('{"text": null}\n')],
      ['prompt-only.jsonl', enc('{"prompt": "a"}\n')],
      ['messages-string.jsonl', enc('{"messages": "hi"}\n')],
      ['messages-empty.jsonl', enc('{"messages": []}\n')],
      ['messages-no-assistant.jsonl', enc('{"messages": [{"role": "user", "content": "x"}]}\n')],
      ['messages-bad-role.jsonl', enc('{"messages": [{"role": 1, "content": "x"}]}\n')],
      [
        'messages-huge.jsonl',
        enc(
          JSON.stringify({
            messages: Array.from({ length: 2_000 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: 'm' })),
          }) + '\n',
        ),
      ],
      ['unknown-fields.jsonl', enc('{"question": "a", "answer": "b"}\n')],
      ['truncated.jsonl', enc('{"text": "a fine first line"}\n{"text": "cut off here\n')],
      ['object.json', enc('{"text": "not a list"}')],
      ['list-of-numbers.json', enc('[1, 2, 3]')],
      ['empty-list.json', enc('[]')],
      ['lone-surrogate.txt', enc('"\ud800" alone\n\nnext')],
      ['control-chars.txt', Uint8Array.from({ length: 2000 }, (_, i) => 1 + (i % 31))],
    ];
    for (const [name, bytes] of hostile) await runCase(t, spec(`hostile: ${name}`, name), () => prepare(name, bytes));
    // Every format forced on every valid file (e.g. a CSV read as JSONL).
    for (const [name, text] of Object.entries(VALID))
      for (const format of ['text', 'jsonl', 'json', 'csv', 'tsv', 'parquet'])
        await runCase(t, spec(`${name} as ${format}`, name), () => prepare(name, enc(text), format));
    // Random mutations of the valid files.
    const names = Object.keys(VALID);
    for (let i = 0; i < 150; i++) {
      const name = r.pick(names);
      let m = mutateBytes(r, enc(VALID[name]));
      const whats = [m.what];
      for (let k = r.int(3); k > 0; k--) {
        m = mutateBytes(r, m.bytes);
        whats.push(m.what);
      }
      await runCase(t, spec(`seed ${SEED} ${name} #${i}: ${whats.join('; ')}`, name), () => prepare(name, m.bytes));
    }
    report(t);
  }, 300_000); // 235 cases, two of 10 MB: ~60 s quiet, more when the machine is shared
});
