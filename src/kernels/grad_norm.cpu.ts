// CPU twin of shaders/grad_norm_sumsq.wgsl in float64: Σg² over many gradients (the square of their global L2
// norm). The clip factor's twin is optim_norm_clip_cpu in optim.cpu.ts.
export function sumsq_cpu(grads: ArrayLike<number>[]): number {
  let sumsq = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sumsq += g[i] * g[i];
  return sumsq;
}
