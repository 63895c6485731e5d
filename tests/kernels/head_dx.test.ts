// shaders/head_dx.wgsl (with shaders/lib_softcap.wgsl) against its float64 twin, src/kernels/head_dx.cpu.ts, at
// awkward sizes, with ignored rows, a target in no row of the table and a soft cap; and the one-pass head of
// the twins (head_lse_grad_cpu per vocabulary chunk, dx += p_c·W_c, the target rows, head_dx_finish_cpu) against
// the unchunked reference src/models/head.cpu.ts and against finite differences of Σ loss · gradScale, in
// float64, on chunks that do not divide V: targets in the first and the last chunk, ignored rows, a row whose
// max arrives in the last chunk.
//
// Error bound of head_dx (u = 2^-24; division 2.5 ULP, an ULP ≤ 2u relative). GPU and twin get the same f32 dx,
// stats and wt. Per element, with a = dx/l, b = softcap'(zt)·wt, s = |gradScale|, g the exact result:
//   a: 5u|a|; softcap'(zt) = 1 − r², r = zt/c: r off by 5u|r|, r² by 12u·r², 1 − r² by 12u·r² + u|1 − r²|
//   (exact 1 without a cap); b: that times |wt|, plus u|b|; a − b: u|a − b|; times gradScale (rounded to f32): 2u|g|.
//   δg ≤ s·(5u|a| + (12u·r² + u|1 − r²|)·|wt| + u|b| + u|a − b|) + 2u|g|.
// The test allows twice this first-order bound. Ignored rows must be exactly 0.
import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX } from '../../src/kernels/ignore_index';
import { head_dx_finish } from '../../src/kernels/head_dx';
import { head_dx_finish_cpu } from '../../src/kernels/head_dx.cpu';
import { head_lse_grad_cpu, softcap_grad_cpu } from '../../src/kernels/head_lse.cpu';
import { head_loss_cpu } from '../../src/models/head.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { expectWithin, finiteDiff, gpu, rng } from '../helpers/gpu';
import { cut } from '../helpers/head';

const u = 2 ** -24;

async function check(N: number, C: number, softcap: number, seed: number) {
  const ctx = await gpu();
  ctx.flush(); // an open batch holds its uniform buffer: count only what the test makes
  const live = ctx.alloc.liveBytes;
  const r = rng(seed);
  const V = 50;
  const targets = r.int(N, V);
  for (let n = 3; n < N; n += 4) targets[n] = IGNORE_INDEX;
  if (N > 2) targets[2] = V + 7; // a target in no row of the table: its row of wt is zero
  const dxIn = r.uniform(N * C, -5, 5);
  const wt = r.uniform(N * C);
  for (let c = 0; c < C && N > 2; c++) wt[2 * C + c] = 0;
  const stats = new Float32Array(3 * N);
  for (let n = 0; n < N; n++)
    stats.set([r.uniform(1)[0], 1 + 40 * Math.abs(r.uniform(1)[0]), 3 * r.uniform(1)[0]], 3 * n);
  const opts = { gradScale: 1 / 3, softcap };
  const dx = Tensor.from(ctx, dxIn, [N, C]);
  const tt = Tensor.fromU32(ctx, targets, [N]);
  const ts = Tensor.from(ctx, stats, [N, 3]);
  const tw = Tensor.from(ctx, wt, [N, C]);
  head_dx_finish(dx, tt, ts, tw, opts);
  const want = head_dx_finish_cpu(dxIn, targets, stats, wt, N, C, opts);
  const bound = new Float64Array(N * C);
  const s = Math.abs(opts.gradScale);
  for (let n = 0; n < N; n++) {
    const rr = softcap > 0 ? stats[3 * n + 2] / softcap : 0;
    const capt = softcap_grad_cpu(stats[3 * n + 2], softcap);
    const dcap = softcap > 0 ? 12 * u * rr * rr + u * Math.abs(capt) : 0;
    for (let c = 0; c < C; c++) {
      const i = n * C + c;
      const a = dxIn[i] / stats[3 * n + 1],
        b = capt * wt[i];
      bound[i] =
        2 *
        (s * (5 * u * Math.abs(a) + dcap * Math.abs(wt[i]) + u * Math.abs(b) + u * Math.abs(a - b)) +
          2 * u * Math.abs(want[i]));
    }
  }
  const got = await dx.read();
  expectWithin(got, want, bound, 'dx');
  for (let n = 0; n < N; n++) {
    if (targets[n] === IGNORE_INDEX) expect(got.subarray(n * C, (n + 1) * C).every((v) => v === 0)).toBe(true);
  }
  [dx, tt, ts, tw].forEach((t) => t.free());
  ctx.flush();
  expect(ctx.alloc.liveBytes).toBe(live);
}

/** The one-pass head of src/models/head.ts on the twins, in float64: losses and dx. */
function onePass(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  targets: Uint32Array,
  N: number,
  C: number,
  V: number,
  cw: number,
  gradScale: number,
  softcap: number,
) {
  let stats: Float64Array | null = null;
  let losses: Float64Array | null = null;
  let dx: Float64Array | null = null;
  for (const { v0, vc } of cut(V, cw)) {
    const logits = new Float64Array(N * vc); // x · W_cᵀ
    for (let n = 0; n < N; n++)
      for (let j = 0; j < vc; j++) {
        let acc = 0;
        for (let c = 0; c < C; c++) acc += x[n * C + c] * w[(v0 + j) * C + c];
        logits[n * vc + j] = acc;
      }
    const r = head_lse_grad_cpu(logits, targets, stats, dx, N, vc, C, { v0, V, last: v0 + vc === V, softcap });
    const next = r.dx ?? new Float64Array(N * C); // dx += p_c · W_c (the first chunk writes it)
    for (let n = 0; n < N; n++)
      for (let j = 0; j < vc; j++) for (let c = 0; c < C; c++) next[n * C + c] += r.p[n * vc + j] * w[(v0 + j) * C + c];
    [stats, losses, dx] = [r.stats, r.losses, next];
  }
  const wt = new Float64Array(N * C); // the target rows, zero for a target in no row
  for (let n = 0; n < N; n++) {
    if (targets[n] < V) for (let c = 0; c < C; c++) wt[n * C + c] = w[targets[n] * C + c];
  }
  return { losses: losses!, dx: head_dx_finish_cpu(dx!, targets, stats!, wt, N, C, { gradScale, softcap }) };
}

describe('head_dx', () => {
  it.each([
    [1, 1, 0],
    [7, 33, 0],
    [33, 577, 0],
    [300, 65, 0],
    [7, 33, 5],
    [300, 65, 5],
  ])('dx matches the twin, N = %i, C = %i, soft cap %f', (N, C, c) => check(N, C, c, N * 31 + C));
});

describe('the one-pass head on the twins (float64)', () => {
  // targets: row 0 in the first chunk, row 1 in the last, row 2 ignored, row 3 a target in the middle whose
  // logits grow along the vocabulary, so its max arrives in the last chunk (every chunk rescales dx).
  const N = 4,
    C = 5,
    V = 23;
  const r = rng(17);
  const w = Float64Array.from(r.uniform(V * C));
  for (let v = 0; v < V; v++) w[v * C] = 0.3 * v; // x[3] has a large first column: logits grow with v
  const targets = Uint32Array.of(1, V - 1, IGNORE_INDEX, 11);
  const x0 = Float64Array.from(r.uniform(N * C));
  x0[3 * C] = 4;

  it.each([
    [0, 5],
    [0, 7],
    [2, 5],
    [2, 23],
  ])('soft cap %f, chunks of %i: the unchunked reference, and finite differences of Σ loss · gradScale', (c, cw) => {
    const scale = 0.7;
    const got = onePass(x0, w, targets, N, C, V, cw, scale, c);
    const ref = head_loss_cpu(x0, w, targets, N, C, V, scale, c);
    for (let n = 0; n < N; n++) expect(Math.abs(got.losses[n] - ref.losses[n])).toBeLessThan(1e-12);
    for (let i = 0; i < N * C; i++) expect(Math.abs(got.dx[i] - ref.dx[i])).toBeLessThan(1e-12);
    // Central differences with step 1e-6 in float64 (truncation ~h², rounding ~ε/h): 1e-8 absolute.
    const f = (xx: Float64Array) =>
      onePass(xx, w, targets, N, C, V, cw, scale, c).losses.reduce((s, v) => s + v * scale, 0);
    const fd = finiteDiff(f, Float64Array.from(x0));
    for (let i = 0; i < fd.length; i++) expect(Math.abs(got.dx[i] - fd[i])).toBeLessThan(1e-8);
    expect(got.dx.subarray(2 * C, 3 * C).every((v) => v === 0)).toBe(true);
  });
});
