// CPU twin of shaders/head_dlogits.wgsl, in float64. logits is (N, VC), columns v0 .. v0 + VC of the (N, V)
// logits; targets is (N,); stats is (N, 3) = (m, l, zt) over the whole vocabulary (head_lse.cpu.ts).
import { IGNORE_INDEX } from './ignore_index';
import { softcap_cpu, softcap_grad_cpu } from './head_lse.cpu';

/** dlogits (N, VC) = (exp(z − m) / l − onehot(t − v0))·gradScale·softcap'(z), zero rows for ignored targets. */
export function head_dlogits_backward_cpu(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  stats: ArrayLike<number>,
  N: number,
  VC: number,
  opts: { v0: number; gradScale: number; softcap: number },
): Float64Array {
  const d = new Float64Array(N * VC);
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t === IGNORE_INDEX) continue;
    for (let j = 0; j < VC; j++) {
      const z = softcap_cpu(logits[n * VC + j], opts.softcap);
      const p = Math.exp(z - stats[3 * n]) / stats[3 * n + 1];
      d[n * VC + j] = (p - (opts.v0 + j === t ? 1 : 0)) * opts.gradScale * softcap_grad_cpu(z, opts.softcap);
    }
  }
  return d;
}
