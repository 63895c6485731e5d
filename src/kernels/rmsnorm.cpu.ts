// CPU twin of shaders/rmsnorm_{forward,backward}.wgsl, in float64. x is (N, C), w is (C,), rstd is (N,).

export function rmsnorm_forward_cpu(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  N: number,
  C: number,
  eps: number,
  residual?: ArrayLike<number> /* (N, C): y = residual + the norm */,
): { y: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(N * C);
  const rstd = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[n * C + c] * x[n * C + c];
    const r = 1 / Math.sqrt(ss / C + eps);
    rstd[n] = r;
    for (let c = 0; c < C; c++) y[n * C + c] = (residual ? residual[n * C + c] : 0) + x[n * C + c] * r * w[c];
  }
  return { y, rstd };
}

/** dx = r · (g - x · r² · mean(g · x)), g = dy · w, r = rstd. */
export function rmsnorm_backward_cpu(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  rstd: ArrayLike<number>,
  N: number,
  C: number,
): Float64Array {
  const dx = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    let gx = 0;
    for (let c = 0; c < C; c++) gx += dy[n * C + c] * w[c] * x[n * C + c];
    const r = rstd[n];
    const k = r * r * (gx / C);
    for (let c = 0; c < C; c++) dx[n * C + c] = r * (dy[n * C + c] * w[c] - x[n * C + c] * k);
  }
  return dx;
}
