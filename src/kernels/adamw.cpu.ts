// One torch.optim.AdamW step in float64, the per-element maths of shaders/optim_adamw.wgsl (optim.cpu.ts builds
// its twin on it). Returns new arrays (inputs untouched).
export function adamw_step_cpu(
  param: ArrayLike<number>,
  grad: ArrayLike<number>,
  m: ArrayLike<number>,
  v: ArrayLike<number>,
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number; gradScale?: number },
): { param: Float64Array; m: Float64Array; v: Float64Array } {
  const n = param.length;
  const out = { param: new Float64Array(n), m: new Float64Array(n), v: new Float64Array(n) };
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  const s = o.gradScale ?? 1;
  for (let i = 0; i < n; i++) {
    const g = grad[i] * s;
    const mi = o.beta1 * m[i] + (1 - o.beta1) * g;
    const vi = o.beta2 * v[i] + (1 - o.beta2) * g * g;
    out.m[i] = mi;
    out.v[i] = vi;
    out.param[i] =
      param[i] * (1 - o.lr * o.weightDecay) - (o.lr / bc1) * (mi / (Math.sqrt(vi) / Math.sqrt(bc2) + o.eps));
  }
  return out;
}
