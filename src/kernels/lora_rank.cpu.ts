// CPU twin of shaders/lora_rank.wgsl (float64): out (N, r) = drop(x)·op(w), x is (N, K), w is (r, K) or,
// with wKR, (K, r); the dropout mask is lib_rng's (seed, n·K + k), as on the GPU.
import { dropoutMult } from './rng.cpu';

export interface RankCpu {
  N: number;
  K: number;
  r: number;
  wKR?: boolean;
  p?: number;
  seed?: number;
}

export function lora_rank_cpu(x: ArrayLike<number>, w: ArrayLike<number>, d: RankCpu): Float64Array {
  const { N, K, r } = d;
  const p = Math.fround(d.p ?? 0); // the kernel compares against p in f32
  const out = new Float64Array(N * r);
  for (let n = 0; n < N; n++)
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const xv = x[n * K + k] * dropoutMult(d.seed ?? 0, n * K + k, p);
        s += xv * (d.wKR ? w[k * r + j] : w[j * K + k]);
      }
      out[n * r + j] = s;
    }
  return out;
}
