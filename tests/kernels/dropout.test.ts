// shaders/dropout.wgsl against its twin (masks from rng.cpu.ts, bit-exact with lib_rng.wgsl).
// The mask must agree exactly (same zeros). Kept values are x·(1/(1 - p)) in f32: 1 - p is exact or off by u,
// the division 2.5 ULP (5u), the product u, so ≤ 7u·|y| relative (u = 2^-24); the tests allow twice that.
import { describe, expect, it } from 'vitest';
import { dropout_backward, dropout_forward } from '../../src/kernels/dropout';
import { dropout_backward_cpu, dropout_forward_cpu } from '../../src/kernels/dropout.cpu';
import { dropoutMult } from '../../src/kernels/rng.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { AWKWARD, gpu, rng } from '../helpers/gpu';

const u = 2 ** -24;

/** Zeros in exactly the same places, other values within 14u relative. */
function expectSameMask(got: Float32Array, want: Float64Array, what: string) {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    if ((got[i] === 0) !== (want[i] === 0) || Math.abs(got[i] - want[i]) > 14 * u * Math.abs(want[i])) {
      throw new Error(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
    }
  }
}

describe('dropout', () => {
  const cases = AWKWARD.flatMap((n) => [0.1, 0.5, 0.9].map((p) => [n, p] as [number, number]));
  it.each(cases)('forward and backward match the twin, n = %i, p = %f', async (n, p) => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const r = rng(n);
    const seed = (n * 2654435761) >>> 0;
    const x = r.uniform(n, 0.5, 2),
      dy = r.normal(n).map((v) => v || 1); // nonzero, so zeros come from the mask
    const tx = Tensor.from(ctx, x, [n]),
      tdy = Tensor.from(ctx, dy, [n]);
    const y = dropout_forward(tx, p, seed),
      dx = dropout_backward(tdy, p, seed);
    const gy = await y.read(),
      gdx = await dx.read();
    expectSameMask(gy, dropout_forward_cpu(x, p, seed), 'y');
    expectSameMask(gdx, dropout_backward_cpu(dy, p, seed), 'dx');
    for (let i = 0; i < n; i++) expect(gy[i] === 0).toBe(gdx[i] === 0); // the backward regenerates the forward's mask
    [tx, tdy, y, dx].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('p = 0 copies exactly; the kept fraction is 1 - p; another seed gives another mask', async () => {
    const ctx = await gpu();
    const n = 100_000;
    const x = rng(1).uniform(n, 1, 2);
    const tx = Tensor.from(ctx, x, [n]);
    const y0 = dropout_forward(tx, 0, 5);
    expect(Array.from(await y0.read())).toEqual(Array.from(x));
    const a = await dropout_forward(tx, 0.1, 5).read(),
      b = await dropout_forward(tx, 0.1, 6).read();
    const kept = a.filter((v) => v !== 0).length,
      keptB = b.filter((v) => v !== 0).length;
    // Binomial(n, 0.9): σ = sqrt(n·0.1·0.9) ≈ 95; ±1000 is over 10σ.
    expect(Math.abs(kept - 90_000)).toBeLessThan(1000);
    expect(Math.abs(keptB - 90_000)).toBeLessThan(1000);
    // Independent masks disagree on 2·0.1·0.9 = 18% of elements (σ ≈ 0.12%).
    let differ = 0;
    for (let i = 0; i < n; i++) if ((a[i] === 0) !== (b[i] === 0)) differ++;
    expect(Math.abs(differ / n - 0.18)).toBeLessThan(0.01);
    // Mean is preserved in expectation (inverted dropout): E[y] = E[x] = 1.5; σ of the mean ≈ 0.0017.
    expect(Math.abs(a.reduce((s, v) => s + v, 0) / n - x.reduce((s, v) => s + v, 0) / n)).toBeLessThan(0.02);
    tx.free();
    y0.free();
  });

  it('more than 65535 · 256 elements (grid split over y): the tail matches the twin', async () => {
    const ctx = await gpu();
    const n = 65535 * 256 + 5000;
    const x = new Float32Array(n).fill(1);
    const tx = Tensor.from(ctx, x, [n]);
    const y = dropout_forward(tx, 0.25, 99);
    const tail = 65535 * 256 - 3000; // the last 8000 elements, mostly in the second row of workgroups
    const got = await ctx.readF32(y.buf, n - tail, tail);
    const want = Float64Array.from({ length: n - tail }, (_, i) => dropoutMult(99, tail + i, Math.fround(0.25)));
    expectSameMask(got, want, 'y tail');
    tx.free();
    y.free();
  });

  it('rejects p outside [0, 1), a seed that is not a u32, and an f16 input', async () => {
    const ctx = await gpu();
    const t = Tensor.zeros(ctx, [4]),
      h = Tensor.zeros(ctx, [4], 'h', 'f16');
    expect(() => dropout_forward(t, 1, 0)).toThrow(/p must be in \[0, 1\)/);
    expect(() => dropout_backward(t, -0.1, 0)).toThrow(/p must be in \[0, 1\)/);
    expect(() => dropout_forward(t, 0.1, -1)).toThrow(/seed must be a u32/);
    expect(() => dropout_forward(t, 0.1, 2 ** 32)).toThrow(/seed must be a u32/);
    expect(() => dropout_forward(h, 0.1, 0)).toThrow(/must be f32/);
    [t, h].forEach((x) => x.free());
  });
});
