// CPU twin of shaders/geglu_{forward,backward}.wgsl, in float64. gate, up, dh are (N, F), flattened.
import { gelu_tanh_cpu, gelu_tanh_grad_cpu } from './gelu.cpu';

/** h = gelu(gate) · up. */
export function geglu_forward_cpu(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: gate.length }, (_, i) => gelu_tanh_cpu(gate[i]) * up[i]);
}

/** dgate = dh · up · gelu'(gate), dup = dh · gelu(gate). */
export function geglu_backward_cpu(
  dh: ArrayLike<number>,
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
): { dgate: Float64Array; dup: Float64Array } {
  const dgate = Float64Array.from({ length: gate.length }, (_, i) => dh[i] * up[i] * gelu_tanh_grad_cpu(gate[i]));
  const dup = Float64Array.from({ length: gate.length }, (_, i) => dh[i] * gelu_tanh_cpu(gate[i]));
  return { dgate, dup };
}
