// CPU twin of the attention kernels: the plain O(T²) causal softmax attention in float64, materialising
// the score matrix one query row at a time. Layouts as in attention.ts: q, o (B, Tq, Hq, D);
// k, v (B, kvCap, Hkv, D); lse (B, Hq, Tq); dk, dv (B, kvLen, Hkv, D).
import type { AttentionOpts } from './attention';

function dims(opts: AttentionOpts) {
  const Tq = opts.seqLen;
  const Tk = opts.kvLen ?? Tq;
  const cap = opts.kvCapacity ?? Tk;
  const { heads: Hq, kvHeads: Hkv, headDim: D } = opts;
  return { Tq, Tk, cap, Hq, Hkv, D, per: Hq / Hkv, off: Tk - Tq, scale: opts.scale ?? 1 / Math.sqrt(D) };
}

/** Row i of (b, h): scaled scores against keys 0..off+i and their softmax P. */
function rowProbs(q: ArrayLike<number>, k: ArrayLike<number>, b: number, h: number, i: number, opts: AttentionOpts) {
  const { Tq, cap, Hq, Hkv, D, per, off, scale } = dims(opts);
  const hk = Math.floor(h / per);
  const n = off + i + 1;
  const s = new Float64Array(n);
  const qa = ((b * Tq + i) * Hq + h) * D;
  let m = -Infinity;
  for (let j = 0; j < n; j++) {
    const ka = ((b * cap + j) * Hkv + hk) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qa + d] * k[ka + d];
    s[j] = dot * scale;
    m = Math.max(m, s[j]);
  }
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(s[j] - m);
  const lse = m + Math.log(sum);
  const P = s.map((x) => Math.exp(x - lse));
  return { P, lse };
}

export function attention_forward_cpu(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  B: number,
  opts: AttentionOpts,
): { o: Float64Array; lse: Float64Array } {
  const { Tq, cap, Hq, Hkv, D, per } = dims(opts);
  const o = new Float64Array(B * Tq * Hq * D);
  const lse = new Float64Array(B * Hq * Tq);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hq; h++)
      for (let i = 0; i < Tq; i++) {
        const r = rowProbs(q, k, b, h, i, opts);
        lse[(b * Hq + h) * Tq + i] = r.lse;
        const oa = ((b * Tq + i) * Hq + h) * D;
        for (let j = 0; j < r.P.length; j++) {
          const va = ((b * cap + j) * Hkv + Math.floor(h / per)) * D;
          for (let d = 0; d < D; d++) o[oa + d] += r.P[j] * v[va + d];
        }
      }
  return { o, lse };
}

/** Softmax backward per row: dP = dO·Vᵀ, dS = P ⊙ (dP - Σ_j P dP), S = scale·Q·Kᵀ. */
export function attention_backward_cpu(
  dout: ArrayLike<number>,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  B: number,
  opts: AttentionOpts,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { Tq, Tk, cap, Hq, Hkv, D, per, scale } = dims(opts);
  const dq = new Float64Array(B * Tq * Hq * D);
  const dk = new Float64Array(B * Tk * Hkv * D);
  const dv = new Float64Array(B * Tk * Hkv * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hq; h++)
      for (let i = 0; i < Tq; i++) {
        const hk = Math.floor(h / per);
        const { P } = rowProbs(q, k, b, h, i, opts);
        const qa = ((b * Tq + i) * Hq + h) * D;
        const dP = new Float64Array(P.length);
        let rowDot = 0;
        for (let j = 0; j < P.length; j++) {
          const va = ((b * cap + j) * Hkv + hk) * D;
          for (let d = 0; d < D; d++) dP[j] += dout[qa + d] * v[va + d];
          rowDot += P[j] * dP[j];
        }
        for (let j = 0; j < P.length; j++) {
          const ka = ((b * cap + j) * Hkv + hk) * D;
          const ga = ((b * Tk + j) * Hkv + hk) * D;
          const dS = P[j] * (dP[j] - rowDot);
          for (let d = 0; d < D; d++) {
            dq[qa + d] += scale * dS * k[ka + d];
            dk[ga + d] += scale * dS * q[qa + d];
            dv[ga + d] += P[j] * dout[qa + d];
          }
        }
      }
  return { dq, dk, dv };
}
