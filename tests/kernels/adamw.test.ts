// shaders/adamw.wgsl against the float64 twin over several steps, with and without weight decay and gradScale.
//
// Error bound (u = 2^-24; WGSL: division 2.5 ULP, sqrt 4.5 ULP as 1/inverseSqrt, an ULP ≤ 2u relative). Both
// sides start from the same f32 param/grad values; the kernel's uniforms (1 - lr·wd, 1 - β1, lr/bc1, ...) are
// rounded to f32 (u each). Carried from step to step, first order:
//   Δg ≤ u·|g| (the product with the scale)
//   Δm ← β1·Δm + (1-β1)·(Δg + 3u·|g - m|) + u·|m|                (g - m, · (1-β1), + m, and 1-β1's rounding)
//   Δv ← β2·Δv + (1-β2)·(2|g|·Δg + 3u·g²) + 2u·v                 (all terms positive)
//   denom = sqrt(v)/sqrt(bc2) + eps:  Δdenom ≤ ½·Δv/sqrt(v·bc2) + 16u·denom   (sqrt 9u, division 5u, add, rounding)
//   Δp ← (1 - lr·wd)·Δp + 2u·|p·(1 - lr·wd)| + step·(Δm + |m|·Δdenom/denom + 8u·|m|)/denom + u·|p_new|
// with step = lr/bc1. The test allows twice this bound, per element, tracked alongside the twin in float64.
import { describe, expect, it } from 'vitest';
import { adamw_step, type AdamWStep } from '../../src/kernels/adamw';
import { adamw_step_cpu } from '../../src/kernels/adamw.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { AWKWARD, gpu, rng, expectWithin } from '../helpers/gpu';

const u = 2 ** -24;

interface Case {
  wd: number;
  scales: number[] | null;
}

async function run(n: number, c: Case, seed: number) {
  const ctx = await gpu();
  const live = ctx.alloc.liveBytes;
  const r = rng(seed);
  const steps = 5;
  const hp = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: c.wd };
  const p0 = r.normal(n, 0.5);
  const tp = Tensor.from(ctx, p0, [n], 'param'),
    tm = Tensor.zeros(ctx, [n], 'm'),
    tv = Tensor.zeros(ctx, [n], 'v');
  let want: { param: Float64Array; m: Float64Array; v: Float64Array } = {
    param: Float64Array.from(p0),
    m: new Float64Array(n),
    v: new Float64Array(n),
  };
  const dp = new Float64Array(n),
    dm = new Float64Array(n),
    dv = new Float64Array(n);
  for (let t = 1; t <= steps; t++) {
    const grad = r.normal(n);
    if (n > 4) {
      grad[1] = 0;
      grad[2] = 1e-7;
      grad[3] = -1e-9;
    } // zero and eps-sized gradients
    const scale = c.scales ? Math.fround(c.scales[t - 1]) : 1;
    const tg = Tensor.from(ctx, grad, [n], 'grad');
    const ts = c.scales ? Tensor.from(ctx, [scale], [1], 'scale') : undefined;
    const o: AdamWStep = { ...hp, step: t, gradScale: ts };
    adamw_step(tp, tg, tm, tv, o);
    const next = adamw_step_cpu(want.param, grad, want.m, want.v, { ...hp, step: t, gradScale: scale });
    const bc2 = 1 - hp.beta2 ** t,
      stepSize = hp.lr / (1 - hp.beta1 ** t),
      decay = 1 - hp.lr * hp.weightDecay;
    for (let i = 0; i < n; i++) {
      const g = grad[i] * scale,
        dg = u * Math.abs(g);
      const m = next.m[i],
        v = next.v[i];
      dm[i] = hp.beta1 * dm[i] + (1 - hp.beta1) * (dg + 3 * u * Math.abs(g - want.m[i])) + u * Math.abs(m);
      dv[i] = hp.beta2 * dv[i] + (1 - hp.beta2) * (2 * Math.abs(g) * dg + 3 * u * g * g) + 2 * u * v;
      const denom = Math.sqrt(v / bc2) + hp.eps;
      const ddenom = (v > 0 ? (0.5 * dv[i]) / Math.sqrt(v * bc2) : Math.sqrt(dv[i] / bc2)) + 16 * u * denom;
      dp[i] =
        decay * dp[i] +
        2 * u * Math.abs(want.param[i] * decay) +
        (stepSize * (dm[i] + (Math.abs(m) * ddenom) / denom + 8 * u * Math.abs(m))) / denom +
        u * Math.abs(next.param[i]);
    }
    want = next;
    tg.free();
    ts?.free();
  }
  expectWithin(
    await tm.read(),
    want.m,
    dm.map((d) => 2 * d),
    'm',
  );
  expectWithin(
    await tv.read(),
    want.v,
    dv.map((d) => 2 * d),
    'v',
  );
  expectWithin(
    await tp.read(),
    want.param,
    dp.map((d) => 2 * d),
    'param',
  );
  // The updates must have moved the parameters well beyond the bound (so the comparison means something).
  let moved = 0;
  for (let i = 0; i < n; i++) moved = Math.max(moved, Math.abs(want.param[i] - p0[i]) / (2 * dp[i]));
  expect(moved).toBeGreaterThan(100);
  [tp, tm, tv].forEach((t) => t.free());
  expect(ctx.alloc.liveBytes).toBe(live);
}

describe('adamw', () => {
  it.each(AWKWARD.concat([70000]))('5 steps match the float64 twin, no weight decay, no scale, n = %i', async (n) => {
    await run(n, { wd: 0, scales: null }, n);
  });
  it.each([7, 257])('5 steps match the twin with weight decay 0.1, n = %i', async (n) => {
    await run(n, { wd: 0.1, scales: null }, n + 1);
  });
  it.each([33, 1000])(
    '5 steps match the twin with weight decay 0.01 and a gradScale tensor per step, n = %i',
    async (n) => {
      await run(n, { wd: 0.01, scales: [0.37, 1, 0.05, 0.8, 1e-3] }, n + 2);
    },
  );

  it('step 1 from zero moments: param·(1 - lr·wd) - lr·g/(|g| + eps) (torch.optim.AdamW by hand)', async () => {
    const ctx = await gpu();
    const p = [1, -2, 0.5, 3],
      g = [0.5, -4, 1e-8, 0];
    const tp = Tensor.from(ctx, p, [4]),
      tg = Tensor.from(ctx, g, [4]),
      tm = Tensor.zeros(ctx, [4]),
      tv = Tensor.zeros(ctx, [4]);
    adamw_step(tp, tg, tm, tv, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5, step: 1 });
    const got = await tp.read();
    const wgsl = (i: number) => p[i] * (1 - 0.05) - (0.1 * g[i]) / (Math.abs(g[i]) + 1e-8);
    for (let i = 0; i < 4; i++) expect(got[i]).toBeCloseTo(wgsl(i), 6);
    expect(got[0]).toBeCloseTo(0.85, 6); // 1·0.95 - 0.1
    expect(got[2]).toBeCloseTo(0.475 - 0.05, 6); // |g| = eps: half a step
    const m = await tm.read(),
      v = await tv.read();
    for (let i = 0; i < 4; i++) {
      expect(m[i]).toBeCloseTo(0.1 * g[i], 7); // (1 - β1)·g
      expect(v[i]).toBeCloseTo(0.001 * g[i] * g[i], 7); // (1 - β2)·g²
    }
    [tp, tg, tm, tv].forEach((t) => t.free());
  });

  it('rejects mismatched sizes, aliasing, a 0-based step and a non-scalar gradScale', async () => {
    const ctx = await gpu();
    const a = Tensor.zeros(ctx, [4]),
      b = Tensor.zeros(ctx, [4]),
      c = Tensor.zeros(ctx, [4]),
      d = Tensor.zeros(ctx, [4]),
      e = Tensor.zeros(ctx, [5]);
    const o = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
    expect(() => adamw_step(a, e, c, d, o)).toThrow(/grad is \[5\]/);
    expect(() => adamw_step(a, b, b, d, o)).toThrow(/different buffers/);
    expect(() => adamw_step(a, b, c, d, { ...o, step: 0 })).toThrow(/1-based/);
    expect(() => adamw_step(a, b, c, d, { ...o, gradScale: e })).toThrow(/gradScale must be \(1,\)/);
    [a, b, c, d, e].forEach((t) => t.free());
  });
});
