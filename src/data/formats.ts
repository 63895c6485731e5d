// A data file's text -> examples { prompt, completion }.
//
// Formats:
//   text   plain text, split into documents on blank lines (one or more empty or whitespace-only lines);
//          each document is one example with prompt '' (the loss is on all of it). Lines inside a
//          document keep their newlines. Blank-line splitting gives short, self-contained examples
//          (fortunes, paragraphs, poems) each ending in EOS; paste text without blank lines to keep it
//          one stream.
//   jsonl  one JSON object per line (blank lines ignored), each one of:
//            {"text": ...}                                  plain text, loss on all of it
//            {"prompt": ..., "completion": ...}             loss on the completion
//            {"instruction": ..., "input": ..., "output": ...}   Alpaca, laid out by alpacaPrompt()
//            {"messages": [{"role": ..., "content": ...}, ...]}  chat, loss on the assistant turns
//   json   a JSON array of such objects (how Alpaca-style datasets are often shipped)
//   csv    comma-separated with a header row (RFC 4180 quotes: "a, ""b""" is one field, newlines allowed
//   tsv    inside quotes); one chosen column is the text. TSV is the same with tabs.

import { parseMessages, renderChat, type ChatContext } from './chat';
import { DatasetError, type Example } from './types';

export type DataFormat = 'text' | 'jsonl' | 'json' | 'csv' | 'tsv';
export const DATA_FORMATS: readonly DataFormat[] = ['text', 'jsonl', 'json', 'csv', 'tsv'];

export interface DetectedFormat {
  format: DataFormat;
  /** The header of a CSV/TSV file, else null. */
  columns: string[] | null;
}

export interface ParseOptions {
  /** Overrides detection. */
  format?: DataFormat | string;
  /** The CSV/TSV column holding the text; default "text" if present, else the column with the longest values. */
  column?: string;
  /** Chat rendering (the tokenizer's template); without it chat uses the default layout. */
  chat?: ChatContext;
  /** For error messages and detection by extension. */
  fileName?: string;
}

export interface ParsedDataset {
  format: DataFormat;
  columns: string[] | null;
  column: string | null;
  examples: Example[];
}

/**
 * Alpaca layout (compact: no preamble, which would cost a small model most of its context):
 *   ### Instruction:\n{instruction}\n\n[### Input:\n{input}\n\n]### Response:\n
 * the Input block only when input is non-empty; the completion is {output}.
 */
export function alpacaPrompt(instruction: string, input = ''): string {
  return `### Instruction:\n${instruction}\n\n` + (input.trim() ? `### Input:\n${input}\n\n` : '') + '### Response:\n';
}

const stripBom = (s: string) => (s.charCodeAt(0) === 0xfeff ? s.slice(1) : s);

function extensionOf(fileName: string): string {
  const m = /\.([a-z0-9]+)$/i.exec(fileName);
  return m ? m[1].toLowerCase() : '';
}

function firstLines(text: string, n: number): string[] {
  const out: string[] = [];
  for (const line of text.split(/\r?\n/, 200)) {
    if (line.trim()) out.push(line);
    if (out.length === n) break;
  }
  return out;
}

const isJsonObjectLine = (line: string) => {
  const s = line.trim();
  if (!s.startsWith('{')) return false;
  try {
    const v = JSON.parse(s);
    return !!v && typeof v === 'object' && !Array.isArray(v);
  } catch {
    return false;
  }
};

/** Guesses the format from the extension, then from the content; for CSV/TSV also reads the header. */
export function detectFormat(text: string, fileName = ''): DetectedFormat {
  text = stripBom(text);
  const ext = extensionOf(fileName);
  let format: DataFormat;
  if (ext === 'jsonl' || ext === 'ndjson') format = 'jsonl';
  else if (ext === 'csv') format = 'csv';
  else if (ext === 'tsv' || ext === 'tab') format = 'tsv';
  else if (ext === 'json') format = text.trimStart().startsWith('[') ? 'json' : 'jsonl';
  else if (ext === 'txt' || ext === 'md' || ext === 'text') format = 'text';
  else format = sniffFormat(text);
  return { format, columns: format === 'csv' || format === 'tsv' ? headerOf(text, format) : null };
}

function sniffFormat(text: string): DataFormat {
  const head = text.trimStart();
  if (head.startsWith('[')) {
    try {
      if (Array.isArray(JSON.parse(head))) return 'json';
    } catch {
      /* not JSON */
    }
  }
  const lines = firstLines(text, 5);
  if (lines.length && lines.every(isJsonObjectLine)) return 'jsonl';
  // CSV/TSV only when the first lines (3 or more, unless the file is shorter) agree on a field count > 1
  // and the first looks like a header of short names without spaces around them (prose has commas
  // too, but a space after them).
  if (lines.length >= 2 && (lines.length >= 3 || firstLines(text, 3).length === lines.length)) {
    for (const [format, delim] of [
      ['tsv', '\t'],
      ['csv', ','],
    ] as const) {
      try {
        const rows = parseDelimited(lines.join('\n'), delim);
        const header = rows[0];
        const looksLikeHeader = header.every((c) => c.length > 0 && c.length <= 64 && c === c.trim());
        if (header.length > 1 && looksLikeHeader && rows.every((r) => r.length === header.length)) return format;
      } catch {
        /* not delimited */
      }
    }
  }
  return 'text';
}

function headerOf(text: string, format: 'csv' | 'tsv'): string[] {
  // The header is the first record; parse only the start of a large file.
  const rows = parseDelimited(text.slice(0, 64 * 1024), format === 'csv' ? ',' : '\t', 1);
  return rows.length ? rows[0] : [];
}

/**
 * RFC 4180 fields: `delim`-separated, records end at \n or \r\n, a field in double quotes may hold
 * delimiters, newlines and "" (a quote). Returns the records (at most `maxRows`), each a list of fields.
 * Throws on a quote left open, or text after a closing quote, naming the line.
 */
export function parseDelimited(text: string, delim: string, maxRows = Infinity): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false; // the current row has a quoted field (so `""` alone is a value, not a blank line)
  let line = 1;
  let i = 0;
  const n = text.length;
  const endRow = () => {
    row.push(field);
    field = '';
    // A record that is only an empty unquoted field is a blank line: skip it.
    if (quoted || !(row.length === 1 && row[0] === '')) rows.push(row);
    row = [];
    quoted = false;
  };
  while (i < n && rows.length < maxRows) {
    const c = text[i];
    if (c === '"' && field === '') {
      const startLine = line;
      quoted = true;
      i++;
      for (;;) {
        if (i >= n)
          throw new DatasetError(
            `line ${startLine}: a quoted field is never closed; add the closing " (a quote inside a quoted field is written "")`,
          );
        const q = text[i];
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (q === '\n') line++;
        field += q;
        i++;
      }
      const next = text[i];
      if (i < n && next !== delim && next !== '\n' && next !== '\r') {
        throw new DatasetError(
          `line ${line}: text after a closing quote; quote the whole field and write a quote inside it as ""`,
        );
      }
      if (i >= n || next !== delim) continue; // the row ends at the newline below, or at the end
      row.push(field);
      field = '';
      i++;
    } else if (c === delim) {
      row.push(field);
      field = '';
      i++;
    } else if (c === '\n' || c === '\r') {
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      endRow();
    } else {
      field += c;
      i++;
    }
  }
  if (rows.length < maxRows && (field !== '' || row.length || quoted)) endRow();
  return rows;
}

/** Above this share of U+FFFD (bytes that were not UTF-8) a file is taken for binary, not text. */
export const MAX_REPLACEMENT_SHARE = 0.1;

/**
 * Refuses text that is really a binary file (or UTF-16) read as UTF-8: any NUL character, or more than
 * MAX_REPLACEMENT_SHARE of the characters U+FFFD. `name` names the file in the message.
 */
export function checkLooksLikeText(text: string, name: string): void {
  const nul = text.indexOf('\0');
  if (nul >= 0) {
    // UTF-16 text read as UTF-8 has a NUL beside every ASCII character.
    let nuls = 0;
    const head = Math.min(text.length, 4096);
    for (let i = 0; i < head; i++) if (text.charCodeAt(i) === 0) nuls++;
    const utf16 = nuls >= head / 4;
    throw new DatasetError(
      `${name} looks binary, not text: it holds NUL bytes (the first at character ${nul})` +
        (utf16
          ? '; it may be UTF-16 text, so save it as UTF-8 and load it again'
          : '; choose a text file (.txt, .jsonl, .json, .csv or .tsv saved as UTF-8)'),
    );
  }
  let bad = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 0xfffd) bad++;
  if (bad > MAX_REPLACEMENT_SHARE * text.length) {
    throw new DatasetError(
      `${name} looks binary, not text: ${bad} of its ${text.length} characters (${((100 * bad) / text.length).toFixed(1)}%) are not valid UTF-8; choose a text file, or save it as UTF-8 if it is text in another encoding (e.g. Latin-1)`,
    );
  }
}

/** Text -> examples in `format` (detected when not given). Errors name the file when opts.fileName is set. */
export function parseExamples(text: string, opts: ParseOptions = {}): ParsedDataset {
  const name = opts.fileName ? `"${opts.fileName}"` : 'the dataset';
  try {
    return parseExamplesOf(text, name, opts);
  } catch (e) {
    // The format parsers name the line; put the file in front of it.
    if (e instanceof DatasetError && opts.fileName && !e.message.includes(name))
      throw new DatasetError(`${name}, ${e.message}`);
    throw e;
  }
}

function parseExamplesOf(text: string, name: string, opts: ParseOptions): ParsedDataset {
  text = stripBom(text);
  if (!text.trim()) throw new DatasetError(`${name} is empty; choose a file that holds text`);
  checkLooksLikeText(text, name);
  let format: DataFormat;
  if (opts.format === undefined || opts.format === '' || opts.format === 'auto')
    format = detectFormat(text, opts.fileName).format;
  else if ((DATA_FORMATS as readonly string[]).includes(opts.format)) format = opts.format as DataFormat;
  else throw new DatasetError(`unknown format "${opts.format}"; use one of ${DATA_FORMATS.join(', ')}`);

  let out: ParsedDataset;
  if (format === 'text') out = { format, columns: null, column: null, examples: parseText(text) };
  else if (format === 'jsonl') out = { format, columns: null, column: null, examples: parseJsonl(text, opts) };
  else if (format === 'json') out = { format, columns: null, column: null, examples: parseJsonArray(text, opts) };
  else out = parseTable(text, format, opts);
  if (!out.examples.some((e) => (e.segments ? e.segments.some((s) => s.train && s.text) : e.completion))) {
    throw new DatasetError(
      `${name} has no text to train on (every example's completion is empty); check the format${format === 'csv' || format === 'tsv' ? ' and the column' : ''}`,
    );
  }
  return out;
}

function parseText(text: string): Example[] {
  return text
    .split(/\r?\n(?:[ \t]*\r?\n)+/)
    .map((d) => d.replace(/\r\n/g, '\n').replace(/^\n+|\s+$/g, ''))
    .filter((d) => d.trim().length > 0)
    .map((d) => ({ prompt: '', completion: d }));
}

const str = (v: unknown) => typeof v === 'string';

/** One JSON record (a JSONL line or an array element) -> an example; `where` names it in errors. */
function recordToExample(v: unknown, where: string, opts: ParseOptions): Example {
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new DatasetError(
      `${where}: expected a JSON object like {"text": "..."}, got ${Array.isArray(v) ? 'a list' : JSON.stringify(v)}`,
    );
  const r = v as Record<string, unknown>;
  if ('messages' in r) {
    const messages = parseMessages(r.messages, where);
    let segments;
    try {
      segments = renderChat(messages, opts.chat ?? { template: null, specialTokens: {} });
    } catch (e) {
      if (e instanceof DatasetError) throw new DatasetError(`${where}: ${e.message}`);
      throw e;
    }
    const first = segments.findIndex((s) => s.train);
    return {
      prompt: segments
        .slice(0, first)
        .map((s) => s.text)
        .join(''),
      completion: segments
        .slice(first)
        .map((s) => s.text)
        .join(''),
      segments,
      addSpecial: !opts.chat?.template, // a template writes its own BOS
      eos: !opts.chat?.template, // ... and ends its own turns
    };
  }
  if ('prompt' in r || 'completion' in r) {
    if (!str(r.prompt) || !str(r.completion))
      throw new DatasetError(`${where}: "prompt" and "completion" must both be strings`);
    return { prompt: r.prompt as string, completion: r.completion as string };
  }
  if ('instruction' in r || 'output' in r) {
    if (!str(r.instruction) || !str(r.output))
      throw new DatasetError(`${where}: Alpaca records need string "instruction" and "output" ("input" is optional)`);
    if (r.input !== undefined && r.input !== null && !str(r.input))
      throw new DatasetError(`${where}: "input" must be a string`);
    return {
      prompt: alpacaPrompt(r.instruction as string, (r.input as string | undefined) ?? ''),
      completion: r.output as string,
    };
  }
  if ('text' in r) {
    if (!str(r.text)) throw new DatasetError(`${where}: "text" must be a string`);
    return { prompt: '', completion: r.text as string };
  }
  const keys = Object.keys(r)
    .slice(0, 6)
    .map((k) => `"${k}"`)
    .join(', ');
  throw new DatasetError(
    `${where}: no known fields (found ${keys || 'none'}); use "text", "prompt"+"completion", "instruction"+"output", or "messages"`,
  );
}

function parseJsonl(text: string, opts: ParseOptions): Example[] {
  const out: Example[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new DatasetError(
        `line ${i + 1}: not valid JSON (${(e as Error).message}); each line must be one complete JSON object`,
      );
    }
    out.push(recordToExample(v, `line ${i + 1}`, opts));
  }
  return out;
}

function parseJsonArray(text: string, opts: ParseOptions): Example[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new DatasetError(
      `not valid JSON (${(e as Error).message}); a .json dataset must be one array of objects (or use JSONL, one object per line)`,
    );
  }
  if (!Array.isArray(v))
    throw new DatasetError(
      'a .json dataset must be an array of objects like [{"text": "..."}]; for one object per line use JSONL',
    );
  return v.map((r, i) => recordToExample(r, `item ${i + 1}`, opts));
}

function parseTable(text: string, format: 'csv' | 'tsv', opts: ParseOptions): ParsedDataset {
  const rows = parseDelimited(text, format === 'csv' ? ',' : '\t');
  if (rows.length < 2)
    throw new DatasetError(
      `the ${format.toUpperCase()} file has ${rows.length ? 'only a header row' : 'no rows'}; it needs a header row and at least one data row`,
    );
  const columns = rows[0].map((c) => c.trim());
  let col: number;
  if (opts.column !== undefined && opts.column !== '') {
    col = columns.indexOf(opts.column.trim());
    if (col < 0)
      throw new DatasetError(
        `the ${format.toUpperCase()} file has no column "${opts.column}"; its columns are ${columns.map((c) => `"${c}"`).join(', ')} — pick one of them`,
      );
  } else {
    col = columns.indexOf('text');
    if (col < 0) {
      // The column with the longest values is most likely the text.
      const len = columns.map((_, j) => rows.slice(1).reduce((s, r) => s + (r[j]?.length ?? 0), 0));
      col = len.indexOf(Math.max(...len));
    }
  }
  const examples: Example[] = [];
  for (let i = 1; i < rows.length; i++) {
    const v = rows[i][col];
    if (v === undefined)
      throw new DatasetError(
        `row ${i + 1} has ${rows[i].length} fields but the header has ${columns.length}; quote fields that contain ${format === 'csv' ? 'commas' : 'tabs'}`,
      );
    if (v.trim()) examples.push({ prompt: '', completion: v });
  }
  return { format, columns, column: columns[col], examples };
}
