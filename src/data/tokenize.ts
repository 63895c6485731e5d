// Examples -> token ids with a loss mask, in slices that give the event loop back (the worker stays
// responsive and reports progress while a large file tokenises).
//
// An example's text is encoded once, whole, so the tokens are exactly what the tokenizer gives for the
// whole text. Where each segment starts in the tokens is found by encoding the text before it and taking
// the longest common prefix with the whole encoding: at generation time the prompt is encoded alone and
// the model continues it, so the boundary is where encode(prompt) and encode(prompt + completion) part.
// A token that straddles a boundary goes to the later segment. The special tokens encode() adds in front
// (e.g. BOS) are found the same way (the prefix of encode('')) and are never trained.
//
// Long plain text (one trained segment over LONG_CHARS characters) is encoded in pieces cut at single
// spaces, because BPE over one huge string is slow (superlinear) and would block without progress. The
// pieces join exactly when the tokenizer treats a space as a word boundary, which a probe checks first:
//   keep-space  encode("a b") = encode("a") ++ encode(" b")   (GPT-2 byte-level style)
//   drop-space  encode("a b") = encode("a") ++ encode("b")    (SentencePiece style: "▁" is prepended)
// A tokenizer that passes neither probe gets the whole text encoded at once.

import type { Example, Segment, TextTokenizer } from './types';

/** One example's tokens. train[i] = 1 when ids[i] is a target the loss is on (predicting it is trained). */
export interface TokenizedExample {
  ids: Uint32Array;
  train: Uint8Array;
  /** false: packing adds no EOS after it (Example.eos). */
  eos?: boolean;
}

export interface TokenizeProgress {
  done: number; // examples done
  total: number;
  tokens: number; // tokens so far
}

export interface TokenizeOptions {
  onProgress?: (p: TokenizeProgress) => void;
  /** Give the event loop back after this much work (ms). */
  sliceMs?: number;
  signal?: AbortSignal;
}

function commonPrefix(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** The example's segments in order: the prompt (not trained) then the completion (trained). */
export function segmentsOf(ex: Example): Segment[] {
  return (
    ex.segments ?? [
      { text: ex.prompt, train: false },
      { text: ex.completion, train: true },
    ]
  );
}

/** Tokenises one example (synchronously). */
export function tokenizeExample(
  ex: Example,
  tok: TextTokenizer,
  emptyCache?: Map<boolean, number[]>,
): TokenizedExample {
  const addSpecial = ex.addSpecial ?? true;
  const segs = segmentsOf(ex);
  const full = tok.encode(segs.map((s) => s.text).join(''), addSpecial);
  let empty = emptyCache?.get(addSpecial);
  if (!empty) {
    empty = tok.encode('', addSpecial);
    emptyCache?.set(addSpecial, empty);
  }
  const train = new Uint8Array(full.length);
  // Tokens before `start` are the added specials; segment k covers [start_k, start_{k+1}).
  let start = commonPrefix(empty, full);
  let text = '';
  for (let k = 0; k < segs.length; k++) {
    text += segs[k].text;
    const end = k === segs.length - 1 ? full.length : Math.max(start, commonPrefix(tok.encode(text, addSpecial), full));
    if (segs[k].train) train.fill(1, start, end);
    start = end;
  }
  return { ids: Uint32Array.from(full), train, ...(ex.eos === false ? { eos: false } : {}) };
}

export const LONG_CHARS = 8192;

export type JoinRule = 'keep-space' | 'drop-space' | null;

const PROBES = ['The whale swam on', 'said the Lord unto', 'hacker culture 2 hackers', 'x y'];

/** How pieces cut at a space join back into the whole text's tokens, or null if they do not. */
export function joinRuleOf(tok: TextTokenizer): JoinRule {
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
  for (const rule of ['keep-space', 'drop-space'] as const) {
    const ok = PROBES.every((p) => {
      const whole = tok.encode(p, false);
      for (let i = p.indexOf(' '); i > 0; i = p.indexOf(' ', i + 1)) {
        const tail = rule === 'keep-space' ? p.slice(i) : p.slice(i + 1);
        if (!same(whole, [...tok.encode(p.slice(0, i), false), ...tok.encode(tail, false)])) return false;
      }
      return true;
    });
    if (ok) return rule;
  }
  return null;
}

/** Start offsets of the pieces: cuts at a single space between non-spaces, about every `size` chars. */
function pieceCuts(text: string, size: number): number[] {
  const cuts: number[] = [];
  let at = size;
  while (at < text.length) {
    let c = at;
    const isCut = (i: number) => text[i] === ' ' && /\S/.test(text[i - 1] ?? '') && /\S/.test(text[i + 1] ?? '');
    while (c < text.length && c < at + size && !isCut(c)) c++;
    if (c >= text.length) break;
    if (isCut(c)) cuts.push(c);
    at = c + size;
  }
  return cuts;
}

/** The special tokens encode(text, true) puts before and after the text's own tokens. */
function specialAffixes(tok: TextTokenizer): { prefix: number[]; suffix: number[] } {
  const inner = tok.encode('x', false);
  const outer = tok.encode('x', true);
  for (let i = 0; i + inner.length <= outer.length; i++) {
    if (inner.every((v, k) => outer[i + k] === v))
      return { prefix: outer.slice(0, i), suffix: outer.slice(i + inner.length) };
  }
  return { prefix: outer, suffix: [] };
}

/** Encodes long plain text piece by piece, giving the event loop back between pieces when `pause` says. */
async function encodeLong(
  text: string,
  addSpecial: boolean,
  tok: TextTokenizer,
  rule: 'keep-space' | 'drop-space',
  pause: () => Promise<void>,
): Promise<TokenizedExample> {
  const cuts = pieceCuts(text, LONG_CHARS);
  const { prefix, suffix } = addSpecial ? specialAffixes(tok) : { prefix: [], suffix: [] };
  const parts: number[][] = [prefix];
  let start = 0;
  for (const c of [...cuts, text.length]) {
    parts.push(tok.encode(text.slice(start, c), false));
    start = rule === 'keep-space' ? c : c + 1;
    await pause();
  }
  parts.push(suffix);
  const ids = Uint32Array.from(parts.flat());
  const train = new Uint8Array(ids.length).fill(1);
  train.fill(0, 0, prefix.length);
  return { ids, train };
}

const nextTick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Tokenises all examples, yielding to the event loop every `sliceMs` and reporting progress then. */
export async function tokenizeExamples(
  examples: Example[],
  tok: TextTokenizer,
  opts: TokenizeOptions = {},
): Promise<TokenizedExample[]> {
  const sliceMs = opts.sliceMs ?? 25;
  const out: TokenizedExample[] = [];
  const emptyCache = new Map<boolean, number[]>();
  let tokens = 0;
  let done = 0;
  let sliceStart = performance.now();
  const pause = async () => {
    if (performance.now() - sliceStart <= sliceMs) return;
    opts.onProgress?.({ done, total: examples.length, tokens });
    await nextTick();
    if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('tokenising was cancelled');
    sliceStart = performance.now();
  };
  let rule: JoinRule | undefined;
  for (const ex of examples) {
    const segs = segmentsOf(ex).filter((s) => s.text);
    let t: TokenizedExample;
    if (segs.length === 1 && segs[0].train && segs[0].text.length > LONG_CHARS && (rule ??= joinRuleOf(tok))) {
      t = await encodeLong(segs[0].text, ex.addSpecial ?? true, tok, rule, pause);
    } else t = tokenizeExample(ex, tok, emptyCache);
    out.push(t);
    tokens += t.ids.length;
    done++;
    await pause();
  }
  opts.onProgress?.({ done: examples.length, total: examples.length, tokens });
  return out;
}
