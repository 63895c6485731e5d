// Token arrays -> fixed-length training sequences.
//
// All examples are laid end to end in one stream, each followed by EOS (unless its last token already
// is EOS, or it is a chat its template closed itself (eos: false); no separator when the tokenizer has
// no EOS). EOS is trained: the model learns where an
// example ends. The stream is cut into windows of T+1 tokens with stride T (neighbouring windows share
// one token), so every next-token pair of the stream is a target exactly once and nothing is padded:
//   window n = stream[nT .. nT+T],  ids = window[0..T-1],  targets = window[1..T]
// targets[t] = IGNORE_INDEX where the target token is masked (prompt tokens, BOS).
// The last, partial window is padded (pad id = EOS, or 0) with IGNORE_INDEX targets. A window none of
// whose targets is trained (e.g. inside a long prompt) is dropped. Examples may straddle windows; attention is causal over the whole
// window, as in GPT-style pretraining.

import { IGNORE_INDEX } from '../kernels/ignore_index';
import type { TokenizedExample } from './tokenize';

export { IGNORE_INDEX };

/** N sequences of T tokens: ids and targets are (N, T), row n = sequence n. */
export interface PackedSequences {
  ids: Uint32Array;
  targets: Uint32Array;
  N: number;
  T: number;
}

/** The examples as one stream: ids and train flags (train[i] = 1: predicting ids[i] is trained). */
export function concatStream(
  examples: TokenizedExample[],
  eosId: number | null,
): { ids: Uint32Array; train: Uint8Array } {
  let L = 0;
  const addEos = examples.map(
    (e) => eosId !== null && e.eos !== false && (e.ids.length === 0 || e.ids[e.ids.length - 1] !== eosId),
  );
  examples.forEach((e, k) => (L += e.ids.length + (addEos[k] ? 1 : 0)));
  const ids = new Uint32Array(L);
  const train = new Uint8Array(L);
  let at = 0;
  examples.forEach((e, k) => {
    ids.set(e.ids, at);
    train.set(e.train, at);
    at += e.ids.length;
    if (addEos[k]) {
      ids[at] = eosId!;
      train[at] = 1;
      at++;
    }
  });
  return { ids, train };
}

/** Packs examples into (N, T) sequences; see the file comment for the layout. */
export function packSequences(examples: TokenizedExample[], T: number, eosId: number | null): PackedSequences {
  if (!Number.isInteger(T) || T < 1) throw new Error(`sequence length must be a positive integer, got ${T}`);
  const stream = concatStream(examples, eosId);
  const L = stream.ids.length;
  const pad = eosId ?? 0;
  // Windows start at 0, T, 2T, ... while at least one target (token nT+1) exists; windows with no
  // trained target (all prompt) are skipped: they cost a step and teach nothing.
  const windows = L >= 2 ? Math.ceil((L - 1) / T) : 0;
  const starts: number[] = [];
  for (let n = 0; n < windows; n++) {
    const s = n * T;
    if (stream.train.subarray(s + 1, Math.min(s + T + 1, L)).includes(1)) starts.push(s);
  }
  const N = starts.length;
  const ids = new Uint32Array(N * T).fill(pad);
  const targets = new Uint32Array(N * T).fill(IGNORE_INDEX);
  starts.forEach((s, n) => {
    const len = Math.min(T, L - 1 - s); // targets in this window (T except in the last)
    ids.set(stream.ids.subarray(s, s + len), n * T);
    for (let t = 0; t < len; t++) {
      if (stream.train[s + t + 1]) targets[n * T + t] = stream.ids[s + t + 1];
    }
  });
  return { ids, targets, N, T };
}
