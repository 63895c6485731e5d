// shaders/softcap.wgsl (shaders/lib_softcap.wgsl in place over logits) against its float64 twin softcap_cpu.
// Bound per value (tests/helpers/head.ts capErr, derived in tests/kernels/head_lse.test.ts): the division y/c
// is off by ≤ 5u|y/c|, lib_softcap's tanh by ≤ (16 + 4|y/c|)u absolute, the product by u|z|. Twice that allowed.
import { describe, expect, it } from 'vitest';
import { softcap_inplace } from '../../src/kernels/softcap';
import { softcap_cpu } from '../../src/kernels/head_lse.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { capErr } from '../helpers/head';
import { AWKWARD, expectWithin, gpu, rng } from '../helpers/gpu';

describe('softcap', () => {
  it.each(AWKWARD.concat([70000]))('matches the twin in place, n = %i', async (n) => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const c = 30; // gemma-2's final_logit_softcapping
    const y = rng(n + 9).normal(n, 40);
    const t = Tensor.from(ctx, y, [n]);
    expect(softcap_inplace(t, c)).toBe(t);
    const want = Float64Array.from(y, (v) => softcap_cpu(v, c));
    expectWithin(
      await t.read(),
      want,
      Float64Array.from(y, (v) => 2 * capErr(v, c)),
      'z',
    );
    t.free();
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('saturates to ±c without NaN for huge logits, keeps 0 and the sign', async () => {
    const ctx = await gpu();
    const y = Float32Array.from([0, -0, 1e30, -1e30, 3e38, -3e38, 0.5, -0.5]);
    const t = Tensor.from(ctx, y, [y.length]);
    const z = await softcap_inplace(t, 2.5).read();
    expect([...z.slice(0, 6)].map((v) => v + 0)).toEqual([0, 0, 2.5, -2.5, 2.5, -2.5]); // ±0 -> 0
    expectWithin(
      z.slice(6),
      [softcap_cpu(0.5, 2.5), softcap_cpu(-0.5, 2.5)],
      [2 * capErr(0.5, 2.5), 2 * capErr(0.5, 2.5)],
      'z',
    );
    t.free();
  });

  it('rejects a cap that is not a positive number', async () => {
    const ctx = await gpu();
    const t = Tensor.zeros(ctx, [3]);
    expect(() => softcap_inplace(t, 0)).toThrow(/must be a positive number/);
    t.free();
  });
});
