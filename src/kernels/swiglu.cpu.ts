// CPU twin of shaders/swiglu_{forward,backward}.wgsl, in float64. gate, up, dh are (N, F), flattened.

const sigmoid = (g: number) => 1 / (1 + Math.exp(-g));

export function swiglu_forward_cpu(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  const h = new Float64Array(gate.length);
  for (let i = 0; i < h.length; i++) h[i] = gate[i] * sigmoid(gate[i]) * up[i];
  return h;
}

/** dgate = dh · up · s · (1 + g · (1 - s)), dup = dh · g · s, s = sigmoid(g). */
export function swiglu_backward_cpu(
  dh: ArrayLike<number>,
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
): { dgate: Float64Array; dup: Float64Array } {
  const dgate = new Float64Array(gate.length);
  const dup = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i],
      s = sigmoid(g);
    dup[i] = dh[i] * g * s;
    dgate[i] = dh[i] * up[i] * s * (1 + g * (1 - s));
  }
  return { dgate, dup };
}
