// CPU twin of shaders/lora_grad.wgsl + shaders/lora_grad_sum.wgsl (float64). y is (N, P), z is (N, r):
//   partial[c][(p, j)] = Σ_{n in chunk c} drop(y)[n, p] · z[n, j]    (chunk c: rows c·CH .. min(N, (c+1)·CH) - 1)
//   out[(p, j)] = (out +) scale · Σ_c partial[c][(p, j)]
// (p, j) is at p·r + j in layout 'pj' (dB, (OUT, r)) and at j·P + p in layout 'jp' (dA, (r, IN)). The mask is
// lib_rng's (seed, n·P + p), as on the GPU.
import { dropoutMult } from './rng.cpu';

export interface GradCpu {
  N: number;
  P: number;
  r: number;
  CH: number;
  layout: 'pj' | 'jp';
  scale: number;
  p?: number;
  seed?: number;
}

const at = (d: GradCpu, p: number, j: number) => (d.layout === 'pj' ? p * d.r + j : j * d.P + p);

/** The chunk partials (chunks, P·r), each laid out like the gradient. */
export function lora_grad_partials_cpu(y: ArrayLike<number>, z: ArrayLike<number>, d: GradCpu): Float64Array[] {
  const { N, P, r, CH } = d;
  const pm = Math.fround(d.p ?? 0); // the kernel compares against p in f32
  const parts: Float64Array[] = [];
  for (let n0 = 0; n0 < N; n0 += CH) {
    const part = new Float64Array(P * r);
    for (let n = n0; n < Math.min(N, n0 + CH); n++)
      for (let p = 0; p < P; p++) {
        const yv = y[n * P + p] * dropoutMult(d.seed ?? 0, n * P + p, pm);
        for (let j = 0; j < r; j++) part[at(d, p, j)] += yv * z[n * r + j];
      }
    parts.push(part);
  }
  return parts;
}

/** out (P·r) [+]= scale · Σ_c partials[c]; `base` is the gradient before (null: none, out =). */
export function lora_grad_cpu(
  y: ArrayLike<number>,
  z: ArrayLike<number>,
  base: ArrayLike<number> | null,
  d: GradCpu,
): Float64Array {
  const out = new Float64Array(d.P * d.r);
  const parts = lora_grad_partials_cpu(y, z, d);
  for (let e = 0; e < out.length; e++) {
    let s = 0;
    for (const part of parts) s += part[e];
    out[e] = (base ? base[e] : 0) + d.scale * s;
  }
  return out;
}
