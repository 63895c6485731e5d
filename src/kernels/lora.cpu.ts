// CPU twin of src/kernels/lora.ts (float64). x is (N, IN); w0 is (OUT, IN), or (IN, OUT) when w0T;
// A is (r, IN), B is (OUT, r); the dropout mask is lib_rng's (seed, row·IN + col), as on the GPU.
import { dropoutMult } from './rng.cpu';

export interface LoraCpu {
  N: number;
  IN: number;
  OUT: number;
  r: number;
  scale: number;
  p?: number;
  seed?: number;
  w0T?: boolean;
}

const w0At = (w0: ArrayLike<number>, d: LoraCpu, o: number, i: number) =>
  d.w0T ? w0[i * d.OUT + o] : w0[o * d.IN + i];

/** drop(x) (N, IN): x times the inverted-dropout multiplier of each element. */
export function dropout_cpu(x: ArrayLike<number>, d: LoraCpu): Float64Array {
  return Float64Array.from({ length: d.N * d.IN }, (_, i) => x[i] * dropoutMult(d.seed ?? 0, i, d.p ?? 0));
}

/** y (N, OUT) = x·W0ᵀ + bias + scale·u·Bᵀ, u (N, r) = drop(x)·Aᵀ (A, B null: a plain linear, u empty). */
export function lora_forward_cpu(
  x: ArrayLike<number>,
  w0: ArrayLike<number>,
  bias: ArrayLike<number> | null,
  A: ArrayLike<number> | null,
  B: ArrayLike<number> | null,
  d: LoraCpu,
): { y: Float64Array; u: Float64Array } {
  const { N, IN, OUT, r } = d;
  const u = new Float64Array(A ? N * r : 0);
  if (A) {
    const xd = dropout_cpu(x, d);
    for (let n = 0; n < N; n++)
      for (let j = 0; j < r; j++) {
        let s = 0;
        for (let i = 0; i < IN; i++) s += xd[n * IN + i] * A[j * IN + i];
        u[n * r + j] = s;
      }
  }
  const y = new Float64Array(N * OUT);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < OUT; o++) {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < IN; i++) s += x[n * IN + i] * w0At(w0, d, o, i);
      if (A && B) {
        let l = 0;
        for (let j = 0; j < r; j++) l += u[n * r + j] * B[o * r + j];
        s += d.scale * l;
      }
      y[n * OUT + o] = s;
    }
  return { y, u };
}

/** Gradients of sum(dy ⊙ y): dA (r, IN), dB (OUT, r), dx (N, IN). */
export function lora_backward_cpu(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  w0: ArrayLike<number>,
  A: ArrayLike<number> | null,
  B: ArrayLike<number> | null,
  d: LoraCpu,
): { dA: Float64Array; dB: Float64Array; dx: Float64Array } {
  const { N, IN, OUT, r, scale } = d;
  const dx = new Float64Array(N * IN);
  for (let n = 0; n < N; n++)
    for (let i = 0; i < IN; i++) {
      let s = 0;
      for (let o = 0; o < OUT; o++) s += dy[n * OUT + o] * w0At(w0, d, o, i);
      dx[n * IN + i] = s;
    }
  const dA = new Float64Array(A ? r * IN : 0),
    dB = new Float64Array(B ? OUT * r : 0);
  if (!A || !B) return { dA, dB, dx };
  const { u } = lora_forward_cpu(x, w0, null, A, B, d);
  const xd = dropout_cpu(x, d);
  const G = new Float64Array(N * r); // dy·B
  for (let n = 0; n < N; n++)
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let o = 0; o < OUT; o++) s += dy[n * OUT + o] * B[o * r + j];
      G[n * r + j] = s;
    }
  for (let o = 0; o < OUT; o++)
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += dy[n * OUT + o] * u[n * r + j];
      dB[o * r + j] = scale * s;
    }
  for (let j = 0; j < r; j++)
    for (let i = 0; i < IN; i++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += G[n * r + j] * xd[n * IN + i];
      dA[j * IN + i] = scale * s;
    }
  for (let n = 0; n < N; n++)
    for (let i = 0; i < IN; i++) {
      let s = 0;
      for (let j = 0; j < r; j++) s += G[n * r + j] * A[j * IN + i];
      dx[n * IN + i] += scale * dropoutMult(d.seed ?? 0, n * IN + i, d.p ?? 0) * s;
    }
  return { dA, dB, dx };
}
