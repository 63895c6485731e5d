// Parsing data files into examples: every format, detection, and the errors for malformed input.

import { describe, expect, it } from 'vitest';
import { alpacaPrompt, detectFormat, parseDelimited, parseExamples } from '../../src/data/formats';
import { DatasetError } from '../../src/data/types';

const errorOf = (f: () => unknown): DatasetError => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return e as DatasetError;
  }
  throw new Error('expected a DatasetError');
};

describe('detectFormat', () => {
  it('goes by the file extension first', () => {
    expect(detectFormat('hello', 'a.txt')).toEqual({ format: 'text', columns: null });
    expect(detectFormat('{"text":"a"}', 'a.jsonl')).toEqual({ format: 'jsonl', columns: null });
    expect(detectFormat('{"text":"a"}\n{"text":"b"}', 'a.json')).toEqual({ format: 'jsonl', columns: null });
    expect(detectFormat('[{"text":"a"}]', 'a.json')).toEqual({ format: 'json', columns: null });
    expect(detectFormat('id,text\n1,hi', 'a.csv')).toEqual({ format: 'csv', columns: ['id', 'text'] });
    expect(detectFormat('id\ttext\n1\thi', 'a.tsv')).toEqual({ format: 'tsv', columns: ['id', 'text'] });
  });

  it('sniffs the content when the extension says nothing', () => {
    expect(detectFormat('{"prompt":"a","completion":"b"}\n\n{"text":"c"}\n').format).toBe('jsonl');
    expect(detectFormat(' [ {"text": "a"} ]').format).toBe('json');
    expect(detectFormat('"name","quote"\n"a","b, c"\n"d","e"\n')).toEqual({
      format: 'csv',
      columns: ['name', 'quote'],
    });
    expect(detectFormat('a\tb\n1\t2\n').format).toBe('tsv');
    // Prose with commas is not CSV: its lines disagree on the field count.
    expect(
      detectFormat('Call me Ishmael. Some years ago, never mind how long,\nhaving little or no money in my purse\n')
        .format,
    ).toBe('text');
    expect(detectFormat('{ not json\nat all').format).toBe('text');
    // Even when a few lines happen to agree on their commas, a long first "header" field is prose.
    expect(
      detectFormat(
        'It was the best of times, it was the worst of times, it was the age of wisdom\nHe said, she said, they said\nOne, two, three\n',
      ).format,
    ).toBe('text');
  });

  it('skips a UTF-8 byte-order mark', () => {
    expect(detectFormat('\ufeffq,a\n1,2\n', 'x.csv').columns).toEqual(['q', 'a']);
  });
});

describe('plain text', () => {
  it('splits documents on blank lines, keeps newlines inside one', () => {
    const p = parseExamples('first line\nsecond line\n\n\n  \nthird\r\n\r\nfourth  \n', { format: 'text' });
    expect(p.examples).toEqual([
      { prompt: '', completion: 'first line\nsecond line' },
      { prompt: '', completion: 'third' },
      { prompt: '', completion: 'fourth' },
    ]);
  });

  it('keeps text without blank lines as one document, however long', () => {
    const long = Array.from({ length: 20000 }, (_, i) => `line ${i}`).join('\n');
    const p = parseExamples(long, { fileName: 'big.txt' });
    expect(p.examples.length).toBe(1);
    expect(p.examples[0].completion.length).toBe(long.length);
  });

  it('rejects an empty or whitespace-only file, saying so', () => {
    expect(errorOf(() => parseExamples('', { fileName: 'e.txt' })).message).toMatch(/"e.txt" is empty/);
    expect(errorOf(() => parseExamples(' \n\n\t\n', { format: 'text' })).message).toMatch(/empty/);
  });
});

describe('JSONL', () => {
  it('reads text, prompt/completion, Alpaca and chat lines', () => {
    const text = [
      '{"text": "plain"}',
      '',
      '{"prompt": "Q: 2+2?\\n", "completion": "4"}',
      '{"instruction": "Add.", "input": "2 and 2", "output": "4"}',
      '{"instruction": "Say hi.", "output": "hi"}',
      '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}',
    ].join('\n');
    const p = parseExamples(text, { fileName: 'd.jsonl' });
    expect(p.format).toBe('jsonl');
    expect(p.examples.slice(0, 4)).toEqual([
      { prompt: '', completion: 'plain' },
      { prompt: 'Q: 2+2?\n', completion: '4' },
      { prompt: '### Instruction:\nAdd.\n\n### Input:\n2 and 2\n\n### Response:\n', completion: '4' },
      { prompt: '### Instruction:\nSay hi.\n\n### Response:\n', completion: 'hi' },
    ]);
    // Chat without a template: the default layout, loss on the assistant turn.
    expect(p.examples[4].segments).toEqual([
      { text: '<|user|>\nhi\n<|assistant|>\n', train: false },
      { text: 'hello\n', train: true },
    ]);
    expect(p.examples[4].prompt).toBe('<|user|>\nhi\n<|assistant|>\n');
    expect(p.examples[4].completion).toBe('hello\n');
  });

  it('alpacaPrompt omits an empty input block', () => {
    expect(alpacaPrompt('Do it.', '  ')).toBe('### Instruction:\nDo it.\n\n### Response:\n');
  });

  it('names the line and the problem for malformed lines', () => {
    expect(errorOf(() => parseExamples('{"text": "a"}\n{"text": "b",}\n', { format: 'jsonl' })).message).toMatch(
      /^line 2: not valid JSON .*one complete JSON object/,
    );
    expect(errorOf(() => parseExamples('{"text": "a"}\n\n[1, 2]\n', { format: 'jsonl' })).message).toMatch(
      /^line 3: expected a JSON object/,
    );
    expect(errorOf(() => parseExamples('{"text": 5}', { format: 'jsonl' })).message).toMatch(
      /^line 1: "text" must be a string/,
    );
    expect(errorOf(() => parseExamples('{"prompt": "a"}', { format: 'jsonl' })).message).toMatch(
      /"prompt" and "completion" must both be strings/,
    );
    expect(
      errorOf(() => parseExamples('{"instruction": "a", "output": "b", "input": 3}', { format: 'jsonl' })).message,
    ).toMatch(/"input" must be a string/);
    expect(errorOf(() => parseExamples('{"question": "a", "answer": "b"}', { format: 'jsonl' })).message).toMatch(
      /no known fields \(found "question", "answer"\); use "text"/,
    );
    expect(errorOf(() => parseExamples('{"messages": []}', { format: 'jsonl' })).message).toMatch(
      /^line 1: "messages" must be a non-empty list/,
    );
    expect(errorOf(() => parseExamples('{"messages": [{"role": "user"}]}', { format: 'jsonl' })).message).toMatch(
      /message 1 must be an object with string "role" and "content"/,
    );
    expect(
      errorOf(() => parseExamples('{"messages": [{"role": "user", "content": "hi"}]}', { format: 'jsonl' })).message,
    ).toMatch(/no "assistant" message/);
  });

  it('rejects a dataset whose completions are all empty', () => {
    expect(errorOf(() => parseExamples('{"prompt": "a", "completion": ""}\n', { format: 'jsonl' })).message).toMatch(
      /no text to train on/,
    );
  });
});

describe('JSON array', () => {
  it('reads an array of records', () => {
    const p = parseExamples('[{"instruction": "i", "output": "o"}, {"text": "t"}]', { fileName: 'alpaca.json' });
    expect(p.format).toBe('json');
    expect(p.examples.map((e) => e.completion)).toEqual(['o', 't']);
  });

  it('says what is wrong with malformed JSON or a non-array', () => {
    expect(errorOf(() => parseExamples('[{"text": "a"}', { format: 'json' })).message).toMatch(/not valid JSON/);
    expect(errorOf(() => parseExamples('{"text": "a"}', { format: 'json' })).message).toMatch(/must be an array/);
    expect(errorOf(() => parseExamples('[{"text": "a"}, 7]', { format: 'json' })).message).toMatch(
      /^item 2: expected a JSON object/,
    );
  });
});

describe('CSV / TSV', () => {
  it('parses quotes, doubled quotes, newlines in quotes, CRLF, and blank lines', () => {
    const rows = parseDelimited('a,b,c\r\n"x, y","say ""hi""","two\nlines"\n\n1,,3\n"",only\n', ',');
    expect(rows).toEqual([
      ['a', 'b', 'c'],
      ['x, y', 'say "hi"', 'two\nlines'],
      ['1', '', '3'],
      ['', 'only'],
    ]);
    expect(parseDelimited('a\n""\n', ',')).toEqual([['a'], ['']]);
    expect(parseDelimited('q\tr\n"a\tb"\tc', '\t')).toEqual([
      ['q', 'r'],
      ['a\tb', 'c'],
    ]);
  });

  it('errors on an unclosed quote or text after a closing quote, naming the line', () => {
    expect(errorOf(() => parseDelimited('a,b\n1,2\n3,"open\nstill open', ',')).message).toMatch(
      /^line 3: a quoted field is never closed/,
    );
    expect(errorOf(() => parseDelimited('a,b\n"x"y,2', ',')).message).toMatch(/^line 2: text after a closing quote/);
  });

  it('takes the chosen column, else "text", else the longest one', () => {
    const csv = 'id,text,label\n1,"Hello, world",a\n2,Second,b\n3,,c\n';
    const p = parseExamples(csv, { fileName: 'd.csv' });
    expect(p).toMatchObject({ format: 'csv', columns: ['id', 'text', 'label'], column: 'text' });
    expect(p.examples).toEqual([
      { prompt: '', completion: 'Hello, world' },
      { prompt: '', completion: 'Second' },
    ]);
    expect(parseExamples(csv, { fileName: 'd.csv', column: 'label' }).examples.map((e) => e.completion)).toEqual([
      'a',
      'b',
      'c',
    ]);
    const noText = parseExamples('n,quote\n1,A long quotation here\n2,Another one\n', { format: 'csv' });
    expect(noText.column).toBe('quote');
    const tsv = parseExamples('k\tv\nx\tthe value\n', { format: 'tsv', column: 'v' });
    expect(tsv.examples).toEqual([{ prompt: '', completion: 'the value' }]);
  });

  it('says which columns exist when the chosen one does not', () => {
    const m = errorOf(() => parseExamples('id,text\n1,a\n', { format: 'csv', column: 'body' })).message;
    expect(m).toMatch(/no column "body"; its columns are "id", "text" — pick one of them/);
  });

  it('errors on a header-only file and on a row too short for the column', () => {
    expect(errorOf(() => parseExamples('id,text\n', { format: 'csv' })).message).toMatch(/only a header row/);
    expect(errorOf(() => parseExamples('id,x,text\n1,2,a\n2,b\n', { format: 'csv', column: 'text' })).message).toMatch(
      /^row 3 has 2 fields but the header has 3/,
    );
  });

  it('rejects an unknown format name', () => {
    expect(errorOf(() => parseExamples('a', { format: 'parquet' })).message).toMatch(
      /unknown format "parquet"; use one of text, jsonl, json, csv, tsv/,
    );
  });
});
