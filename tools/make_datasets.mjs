#!/usr/bin/env node
// Regenerates the sample datasets in public/datasets/ from Debian packages, byte for byte:
//   fortunes.txt            plain text: short fortunes (Debian `fortunes`, BSD), one per blank-line block
//   jargon-define.jsonl     prompt/completion: "Define: <term>\n" -> the Jargon File's first paragraph
//                           (Debian `jargon-text`, public domain)
//   courtroom-chat.jsonl    chat: the Q:/A: fortunes as user/assistant turns (Debian `fortunes`, BSD)
// and index.json describing them. Needs: apt-get install fortunes jargon-text
//
//   node tools/make_datasets.mjs [--check]     (--check: fail if the committed files differ)

import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'public', 'datasets');
const FORTUNES = '/usr/share/games/fortunes';
const JARGON = '/usr/share/doc/jargon-text/jargon.txt.gz';
const MAX_BYTES = 400 * 1024;

function need(path, pkg) {
  if (!existsSync(path)) throw new Error(`${path} is missing: apt-get install ${pkg}`);
}

// ---------------------------------------------------------------------------------------------
// fortunes

/** The fortunes of one cookie file: blocks between lines holding only "%". */
function readCookies(name) {
  const text = readFileSync(join(FORTUNES, name), 'utf8');
  return text.split(/\n%\n/).map((f) => f.replace(/^%?\n+|\s+$/g, ''));
}

// Plain printable text only: no backspace overstriking, no replacement characters, no control codes;
// and nothing about sexual violence or slurs (the demo should be safe to show anyone).
const clean = (s) =>
  !/[\u0000-\u0008\u000b-\u001f\u007f\ufffd]/.test(s) &&
  !/\brap(e|ed|es|ing|ist)\b|\bsex|\bnigg|\bfag|\bslut|\bwhore|\bretard/i.test(s);

/** Hard-wrapped fortune -> one line per sentence run; an attribution ("-- Name") keeps its own line. */
function unwrapFortune(f) {
  const out = [];
  for (const raw of f.split('\n')) {
    const line = raw.trim().replace(/\s+/g, ' ');
    if (!line) return null; // several paragraphs: not a quip
    if (line.startsWith('--') || out.length === 0) out.push(line);
    else if (out[out.length - 1].startsWith('--'))
      out[out.length - 1] += ' ' + line; // attribution wraps
    else out[out.length - 1] += ' ' + line;
  }
  return out.join('\n');
}

function makeFortunes() {
  // Categories of short witty sayings (the art, poem, and Q/A files are left out).
  const files = [
    'fortunes',
    'wisdom',
    'humorists',
    'computers',
    'science',
    'work',
    'people',
    'platitudes',
    'linuxcookie',
    'politics',
    'education',
    'law',
    'literature',
    'miscellaneous',
    'cookie',
  ];
  // Round-robin over the files (in file order within each) until the byte budget is spent, so every
  // category is represented.
  const seen = new Set();
  const queues = files.map((name) => {
    need(join(FORTUNES, name), 'fortunes');
    const q = [];
    for (const f of readCookies(name)) {
      if (!f || !clean(f) || /(^|\n)\s*[QA]:/.test(f)) continue;
      const u = unwrapFortune(f);
      if (!u || u.length < 20 || u.length > 220 || seen.has(u)) continue;
      seen.add(u);
      q.push(u);
    }
    return q;
  });
  const picked = [];
  let bytes = 0;
  for (let i = 0; queues.some((q) => i < q.length); i++) {
    for (const q of queues) {
      if (i >= q.length) continue;
      const size = Buffer.byteLength(q[i]) + 2;
      if (bytes + size > 300 * 1024) return picked.join('\n\n') + '\n';
      picked.push(q[i]);
      bytes += size;
    }
  }
  return picked.join('\n\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Jargon File definitions

function makeJargon() {
  need(JARGON, 'jargon-text');
  const lines = gunzipSync(readFileSync(JARGON)).toString('utf8').split('\n');
  const start = lines.findIndex((l) => /^\s{3}:0:/.test(l));
  const rows = [];
  let bytes = 0;
  let term = null;
  let para = [];
  let done = false;
  const flush = () => {
    if (term === null || done) return;
    let def = para.join(' ').replace(/\s+/g, ' ').trim();
    def = def.replace(/\{([^{}]*)\}/g, '$1'); // {cross-references}
    term = null;
    para = [];
    if (def.length < 30 || /[\u2500-\u257f]/.test(def)) return;
    if (def.length > 360) {
      // Cut at the last sentence end before the limit.
      const cut = def.slice(0, 360).search(/[.!?][”’")]?\s[^.!?]*$/);
      if (cut < 60) return;
      def = def.slice(0, cut + 1).replace(/\s+$/, '');
    }
    const row = JSON.stringify({ prompt: `Define: ${lastTerm}\n`, completion: def }) + '\n';
    if (bytes + Buffer.byteLength(row) > 360 * 1024) {
      done = true;
      return;
    }
    rows.push(row);
    bytes += Buffer.byteLength(row);
  };
  let lastTerm = '';
  let inDef = false; // inside the first paragraph after a headword
  for (const line of lines.slice(start)) {
    const head = /^\s{3}:([^:]+):/.exec(line);
    if (head) {
      flush();
      term = head[1];
      lastTerm = term;
      inDef = false;
      continue;
    }
    if (term === null) continue;
    if (!line.trim()) {
      if (inDef) flush(); // the first paragraph is complete
      continue;
    }
    inDef = true;
    para.push(line.trim());
  }
  flush();
  return rows.join('');
}

// ---------------------------------------------------------------------------------------------
// Q:/A: fortunes as chat

function makeChat() {
  const out = [];
  for (const name of ['law', 'riddles', 'linux', 'cookie', 'work', 'science', 'art']) {
    need(join(FORTUNES, name), 'fortunes');
    for (const f of readCookies(name)) {
      if (!clean(f) || !/(^|\n)Q:/.test(f) || !/\nA:/.test(f)) continue;
      const turns = [];
      for (const raw of f.split('\n')) {
        const m = /^\s*([QA]):\s*(.*)$/.exec(raw);
        if (m) turns.push({ role: m[1] === 'Q' ? 'user' : 'assistant', content: m[2].trim().replace(/\s+/g, ' ') });
        else if (turns.length && raw.trim()) turns[turns.length - 1].content += ' ' + raw.trim().replace(/\s+/g, ' ');
      }
      while (turns.length && turns[turns.length - 1].role !== 'assistant') turns.pop();
      // A conversation starts with the user and alternates (the "great answers" ones start with A:).
      if (
        !turns.length ||
        turns[0].role !== 'user' ||
        turns.some((t, i) => t.role !== (i % 2 ? 'assistant' : 'user') || !t.content)
      )
        continue;
      out.push(JSON.stringify({ messages: turns }) + '\n');
    }
  }
  return out.join('');
}

// ---------------------------------------------------------------------------------------------

const FORTUNES_LICENSE = 'BSD-3-Clause (fortune-mod, Debian package `fortunes`); see public/datasets/LICENSES.md';
const datasets = [
  {
    name: 'Fortunes (short quips)',
    file: 'fortunes.txt',
    format: 'text',
    description:
      'Short witty sayings from the BSD fortune cookie files, one per blank-line separated block. The bundled model never saw them: after fine-tuning it writes one-line quips with "-- Author" attributions.',
    licence: FORTUNES_LICENSE,
    source: 'Debian package fortunes (/usr/share/games/fortunes), fortune-mod 1.99',
    make: makeFortunes,
  },
  {
    name: 'Jargon File definitions',
    file: 'jargon-define.jsonl',
    format: 'jsonl',
    description:
      'Prompt/completion pairs: "Define: <term>\\n" -> the first paragraph of the Jargon File entry. The loss is on the definition only; the model learns to answer the prompt with a definition.',
    licence: 'Public domain (the Jargon File, Debian package `jargon-text`)',
    source: 'Debian package jargon-text (/usr/share/doc/jargon-text/jargon.txt.gz), Jargon File 4.4.7',
    make: makeJargon,
  },
  {
    name: 'Courtroom and riddle Q&A (chat)',
    file: 'courtroom-chat.jsonl',
    format: 'jsonl',
    description:
      'Chat conversations ({"messages": [...]}) from the Q:/A: fortunes (real-life courtroom quotes, riddles): questions are user turns, answers assistant turns; the loss is on the assistant turns. Rendered with the tokenizer\'s chat template.',
    licence: FORTUNES_LICENSE,
    source: 'Debian package fortunes (/usr/share/games/fortunes: law, riddles, ...)',
    make: makeChat,
  },
];

const check = process.argv.includes('--check');
mkdirSync(OUT, { recursive: true });
const index = [];
let stale = 0;
for (const { make, ...meta } of datasets) {
  const text = make();
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_BYTES) throw new Error(`${meta.file} is ${bytes} bytes, over ${MAX_BYTES}`);
  const examples = meta.format === 'text' ? text.split('\n\n').length : text.split('\n').filter(Boolean).length;
  index.push({ ...meta, bytes, examples });
  const path = join(OUT, meta.file);
  if (check) {
    if (!existsSync(path) || readFileSync(path, 'utf8') !== text) {
      console.error(`${meta.file} differs from what the script makes`);
      stale++;
    }
  } else writeFileSync(path, text);
  console.log(`${meta.file}: ${examples} examples, ${bytes} bytes`);
}
const indexText = JSON.stringify(index, null, 2) + '\n';
if (check) {
  if (readFileSync(join(OUT, 'index.json'), 'utf8') !== indexText) {
    console.error('index.json differs from what the script makes');
    stale++;
  }
  if (stale) process.exit(1);
} else writeFileSync(join(OUT, 'index.json'), indexText);
