// CPU twin of shaders/axpy.wgsl.
export function axpy_cpu(y: ArrayLike<number>, x: ArrayLike<number>, alpha: number): Float64Array {
  return Float64Array.from(y, (v, i) => v + alpha * x[i]);
}
