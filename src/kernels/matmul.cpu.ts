// CPU twin of the matmul family (float64): shaders/matmul.wgsl and its variants shaders/matmul_tiled.wgsl and
// shaders/matmul_splitk.wgsl, which all compute
//   c = alpha · op(a') · op(b') [+ bias] [+ mask_epi ⊙ (lscale · u · op(v))] [+ c0], batched,
// a' and b' being a and b with the dropout mask on op(a) or op(b) where asked (index row * dropLd + col).
// a is (batch, M, K), or (batch, K, M) with transA; b is (batch, K, N), or (batch, N, K) with transB;
// u is (M, R); v is (N, R), or (R, N) with vT.
import { dropoutMult } from './rng.cpu';

export interface MatmulCpuOpts {
  batch?: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  c0?: ArrayLike<number> /* (batch, M, N) accumulated into */;
  bias?: ArrayLike<number> /* (N,) */;
  lora?: { u: ArrayLike<number>; v: ArrayLike<number>; R: number; vT: boolean; lscale: number };
  dropout?: { seed: number; p: number; dropLd: number; on: 'a' | 'b' | 'epilogue' };
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
  const d = o.dropout && o.dropout.p > 0 ? o.dropout : undefined;
  const mask = (on: string, row: number, col: number) =>
    d?.on === on ? dropoutMult(d.seed, row * d.dropLd + col, d.p) : 1;
  const L = o.lora;
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
          s += av * mask('a', m, k) * bv * mask('b', k, n);
        }
        let r = alpha * s;
        if (o.bias) r += o.bias[n];
        if (L) {
          let l = 0;
          for (let j = 0; j < L.R; j++) l += L.u[m * L.R + j] * L.lscale * (L.vT ? L.v[j * N + n] : L.v[n * L.R + j]);
          r += mask('epilogue', m, n) * l;
        }
        if (o.c0) r += o.c0[C + m * N + n];
        c[C + m * N + n] = r;
      }
    }
  }
  return c;
}
