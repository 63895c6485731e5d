// CPU twin of shaders/copy2d.wgsl.
import type { Copy2d } from './copy2d';

export function copy2d_cpu(src: ArrayLike<number>, dst: ArrayLike<number>, c: Copy2d): Float64Array {
  const out = Float64Array.from(dst);
  for (let r = 0; r < c.rows; r++)
    for (let j = 0; j < c.cols; j++) out[r * c.dstLd + c.dstCol + j] = src[r * c.srcLd + c.srcCol + j];
  return out;
}
