// shaders/gelu_{forward,backward}.wgsl (with shaders/lib_gelu.wgsl, the tanh-GELU maths they share with geglu)
// against the float64 twin, and the twin's backward against finite differences of its forward.
//
// Error bounds (ε = 2^-24; both sides get the same f32 inputs). u = K0·(x + K1·x³) has relative error ≤ 6ε
// (its two terms share a sign; K0 rounded to f32 included). WGSL promises exp(z) within 3 + 2|z| ulp, so
// e = exp(-2|u|) has relative error ≤ (6 + 8|u|)ε. 1 + tanh(u) = 2/(1 + e) or 2e/(1 + e) then has relative
// error ≤ (6 + 8|u|)ε + 7ε, plus (1 - t)·6ε|u| ≤ 12ε|u| from the error in u:
//   y = 0.5·x·(1 + t):   |Δy| ≤ (14 + 20|u|)·ε·|y|
// The backward's two terms cancel near x ≈ -0.75, so bound them separately (sech² = 4e/(1+e)² adds
// (6 + 8|u|)ε from e, 9ε from the arithmetic and 12ε|u| from the error in u; du/dx adds 4ε):
//   |Δdx| ≤ |dy|·(0.5(1 + t)·(14 + 20|u|)ε + |0.5·x·sech²·du/dx|·(30 + 32|u|)ε) + 2ε·|dx|
// Where e leaves the normal range (u < -43.6, x < -9.9) a GPU may flush it to zero: y is then 0 instead of
// ≤ 1e-36, so every comparison also allows an absolute 1e-30. The tests allow twice the bounds above.
import { describe, expect, it } from 'vitest';
import { gelu_backward, gelu_forward } from '../../src/kernels/gelu';
import { gelu_backward_cpu, gelu_forward_cpu } from '../../src/kernels/gelu.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { AWKWARD, finiteDiff, gpu, rng, expectWithin } from '../helpers/gpu';

const eps = 2 ** -24;
const K0 = Math.sqrt(2 / Math.PI),
  K1 = 0.044715;

function bounds(dy: ArrayLike<number>, x: ArrayLike<number>, atol = 1e-30) {
  const y = gelu_forward_cpu(x),
    dx = gelu_backward_cpu(dy, x);
  const by = new Float64Array(x.length),
    bdx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i],
      us = K0 * (v + K1 * v ** 3),
      u = Math.abs(us),
      e = Math.exp(-2 * u);
    const onePlusT = (us >= 0 ? 2 : 2 * e) / (1 + e),
      sech2 = (4 * e) / (1 + e) ** 2;
    by[i] = 2 * (14 + 20 * u) * eps * Math.abs(y[i]) + atol;
    const second = Math.abs(0.5 * v * sech2 * K0 * (1 + 3 * K1 * v * v));
    bdx[i] =
      2 *
        (Math.abs(dy[i]) * (0.5 * onePlusT * (14 + 20 * u) * eps + second * (30 + 32 * u) * eps) +
          2 * eps * Math.abs(dx[i])) +
      atol;
  }
  return { y, dx, by, bdx };
}

describe('gelu', () => {
  it.each(AWKWARD.concat([70000]))('forward and backward match the twin, n = %i', async (n) => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const r = rng(n + 5);
    const x = r.normal(n, 3),
      dy = r.normal(n);
    const tx = Tensor.from(ctx, x, [n]),
      tdy = Tensor.from(ctx, dy, [n]);
    const y = gelu_forward(tx),
      dx = gelu_backward(tdy, tx);
    const want = bounds(dy, x);
    expectWithin(await y.read(), want.y, want.by, 'y');
    expectWithin(await dx.read(), want.dx, want.bdx, 'dx');
    [tx, tdy, y, dx].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('special values: finite everywhere (tanh never overflows), gelu(0) = 0, gelu(x) = x for large x', async () => {
    const ctx = await gpu();
    const x = Float32Array.from([0, -0, 1, -1, 5, -5, 10, -10, 20, -20, 100, -100, 1e4, -1e4, 1e15, -1e15]);
    const dy = new Float32Array(x.length).fill(1);
    const tx = Tensor.from(ctx, x, [x.length]),
      tdy = Tensor.from(ctx, dy, [x.length]);
    const y = gelu_forward(tx),
      dx = gelu_backward(tdy, tx);
    const gy = await y.read(),
      gdx = await dx.read();
    for (const v of [...gy, ...gdx]) expect(Number.isFinite(v)).toBe(true);
    const want = bounds(dy, x);
    expectWithin(gy, want.y, want.by, 'y');
    expectWithin(gdx, want.dx, want.bdx, 'dx');
    expect(gy[0]).toBe(0);
    expect(gy[12]).toBe(1e4);
    [tx, tdy, y, dx].forEach((t) => t.free());
  });
});

describe('gelu twin', () => {
  it('backward = finite differences of the forward (float64)', () => {
    // f(x) = Σ y·dy. Central differences, step 1e-6, float64: truncation ~1e-12·|f'''|, rounding ~1e-10.
    const r = rng(12);
    const x = Float64Array.from(r.normal(50, 3)),
      dy = r.normal(50);
    const dx = gelu_backward_cpu(dy, x);
    const fd = finiteDiff((xv) => gelu_forward_cpu(xv).reduce((s, v, i) => s + v * dy[i], 0), x);
    for (let i = 0; i < x.length; i++) expect(Math.abs(dx[i] - fd[i])).toBeLessThan(1e-7 + 1e-6 * Math.abs(fd[i]));
  });
  it('is Hugging Face gelu_new at hand-checked points', () => {
    // 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))) evaluated by hand: gelu(1) = 0.841191990607, gelu(-1) = -0.158808009393
    const y = gelu_forward_cpu([1, -1, 0]);
    expect(y[0]).toBeCloseTo(0.841191990607, 10);
    expect(y[1]).toBeCloseTo(-0.158808009393, 10);
    expect(y[2]).toBe(0);
  });
});
