// shaders/layernorm_{forward,backward}.wgsl against the float64 twin, and the twin's backward against finite
// differences of its forward.
//
// Error bounds (u = 2^-24; both sides get the same f32 inputs). Each invocation sums m = ceil(C/WG) terms and
// a tree of L = log2(WG) levels adds the partial sums; a WGSL division is ≤ 2.5 ulp (≤ 5u), inverseSqrt ≤ 2 ulp.
//   mean:  Σx has mixed signs:  |Δmean| ≤ u·((m + L)·mean|x| + 5|mean|).
//   rstd:  Σ(x - mean)² has positive terms, each with ≤ 3u; an error δ in the mean adds only δ²·C to the sum
//          (the cross term vanishes), so  rel(rstd) ≤ ½((m + L + 3)u + δ²/var + 6u) + 4u.
//   y:     |Δy| ≤ |w|·rstd·(|Δmean| + |x - mean|·(rel(rstd) + 3u)) + u·|y|.
//   dx:    with g = dy·w, xhat = (x - mean)·rstd, A = mean(g), B = mean(g·xhat),
//          |Δdx| ≤ u·rstd·(3|g| + 7|A| + (m + L + 1)·mean|g| + |xhat|·((m + L + 4)·mean|g·xhat| + 9|B|)) + u·|dx|.
// The tests allow twice these first-order bounds.
import { describe, expect, it } from 'vitest';
import { layernorm_backward, layernorm_forward } from '../../src/kernels/layernorm';
import { layernorm_backward_cpu, layernorm_forward_cpu } from '../../src/kernels/layernorm.cpu';
import { rowWorkgroupSize } from '../../src/kernels/rmsnorm';
import { Tensor } from '../../src/gpu/tensor';
import { AWKWARD, finiteDiff, gpu, rng, expectWithin } from '../helpers/gpu';

const u = 2 ** -24;

const terms = (C: number) => Math.ceil(C / rowWorkgroupSize(C)) + Math.log2(rowWorkgroupSize(C));

/** The forward bounds above (times 2) for every element of y, mean and rstd. */
function forwardBounds(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  N: number,
  C: number,
  want: ReturnType<typeof layernorm_forward_cpu>,
) {
  const mL = terms(C);
  const by = new Float64Array(N * C),
    bmean = new Float64Array(N),
    brstd = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let ax = 0;
    for (let c = 0; c < C; c++) ax += Math.abs(x[n * C + c]);
    const mu = want.mean[n],
      r = want.rstd[n];
    const dmu = u * ((mL * ax) / C + 5 * Math.abs(mu));
    const relR = 0.5 * ((mL + 3) * u + dmu * dmu * r * r + 6 * u) + 4 * u;
    bmean[n] = 2 * dmu;
    brstd[n] = 2 * relR * r;
    for (let c = 0; c < C; c++) {
      const i = n * C + c;
      by[i] = 2 * (Math.abs(w[c]) * r * (dmu + Math.abs(x[i] - mu) * (relR + 3 * u)) + u * Math.abs(want.y[i]));
    }
  }
  return { by, bmean, brstd };
}

/** The backward bound above (times 2) for every element of dx. */
function backwardBound(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  mean: ArrayLike<number>,
  rstd: ArrayLike<number>,
  N: number,
  C: number,
  want: Float64Array,
) {
  const mL = terms(C);
  const bound = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    const rr = rstd[n],
      mu = mean[n];
    let A = 0,
      B = 0,
      aA = 0,
      aB = 0;
    for (let c = 0; c < C; c++) {
      const g = dy[n * C + c] * w[c],
        xh = (x[n * C + c] - mu) * rr;
      A += g / C;
      B += (g * xh) / C;
      aA += Math.abs(g) / C;
      aB += Math.abs(g * xh) / C;
    }
    for (let c = 0; c < C; c++) {
      const i = n * C + c,
        g = dy[i] * w[c],
        xh = (x[i] - mu) * rr;
      const e =
        rr * (3 * Math.abs(g) + 7 * Math.abs(A) + (mL + 1) * aA + Math.abs(xh) * ((mL + 4) * aB + 9 * Math.abs(B)));
      bound[i] = 2 * u * (e + Math.abs(want[i]));
    }
  }
  return bound;
}

const SIZES: [number, number][] = [
  ...AWKWARD.map((C, i): [number, number] => [[5, 3, 17, 2, 9][i], C]),
  [4, 1000],
  [3, 2048],
  [2, 3000],
  [2, 4099],
  [2, 16411],
]; // WG = 32, 32, 64, 128, 256

describe('layernorm', () => {
  it.each(SIZES)('forward matches the twin, N = %i, C = %i', async (N, C) => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const r = rng(N * 1000 + C + 1);
    const x = r.normal(N * C, 2).map((v) => v + 0.5),
      w = r.uniform(C, 0.5, 1.5),
      b = r.uniform(C);
    const ts = [Tensor.from(ctx, x, [N, C]), Tensor.from(ctx, w, [C]), Tensor.from(ctx, b, [C])];
    const { y, mean, rstd } = layernorm_forward(ts[0], ts[1], ts[2], 1e-5);
    const want = layernorm_forward_cpu(x, w, b, N, C, 1e-5);
    const bd = forwardBounds(x, w, N, C, want);
    expectWithin(await y.read(), want.y, bd.by, 'y');
    expectWithin(await mean.read(), want.mean, bd.bmean, 'mean');
    expectWithin(await rstd.read(), want.rstd, bd.brstd, 'rstd');
    [...ts, y, mean, rstd].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('two passes keep the variance when rows sit on a large offset (x = 1000 + N(0, 1), C = 768)', async () => {
    // One pass (E[x²] - E[x]²) would cancel 6 of f32's 7 digits here: var ≈ 1 out of E[x²] ≈ 1e6.
    const ctx = await gpu();
    const N = 4,
      C = 768;
    const r = rng(768);
    const x = r.normal(N * C).map((v) => v + 1000),
      w = r.uniform(C, 0.5, 1.5),
      b = r.uniform(C);
    const ts = [Tensor.from(ctx, x, [N, C]), Tensor.from(ctx, w, [C]), Tensor.from(ctx, b, [C])];
    const { y, mean, rstd } = layernorm_forward(ts[0], ts[1], ts[2], 1e-5);
    const want = layernorm_forward_cpu(x, w, b, N, C, 1e-5);
    const bd = forwardBounds(x, w, N, C, want);
    expectWithin(await y.read(), want.y, bd.by, 'y');
    expectWithin(await rstd.read(), want.rstd, bd.brstd, 'rstd');
    // The bound above is still tight enough to mean something: rstd within 1e-3 relative.
    expect(Math.max(...bd.brstd.map((v, i) => v / want.rstd[i]))).toBeLessThan(1e-3);
    [...ts, y, mean, rstd].forEach((t) => t.free());
  });

  it.each(SIZES)('backward matches the twin, N = %i, C = %i', async (N, C) => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const r = rng(N * 7 + C + 2);
    const x = r.normal(N * C).map((v) => v - 0.3),
      w = r.uniform(C, 0.5, 1.5),
      dy = r.normal(N * C);
    const f = layernorm_forward_cpu(x, w, w, N, C, 1e-5);
    const mean = Float32Array.from(f.mean),
      rstd = Float32Array.from(f.rstd);
    const ts = [
      Tensor.from(ctx, dy, [N, C]),
      Tensor.from(ctx, x, [N, C]),
      Tensor.from(ctx, w, [C]),
      Tensor.from(ctx, mean, [N]),
      Tensor.from(ctx, rstd, [N]),
    ];
    const dx = layernorm_backward(ts[0], ts[1], ts[2], ts[3], ts[4]);
    const want = layernorm_backward_cpu(dy, x, w, mean, rstd, N, C);
    const bound = backwardBound(dy, x, w, mean, rstd, N, C, want);
    expectWithin(await dx.read(), want, bound, 'dx');
    [...ts, dx].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('many rows: N = 70000 > 65535 workgroups per dimension (grid split over y)', async () => {
    const ctx = await gpu();
    const N = 70000,
      C = 2;
    const r = rng(70001);
    const x = r.normal(N * C),
      w = r.uniform(C, 0.5, 1.5),
      b = r.uniform(C),
      dy = r.normal(N * C);
    const ts = [
      Tensor.from(ctx, x, [N, C]),
      Tensor.from(ctx, w, [C]),
      Tensor.from(ctx, b, [C]),
      Tensor.from(ctx, dy, [N, C]),
    ];
    const { y, mean, rstd } = layernorm_forward(ts[0], ts[1], ts[2], 1e-5);
    const dx = layernorm_backward(ts[3], ts[0], ts[1], mean, rstd);
    const want = layernorm_forward_cpu(x, w, b, N, C, 1e-5);
    const bd = forwardBounds(x, w, N, C, want);
    expectWithin(await y.read(), want.y, bd.by, 'y');
    // dx against the twin fed the GPU's own mean and rstd (the backward's inputs), with the backward bound.
    const gm = await mean.read(),
      gr = await rstd.read();
    const wantDx = layernorm_backward_cpu(dy, x, w, gm, gr, N, C);
    expectWithin(await dx.read(), wantDx, backwardBound(dy, x, w, gm, gr, N, C, wantDx), 'dx');
    [...ts, y, mean, rstd, dx].forEach((t) => t.free());
  });

  it('matches torch.nn.LayerNorm on a hand-checked row', async () => {
    // x = (1, 2, 3, 6), eps = 0: mean 3, biased var 3.5; w = 2, b = 1 -> y = 2·(x - 3)/sqrt(3.5) + 1
    const ctx = await gpu();
    const ts = [
      Tensor.from(ctx, [1, 2, 3, 6], [1, 4]),
      Tensor.from(ctx, [2, 2, 2, 2], [4]),
      Tensor.from(ctx, [1, 1, 1, 1], [4]),
    ];
    const { y, mean, rstd } = layernorm_forward(ts[0], ts[1], ts[2], 0);
    const got = await y.read();
    [1, 2, 3, 6].forEach((v, i) => expect(got[i]).toBeCloseTo((2 * (v - 3)) / Math.sqrt(3.5) + 1, 5));
    expect((await mean.read())[0]).toBeCloseTo(3, 6);
    expect((await rstd.read())[0]).toBeCloseTo(1 / Math.sqrt(3.5), 6);
    [...ts, y, mean, rstd].forEach((t) => t.free());
  });
});

describe('layernorm twin', () => {
  it.each([
    [3, 1],
    [3, 7],
    [2, 33],
  ])('backward = finite differences of the forward (float64), N = %i, C = %i', (N, C) => {
    // f(x) = Σ y(x)·r for a fixed random r, so ∂f/∂x = backward(r) with mean, rstd from the forward.
    // Central differences, step 1e-6, float64: truncation ~1e-12·|f'''|, rounding ~1e-10; bound 1e-7.
    const rr = rng(C + 100);
    const x = Float64Array.from(rr.normal(N * C)),
      w = rr.uniform(C, 0.5, 1.5),
      b = rr.uniform(C),
      dy = rr.normal(N * C);
    const f = (xv: Float64Array) => layernorm_forward_cpu(xv, w, b, N, C, 1e-5).y.reduce((s, v, i) => s + v * dy[i], 0);
    const fd = finiteDiff(f, x);
    const { mean, rstd } = layernorm_forward_cpu(x, w, b, N, C, 1e-5);
    const dx = layernorm_backward_cpu(dy, x, w, mean, rstd, N, C);
    for (let i = 0; i < dx.length; i++) expect(Math.abs(dx[i] - fd[i])).toBeLessThan(1e-7 + 1e-6 * Math.abs(fd[i]));
  });
});
