// CPU twin of shaders/lib_gelu.wgsl and shaders/gelu_{forward,backward}.wgsl, in float64: GELU with the tanh
// approximation. 1 + tanh(u) and 1 - tanh(u)² are formed from e = exp(-2|u|) as in the shaders: 1 + Math.tanh(u)
// cancels to exactly 0 in float64 for u < -19 (x < -8.7), where the true value is still ~1e-17.

/** (1 + tanh(u), 1 - tanh(u)²) without cancellation. */
function tanhTerms(u: number): [number, number] {
  const e = Math.exp(-2 * Math.abs(u));
  return [(u >= 0 ? 2 : 2 * e) / (1 + e), (4 * e) / (1 + e) ** 2];
}

const K0 = Math.sqrt(2 / Math.PI);
const K1 = 0.044715;

/** gelu(v) = 0.5 · v · (1 + t), t = tanh(K0 · (v + K1 · v³)). */
export function gelu_tanh_cpu(v: number): number {
  return 0.5 * v * tanhTerms(K0 * (v + K1 * v ** 3))[0];
}

/** gelu'(v) = 0.5 · (1 + t) + 0.5 · v · (1 - t²) · K0 · (1 + 3 · K1 · v²). */
export function gelu_tanh_grad_cpu(v: number): number {
  const [onePlusT, sech2] = tanhTerms(K0 * (v + K1 * v ** 3));
  return 0.5 * onePlusT + 0.5 * v * sech2 * K0 * (1 + 3 * K1 * v * v);
}

export function gelu_forward_cpu(x: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: x.length }, (_, i) => gelu_tanh_cpu(x[i]));
}

/** dx = dy · gelu'(x). */
export function gelu_backward_cpu(dy: ArrayLike<number>, x: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: x.length }, (_, i) => dy[i] * gelu_tanh_grad_cpu(x[i]));
}
