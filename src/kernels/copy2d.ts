// Strided copies between column blocks of row-major matrices.
import { grid1d } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { elementwiseCost } from './cost';

export interface Copy2d {
  rows: number;
  cols: number;
  srcLd: number;
  srcCol: number;
  dstLd: number;
  dstCol: number;
}

/** dst[r, dstCol + c] = src[r, srcCol + c]. */
export function copy2d(src: Tensor, dst: Tensor, c: Copy2d): void {
  if ((c.rows - 1) * c.srcLd + c.srcCol + c.cols > src.numel)
    throw new Error(`copy2d: source [${src.shape}] too small`);
  if ((c.rows - 1) * c.dstLd + c.dstCol + c.cols > dst.numel)
    throw new Error(`copy2d: destination [${dst.shape}] too small`);
  src.ctx.dispatch('copy2d', {
    bindings: [src.buf, dst.buf],
    u32: [c.rows, c.cols, c.srcLd, c.srcCol, c.dstLd, c.dstCol],
    workgroups: grid1d(c.rows * c.cols, 256),
    cost: elementwiseCost(c.rows * c.cols, 0, 1, 1),
  });
}

/** Columns [col, col + cols) of x (N, ld) as a new contiguous (N, cols) tensor. */
export function take_cols(x: Tensor, col: number, cols: number): Tensor {
  const [n, ld] = [x.shape[0], x.shape[x.shape.length - 1]];
  const out = Tensor.empty(x.ctx, [n, cols], 'take_cols');
  copy2d(x, out, { rows: n, cols, srcLd: ld, srcCol: col, dstLd: cols, dstCol: 0 });
  return out;
}

/** Writes x (N, cols) into columns [col, col + cols) of dst (N, ld). */
export function put_cols(x: Tensor, dst: Tensor, col: number): void {
  const [n, cols] = [x.shape[0], x.shape[1]];
  copy2d(x, dst, { rows: n, cols, srcLd: cols, srcCol: 0, dstLd: dst.shape[dst.shape.length - 1], dstCol: col });
}
