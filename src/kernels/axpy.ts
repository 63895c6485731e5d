// y += alpha·x in place (gradient accumulation).
import { grid1d } from '../gpu/context';
import type { Tensor } from '../gpu/tensor';
import { elementwiseCost } from './cost';

/** y += alpha·x; x and y have the same number of elements and must be different buffers. */
export function axpy_inplace(y: Tensor, x: Tensor, alpha = 1): void {
  if (x.numel !== y.numel) throw new Error(`axpy: sizes differ ([${x.shape}] vs [${y.shape}])`);
  if (x.base === y.base) throw new Error('axpy: x and y must be different buffers');
  const n = y.numel;
  y.ctx.dispatch('axpy', {
    bindings: [x.binding, y.binding],
    u32: [n],
    f32: [alpha],
    workgroups: grid1d(n, 256),
    cost: elementwiseCost(n, 2, 2, 1),
  });
}
