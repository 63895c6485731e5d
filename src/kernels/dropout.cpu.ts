// CPU twin of shaders/dropout.wgsl in float64, with the mask from rng.cpu.ts (bit-exact with lib_rng.wgsl).
// The kernel compares the uniform against p in f32, so the twin does too (Math.fround(p)).
import { dropoutMult } from './rng.cpu';

export function dropout_forward_cpu(x: ArrayLike<number>, p: number, seed: number): Float64Array {
  const p32 = Math.fround(p);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * dropoutMult(seed, i, p32);
  return out;
}

/** The same mask applied to dy (the forward is linear in x). */
export const dropout_backward_cpu = dropout_forward_cpu;
