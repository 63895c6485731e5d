import { describe, expect, it } from 'vitest';
import { add_forward_cpu } from '../../src/kernels/add.cpu';
import { add_forward } from '../../src/kernels/add';
import { Tensor } from '../../src/gpu/tensor';
import { AWKWARD, expectClose, gpu, rng } from '../helpers/gpu';

describe('add', () => {
  it.each(AWKWARD.concat([70000]))('matches the CPU twin, n = %i (exact in f32)', async (n) => {
    const ctx = await gpu();
    const r = rng(n);
    const a = r.uniform(n),
      b = r.uniform(n);
    const ta = Tensor.from(ctx, a, [n]),
      tb = Tensor.from(ctx, b, [n]);
    const out = add_forward(ta, tb);
    expectClose(await out.read(), Float32Array.from(add_forward_cpu(a, b)), 0);
    [ta, tb, out].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(0);
  });
});
