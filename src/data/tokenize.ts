// Examples -> token ids with a loss mask, in slices that give the event loop back (the worker stays
// responsive and reports progress while a large file tokenises).
//
// An example's text is encoded once, whole, so the tokens are exactly what the tokenizer gives for the
// whole text. Where each segment starts in the tokens is found by encoding the text before it and taking
// the longest common prefix with the whole encoding: at generation time the prompt is encoded alone and
// the model continues it, so the boundary is where encode(prompt) and encode(prompt + completion) part.
// A token that straddles a boundary goes to the later segment. The special tokens encode() adds in front
// (e.g. BOS) are found the same way (the prefix of encode('')) and are never trained.

import type { Example, Segment, TextTokenizer } from './types';

/** One example's tokens. train[i] = 1 when ids[i] is a target the loss is on (predicting it is trained). */
export interface TokenizedExample {
  ids: Uint32Array;
  train: Uint8Array;
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
  return ex.segments ?? [
    { text: ex.prompt, train: false },
    { text: ex.completion, train: true },
  ];
}

/** Tokenises one example (synchronously). */
export function tokenizeExample(ex: Example, tok: TextTokenizer, emptyCache?: Map<boolean, number[]>): TokenizedExample {
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
  return { ids: Uint32Array.from(full), train };
}

const nextTick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Tokenises all examples, yielding to the event loop every `sliceMs` and reporting progress then. */
export async function tokenizeExamples(examples: Example[], tok: TextTokenizer, opts: TokenizeOptions = {}): Promise<TokenizedExample[]> {
  const sliceMs = opts.sliceMs ?? 25;
  const out: TokenizedExample[] = [];
  const emptyCache = new Map<boolean, number[]>();
  let tokens = 0;
  let sliceStart = performance.now();
  for (let i = 0; i < examples.length; i++) {
    const t = tokenizeExample(examples[i], tok, emptyCache);
    out.push(t);
    tokens += t.ids.length;
    if (performance.now() - sliceStart > sliceMs) {
      opts.onProgress?.({ done: i + 1, total: examples.length, tokens });
      await nextTick();
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('tokenising was cancelled');
      sliceStart = performance.now();
    }
  }
  opts.onProgress?.({ done: examples.length, total: examples.length, tokens });
  return out;
}
