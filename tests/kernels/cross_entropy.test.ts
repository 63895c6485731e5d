// shaders/cross_entropy.wgsl against the float64 twin, and the twin's gradient against finite differences.
//
// Error bounds, from WGSL's accuracy rules (u = 2^-24; an ULP is at most 2u relative; exp(x) is within
// 3 + 2|x| ULP, log within 3 ULP, or 2^-21 absolute on [0.5, 2]; division 2.5 ULP). Both sides get the same f32
// logits. R = max - min of the row, m = ceil(V/WG) values per invocation, L = log2(WG) tree levels.
//   S = Σ exp(x - M): each term's exp(x - m_k) is off by ≤ (|x - m_k| + (3 + 2|x - m_k|)·2)u (the f32
//   subtraction, then exp), ≤ (6 + 5R)u. Along its way to the total a term is rescaled by exp(m_old - m_new) at
//   most m + L times; the |m_old - m_new| along one path add up to ≤ R (the running max only grows), so the
//   rescales cost ≤ (6(m + L) + 5R)u, and the adds/multiplies ≤ 2(m + L)u. All terms are positive:
//     δS/S ≤ (6 + 10R + 8(m + L))·u.
//   loss = (M + log S) - x_t: log S (S ≥ 1) is off by δS/S + 6u·max(log S, 4/3) (3 ULP, or 2^-21 = 8u on [1, 2]),
//     and the two f32 operations add u·|M + log S| + u·|loss|.
//   dlogits = exp(x - M)·(scale / S) - [c = t]·scale: the probability is off by p·(δS/S + (6 + 5R)u + 7u)
//     (the exp, the division scale/S, the product), times |scale|; scale itself is rounded to f32 (u·|scale|
//     on both terms), and the final subtraction adds u·|g|.
// The tests allow twice these first-order bounds. The bound grows with m, so a missing term of a 50257-wide
// row could hide in the loss; the dlogits (every column checked) and a row whose maximum is its last element
// (missing it changes the loss by O(1)) catch that instead.
import { describe, expect, it } from 'vitest';
import { cross_entropy_forward_backward, IGNORE_INDEX } from '../../src/kernels/cross_entropy';
import { cross_entropy_forward_backward_cpu } from '../../src/kernels/cross_entropy.cpu';
import { rowWorkgroupSize } from '../../src/kernels/rmsnorm';
import { Tensor } from '../../src/gpu/tensor';
import { finiteDiff, gpu, rng, expectWithin } from '../helpers/gpu';

const u = 2 ** -24;

/** The bounds above for every row (loss) and element (dlogits), from the f32 logits. */
function bounds(
  logits: Float32Array,
  targets: Uint32Array,
  N: number,
  V: number,
  scale: number,
  want: { losses: Float64Array; dlogits: Float64Array },
) {
  const wg = rowWorkgroupSize(V);
  const mL = Math.ceil(V / wg) + Math.log2(wg);
  const loss = new Float64Array(N),
    grad = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    const row = logits.subarray(n * V, (n + 1) * V);
    let M = -Infinity,
      mn = Infinity;
    for (const x of row) {
      M = Math.max(M, x);
      mn = Math.min(mn, x);
    }
    const R = M - mn;
    let S = 0;
    for (const x of row) S += Math.exp(x - M);
    const dS = (6 + 10 * R + 8 * mL) * u;
    const lse = M + Math.log(S);
    loss[n] = 2 * (dS + 6 * u * Math.max(Math.log(S), 4 / 3) + u * Math.abs(lse) + u * Math.abs(want.losses[n]));
    if (targets[n] === IGNORE_INDEX) loss[n] = 0; // exactly 0
    for (let c = 0; c < V; c++) {
      const i = n * V + c;
      const pr = Math.exp(row[c] - M) / S;
      const onehot = c === targets[n] ? 1 : 0;
      grad[i] =
        targets[n] === IGNORE_INDEX
          ? 0
          : 2 * (Math.abs(scale) * (pr * (dS + (14 + 5 * R) * u) + onehot * u) + u * Math.abs(want.dlogits[i]));
    }
  }
  return { loss, grad };
}

/** Inputs: logits ~ N(0, 3²) (so R is about 25 on wide rows), random targets, every 4th row ignored. */
function inputs(N: number, V: number, seed: number) {
  const r = rng(seed);
  const logits = r.normal(N * V, 3);
  const targets = r.int(N, V);
  for (let n = 3; n < N; n += 4) targets[n] = IGNORE_INDEX;
  return { logits, targets };
}

async function check(N: number, V: number, scale: number, logits: Float32Array, targets: Uint32Array) {
  const ctx = await gpu();
  const live = ctx.alloc.liveBytes;
  const tl = Tensor.from(ctx, logits, [N, V]),
    tt = Tensor.fromU32(ctx, targets, [N]);
  const { losses, dlogits } = cross_entropy_forward_backward(tl, tt, { gradScale: scale, wantGrad: true });
  const want = cross_entropy_forward_backward_cpu(logits, targets, N, V, scale);
  const b = bounds(logits, targets, N, V, scale, want);
  expectWithin(await losses.read(), want.losses, b.loss, 'loss');
  expectWithin(await dlogits!.read(), want.dlogits, b.grad, 'dlogits');
  [tl, tt, losses, dlogits!].forEach((t) => t.free());
  expect(ctx.alloc.liveBytes).toBe(live);
}

const SIZES: [number, number][] = [
  [5, 1],
  [3, 7],
  [17, 33],
  [4, 100],
  [9, 257],
  [3, 2048],
  [2, 50257],
];

describe('cross_entropy', () => {
  it.each(SIZES)('loss and dlogits match the twin, N = %i, V = %i (gradScale 1/3, ignored rows)', async (N, V) => {
    const { logits, targets } = inputs(N, V, N * 100003 + V);
    await check(N, V, 1 / 3, logits, targets);
  });

  it('V = 50257: rows whose maximum is the first or the last element, large logits (max subtraction)', async () => {
    const N = 3,
      V = 50257;
    const { logits, targets } = inputs(N, V, 77);
    logits[0] = 40; // row 0: the max is its first element
    logits[V + V - 1] = 40; // row 1: the max is its last element
    for (let c = 0; c < V; c++) logits[2 * V + c] += 80; // row 2: exp(x) alone would overflow f32
    targets[0] = 0;
    targets[1] = V - 1;
    targets[2] = 12345;
    await check(N, V, 1, logits, targets);
  });

  it('ignored rows give loss 0 and zero gradient rows exactly; wantGrad = false gives the same losses', async () => {
    const ctx = await gpu();
    const N = 6,
      V = 33;
    const { logits } = inputs(N, V, 6);
    const targets = Uint32Array.from([IGNORE_INDEX, 4, IGNORE_INDEX, 0, 32, IGNORE_INDEX]);
    const tl = Tensor.from(ctx, logits, [N, V]),
      tt = Tensor.fromU32(ctx, targets, [N]);
    const withGrad = cross_entropy_forward_backward(tl, tt, { gradScale: 0.25, wantGrad: true });
    const noGrad = cross_entropy_forward_backward(tl, tt, { gradScale: 0.25, wantGrad: false });
    expect(noGrad.dlogits).toBeNull();
    const l = await withGrad.losses.read(),
      g = await withGrad.dlogits!.read();
    expect(Array.from(await noGrad.losses.read())).toEqual(Array.from(l));
    for (const n of [0, 2, 5]) {
      expect(l[n]).toBe(0);
      expect(g.subarray(n * V, (n + 1) * V).every((v) => v === 0)).toBe(true);
    }
    for (const n of [1, 3, 4]) expect(l[n]).toBeGreaterThan(0);
    [tl, tt, withGrad.losses, withGrad.dlogits!, noGrad.losses].forEach((t) => t.free());
  });

  it('the gradient of each counted row sums to 0 and its target entry is (p_t - 1)·gradScale', async () => {
    const ctx = await gpu();
    const N = 4,
      V = 257,
      scale = 0.125;
    const { logits, targets } = inputs(N, V, 257);
    const tl = Tensor.from(ctx, logits, [N, V]),
      tt = Tensor.fromU32(ctx, targets, [N]);
    const { losses, dlogits } = cross_entropy_forward_backward(tl, tt, { gradScale: scale, wantGrad: true });
    const g = await dlogits!.read(),
      l = await losses.read();
    for (let n = 0; n < 3; n++) {
      let s = 0;
      for (let c = 0; c < V; c++) s += g[n * V + c];
      // Σ softmax = 1 up to the bound on each p (≈ 1e-5 relative here), so |Σ g| ≲ 1e-5·scale.
      expect(Math.abs(s)).toBeLessThan(1e-5 * scale * 4);
      // p_t = exp(-loss)
      expect(g[n * V + targets[n]]).toBeCloseTo((Math.exp(-l[n]) - 1) * scale, 5);
    }
    [tl, tt, losses, dlogits!].forEach((t) => t.free());
  });

  it('a target >= V gives a NaN loss (a bug upstream must not pass unnoticed)', async () => {
    const ctx = await gpu();
    const tl = Tensor.from(ctx, [1, 2, 3, 4, 5, 6], [2, 3]),
      tt = Tensor.fromU32(ctx, [3, 1], [2]);
    const { losses } = cross_entropy_forward_backward(tl, tt, { gradScale: 1, wantGrad: false });
    const l = await losses.read();
    expect(l[0]).toBeNaN();
    expect(l[1]).toBeCloseTo(Math.log(Math.exp(-1) + 1 + Math.exp(1)), 6);
    [tl, tt, losses].forEach((t) => t.free());
  });

  it('many rows: N = 70000 > 65535 workgroups per dimension (grid split over y)', async () => {
    const N = 70000,
      V = 3;
    const { logits, targets } = inputs(N, V, 70000);
    await check(N, V, 1 / N, logits, targets);
  });

  it('rejects mismatched targets and f16/1-D logits', async () => {
    const ctx = await gpu();
    const tl = Tensor.zeros(ctx, [2, 3]),
      t1 = Tensor.zeros(ctx, [6]),
      tt = Tensor.fromU32(ctx, [0, 1, 2], [3]),
      tf = Tensor.zeros(ctx, [2]);
    expect(() => cross_entropy_forward_backward(tl, tt, { gradScale: 1, wantGrad: true })).toThrow(
      /targets must be \(2,\) u32/,
    );
    expect(() => cross_entropy_forward_backward(tl, tf, { gradScale: 1, wantGrad: true })).toThrow(
      /targets must be \(2,\) u32/,
    );
    expect(() => cross_entropy_forward_backward(t1, tt, { gradScale: 1, wantGrad: true })).toThrow(
      /logits must be \(N, V\) f32/,
    );
    [tl, t1, tt, tf].forEach((t) => t.free());
  });
});

describe('cross_entropy twin', () => {
  it.each([
    [3, 7],
    [2, 33],
    [4, 1],
  ])('dlogits = finite differences of Σ loss · gradScale (float64), N = %i, V = %i', (N, V) => {
    // Central differences with step 1e-6 in float64: truncation ~1e-12·|f'''|, rounding ~1e-16·|f|/1e-6;
    // 1e-8 absolute leaves room and is far below any wrong gradient (entries are O(gradScale / V) or more).
    const { logits, targets } = inputs(N, V, N + V);
    const scale = 0.7;
    const f = (x: Float64Array) =>
      cross_entropy_forward_backward_cpu(x, targets, N, V, scale).losses.reduce((s, v) => s + v * scale, 0);
    const fd = finiteDiff(f, Float64Array.from(logits));
    const { dlogits } = cross_entropy_forward_backward_cpu(logits, targets, N, V, scale);
    for (let i = 0; i < fd.length; i++) expect(Math.abs(dlogits[i] - fd[i])).toBeLessThan(1e-8);
  });

  it('matches a hand-computed row', () => {
    // logits (0, ln 3) -> softmax (1/4, 3/4); target 0: loss = ln 4, dlogits = (1/4 - 1, 3/4)
    const { losses, dlogits } = cross_entropy_forward_backward_cpu([0, Math.log(3)], [0], 1, 2, 1);
    expect(losses[0]).toBeCloseTo(Math.log(4), 14);
    expect(dlogits[0]).toBeCloseTo(-0.75, 14);
    expect(dlogits[1]).toBeCloseTo(0.75, 14);
  });
});
