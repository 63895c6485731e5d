// CPU twin of shaders/lora_grad.wgsl + its stage 2 (carried by the next lora_grad.wgsl dispatch, or
// shaders/lora_grad_sum.wgsl on its own: the same sums) (float64). dy is (N, OUT), x (N, IN), u (N, r),
// B (OUT, r):
//   G (N, r) = dy·B
//   partial[c] = (Σ_{n in chunk c} G[n, j]·drop(x)[n, i] at j·IN + i, then Σ_{n in chunk c} dy[n, o]·u[n, j] at
//                r·IN + o·r + j)       chunk c: rows c·CH .. min(N, (c+1)·CH) - 1
//   dA = (dA +) scale · Σ_c partial[c][0 .. r·IN),   dB = (dB +) scale · Σ_c partial[c][r·IN ..)
// The mask is lib_rng's (seed, n·IN + i), as on the GPU.
import { dropoutMult } from './rng.cpu';

export interface GradCpu {
  N: number;
  IN: number;
  OUT: number;
  r: number;
  CH: number;
  scale: number;
  p?: number;
  seed?: number;
}

/** G = dy·B (N, r). */
export function lora_g_cpu(dy: ArrayLike<number>, B: ArrayLike<number>, d: Pick<GradCpu, 'N' | 'OUT' | 'r'>) {
  const { N, OUT, r } = d;
  const G = new Float64Array(N * r);
  for (let n = 0; n < N; n++)
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let o = 0; o < OUT; o++) s += dy[n * OUT + o] * B[o * r + j];
      G[n * r + j] = s;
    }
  return G;
}

/** G, and dA (r·IN) and dB (OUT·r) [+]= scale · the chunk partials summed in order; `base` is the gradients before
 * (null: none, out =). */
export function lora_grad_cpu(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  u: ArrayLike<number>,
  B: ArrayLike<number>,
  base: { dA: ArrayLike<number>; dB: ArrayLike<number> } | null,
  d: GradCpu,
): { G: Float64Array; dA: Float64Array; dB: Float64Array } {
  const { N, IN, OUT, r, CH } = d;
  const pm = Math.fround(d.p ?? 0); // the kernel compares against p in f32
  const G = lora_g_cpu(dy, B, d);
  const EA = r * IN;
  const sum = new Float64Array(EA + OUT * r);
  for (let n0 = 0; n0 < N; n0 += CH) {
    const part = new Float64Array(sum.length);
    for (let n = n0; n < Math.min(N, n0 + CH); n++) {
      for (let i = 0; i < IN; i++) {
        const xv = x[n * IN + i] * dropoutMult(d.seed ?? 0, n * IN + i, pm);
        for (let j = 0; j < r; j++) part[j * IN + i] += G[n * r + j] * xv;
      }
      for (let o = 0; o < OUT; o++) for (let j = 0; j < r; j++) part[EA + o * r + j] += dy[n * OUT + o] * u[n * r + j];
    }
    part.forEach((v, e) => (sum[e] += v));
  }
  const dA = Float64Array.from(sum.subarray(0, EA), (s, e) => (base ? base.dA[e] : 0) + d.scale * s);
  const dB = Float64Array.from(sum.subarray(EA), (s, e) => (base ? base.dB[e] : 0) + d.scale * s);
  return { G, dA, dB };
}

/** lora_grad_segments: the linears of one x (N, IN), each with its own dy (N, OUT_s), u (N, r), B (OUT_s, r) and
 * dropout seed, each exactly lora_grad_cpu; base[s] the gradients before (null: none). */
export function lora_grad_segments_cpu(
  x: ArrayLike<number>,
  segs: { dy: ArrayLike<number>; u: ArrayLike<number>; B: ArrayLike<number>; OUT: number; seed: number }[],
  base: { dA: ArrayLike<number>; dB: ArrayLike<number> }[] | null,
  d: Omit<GradCpu, 'OUT' | 'seed'>,
): { G: Float64Array; dA: Float64Array; dB: Float64Array }[] {
  return segs.map((s, i) => lora_grad_cpu(s.dy, x, s.u, s.B, base?.[i] ?? null, { ...d, OUT: s.OUT, seed: s.seed }));
}
