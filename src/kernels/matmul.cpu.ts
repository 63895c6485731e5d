// CPU twin of shaders/matmul.wgsl (float64): c = alpha · op(a) · op(b) (+ c0), batched.
// a is (batch, M, K), or (batch, K, M) with transA; b is (batch, K, N), or (batch, N, K) with transB.

export interface MatmulCpuOpts {
  batch?: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  c0?: ArrayLike<number> /* (batch, M, N) accumulated into */;
  bias?: ArrayLike<number> /* (N,) */;
}

export function matmul_cpu(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  o: MatmulCpuOpts = {},
): Float64Array {
  const batch = o.batch ?? 1,
    alpha = o.alpha ?? 1;
  const c = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const A = z * M * K,
      B = z * K * N,
      C = z * M * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = o.transA ? a[A + k * M + m] : a[A + m * K + k];
          const bv = o.transB ? b[B + n * K + k] : b[B + k * N + n];
          s += av * bv;
        }
        let r = alpha * s;
        if (o.bias) r += o.bias[n];
        if (o.c0) r += o.c0[C + m * N + n];
        c[C + m * N + n] = r;
      }
    }
  }
  return c;
}
