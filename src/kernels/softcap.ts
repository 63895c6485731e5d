// Gemma's final-logit soft cap, z = c·tanh(y / c), in place over a tensor of logits (generation and the no-grad
// forward; training's chunked head applies it inside its kernels). Shader: shaders/softcap.wgsl (the maths:
// shaders/lib_softcap.wgsl). CPU twin: softcap_cpu in head_lse.cpu.ts.
import { grid1d } from '../gpu/context';
import type { Tensor } from '../gpu/tensor';
import { elementwiseCost } from './cost';

/** x (any shape, f32) becomes c·tanh(x / c) in place; c must be > 0. Returns x. */
export function softcap_inplace(x: Tensor, c: number): Tensor {
  if (x.dtype !== 'f32') throw new Error(`softcap_inplace: x must be f32, got ${x.dtype}`);
  if (!(c > 0) || !Number.isFinite(c)) throw new Error(`softcap_inplace: cap ${c} must be a positive number`);
  x.ctx.dispatch('softcap', {
    bindings: [x.buf],
    u32: [x.numel],
    f32: [c],
    workgroups: grid1d(x.numel, 256),
    cost: elementwiseCost(x.numel, 6, 1, 1),
  });
  return x;
}
