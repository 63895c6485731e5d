// CPU twin of shaders/gelu_{forward,backward}.wgsl, in float64: GELU with the tanh approximation.
// 1 + tanh(u) and 1 - tanh(u)² are formed from e = exp(-2|u|) as in the shaders: 1 + Math.tanh(u) cancels to
// exactly 0 in float64 for u < -19 (x < -8.7), where the true value is still ~1e-17.

/** (1 + tanh(u), 1 - tanh(u)²) without cancellation. */
function tanhTerms(u: number): [number, number] {
  const e = Math.exp(-2 * Math.abs(u));
  return [(u >= 0 ? 2 : 2 * e) / (1 + e), (4 * e) / (1 + e) ** 2];
}

const K0 = Math.sqrt(2 / Math.PI);
const K1 = 0.044715;

export function gelu_forward_cpu(x: ArrayLike<number>): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < y.length; i++) {
    const v = x[i];
    y[i] = 0.5 * v * tanhTerms(K0 * (v + K1 * v ** 3))[0];
  }
  return y;
}

/** dx = dy · (0.5 · (1 + t) + 0.5 · x · (1 - t²) · K0 · (1 + 3 · K1 · x²)), t = tanh(K0 · (x + K1 · x³)). */
export function gelu_backward_cpu(dy: ArrayLike<number>, x: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(x.length);
  for (let i = 0; i < dx.length; i++) {
    const v = x[i];
    const [onePlusT, sech2] = tanhTerms(K0 * (v + K1 * v ** 3));
    dx[i] = dy[i] * (0.5 * onePlusT + 0.5 * v * sech2 * K0 * (1 + 3 * K1 * v * v));
  }
  return dx;
}
