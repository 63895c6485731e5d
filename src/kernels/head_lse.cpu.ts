// CPU twin of shaders/head_lse.wgsl and shaders/head_lse_grad.wgsl (and of shaders/lib_softcap.wgsl), in float64.
// logits is (N, VC), columns v0 .. v0 + VC of the (N, V) logits; targets is (N,); stats is (N, 3) = (m, l, zt).
import { IGNORE_INDEX } from './ignore_index';

/** z = c·tanh(y / c) for c > 0, else y. */
export function softcap_cpu(y: number, c: number): number {
  return c > 0 ? c * Math.tanh(y / c) : y;
}

/** dz/dy at z = softcap_cpu(y, c). */
export function softcap_grad_cpu(z: number, c: number): number {
  return c > 0 ? 1 - (z / c) * (z / c) : 1;
}

/** Merges one chunk into the running statistics (null: the first chunk); returns the new statistics, and the
 * losses (N,) when `last`. */
export function head_lse_forward_cpu(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  stats: Float64Array | null,
  N: number,
  VC: number,
  chunk: { v0: number; V: number; last: boolean; softcap: number },
): { stats: Float64Array; losses: Float64Array | null } {
  const out = new Float64Array(3 * N);
  const losses = chunk.last ? new Float64Array(N) : null;
  for (let n = 0; n < N; n++) {
    const z = (j: number) => softcap_cpu(logits[n * VC + j], chunk.softcap);
    let m = -Infinity;
    for (let j = 0; j < VC; j++) m = Math.max(m, z(j));
    let l = 0;
    for (let j = 0; j < VC; j++) l += Math.exp(z(j) - m);
    let zt = 0;
    if (stats) {
      const mm = Math.max(stats[3 * n], m);
      l = stats[3 * n + 1] * Math.exp(stats[3 * n] - mm) + l * Math.exp(m - mm);
      m = mm;
      zt = stats[3 * n + 2];
    }
    const t = targets[n];
    if (t !== IGNORE_INDEX && t >= chunk.v0 && t < chunk.v0 + VC) zt = z(t - chunk.v0);
    out.set([m, l, zt], 3 * n);
    if (losses) losses[n] = t === IGNORE_INDEX ? 0 : t >= chunk.V ? NaN : m + Math.log(l) - zt;
  }
  return { stats: out, losses };
}

/** head_lse_forward_cpu, and the gradient step of head_lse_grad: p (N, VC) = exp(z − m')·softcap'(z) with m' the
 * new running max, and dx (N, C) (null on the first chunk) rescaled by exp(m − m'), m the max before the chunk. */
export function head_lse_grad_cpu(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  stats: Float64Array | null,
  dx: ArrayLike<number> | null,
  N: number,
  VC: number,
  C: number,
  chunk: { v0: number; V: number; last: boolean; softcap: number },
): { stats: Float64Array; losses: Float64Array | null; p: Float64Array; dx: Float64Array | null } {
  const r = head_lse_forward_cpu(logits, targets, stats, N, VC, chunk);
  const p = new Float64Array(N * VC);
  const out = dx ? new Float64Array(N * C) : null;
  for (let n = 0; n < N; n++) {
    const m = r.stats[3 * n];
    for (let j = 0; j < VC; j++) {
      const z = softcap_cpu(logits[n * VC + j], chunk.softcap);
      p[n * VC + j] = Math.exp(z - m) * softcap_grad_cpu(z, chunk.softcap);
    }
    if (out && stats) {
      const alpha = Math.exp(stats[3 * n] - m);
      for (let c = 0; c < C; c++) out[n * C + c] = dx![n * C + c] * alpha;
    }
  }
  return { ...r, p, dx: out };
}
