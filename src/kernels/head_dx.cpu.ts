// CPU twin of shaders/head_dx.wgsl, in float64. dx is (N, C), l·Σ_v softmax(z)[v]·softcap'(z_v)·W[v] per row;
// targets is (N,); stats is (N, 3) = (m, l, zt); wt is (N, C), the target rows of the table.
import { IGNORE_INDEX } from './ignore_index';
import { softcap_grad_cpu } from './head_lse.cpu';

/** dx (N, C) = gradScale·(dx / l − softcap'(zt)·wt), zero rows for ignored targets. */
export function head_dx_finish_cpu(
  dx: ArrayLike<number>,
  targets: ArrayLike<number>,
  stats: ArrayLike<number>,
  wt: ArrayLike<number>,
  N: number,
  C: number,
  opts: { gradScale: number; softcap: number },
): Float64Array {
  const out = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    if (targets[n] === IGNORE_INDEX) continue;
    const l = stats[3 * n + 1];
    const capt = softcap_grad_cpu(stats[3 * n + 2], opts.softcap);
    for (let c = 0; c < C; c++) out[n * C + c] = opts.gradScale * (dx[n * C + c] / l - capt * wt[n * C + c]);
  }
  return out;
}
