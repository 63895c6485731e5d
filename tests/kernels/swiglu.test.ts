// shaders/swiglu_{forward,backward}.wgsl (silu from shaders/lib_silu.wgsl, which lora_rank_glu shares) against the float64 twin,
// and the twin's backward against finite differences of its forward.
//
// Error bounds (ε = 2^-24; both sides get the same f32 inputs). WGSL promises exp(x) within 3 + 2|x| ulp,
// so e = exp(-|g|) has relative error ≤ A = (6 + 4|g|)·ε. Then, with s = sigmoid(g):
//   s = 1/(1 + e) or e/(1 + e):  rel(s) ≤ A·(1 - s) + 7ε   (the sum, the product, ≤ 2.5 ulp for the division)
//   h = (g·s)·up:      |Δh|   ≤ (rel(s) + 3ε)·|h|,     dup = dh·(g·s):  the same
//   silu' = s·(1 + g·(1 - s)), 1 - s formed like s: the sum may cancel (silu' = 0 at g ≈ -1.28), so
//   bound it by its terms:
//                      |Δsilu'| ≤ s·(1 + |g|·(1 - s))·(A + 2·rel(s) + 4ε)
//   dgate = (dh·up)·silu':  |Δdgate| ≤ |dh·up|·|Δsilu'| + 2ε·|dgate|
// Where e leaves the normal range (|g| > 87.3) a GPU may flush it to zero: silu is then 0 instead of
// ~|g|·e^-|g| < 1e-36, so every comparison also allows an absolute 1e-30. The tests allow twice the bounds above.
import { describe, expect, it } from 'vitest';
import { swiglu_backward, swiglu_forward } from '../../src/kernels/swiglu';
import { swiglu_backward_cpu, swiglu_forward_cpu } from '../../src/kernels/swiglu.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { AWKWARD, finiteDiff, gpu, rng, expectWithin } from '../helpers/gpu';

const eps = 2 ** -24;

function bounds(dh: ArrayLike<number>, gate: ArrayLike<number>, up: ArrayLike<number>, atol = 1e-30) {
  const n = gate.length;
  const h = swiglu_forward_cpu(gate, up),
    { dgate, dup } = swiglu_backward_cpu(dh, gate, up);
  const bh = new Float64Array(n),
    bgate = new Float64Array(n),
    bup = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i],
      s = 1 / (1 + Math.exp(-g));
    const A = (6 + 4 * Math.abs(g)) * eps;
    const relS = A * (1 - s) + 7 * eps;
    bh[i] = 2 * (relS + 3 * eps) * Math.abs(h[i]) + atol;
    bup[i] = 2 * (relS + 3 * eps) * Math.abs(dup[i]) + atol;
    const dsilu = s * (1 + Math.abs(g) * (1 - s)) * (A + 2 * relS + 4 * eps);
    bgate[i] = 2 * (Math.abs(dh[i] * up[i]) * dsilu + 2 * eps * Math.abs(dgate[i])) + atol;
  }
  return { h, dgate, dup, bh, bgate, bup };
}

describe('swiglu', () => {
  it.each(AWKWARD.concat([70000]))('forward and backward match the twin, n = %i', async (n) => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const r = rng(n + 3);
    const gate = r.normal(n, 4),
      up = r.normal(n),
      dh = r.normal(n);
    const shape = n % 7 === 0 ? [n / 7, 7] : [n];
    const tg = Tensor.from(ctx, gate, shape),
      tu = Tensor.from(ctx, up, shape),
      tdh = Tensor.from(ctx, dh, shape);
    const h = swiglu_forward(tg, tu);
    const { dgate, dup } = swiglu_backward(tdh, tg, tu);
    expect(h.shape).toEqual(shape);
    const want = bounds(dh, gate, up);
    expectWithin(await h.read(), want.h, want.bh, 'h');
    expectWithin(await dup.read(), want.dup, want.bup, 'dup');
    expectWithin(await dgate.read(), want.dgate, want.bgate, 'dgate');
    [tg, tu, tdh, h, dgate, dup].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('special values: large |gate| gives finite results (no inf·0), zero gate gives zero', async () => {
    const ctx = await gpu();
    const gate = Float32Array.from([0, -0, 30, -30, 88, -88, 100, -100, 1e4, -1e4, 1e30, -1e30]);
    const n = gate.length,
      up = new Float32Array(n).fill(1.5),
      dh = new Float32Array(n).fill(-2);
    const tg = Tensor.from(ctx, gate, [n]),
      tu = Tensor.from(ctx, up, [n]),
      tdh = Tensor.from(ctx, dh, [n]);
    const h = swiglu_forward(tg, tu);
    const { dgate, dup } = swiglu_backward(tdh, tg, tu);
    const want = bounds(dh, gate, up);
    const gh = await h.read(),
      gdg = await dgate.read(),
      gdu = await dup.read();
    for (const v of [...gh, ...gdg, ...gdu]) expect(Number.isFinite(v)).toBe(true);
    expectWithin(gh, want.h, want.bh, 'h');
    expectWithin(gdu, want.dup, want.bup, 'dup');
    expectWithin(gdg, want.dgate, want.bgate, 'dgate');
    [tg, tu, tdh, h, dgate, dup].forEach((t) => t.free());
  });

  it('rejects mismatched shapes', async () => {
    const ctx = await gpu();
    const a = Tensor.zeros(ctx, [3, 4]),
      b = Tensor.zeros(ctx, [3, 5]);
    expect(() => swiglu_forward(a, b)).toThrow(/shapes differ/);
    a.free();
    b.free();
  });
});

describe('swiglu twin', () => {
  it('backward = finite differences of the forward (float64), for gate and up', () => {
    // f(gate, up) = Σ h·dh. Central differences, step 1e-6, float64: truncation ~1e-12·|f'''|, rounding ~1e-10.
    const r = rng(11);
    const n = 40;
    const gate = Float64Array.from(r.normal(n, 4)),
      up = Float64Array.from(r.normal(n)),
      dh = r.normal(n);
    const { dgate, dup } = swiglu_backward_cpu(dh, gate, up);
    const fdg = finiteDiff((g) => swiglu_forward_cpu(g, up).reduce((s, v, i) => s + v * dh[i], 0), gate);
    const fdu = finiteDiff((u) => swiglu_forward_cpu(gate, u).reduce((s, v, i) => s + v * dh[i], 0), up);
    for (let i = 0; i < n; i++) {
      expect(Math.abs(dgate[i] - fdg[i])).toBeLessThan(1e-7 + 1e-6 * Math.abs(fdg[i]));
      expect(Math.abs(dup[i] - fdu[i])).toBeLessThan(1e-7 + 1e-6 * Math.abs(fdu[i]));
    }
  });
});
