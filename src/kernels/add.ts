// Residual add: out = a + b. Its backward is the identity for both inputs, so it has no kernel.
import { grid1d } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { elementwiseCost } from './cost';

/** out = a + b; a, b, out have the same shape. `out` may alias `a` (in-place accumulate is not allowed by
 * WebGPU's aliasing rules, so pass a fresh out or leave it undefined). */
export function add_forward(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  if (a.numel !== b.numel) throw new Error(`add: sizes differ ([${a.shape}] vs [${b.shape}])`);
  const o = out ?? Tensor.empty(a.ctx, a.shape, 'add.out');
  a.ctx.dispatch('add', {
    bindings: [a.buf, b.buf, o.buf],
    u32: [a.numel],
    workgroups: grid1d(a.numel, 256),
    cost: elementwiseCost(a.numel, 1, 2, 1),
  });
  return o;
}
