// GELU, tanh approximation (GPT-2's "gelu_new"), and its backward. Shaders: shaders/gelu_{forward,backward}.wgsl.
// CPU twin: gelu.cpu.ts.
import { grid1d } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { elementwiseCost } from './cost';

/** x is any shape; returns y = 0.5 · x · (1 + tanh(sqrt(2/π) · (x + 0.044715 · x³))), same shape. */
export function gelu_forward(x: Tensor): Tensor {
  if (x.dtype !== 'f32') throw new Error(`gelu_forward: x must be f32, got ${x.dtype}`);
  const y = Tensor.empty(x.ctx, x.shape, 'gelu.y');
  x.ctx.dispatch('gelu_forward', {
    bindings: [x.buf, y.buf],
    u32: [x.numel],
    workgroups: grid1d(x.numel, 256),
    cost: elementwiseCost(x.numel, 9, 1, 1),
  });
  return y;
}

/** dy, x have the same shape; returns dx = dy · gelu'(x). */
export function gelu_backward(dy: Tensor, x: Tensor): Tensor {
  if (dy.numel !== x.numel) throw new Error(`gelu_backward: dy [${dy.shape}] and x [${x.shape}] differ`);
  if (x.dtype !== 'f32' || dy.dtype !== 'f32') throw new Error('gelu_backward: dy and x must be f32');
  const dx = Tensor.empty(x.ctx, x.shape, 'gelu.dx');
  x.ctx.dispatch('gelu_backward', {
    bindings: [dy.buf, x.buf, dx.buf],
    u32: [x.numel],
    workgroups: grid1d(x.numel, 256),
    cost: elementwiseCost(x.numel, 16, 2, 1),
  });
  return dx;
}
