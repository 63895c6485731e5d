// CPU reference of the whole LM head (src/models/head.ts), unchunked, in float64: x is (N, C), w is the
// (V, C) table, targets (N,). For tests: the GPU head against it, and it against finite differences.
import { IGNORE_INDEX } from '../kernels/ignore_index';
import { softcap_cpu, softcap_grad_cpu } from '../kernels/head_lse.cpu';

/** losses (N,) = logsumexp(z) − z_t and dx (N, C) = ((softmax(z) − onehot(t))·gradScale·softcap'(z)) · w, with
 * z = softcap(x · wᵀ). Ignored rows: loss 0, dx 0; a target >= V: loss NaN. */
export function head_loss_cpu(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  targets: ArrayLike<number>,
  N: number,
  C: number,
  V: number,
  gradScale: number,
  softcap: number,
): { losses: Float64Array; dx: Float64Array; logits: Float64Array } {
  const losses = new Float64Array(N);
  const dx = new Float64Array(N * C);
  const logits = new Float64Array(N * V); // z, for the tests' error bounds
  for (let n = 0; n < N; n++) {
    const z = logits.subarray(n * V, (n + 1) * V);
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += x[n * C + c] * w[v * C + c];
      z[v] = softcap_cpu(s, softcap);
    }
    const t = targets[n];
    if (t === IGNORE_INDEX) continue;
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, z[v]);
    let l = 0;
    for (let v = 0; v < V; v++) l += Math.exp(z[v] - m);
    losses[n] = t < V ? m + Math.log(l) - z[t] : NaN;
    for (let v = 0; v < V; v++) {
      const g = (Math.exp(z[v] - m) / l - (v === t ? 1 : 0)) * gradScale * softcap_grad_cpu(z[v], softcap);
      for (let c = 0; c < C; c++) dx[n * C + c] += g * w[v * C + c];
    }
  }
  return { losses, dx, logits };
}
