// CPU twin of shaders/lora_rank.wgsl (float64): out (N, r) = drop(x)·op(w), x is (N, K), w is (r, K) or,
// with wKR, (K, r); the dropout mask is lib_rng's (seed, n·K + k), as on the GPU. The fused kernels'
// twins (shaders/lora_rank_{norm,glu}.wgsl) are the twins of their two halves, composed.
import { geglu_forward_cpu } from './geglu.cpu';
import { dropoutMult } from './rng.cpu';
import { rmsnorm_forward_cpu } from './rmsnorm.cpu';
import { swiglu_forward_cpu } from './swiglu.cpu';

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

/** Twin of shaders/lora_rank_norm.wgsl: the RMSNorm twin's y and rstd of x (N, K) with g (K,), and each segment's
 * u_s (N, r) = drop_s(y)·A_sᵀ (A_s (r, K), seeds[s] its dropout stream). */
export function lora_rank_norm_cpu(
  x: ArrayLike<number>,
  g: ArrayLike<number>,
  eps: number,
  As: ArrayLike<number>[],
  seeds: number[],
  d: { N: number; K: number; r: number; p?: number },
): { y: Float64Array; rstd: Float64Array; u: Float64Array[] } {
  const { y, rstd } = rmsnorm_forward_cpu(x, g, d.N, d.K, eps);
  return { y, rstd, u: As.map((A, s) => lora_rank_cpu(y, A, { ...d, seed: seeds[s] })) };
}

/** Twin of shaders/lora_rank_glu.wgsl: h = act(gate)·up (the SwiGLU or GeGLU twin), u (N, r) = drop(h)·Aᵀ. */
export function lora_rank_glu_cpu(
  kind: 'swiglu' | 'geglu',
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
  A: ArrayLike<number>,
  d: { N: number; K: number; r: number; p?: number; seed?: number },
): { h: Float64Array; u: Float64Array } {
  const h = (kind === 'geglu' ? geglu_forward_cpu : swiglu_forward_cpu)(gate, up);
  return { h, u: lora_rank_cpu(h, A, d) };
}
