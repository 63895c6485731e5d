// CPU twin of shaders/layernorm_{forward,backward}.wgsl, in float64. x is (N, C); w, b are (C,);
// mean, rstd are (N,).

export function layernorm_forward_cpu(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  N: number,
  C: number,
  eps: number,
): { y: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(N * C);
  const mean = new Float64Array(N);
  const rstd = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x[n * C + c];
    const mu = s / C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += (x[n * C + c] - mu) ** 2;
    const r = 1 / Math.sqrt(ss / C + eps);
    mean[n] = mu;
    rstd[n] = r;
    for (let c = 0; c < C; c++) y[n * C + c] = (x[n * C + c] - mu) * r * w[c] + b[c];
  }
  return { y, mean, rstd };
}

/** dx = rstd · (g - mean(g) - xhat · mean(g · xhat)), g = dy · w, xhat = (x - mean) · rstd. */
export function layernorm_backward_cpu(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  mean: ArrayLike<number>,
  rstd: ArrayLike<number>,
  N: number,
  C: number,
): Float64Array {
  const dx = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    const mu = mean[n],
      r = rstd[n];
    let gs = 0,
      gxs = 0;
    for (let c = 0; c < C; c++) {
      const g = dy[n * C + c] * w[c];
      gs += g;
      gxs += g * (x[n * C + c] - mu) * r;
    }
    for (let c = 0; c < C; c++) {
      const xhat = (x[n * C + c] - mu) * r;
      dx[n * C + c] = r * (dy[n * C + c] * w[c] - gs / C - xhat * (gxs / C));
    }
  }
  return dx;
}
