// AdamW update of one parameter tensor, in place on the GPU (torch.optim.AdamW semantics, see the shader).
// Shader: shaders/adamw.wgsl. CPU twin: adamw.cpu.ts.
import { grid1d } from '../gpu/context';
import type { Tensor } from '../gpu/tensor';
import { elementwiseCost } from './cost';

export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based count of updates, this one included (torch's `step` state after its increment). */
  step: number;
  /** (1,) tensor whose value multiplies the gradient first: the clip factor from clip_scale, no readback. */
  gradScale?: Tensor;
}

/** The uniforms the kernel needs, computed in float64 as torch does in Python: [decay, 1-β1, β2, 1-β2, lr/bc1, sqrt(bc2), eps]. */
export function adamwConstants(o: AdamWStep): number[] {
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  return [1 - o.lr * o.weightDecay, 1 - o.beta1, o.beta2, 1 - o.beta2, o.lr / bc1, Math.sqrt(bc2), o.eps];
}

/** param, grad, m, v are the same shape (f32); param, m and v are updated in place. */
export function adamw_step(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWStep): void {
  const n = param.numel;
  for (const [name, t] of [
    ['grad', grad],
    ['m', m],
    ['v', v],
  ] as const) {
    if (t.numel !== n || t.dtype !== 'f32')
      throw new Error(`adamw_step: ${name} is [${t.shape}] ${t.dtype}, param is [${param.shape}] f32`);
  }
  if (param.dtype !== 'f32') throw new Error(`adamw_step: param must be f32, got ${param.dtype}`);
  if (!Number.isInteger(o.step) || o.step < 1)
    throw new Error(`adamw_step: step must be a positive integer (1-based), got ${o.step}`);
  if (new Set([param.buf, grad.buf, m.buf, v.buf]).size !== 4)
    throw new Error('adamw_step: param, grad, m and v must be different buffers');
  if (o.gradScale && (o.gradScale.numel !== 1 || o.gradScale.dtype !== 'f32'))
    throw new Error(`adamw_step: gradScale must be (1,) f32`);
  param.ctx.dispatch('adamw', {
    // Without a scale the kernel never reads binding 5; grad (read-only there too) fills the slot.
    bindings: [param.buf, grad.buf, m.buf, v.buf, (o.gradScale ?? grad).buf],
    u32: [n, o.gradScale ? 1 : 0],
    f32: adamwConstants(o),
    workgroups: grid1d(n, 256),
    cost: elementwiseCost(n, 14, 4, 3), // reads param, grad, m, v; writes param, m, v
  });
}
