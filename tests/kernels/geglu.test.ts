// shaders/geglu_{forward,backward}.wgsl against the float64 twin, and the twin's backward against finite
// differences of its forward.
//
// Error bounds (ε = 2^-24; both sides get the same f32 inputs), from GELU's (tests/kernels/gelu.test.ts, u =
// K0·(g + K1·g³), t = tanh(u)): gelu(g) is within (14 + 20|u|)·ε relative, and gelu'(g)'s two terms within
// 0.5·(1 + t)·(14 + 20|u|)·ε and |0.5·g·sech²·du/dg|·(30 + 32|u|)·ε absolute (they cancel near g ≈ -0.75).
//   h = gelu(g)·up, dup = dh·gelu(g):   |Δ| ≤ ((14 + 20|u|)·ε + ε)·|h|
//   dgate = (dh·up)·gelu'(g):           |Δ| ≤ |dh·up|·|Δgelu'| + 2ε·|dgate|
// Where exp(-2|u|) leaves the normal range (g < -9.9) a GPU may flush it to zero: gelu is then 0 instead of
// ≤ 1e-36, so every comparison also allows an absolute 1e-30. The tests allow twice the bounds above.
import { describe, expect, it } from 'vitest';
import { geglu_backward, geglu_forward } from '../../src/kernels/geglu';
import { geglu_backward_cpu, geglu_forward_cpu } from '../../src/kernels/geglu.cpu';
import { gelu_tanh_cpu } from '../../src/kernels/gelu.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { AWKWARD, finiteDiff, gpu, rng, expectWithin } from '../helpers/gpu';

const eps = 2 ** -24;
const K0 = Math.sqrt(2 / Math.PI),
  K1 = 0.044715;

function bounds(dh: ArrayLike<number>, gate: ArrayLike<number>, up: ArrayLike<number>, atol = 1e-30) {
  const n = gate.length;
  const h = geglu_forward_cpu(gate, up),
    { dgate, dup } = geglu_backward_cpu(dh, gate, up);
  const bh = new Float64Array(n),
    bgate = new Float64Array(n),
    bup = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i],
      us = K0 * (g + K1 * g ** 3),
      u = Math.abs(us),
      e = Math.exp(-2 * u);
    const onePlusT = (us >= 0 ? 2 : 2 * e) / (1 + e),
      sech2 = (4 * e) / (1 + e) ** 2;
    const rel = (15 + 20 * u) * eps;
    bh[i] = 2 * rel * Math.abs(h[i]) + atol;
    bup[i] = 2 * rel * Math.abs(dup[i]) + atol;
    const second = Math.abs(0.5 * g * sech2 * K0 * (1 + 3 * K1 * g * g));
    const dgelu = 0.5 * onePlusT * (14 + 20 * u) * eps + second * (30 + 32 * u) * eps;
    bgate[i] = 2 * (Math.abs(dh[i] * up[i]) * dgelu + 2 * eps * Math.abs(dgate[i])) + atol;
  }
  return { h, dgate, dup, bh, bgate, bup };
}

describe('geglu', () => {
  it.each(AWKWARD.concat([70000]))('forward and backward match the twin, n = %i', async (n) => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const r = rng(n + 7);
    const gate = r.normal(n, 3),
      up = r.normal(n),
      dh = r.normal(n);
    const shape = n % 7 === 0 ? [n / 7, 7] : [n];
    const tg = Tensor.from(ctx, gate, shape),
      tu = Tensor.from(ctx, up, shape),
      tdh = Tensor.from(ctx, dh, shape);
    const h = geglu_forward(tg, tu);
    const { dgate, dup } = geglu_backward(tdh, tg, tu);
    expect(h.shape).toEqual(shape);
    const want = bounds(dh, gate, up);
    expectWithin(await h.read(), want.h, want.bh, 'h');
    expectWithin(await dup.read(), want.dup, want.bup, 'dup');
    expectWithin(await dgate.read(), want.dgate, want.bgate, 'dgate');
    [tg, tu, tdh, h, dgate, dup].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('special values: large |gate| gives finite results, gelu(0)·up = 0, gelu(g) = g for large g', async () => {
    const ctx = await gpu();
    const gate = Float32Array.from([0, -0, 5, -5, 20, -20, 100, -100, 1e4, -1e4, 1e15, -1e15]);
    const n = gate.length,
      up = new Float32Array(n).fill(1.5),
      dh = new Float32Array(n).fill(-2);
    const tg = Tensor.from(ctx, gate, [n]),
      tu = Tensor.from(ctx, up, [n]),
      tdh = Tensor.from(ctx, dh, [n]);
    const h = geglu_forward(tg, tu);
    const { dgate, dup } = geglu_backward(tdh, tg, tu);
    const want = bounds(dh, gate, up);
    const gh = await h.read(),
      gdg = await dgate.read(),
      gdu = await dup.read();
    for (const v of [...gh, ...gdg, ...gdu]) expect(Number.isFinite(v)).toBe(true);
    expectWithin(gh, want.h, want.bh, 'h');
    expectWithin(gdu, want.dup, want.bup, 'dup');
    expectWithin(gdg, want.dgate, want.bgate, 'dgate');
    expect(gh[0]).toBe(0);
    expect(gh[8]).toBe(1.5e4);
    [tg, tu, tdh, h, dgate, dup].forEach((t) => t.free());
  });

  it('rejects mismatched shapes', async () => {
    const ctx = await gpu();
    const a = Tensor.zeros(ctx, [3, 4]),
      b = Tensor.zeros(ctx, [3, 5]);
    expect(() => geglu_forward(a, b)).toThrow(/shapes differ/);
    a.free();
    b.free();
  });
});

describe('geglu twin', () => {
  it('backward = finite differences of the forward (float64), for gate and up', () => {
    // f(gate, up) = Σ h·dh. Central differences, step 1e-6, float64: truncation ~1e-12·|f'''|, rounding ~1e-10.
    const r = rng(13);
    const n = 40;
    const gate = Float64Array.from(r.normal(n, 3)),
      up = Float64Array.from(r.normal(n)),
      dh = r.normal(n);
    const { dgate, dup } = geglu_backward_cpu(dh, gate, up);
    const fdg = finiteDiff((g) => geglu_forward_cpu(g, up).reduce((s, v, i) => s + v * dh[i], 0), gate);
    const fdu = finiteDiff((u) => geglu_forward_cpu(gate, u).reduce((s, v, i) => s + v * dh[i], 0), up);
    for (let i = 0; i < n; i++) {
      expect(Math.abs(dgate[i] - fdg[i])).toBeLessThan(1e-7 + 1e-6 * Math.abs(fdg[i]));
      expect(Math.abs(dup[i] - fdu[i])).toBeLessThan(1e-7 + 1e-6 * Math.abs(fdu[i]));
    }
  });

  it('is gelu_pytorch_tanh(gate) · up at hand-checked points', () => {
    // gelu(1) = 0.841191990607, gelu(-1) = -0.158808009393 (0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))) by hand)
    const h = geglu_forward_cpu([1, -1, 0], [2, 3, 5]);
    expect(h[0]).toBeCloseTo(2 * 0.841191990607, 10);
    expect(h[1]).toBeCloseTo(3 * -0.158808009393, 10);
    expect(h[2]).toBe(0);
    expect(gelu_tanh_cpu(1)).toBeCloseTo(0.841191990607, 10);
  });
});
