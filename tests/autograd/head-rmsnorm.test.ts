// headRmsnorm (src/autograd/ops.ts, Qwen3's q_norm / k_norm): RMSNorm of each head of x (N, H·D) over its
// D values, through the rmsnorm kernels (shaders/rmsnorm_forward.wgsl, shaders/rmsnorm_backward.wgsl) on an
// (N·H, D) view. Checked against the float64 twin applied head by head, and the twin's backward against
// finite differences of the forward; the tape must free everything, including the views' buffers.
// Bounds: as tests/kernels/rmsnorm.test.ts allows an f32 row reduction, 1e-5 relative + 1e-6 absolute.

import { describe, expect, it } from 'vitest';
import { headRmsnorm } from '../../src/autograd/ops';
import { Tape } from '../../src/autograd/tape';
import { Tensor } from '../../src/gpu/tensor';
import { rmsnorm_backward_cpu, rmsnorm_forward_cpu } from '../../src/kernels/rmsnorm.cpu';
import { expectClose, finiteDiff, gpu, rng } from '../helpers/gpu';

describe('headRmsnorm', () => {
  it.each([
    [7, 3, 6], // awkward N, H; head_dim 6
    [5, 2, 128], // Qwen3's head_dim
  ])('N = %i, H = %i, D = %i: forward and backward vs the twin per head', async (N, H, D) => {
    const ctx = await gpu();
    const live0 = ctx.alloc.liveBytes;
    const eps = 1e-6;
    const r = rng(N * 31 + D);
    const x = r.normal(N * H * D),
      w = r.uniform(D, 0.5, 1.5),
      g = r.normal(N * H * D);
    const tx = Tensor.from(ctx, x, [N, H * D]),
      tw = Tensor.from(ctx, w, [D]);

    const tape = new Tape(true);
    const xv = tape.leaf(tx, 'x', true);
    const y = headRmsnorm(tape, xv, tw, eps, 'q_norm');
    expect(y.t.shape).toEqual([N, H * D]);
    const [yt] = tape.endForward([y]);
    const [dx] = tape.backward(y, Tensor.from(ctx, g, [N, H * D], 'dy'), [xv]);
    expect(tape.ownedCount).toBe(0);

    const want = rmsnorm_forward_cpu(x, w, N * H, D, eps);
    expectClose(await yt.read(), want.y, 1e-6, 1e-5, 'y');
    const wantDx = rmsnorm_backward_cpu(g, x, w, want.rstd, N * H, D);
    expectClose(await dx!.read(), wantDx, 1e-6, 1e-5, 'dx');

    // the twin's backward is the derivative of its forward (float64 central differences)
    if (D === 6) {
      const fd = finiteDiff(
        (xs) => rmsnorm_forward_cpu(xs, w, N * H, D, eps).y.reduce((s, v, i) => s + v * g[i], 0),
        Float64Array.from(x),
      );
      expectClose(wantDx, fd, 1e-6, 1e-6, 'twin dx vs finite differences');
    }
    [tx, tw, yt, dx!].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live0);
  });
});
