// CPU twin of shaders/cross_entropy.wgsl, in float64. logits is (N, V); targets is (N,).
import { IGNORE_INDEX } from './ignore_index';

export function cross_entropy_forward_backward_cpu(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  N: number,
  V: number,
  gradScale: number,
): { losses: Float64Array; dlogits: Float64Array } {
  const losses = new Float64Array(N);
  const dlogits = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t === IGNORE_INDEX) continue;
    const at = n * V;
    let mx = -Infinity;
    for (let c = 0; c < V; c++) mx = Math.max(mx, logits[at + c]);
    let sum = 0;
    for (let c = 0; c < V; c++) sum += Math.exp(logits[at + c] - mx);
    losses[n] = t < V ? mx + Math.log(sum) - logits[at + t] : NaN;
    for (let c = 0; c < V; c++) dlogits[at + c] = (Math.exp(logits[at + c] - mx) / sum - (c === t ? 1 : 0)) * gradScale;
  }
  return { losses, dlogits };
}
