// Inverted dropout with a counter-based mask (shaders/lib_rng.wgsl): element i of stream `seed` is kept with
// probability 1 - p and scaled by 1 / (1 - p). The backward applies the same mask to dy, regenerated from
// (seed, i), so nothing is stored between the passes. Shader: shaders/dropout.wgsl. CPU twin: dropout.cpu.ts.
import { grid1d } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { elementwiseCost } from './cost';

function launch(what: string, x: Tensor, p: number, seed: number): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`${what}: p must be in [0, 1), got ${p}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw new Error(`${what}: seed must be a u32, got ${seed}`);
  if (x.dtype !== 'f32') throw new Error(`${what}: input must be f32, got ${x.dtype}`);
  const y = Tensor.empty(x.ctx, x.shape, `${what}.out`);
  x.ctx.dispatch('dropout', {
    bindings: [x.buf, y.buf],
    u32: [x.numel, seed],
    f32: [p],
    workgroups: grid1d(x.numel, 256),
    cost: elementwiseCost(x.numel, 2, 1, 1), // the mask is hashed from (seed, i): no read
  });
  return y;
}

/** x is any shape (f32). Returns y shaped like x: y[i] = x[i] · mask(seed, i) / (1 - p). */
export function dropout_forward(x: Tensor, p: number, seed: number): Tensor {
  return launch('dropout_forward', x, p, seed);
}

/** dy is shaped like the forward's x; the same (p, seed) as the forward. Returns dx = dy · mask(seed, i) / (1 - p). */
export function dropout_backward(dy: Tensor, p: number, seed: number): Tensor {
  return launch('dropout_backward', dy, p, seed);
}
