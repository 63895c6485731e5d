// CPU twin of shaders/grad_norm_{sumsq,clip}.wgsl in float64: the global L2 norm of many gradients and the
// clip factor of torch.nn.utils.clip_grad_norm_.
export function grad_norm_cpu(
  grads: ArrayLike<number>[],
  maxNorm: number,
): { sumsq: number; norm: number; scale: number } {
  let sumsq = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sumsq += g[i] * g[i];
  const norm = Math.sqrt(sumsq);
  const scale = Number.isFinite(maxNorm) ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
  return { sumsq, norm, scale };
}
