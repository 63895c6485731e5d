// CPU twin of the whole-model optimizer step (shaders/grad_norm_sumsq.wgsl stage 1, shaders/optim_finalize.wgsl,
// shaders/optim_adamw.wgsl) in float64: norm and clip of torch.nn.utils.clip_grad_norm_, the non-finite guard,
// then torch.optim.AdamW, on flat arrays. Returns new arrays (inputs untouched); grad comes back zeroed.
import { adamw_step_cpu } from './adamw.cpu';

export interface OptimStats {
  loss: number;
  norm: number;
  scale: number;
  ok: boolean;
}

/** Norm, clip factor and guard from the flat gradient and the step's loss sum (ok: the guard before this step). */
export function optim_norm_clip_cpu(grad: ArrayLike<number>, loss: number, maxNorm: number, ok: boolean): OptimStats {
  let sumsq = 0;
  for (let i = 0; i < grad.length; i++) sumsq += grad[i] * grad[i];
  const norm = Math.sqrt(sumsq);
  const scale = Number.isFinite(maxNorm) ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
  return { loss, norm, scale, ok: ok && Number.isFinite(loss) && Number.isFinite(norm) };
}

export function optim_adamw_cpu(
  param: ArrayLike<number>,
  grad: ArrayLike<number>,
  m: ArrayLike<number>,
  v: ArrayLike<number>,
  stats: OptimStats,
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number },
): { param: Float64Array; grad: Float64Array; m: Float64Array; v: Float64Array } {
  const grad0 = new Float64Array(grad.length);
  if (!stats.ok)
    return { param: Float64Array.from(param), grad: grad0, m: Float64Array.from(m), v: Float64Array.from(v) };
  return { ...adamw_step_cpu(param, grad, m, v, { ...o, gradScale: stats.scale }), grad: grad0 };
}
