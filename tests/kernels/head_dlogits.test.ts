// shaders/head_dlogits.wgsl (with shaders/lib_softcap.wgsl) against its float64 twin,
// src/kernels/head_dlogits.cpu.ts, chunk by chunk over vocabulary chunks that do not divide V; and the twins
// (head_lse.cpu.ts then head_dlogits.cpu.ts) against finite differences of Σ loss · gradScale in float64.
//
// Error bounds (u = 2^-24; exp(x) within 3 + 2|x| ULP, division 2.5 ULP, an ULP ≤ 2u relative). GPU and twin get
// the same f32 logits and the same f32 statistics (m, l) (the twin's, rounded), so per element, with p = exp(z −
// m)/l, s = |gradScale| and g the exact result:
//   exp(z − m): (6 + 5|z − m|)u relative; scale / l: 5u, the product u, gradScale rounded to f32 u (both terms):
//     δg ≤ s·(p·(14 + 5|z − m|)u + [target]·u) + u·|g|                                     without a soft cap;
//   with cap c, z is off by δz ≤ c(16 + 4|y/c|)u + 5u|y| + u|z| (see head_lse.test.ts), which moves p by p·δz, and
//     softcap' = 1 − (z/c)² by 2|z|δz/c² + 4u; the product by softcap' adds u|g|:
//     δg ≤ s·((p·(14 + 5|z − m|)u + p·δz + [target]·u)·softcap' + |p − [target]|·(2|z|δz/c² + 4u)) + 2u|g|.
// The tests allow twice these first-order bounds. Ignored rows must be exactly 0.
import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX } from '../../src/kernels/ignore_index';
import { head_dlogits_backward } from '../../src/kernels/head_dlogits';
import { head_dlogits_backward_cpu } from '../../src/kernels/head_dlogits.cpu';
import { head_lse_forward_cpu, softcap_cpu, softcap_grad_cpu } from '../../src/kernels/head_lse.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { expectWithin, finiteDiff, gpu } from '../helpers/gpu';
import { capErr, CHUNK, columns, cut, inputs } from '../helpers/head';

const u = 2 ** -24;

/** Final statistics (N, 3) of the whole (N, V) logits, and the losses, from the twin, chunk by chunk. */
function lseTwin(logits: ArrayLike<number>, targets: Uint32Array, N: number, V: number, cw: number, softcap: number) {
  let stats: Float64Array | null = null;
  let losses: Float64Array | null = null;
  const f = Float32Array.from(logits);
  for (const { v0, vc } of cut(V, cw)) {
    const r = head_lse_forward_cpu(columns(f, N, V, v0, vc), targets, stats, N, vc, {
      v0,
      V,
      last: v0 + vc === V,
      softcap,
    });
    stats = r.stats;
    losses = r.losses;
  }
  return { stats: stats!, losses: losses! };
}

async function check(N: number, V: number, cw: number, softcap: number, seed: number) {
  const ctx = await gpu();
  ctx.flush(); // an open batch holds its uniform buffer: count only what the test makes
  const live = ctx.alloc.liveBytes;
  const { logits, targets } = inputs(N, V, seed);
  const scale = 1 / 3;
  const stats32 = Float32Array.from(lseTwin(logits, targets, N, V, cw, softcap).stats);
  const tt = Tensor.fromU32(ctx, targets, [N]);
  const ts = Tensor.from(ctx, stats32, [N, 3]);
  for (const { v0, vc } of cut(V, cw)) {
    const block = columns(logits, N, V, v0, vc);
    const tl = Tensor.from(ctx, block, [N, vc]);
    const opts = { v0, gradScale: scale, softcap };
    head_dlogits_backward(tl, tt, ts, opts);
    const want = head_dlogits_backward_cpu(block, targets, stats32, N, vc, opts);
    const bound = new Float64Array(N * vc);
    for (let n = 0; n < N; n++) {
      if (targets[n] === IGNORE_INDEX) continue;
      for (let j = 0; j < vc; j++) {
        const i = n * vc + j;
        const y = block[i];
        const z = softcap_cpu(y, softcap);
        const p = Math.exp(z - stats32[3 * n]) / stats32[3 * n + 1];
        const onehot = v0 + j === targets[n] ? 1 : 0;
        const dz = capErr(y, softcap);
        const cap = softcap_grad_cpu(z, softcap);
        const dcap = softcap > 0 ? (2 * Math.abs(z) * dz) / softcap ** 2 + 4 * u : 0;
        const g = Math.abs(want[i]);
        bound[i] =
          2 *
          (scale *
            ((p * (14 + 5 * Math.abs(z - stats32[3 * n])) * u + p * dz + onehot * u) * cap +
              Math.abs(p - onehot) * dcap) +
            2 * u * g);
      }
    }
    const got = await tl.read();
    expectWithin(got, want, bound, `dlogits of columns ${v0}..${v0 + vc}`);
    for (let n = 0; n < N; n++)
      if (targets[n] === IGNORE_INDEX) expect(got.subarray(n * vc, (n + 1) * vc).every((g) => g === 0)).toBe(true);
    tl.free();
  }
  [tt, ts].forEach((t) => t.free());
  ctx.flush();
  expect(ctx.alloc.liveBytes).toBe(live);
}

const SIZES: [number, number][] = [];
for (const N of [1, 7, 33, 300]) for (const V of [5, 100, 1000, 4099]) SIZES.push([N, V]);

describe('head_dlogits', () => {
  it.each(SIZES)('dlogits match the twin, N = %i, V = %i, chunks not dividing V, ignored rows zero', (N, V) =>
    check(N, V, CHUNK[V], 0, N * 31 + V),
  );

  it.each([
    [7, 100],
    [33, 1000],
    [300, 4099],
  ])('with a soft cap c = 5 (Gemma 3), N = %i, V = %i', (N, V) => check(N, V, CHUNK[V], 5, N * 3 + V));

  it('the gradient of a counted row sums to 0 over its chunks; its target entry is (p_t − 1)·gradScale', async () => {
    const ctx = await gpu();
    const N = 3,
      V = 257,
      cw = 100,
      scale = 0.125;
    const { logits, targets } = inputs(N, V, 257);
    const { stats, losses } = lseTwin(logits, targets, N, V, cw, 0);
    const tt = Tensor.fromU32(ctx, targets, [N]),
      ts = Tensor.from(ctx, stats, [N, 3]);
    const sums = new Float64Array(N);
    for (const { v0, vc } of cut(V, cw)) {
      const tl = Tensor.from(ctx, columns(logits, N, V, v0, vc), [N, vc]);
      head_dlogits_backward(tl, tt, ts, { v0, gradScale: scale, softcap: 0 });
      const g = await tl.read();
      for (let n = 0; n < N; n++) {
        for (let j = 0; j < vc; j++) sums[n] += g[n * vc + j];
        const t = targets[n];
        if (t >= v0 && t < v0 + vc) expect(g[n * vc + t - v0]).toBeCloseTo((Math.exp(-losses[n]) - 1) * scale, 5);
      }
      tl.free();
    }
    // Σ softmax = 1 up to the bound on each p (≈ 1e-5 relative here), so |Σ g| ≲ 1e-5·scale.
    for (let n = 0; n < N; n++) expect(Math.abs(sums[n])).toBeLessThan(4e-5 * scale);
    [tt, ts].forEach((t) => t.free());
  });
});

describe('head twins (lse then dlogits, chunked)', () => {
  it.each([
    [3, 7, 3, 0],
    [2, 33, 10, 0],
    [4, 1, 1, 0],
    [3, 7, 3, 2],
    [2, 33, 10, 1.5],
  ])(
    'dlogits = finite differences of Σ loss · gradScale (float64), N = %i, V = %i, chunks of %i, cap %f',
    (N, V, cw, c) => {
      // Central differences with step 1e-6 in float64: truncation ~1e-12·|f'''|, rounding ~1e-16·|f|/1e-6;
      // 1e-8 absolute leaves room and is far below any wrong gradient (entries are O(gradScale / V) or more).
      const { logits, targets } = inputs(N, V, N + V);
      const scale = 0.7;
      const f = (x: Float64Array) => {
        let stats: Float64Array | null = null;
        let losses: Float64Array | null = null;
        for (const { v0, vc } of cut(V, cw)) {
          const block = new Float64Array(N * vc);
          for (let n = 0; n < N; n++) block.set(x.subarray(n * V + v0, n * V + v0 + vc), n * vc);
          const r = head_lse_forward_cpu(block, targets, stats, N, vc, { v0, V, last: v0 + vc === V, softcap: c });
          stats = r.stats;
          losses = r.losses;
        }
        return losses!.reduce((s, v) => s + v * scale, 0);
      };
      const fd = finiteDiff(f, Float64Array.from(logits));
      const { stats } = lseTwin(logits, targets, N, V, cw, c);
      for (const { v0, vc } of cut(V, cw)) {
        const g = head_dlogits_backward_cpu(columns(logits, N, V, v0, vc), targets, stats, N, vc, {
          v0,
          gradScale: scale,
          softcap: c,
        });
        for (let n = 0; n < N; n++)
          for (let j = 0; j < vc; j++) expect(Math.abs(g[n * vc + j] - fd[n * V + v0 + j])).toBeLessThan(1e-8);
      }
    },
  );
});
