// The autograd tape on a small residual block, z = x + linear(rmsnorm(x)) with a LoRA branch, against
// finite differences of the same maths in float64 (the kernels' CPU twins), plus its bookkeeping:
// gradients that reach a Var twice (the residual) are summed, LoRA gradients accumulate across calls,
// and after backward nothing the tape made is left on the GPU.
//
// Bound: f32 GPU vs float64 central differences (eps 1e-5 on O(1) values): |diff| <= 2e-4 + 2e-3·|want|.

import { describe, expect, it } from 'vitest';
import { add, linear, rmsnorm } from '../../src/autograd/ops';
import { Tape } from '../../src/autograd/tape';
import { Tensor } from '../../src/gpu/tensor';
import { lora_forward_cpu } from '../../src/kernels/lora.cpu';
import { rmsnorm_forward_cpu } from '../../src/kernels/rmsnorm.cpu';
import { expectClose, finiteDiff, gpu, rng } from '../helpers/gpu';

const N = 5,
  C = 7,
  r = 3,
  scale = 1.7,
  eps = 1e-5;

function lossCpu(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  W0: ArrayLike<number>,
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  G: ArrayLike<number>,
): number {
  const n = rmsnorm_forward_cpu(x, w, N, C, eps).y;
  const y = lora_forward_cpu(n, W0, null, A, B, { N, IN: C, OUT: C, r, scale }).y;
  let s = 0;
  for (let i = 0; i < N * C; i++) s += (x[i] + y[i]) * G[i];
  return s;
}

describe('autograd tape', () => {
  it('backward of a residual LoRA block matches finite differences; nothing leaks', async () => {
    const ctx = await gpu();
    const live0 = ctx.alloc.liveBytes;
    const rg = rng(3);
    const x = rg.normal(N * C),
      w = rg.uniform(C, 0.5, 1.5),
      W0 = rg.normal(C * C, 0.3);
    const A = rg.normal(r * C, 0.3),
      B = rg.normal(C * r, 0.3),
      G = rg.normal(N * C);
    const [tx, tw, tW0, tA, tB] = [
      Tensor.from(ctx, x, [N, C]),
      Tensor.from(ctx, w, [C]),
      Tensor.from(ctx, W0, [C, C]),
      Tensor.from(ctx, A, [r, C]),
      Tensor.from(ctx, B, [C, r]),
    ];
    const gA = Tensor.zeros(ctx, [r, C]),
      gB = Tensor.zeros(ctx, [C, r]);

    const run = () => {
      const tape = new Tape(true);
      const xv = tape.leaf(tx, 'x', true);
      const n = rmsnorm(tape, xv, tw, eps, 'norm');
      const lora = { A: tape.param(tA, gA, 'A'), B: tape.param(tB, gB, 'B'), scale, dropout: 0, seed: 0 };
      const y = linear(tape, n, { w0: tW0, bias: null, transposed: false }, lora, 'lin');
      const z = add(tape, xv, y, 'z');
      const [zt] = tape.endForward([z]);
      const [dx] = tape.backward(z, Tensor.from(ctx, G, [N, C], 'dz'), [xv]);
      expect(tape.ownedCount).toBe(0);
      return { zt, dx: dx! };
    };

    const first = run();
    const xd = Float64Array.from(x);
    const want = {
      z: (() => {
        const n = rmsnorm_forward_cpu(x, w, N, C, eps).y;
        const y = lora_forward_cpu(n, W0, null, A, B, { N, IN: C, OUT: C, r, scale }).y;
        return Float64Array.from(y, (v, i) => v + x[i]);
      })(),
      dx: finiteDiff((v) => lossCpu(v, w, W0, A, B, G), xd, 1e-5),
      dA: finiteDiff((v) => lossCpu(x, w, W0, v, B, G), Float64Array.from(A), 1e-5),
      dB: finiteDiff((v) => lossCpu(x, w, W0, A, v, G), Float64Array.from(B), 1e-5),
    };
    expectClose(await first.zt.read(), want.z, 1e-5, 1e-5, 'z');
    expectClose(await first.dx.read(), want.dx, 2e-4, 2e-3, 'dx (two paths: residual + norm)');
    expectClose(await gA.read(), want.dA, 2e-4, 2e-3, 'dA');
    expectClose(await gB.read(), want.dB, 2e-4, 2e-3, 'dB');

    // A second pass adds into the parameter gradients (gradient accumulation across micro-batches).
    const second = run();
    expectClose(
      await gA.read(),
      Float64Array.from(want.dA, (v) => 2 * v),
      4e-4,
      2e-3,
      '2·dA',
    );
    [first.zt, first.dx, second.zt, second.dx, tx, tw, tW0, tA, tB, gA, gB].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live0);
  });

  it('a no-grad tape records nothing and frees every intermediate at endForward', async () => {
    const ctx = await gpu();
    const live0 = ctx.alloc.liveBytes;
    const rg = rng(4);
    const tx = Tensor.from(ctx, rg.normal(N * C), [N, C]);
    const tw = Tensor.from(ctx, rg.uniform(C), [C]);
    const tape = new Tape(false);
    const xv = tape.leaf(tx, 'x', true);
    expect(xv.requiresGrad).toBe(false);
    const z = add(tape, xv, rmsnorm(tape, xv, tw, eps, 'norm'), 'z');
    const [zt] = tape.endForward([z]);
    expect(tape.ownedCount).toBe(0);
    [zt, tx, tw].forEach((t) => t.free());
    ctx.flush(); // the open command batch holds its uniform buffer until submitted
    expect(ctx.alloc.liveBytes).toBe(live0);
  });
});
