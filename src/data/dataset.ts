// A prepared dataset: parsed, tokenised, split into train/validation, packed, and read in a
// deterministic order by a cursor whose whole state is { epoch, index, seed }.
//
// Split: by example (so no example is in both), chosen by a seeded shuffle; the validation share is
// round(valFraction · examples), at least 1 and at most examples - 1 when valFraction > 0. A dataset of a
// single example (e.g. one long text) is split inside its tokens instead: the last valFraction of them.
// Order: epoch e visits the train sequences in a permutation seeded by (seed, e); a batch that runs past
// the end of an epoch continues with the next epoch's permutation.

import { countTargets, type Batch } from './batch';
import { chatContextOf } from './chat';
import { parseExamples, type DataFormat } from './formats';
import { packSequences, type PackedSequences } from './pack';
import { tokenizeExamples, type TokenizedExample } from './tokenize';
import { DatasetError, type Example, type TextTokenizer } from './types';

// ---------------------------------------------------------------------------------------------
// seeded randomness

/** splitmix32: a well-mixed 32-bit hash, used to seed and step the generator. */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** A generator of uniform integers in [0, n), fixed by (seed, stream, epoch). */
function rngFor(seed: number, stream: number, epoch: number): (n: number) => number {
  let s = mix32(mix32(mix32(seed >>> 0) ^ stream) ^ epoch);
  return (n) => {
    s = mix32(s);
    return Math.floor((s / 2 ** 32) * n);
  };
}

const STREAM_SPLIT = 1;
const STREAM_ORDER = 2;

/** A permutation of 0..n-1 (Fisher–Yates), the same for the same (seed, stream, epoch). */
export function permutation(n: number, seed: number, epoch: number, stream = STREAM_ORDER): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const rand = rngFor(seed, stream, epoch);
  for (let i = n - 1; i > 0; i--) {
    const j = rand(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// split

/** Train/validation split of tokenised examples; see the file comment. Order within each part is kept. */
export function splitExamples(
  examples: TokenizedExample[],
  valFraction: number,
  seed: number,
): { train: TokenizedExample[]; val: TokenizedExample[] } {
  if (!(valFraction >= 0 && valFraction < 1))
    throw new DatasetError(`the validation fraction must be in [0, 1), got ${valFraction}`);
  const n = examples.length;
  if (valFraction === 0 || n === 0) return { train: examples, val: [] };
  if (n === 1) {
    const e = examples[0];
    const L = e.ids.length;
    if (L < 4) return { train: examples, val: [] };
    const cut = Math.min(L - 2, Math.max(2, Math.round(L * (1 - valFraction))));
    return {
      train: [{ ids: e.ids.slice(0, cut), train: e.train.slice(0, cut) }],
      val: [{ ids: e.ids.slice(cut), train: e.train.slice(cut), ...(e.eos === false ? { eos: false } : {}) }],
    };
  }
  const nVal = Math.min(n - 1, Math.max(1, Math.round(valFraction * n)));
  const isVal = new Uint8Array(n);
  permutation(n, seed, 0, STREAM_SPLIT)
    .subarray(0, nVal)
    .forEach((i) => (isVal[i] = 1));
  return { train: examples.filter((_, i) => !isVal[i]), val: examples.filter((_, i) => isVal[i]) };
}

// ---------------------------------------------------------------------------------------------
// reading order

/** The cursor's whole state: JSON-able, enough to resume at exactly the same batch. */
export interface CursorState {
  epoch: number; // passes started over the train sequences, from 0
  index: number; // next position in this epoch's permutation
  seed: number;
}

function checkState(s: unknown, N: number): CursorState {
  const r = s as Record<string, unknown>;
  const ok = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  if (
    !r ||
    typeof r !== 'object' ||
    !ok(r.epoch) ||
    !ok(r.index) ||
    typeof r.seed !== 'number' ||
    !Number.isFinite(r.seed)
  ) {
    throw new DatasetError(
      `the saved data position ${JSON.stringify(s)} is not {epoch, index, seed}; start a fresh run`,
    );
  }
  if ((r.index as number) > N) {
    throw new DatasetError(
      `the saved data position (sequence ${r.index}) is past this dataset's ${N} training sequences: the dataset or sequence length changed since the checkpoint; load the same dataset and settings, or start a fresh run`,
    );
  }
  return { epoch: r.epoch as number, index: r.index as number, seed: r.seed as number };
}

/** Reads batches of train sequences in the (seed, epoch) order. */
export class DataCursor {
  private s: CursorState;
  private perm: Uint32Array | null = null;
  private permEpoch = -1;

  constructor(
    readonly seqs: PackedSequences,
    state: CursorState | { seed: number },
  ) {
    if (seqs.N === 0)
      throw new DatasetError(
        'there are no training sequences; the dataset is too small for this sequence length and validation fraction',
      );
    this.s = checkState({ epoch: 0, index: 0, ...state }, seqs.N);
  }

  state(): CursorState {
    return { ...this.s };
  }

  private order(): Uint32Array {
    if (this.permEpoch !== this.s.epoch) {
      this.perm = permutation(this.seqs.N, this.s.seed, this.s.epoch);
      this.permEpoch = this.s.epoch;
    }
    return this.perm!;
  }

  /** The next B sequences: ids and targets are (B, T). */
  nextBatch(B: number): Batch {
    const { N, T } = this.seqs;
    const ids = new Uint32Array(B * T);
    const targets = new Uint32Array(B * T);
    for (let b = 0; b < B; b++) {
      if (this.s.index >= N) this.s = { ...this.s, epoch: this.s.epoch + 1, index: 0 };
      const n = this.order()[this.s.index];
      this.s.index++;
      ids.set(this.seqs.ids.subarray(n * T, (n + 1) * T), b * T);
      targets.set(this.seqs.targets.subarray(n * T, (n + 1) * T), b * T);
    }
    return { ids, targets, B, T };
  }
}

/** All sequences in order, in batches of B (the last one smaller). */
export function batchesOf(seqs: PackedSequences, B: number): Batch[] {
  const { N, T } = seqs;
  const out: Batch[] = [];
  for (let n = 0; n < N; n += B) {
    const b = Math.min(B, N - n);
    out.push({ ids: seqs.ids.slice(n * T, (n + b) * T), targets: seqs.targets.slice(n * T, (n + b) * T), B: b, T });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// the prepared dataset

export interface DatasetSource {
  name: string;
  text: string;
  format?: DataFormat | string;
  column?: string;
}

export interface PrepareOptions {
  seqLen: number;
  valFraction: number;
  seed: number;
  onProgress?: (done: number, total: number, tokens: number) => void;
  signal?: AbortSignal;
}

export interface DatasetStats {
  examples: number;
  /** Tokens of all examples (as tokenised, before the EOS that packing adds). */
  tokens: number;
  trainSequences: number;
  valSequences: number;
  /** Train targets the loss counts. */
  trainTargets: number;
  /** Share of the examples' tokens the loss ignores (prompts, BOS). */
  maskedFraction: number;
}

export interface DatasetSummary {
  name: string;
  format: string;
  columns: string[] | null;
  column: string | null;
  examples: number;
  preview: { prompt: string; completion: string }[];
  tokens: number;
  trainSequences: number;
  valSequences: number;
}

export class PreparedDataset {
  readonly train: PackedSequences;
  readonly val: PackedSequences;

  constructor(
    readonly name: string,
    readonly format: DataFormat,
    readonly columns: string[] | null,
    readonly column: string | null,
    readonly examples: Example[],
    readonly tokenized: TokenizedExample[],
    readonly split: { train: TokenizedExample[]; val: TokenizedExample[] },
    readonly eosId: number | null,
    readonly seqLen: number,
  ) {
    this.train = packSequences(split.train, seqLen, eosId);
    this.val = packSequences(split.val, seqLen, eosId);
    if (this.train.N === 0)
      throw new DatasetError(
        `"${name}" gives no training sequence at sequence length ${seqLen}; add more text or lower the validation fraction`,
      );
  }

  get trainSequences(): number {
    return this.train.N;
  }
  get valSequences(): number {
    return this.val.N;
  }

  /** The same split packed at another sequence length (no re-tokenising). */
  repack(seqLen: number): PreparedDataset {
    return new PreparedDataset(
      this.name,
      this.format,
      this.columns,
      this.column,
      this.examples,
      this.tokenized,
      this.split,
      this.eosId,
      seqLen,
    );
  }

  /** A cursor at the start (epoch 0) for `seed`, or at a saved `state`. */
  cursor(seed: number, state?: unknown): DataCursor {
    return new DataCursor(
      this.train,
      state === undefined || state === null ? { seed } : checkState(state, this.train.N),
    );
  }

  valBatches(B: number): Batch[] {
    return batchesOf(this.val, B);
  }

  stats(): DatasetStats {
    let tokens = 0;
    let masked = 0;
    for (const t of this.tokenized) {
      tokens += t.ids.length;
      masked += t.train.length - t.train.reduce((c, f) => c + f, 0);
    }
    return {
      examples: this.examples.length,
      tokens,
      trainSequences: this.train.N,
      valSequences: this.val.N,
      trainTargets: countTargets(this.train.targets),
      maskedFraction: tokens ? masked / tokens : 0,
    };
  }

  summary(previewCount = 3, previewChars = 400): DatasetSummary {
    const cut = (s: string) => (s.length > previewChars ? s.slice(0, previewChars) + '…' : s);
    const s = this.stats();
    return {
      name: this.name,
      format: this.format,
      columns: this.columns,
      column: this.column,
      examples: s.examples,
      preview: this.examples
        .slice(0, previewCount)
        .map((e) => ({ prompt: cut(e.prompt), completion: cut(e.completion) })),
      tokens: s.tokens,
      trainSequences: s.trainSequences,
      valSequences: s.valSequences,
    };
  }
}

/** Text -> a prepared dataset: parse (format detected unless given), tokenise with progress, split, pack. */
export async function prepareDataset(
  source: DatasetSource,
  tok: TextTokenizer,
  opts: PrepareOptions,
): Promise<PreparedDataset> {
  const parsed = parseExamples(source.text, {
    format: source.format,
    column: source.column,
    fileName: source.name,
    chat: chatContextOf(tok),
  });
  const tokenized = await tokenizeExamples(parsed.examples, tok, {
    onProgress: opts.onProgress && ((p) => opts.onProgress!(p.done, p.total, p.tokens)),
    signal: opts.signal,
  });
  const split = splitExamples(tokenized, opts.valFraction, opts.seed);
  return new PreparedDataset(
    source.name,
    parsed.format,
    parsed.columns,
    parsed.column,
    parsed.examples,
    tokenized,
    split,
    tok.eosId,
    opts.seqLen,
  );
}
