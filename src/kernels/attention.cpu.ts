// CPU twin of the attention kernels: the plain O(T²) causal softmax attention in float64, materialising
// the score matrix one query row at a time. Layouts as in attention.ts: q, o (B, Tq, Hq, D);
// k, v (B, kvCap, Hkv, D); lse (B, Hq, Tq); dk, dv (B, kvLen, Hkv, D). Query row i sits at position
// pos = kvLen - Tq + i and sees keys j with j <= pos and, with a sliding window W > 0, pos - W < j.
// With a soft cap c > 0 the scores are S = c·tanh(scale·q·k / c) and dS picks up the factor 1 - (S / c)².
// With RoPE (the kernels' opts.rope; here its theta and rope_scaling) q and k are rotated first (rope.cpu.ts),
// query row i at position posOffset + i, key j at posOffset - (kvLen - Tq) + j; the backward rotates the
// gradients of the rotated q and k back (the rotation is orthogonal: its transpose is its inverse).
import type { AttentionOpts } from './attention';
import { softcap_cpu, softcap_grad_cpu } from './head_lse.cpu';
import { rope_backward_cpu, rope_forward_cpu, type RopeAngles } from './rope.cpu';
import type { RopeScaling } from './rope';

/** RoPE for the twin: the table's theta and rope_scaling (not the tensor), and how the angles round. */
export interface AttentionRopeCpu {
  theta: number;
  scaling?: RopeScaling | null;
  posOffset?: number; // query row 0's position (default kvLen - Tq), as AttentionRope.posOffset
  angles?: RopeAngles; // default 'f64'; 'hf-f32' rounds pos · inv_freq to f32 as the kernels do
}

/** Rotations (sign 1) and their inverses (-1) of q-shaped (B, Tq, Hq, D) and k-shaped (B, rows, Hkv, D) arrays. */
function rotated(opts: AttentionOpts, rope: AttentionRopeCpu, kRows: number) {
  const { Tq, Tk, Hq, Hkv, D } = dims(opts);
  const qPos = rope.posOffset ?? Tk - Tq;
  const base = { headDim: D, theta: rope.theta, scaling: rope.scaling ?? null };
  const angles = rope.angles ?? 'f64';
  return {
    q: (x: ArrayLike<number>, sign: 1 | -1) =>
      (sign > 0 ? rope_forward_cpu : rope_backward_cpu)(x, { ...base, heads: Hq, seqLen: Tq, posOffset: qPos }, angles),
    k: (x: ArrayLike<number>, sign: 1 | -1, rows = kRows) =>
      (sign > 0 ? rope_forward_cpu : rope_backward_cpu)(
        x,
        { ...base, heads: Hkv, seqLen: rows, posOffset: qPos - (Tk - Tq) },
        angles,
      ),
  };
}

function dims(opts: AttentionOpts) {
  const Tq = opts.seqLen;
  const Tk = opts.kvLen ?? Tq;
  const cap = opts.kvCapacity ?? Tk;
  const { heads: Hq, kvHeads: Hkv, headDim: D } = opts;
  const window = opts.window ?? 0;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  return { Tq, Tk, cap, Hq, Hkv, D, window, per: Hq / Hkv, off: Tk - Tq, scale, softcap: opts.softcap ?? 0 };
}

/** The keys position `pos` sees: lo..pos. */
export function visibleKeys(pos: number, window: number): { lo: number; hi: number } {
  return { lo: window > 0 ? Math.max(0, pos - window + 1) : 0, hi: pos };
}

/** Row i of (b, h): scaled (and capped) scores s against its visible keys lo..hi and their softmax P (P[j - lo]). */
function rowProbs(q: ArrayLike<number>, k: ArrayLike<number>, b: number, h: number, i: number, opts: AttentionOpts) {
  const { Tq, cap, Hq, Hkv, D, per, off, scale, window, softcap } = dims(opts);
  const hk = Math.floor(h / per);
  const { lo, hi } = visibleKeys(off + i, window);
  const n = hi - lo + 1;
  const s = new Float64Array(n);
  const qa = ((b * Tq + i) * Hq + h) * D;
  let m = -Infinity;
  for (let j = lo; j <= hi; j++) {
    const ka = ((b * cap + j) * Hkv + hk) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qa + d] * k[ka + d];
    s[j - lo] = softcap_cpu(dot * scale, softcap);
    m = Math.max(m, s[j - lo]);
  }
  let sum = 0;
  for (let x = 0; x < n; x++) sum += Math.exp(s[x] - m);
  const lse = m + Math.log(sum);
  const P = s.map((x) => Math.exp(x - lse));
  return { P, lse, lo, s };
}

export function attention_forward_cpu(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  B: number,
  opts: AttentionOpts,
  rope?: AttentionRopeCpu,
): { o: Float64Array; lse: Float64Array } {
  const { Tq, cap, Hq, Hkv, D, per } = dims(opts);
  if (rope) {
    const r = rotated(opts, rope, cap);
    return attention_forward_cpu(r.q(q, 1), r.k(k, 1), v, B, opts);
  }
  const o = new Float64Array(B * Tq * Hq * D);
  const lse = new Float64Array(B * Hq * Tq);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hq; h++)
      for (let i = 0; i < Tq; i++) {
        const r = rowProbs(q, k, b, h, i, opts);
        lse[(b * Hq + h) * Tq + i] = r.lse;
        const oa = ((b * Tq + i) * Hq + h) * D;
        for (let x = 0; x < r.P.length; x++) {
          const va = ((b * cap + r.lo + x) * Hkv + Math.floor(h / per)) * D;
          for (let d = 0; d < D; d++) o[oa + d] += r.P[x] * v[va + d];
        }
      }
  return { o, lse };
}

/** Softmax backward per row: dP = dO·Vᵀ, dS = P ⊙ (dP - Σ_j P dP) · softcap'(S), S = softcap(scale·Q·Kᵀ). */
export function attention_backward_cpu(
  dout: ArrayLike<number>,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  B: number,
  opts: AttentionOpts,
  rope?: AttentionRopeCpu,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { Tq, Tk, cap, Hq, Hkv, D, per, scale, softcap } = dims(opts);
  if (rope) {
    const r = rotated(opts, rope, cap);
    const g = attention_backward_cpu(dout, r.q(q, 1), r.k(k, 1), v, B, opts);
    return { dq: r.q(g.dq, -1), dk: r.k(g.dk, -1, Tk), dv: g.dv };
  }
  const dq = new Float64Array(B * Tq * Hq * D);
  const dk = new Float64Array(B * Tk * Hkv * D);
  const dv = new Float64Array(B * Tk * Hkv * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hq; h++)
      for (let i = 0; i < Tq; i++) {
        const hk = Math.floor(h / per);
        const { P, lo, s } = rowProbs(q, k, b, h, i, opts);
        const qa = ((b * Tq + i) * Hq + h) * D;
        const dP = new Float64Array(P.length);
        let rowDot = 0;
        for (let x = 0; x < P.length; x++) {
          const va = ((b * cap + lo + x) * Hkv + hk) * D;
          for (let d = 0; d < D; d++) dP[x] += dout[qa + d] * v[va + d];
          rowDot += P[x] * dP[x];
        }
        for (let x = 0; x < P.length; x++) {
          const ka = ((b * cap + lo + x) * Hkv + hk) * D;
          const ga = ((b * Tk + lo + x) * Hkv + hk) * D;
          const dS = P[x] * (dP[x] - rowDot) * softcap_grad_cpu(s[x], softcap);
          for (let d = 0; d < D; d++) {
            dq[qa + d] += scale * dS * k[ka + d];
            dk[ga + d] += scale * dS * q[qa + d];
            dv[ga + d] += P[x] * dout[qa + d];
          }
        }
      }
  return { dq, dk, dv };
}
