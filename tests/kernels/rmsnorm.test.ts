// shaders/rmsnorm_{forward,backward}.wgsl against the float64 twin, and the twin's backward against finite
// differences of its forward.
//
// Error bounds (u = 2^-24, the f32 unit roundoff; both sides get the same f32 inputs). Each invocation sums
// m = ceil(C/WG) products, then a tree of L = log2(WG) levels adds the partial sums, so
//   forward:  Σx² has relative error ≤ (m + L)·u (all terms positive); the division by C (WGSL: 2.5 ulp),
//             + eps and inverseSqrt (2 ulp) add ≤ 14u, the square root halves the sum's error, and
//             (x·r)·w adds 2u:  |Δy| ≤ (½(m + L) + 16)·u·|y|, and the same for rstd.
//   backward: Σ g·x (g = dy·w) has mixed signs, so its error is bounded by (m + L + 2)·u·Σ|g·x|, not by
//             the sum; k = r²·Σ/C adds ≤ 8u·|k|, then r·(g - x·k) adds ≤ 3u per term:
//             |Δdx| ≤ u·r·(3|g| + |x|·(r²·mean|g·x|·(m + L + 2) + 11|k|)) + u·|dx|.
// The tests allow twice these first-order bounds.
import { describe, expect, it } from 'vitest';
import { rmsnorm_backward, rmsnorm_forward, rowWorkgroupSize } from '../../src/kernels/rmsnorm';
import { rmsnorm_backward_cpu, rmsnorm_forward_cpu } from '../../src/kernels/rmsnorm.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { AWKWARD, finiteDiff, gpu, rng, expectWithin } from '../helpers/gpu';

const u = 2 ** -24;

function reductionTerms(C: number) {
  const wg = rowWorkgroupSize(C);
  return Math.ceil(C / wg) + Math.log2(wg);
}

const SIZES: [number, number][] = [
  ...AWKWARD.map((C, i): [number, number] => [[5, 3, 17, 2, 9][i], C]),
  [4, 1000],
  [3, 2048],
  [2, 3000],
  [2, 4099],
  [2, 16411],
]; // WG = 32, 32, 64, 128, 256

describe('rmsnorm', () => {
  it.each(SIZES)('forward matches the twin, N = %i, C = %i', async (N, C) => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const r = rng(N * 1000 + C);
    const x = r.normal(N * C, 2),
      w = r.uniform(C, 0.5, 1.5);
    const tx = Tensor.from(ctx, x, [N, C]),
      tw = Tensor.from(ctx, w, [C]);
    const { y, rstd } = rmsnorm_forward(tx, tw, 1e-5);
    const want = rmsnorm_forward_cpu(x, w, N, C, 1e-5);
    const rel = 2 * (0.5 * reductionTerms(C) + 16) * u;
    expectWithin(
      await y.read(),
      want.y,
      want.y.map((v) => rel * Math.abs(v)),
      'y',
    );
    expectWithin(
      await rstd.read(),
      want.rstd,
      want.rstd.map((v) => rel * v),
      'rstd',
    );
    [tx, tw, y, rstd].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it.each([
    [7, 100],
    [3, 3000],
  ])('forward with a residual, y = res + norm (one more rounding, u·|y|), N = %i, C = %i', async (N, C) => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const r = rng(N * 7 + C);
    const x = r.normal(N * C, 2),
      w = r.uniform(C, 0.5, 1.5),
      res = r.normal(N * C, 3);
    const [tx, tw, tres] = [Tensor.from(ctx, x, [N, C]), Tensor.from(ctx, w, [C]), Tensor.from(ctx, res, [N, C])];
    const { y, rstd } = rmsnorm_forward(tx, tw, 1e-5, tres);
    const want = rmsnorm_forward_cpu(x, w, N, C, 1e-5, res);
    const norm = rmsnorm_forward_cpu(x, w, N, C, 1e-5).y;
    const rel = 2 * (0.5 * reductionTerms(C) + 16) * u;
    expectWithin(
      await y.read(),
      want.y,
      want.y.map((v, i) => rel * Math.abs(norm[i]) + 2 * u * Math.abs(v)),
      'y',
    );
    expectWithin(
      await rstd.read(),
      want.rstd,
      want.rstd.map((v) => rel * v),
      'rstd',
    );
    [tx, tw, tres, y, rstd].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it.each(SIZES)('backward matches the twin, N = %i, C = %i', async (N, C) => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const r = rng(N * 7 + C);
    const x = r.normal(N * C),
      w = r.uniform(C, 0.5, 1.5),
      dy = r.normal(N * C);
    const rstd = Float32Array.from(rmsnorm_forward_cpu(x, w, N, C, 1e-5).rstd);
    const ts = [
      Tensor.from(ctx, dy, [N, C]),
      Tensor.from(ctx, x, [N, C]),
      Tensor.from(ctx, w, [C]),
      Tensor.from(ctx, rstd, [N]),
    ];
    const dx = rmsnorm_backward(ts[0], ts[1], ts[2], ts[3]);
    const want = rmsnorm_backward_cpu(dy, x, w, rstd, N, C);
    const m = reductionTerms(C) + 2;
    const bound = new Float64Array(N * C);
    for (let n = 0; n < N; n++) {
      let agx = 0,
        gx = 0;
      for (let c = 0; c < C; c++) {
        agx += Math.abs(dy[n * C + c] * w[c] * x[n * C + c]);
        gx += dy[n * C + c] * w[c] * x[n * C + c];
      }
      const rr = rstd[n],
        k = (rr * rr * gx) / C;
      for (let c = 0; c < C; c++) {
        const i = n * C + c;
        const e =
          rr * (3 * Math.abs(dy[i] * w[c]) + Math.abs(x[i]) * ((rr * rr * agx * m) / C + 11 * Math.abs(k))) +
          Math.abs(want[i]);
        bound[i] = 2 * u * e;
      }
    }
    const got = await dx.read();
    expectWithin(got, want, bound, 'dx');
    // into: dx added into an existing gradient: base + dx within dx's bound plus one rounding of the sum; a missing
    // add is O(1)
    const base = r.normal(N * C);
    const into = Tensor.from(ctx, base, [N, C]);
    expect(rmsnorm_backward(ts[0], ts[1], ts[2], ts[3], into)).toBe(into);
    const sum = Float64Array.from(want, (v, i) => base[i] + v);
    const sumBound = Float64Array.from(bound, (b, i) => b + 2 * u * (Math.abs(base[i]) + Math.abs(want[i])));
    expectWithin(await into.read(), sum, sumBound, 'into');
    [...ts, dx, into].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('many rows: N = 70000 > 65535 workgroups per dimension (grid split over y)', async () => {
    const ctx = await gpu();
    const N = 70000,
      C = 3;
    const r = rng(70000);
    const x = r.normal(N * C),
      w = r.uniform(C, 0.5, 1.5),
      dy = r.normal(N * C);
    const tx = Tensor.from(ctx, x, [N, C]),
      tw = Tensor.from(ctx, w, [C]),
      tdy = Tensor.from(ctx, dy, [N, C]);
    const { y, rstd } = rmsnorm_forward(tx, tw, 1e-6);
    const dx = rmsnorm_backward(tdy, tx, tw, rstd);
    const want = rmsnorm_forward_cpu(x, w, N, C, 1e-6);
    const wantDx = rmsnorm_backward_cpu(dy, x, w, await rstd.read(), N, C);
    const rel = 2 * (0.5 * reductionTerms(C) + 16) * u;
    expectWithin(
      await y.read(),
      want.y,
      want.y.map((v) => rel * Math.abs(v)),
      'y',
    );
    // |dx| ≤ r·(|g| + |x|·r²·mean|g·x|) termwise; 64u of that scale is far above the backward bound for C = 3
    // and still fails any row the kernel skips or writes twice.
    const got = await dx.read();
    const scale = wantDx.map((_, i) => {
      const n = Math.floor(i / C),
        rr = want.rstd[n];
      let agx = 0;
      for (let c = 0; c < C; c++) agx += Math.abs(dy[n * C + c] * w[c] * x[n * C + c]);
      return rr * (Math.abs(dy[i] * w[i % C]) + (Math.abs(x[i]) * rr * rr * agx) / C);
    });
    expectWithin(
      got,
      wantDx,
      scale.map((s) => 64 * u * s),
      'dx',
    );
    [tx, tw, tdy, y, rstd, dx].forEach((t) => t.free());
  });

  it('y matches the Hugging Face formula on a hand-checked row', async () => {
    // x = (3, 4), eps = 0: mean(x²) = 12.5, rstd = 1/sqrt(12.5); w = (1, 2) -> y = (0.8485281, 2.2627417)
    const ctx = await gpu();
    const tx = Tensor.from(ctx, [3, 4], [1, 2]),
      tw = Tensor.from(ctx, [1, 2], [2]);
    const { y, rstd } = rmsnorm_forward(tx, tw, 0);
    const got = await y.read();
    expect(got[0]).toBeCloseTo(3 / Math.sqrt(12.5), 6);
    expect(got[1]).toBeCloseTo(8 / Math.sqrt(12.5), 6);
    expect((await rstd.read())[0]).toBeCloseTo(1 / Math.sqrt(12.5), 7);
    [tx, tw, y, rstd].forEach((t) => t.free());
  });

  it('rejects a weight that does not match the last dimension', async () => {
    const ctx = await gpu();
    const tx = Tensor.zeros(ctx, [4, 6]),
      tw = Tensor.zeros(ctx, [4]);
    expect(() => rmsnorm_forward(tx, tw, 1e-5)).toThrow(/does not end in C = 4/);
    tx.free();
    tw.free();
  });
});

describe('rmsnorm twin', () => {
  it.each([
    [3, 1],
    [3, 7],
    [2, 33],
  ])('backward = finite differences of the forward (float64), N = %i, C = %i', (N, C) => {
    // f(x) = Σ y(x)·r for a fixed random r, so ∂f/∂x = backward(r). Central differences with step 1e-6 in
    // float64: truncation ~1e-12·|f'''|, rounding ~1e-16·|f|/1e-6 = 1e-10; 1e-7 absolute leaves room.
    const rr = rng(C);
    const x = Float64Array.from(rr.normal(N * C)),
      w = rr.uniform(C, 0.5, 1.5),
      dy = rr.normal(N * C);
    const f = (xv: Float64Array) => rmsnorm_forward_cpu(xv, w, N, C, 1e-5).y.reduce((s, v, i) => s + v * dy[i], 0);
    const fd = finiteDiff(f, x);
    const { rstd } = rmsnorm_forward_cpu(x, w, N, C, 1e-5);
    const dx = rmsnorm_backward_cpu(dy, x, w, rstd, N, C);
    for (let i = 0; i < dx.length; i++) expect(Math.abs(dx[i] - fd[i])).toBeLessThan(1e-7 + 1e-6 * Math.abs(fd[i]));
  });
});
