// The raw counter-based random stream of shaders/lib_rng.wgsl on the GPU, element i of stream `seed`:
// bits (n,) u32 = pcg_hash(i ^ pcg_hash(seed)) and uniform (n,) f32 in [0, 1). Shader: shaders/rng_fill.wgsl.
// CPU twin: rng.cpu.ts (pcgHash, rngUniform).
import { grid1d, type GpuContext } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { elementwiseCost } from './cost';

export function rng_fill(ctx: GpuContext, n: number, seed: number): { bits: Tensor; uniform: Tensor } {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw new Error(`rng_fill: seed must be a u32, got ${seed}`);
  const bits = Tensor.empty(ctx, [n], 'rng.bits', 'u32');
  const uniform = Tensor.empty(ctx, [n], 'rng.uniform');
  ctx.dispatch('rng_fill', {
    bindings: [bits.buf, uniform.buf],
    u32: [n, seed],
    workgroups: grid1d(n, 256),
    cost: elementwiseCost(n, 1, 0, 2),
  });
  return { bits, uniform };
}
