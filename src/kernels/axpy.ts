// y += alpha·x in place (gradient accumulation).
import { grid1d } from '../gpu/context';
import type { Tensor } from '../gpu/tensor';
import { elementwiseCost } from './cost';

/** y += alpha·x; x and y have the same number of elements and must be different buffers. */
export function axpy_inplace(y: Tensor, x: Tensor, alpha = 1): void {
  if (x.numel !== y.numel) throw new Error(`axpy: sizes differ ([${x.shape}] vs [${y.shape}])`);
  if (x.buf === y.buf) throw new Error('axpy: x and y must be different buffers');
  y.ctx.dispatch('axpy', {
    bindings: [x.buf, y.buf],
    u32: [y.numel],
    f32: [alpha],
    workgroups: grid1d(y.numel, 256),
    cost: elementwiseCost(y.numel, 2, 2, 1),
  });
}
