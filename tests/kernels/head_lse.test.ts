// shaders/head_lse.wgsl (with shaders/lib_softcap.wgsl) against its float64 twin, src/kernels/head_lse.cpu.ts:
// the (N, V) logits are fed as vocabulary chunks that do not divide V, and the running statistics (m, l, z_t) and
// the losses after the last chunk are compared.
//
// Error bounds, from WGSL's accuracy rules (u = 2^-24; an ULP is at most 2u relative; exp(x) is within 3 + 2|x|
// ULP, log within 3 ULP or 2^-21 absolute on [0.5, 2]; division 2.5 ULP). Both sides get the same f32 logits.
// Per row: R = max z − min z, w = ceil(VC/WG) values per invocation, L = log2(WG) tree levels, K chunks.
//   z: without a soft cap z = y exactly. With cap c, z = c·t(y/c): the division is off by ≤ 5u|y/c|, our tanh by
//     ≤ (16 + 4|y/c|)u absolute (lib_softcap.wgsl), the product by u|z|: δz ≤ c(16 + 4|y/c|)u + 5u|y| + u|z|.
//     Δ = the largest δz of the row. m is a max of the z: off by ≤ Δ (exactly 0 without a cap); z_t by ≤ Δ.
//   l = Σ exp(z − m): each term's exp(z − m_k) is off by ≤ (6 + 5R)u (the f32 subtraction, then exp), and it
//     passes through at most w + L + K rescalings exp(m_old − m_new) (the running max of an invocation, the
//     tree, the merges across chunks) whose arguments add up to ≤ R along its path (the running max only
//     grows), each costing 6u plus 2u for the adds and multiplies; all terms are positive, so
//     δl/l ≤ (6 + 10R + 8(w + L + K))u, plus 2Δ for the shifted z and m.
//   loss = (m + log l) − z_t: δl/l + 6u·max(log l, 4/3) + u·|m + log l| + u·|loss| + 2Δ.
// The tests allow twice these first-order bounds.
import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX } from '../../src/kernels/ignore_index';
import { head_lse_forward } from '../../src/kernels/head_lse';
import { head_lse_forward_cpu, softcap_cpu } from '../../src/kernels/head_lse.cpu';
import { capErr, CHUNK, columns, cut, inputs } from '../helpers/head';
import { rowWorkgroupSize } from '../../src/kernels/rmsnorm';
import { Tensor } from '../../src/gpu/tensor';
import { expectWithin, gpu } from '../helpers/gpu';

const u = 2 ** -24;

async function check(
  N: number,
  V: number,
  cw: number,
  softcap: number,
  seed: number,
  tweak?: (logits: Float32Array, targets: Uint32Array) => void,
) {
  const ctx = await gpu();
  ctx.flush(); // an open batch holds its uniform buffer: count only what the test makes
  const live = ctx.alloc.liveBytes;
  const { logits, targets } = inputs(N, V, seed);
  tweak?.(logits, targets);
  const chunks = cut(V, cw);
  const tt = Tensor.fromU32(ctx, targets, [N]);
  const stats = Tensor.empty(ctx, [N, 3]);
  const losses = Tensor.empty(ctx, [N]);
  let want: { stats: Float64Array; losses: Float64Array | null } | null = null;
  chunks.forEach(({ v0, vc }, i) => {
    const block = columns(logits, N, V, v0, vc);
    const tl = Tensor.from(ctx, block, [N, vc]);
    const chunk = { v0, V, first: i === 0, last: i === chunks.length - 1, softcap };
    head_lse_forward(tl, tt, stats, losses, chunk);
    want = head_lse_forward_cpu(block, targets, want?.stats ?? null, N, vc, chunk);
    tl.free();
  });
  const w = want!;
  // The bounds above, per row.
  const wg = rowWorkgroupSize(Math.max(...chunks.map((c) => c.vc)));
  const steps = Math.ceil(cw / wg) + Math.log2(wg) + chunks.length;
  const bm = new Float64Array(N),
    bl = new Float64Array(N),
    bz = new Float64Array(N),
    bloss = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let zmax = -Infinity,
      zmin = Infinity,
      D = 0;
    for (let v = 0; v < V; v++) {
      const y = logits[n * V + v];
      const z = softcap_cpu(y, softcap);
      zmax = Math.max(zmax, z);
      zmin = Math.min(zmin, z);
      D = Math.max(D, capErr(y, softcap));
    }
    const R = zmax - zmin;
    const [m, l] = [w.stats[3 * n], w.stats[3 * n + 1]];
    const dl = (6 + 10 * R + 8 * steps) * u + 2 * D;
    bm[n] = 2 * D;
    bl[n] = 2 * dl * l;
    bz[n] = 2 * D;
    const lse = m + Math.log(l);
    bloss[n] = 2 * (dl + 6 * u * Math.max(Math.log(l), 4 / 3) + u * Math.abs(lse) + u * Math.abs(w.losses![n]) + 2 * D);
  }
  const got = await stats.read();
  const pick = (a: ArrayLike<number>, k: number) => Float64Array.from({ length: N }, (_, n) => a[3 * n + k]);
  expectWithin(pick(got, 0), pick(w.stats, 0), bm, 'm');
  expectWithin(pick(got, 1), pick(w.stats, 1), bl, 'l');
  expectWithin(pick(got, 2), pick(w.stats, 2), bz, 'z_t');
  const gl = await losses.read();
  expectWithin(gl, w.losses!, bloss, 'loss');
  for (let n = 0; n < N; n++) if (targets[n] === IGNORE_INDEX) expect(gl[n]).toBe(0);
  [tt, stats, losses].forEach((t) => t.free());
  ctx.flush();
  expect(ctx.alloc.liveBytes).toBe(live);
}

const SIZES: [number, number][] = [];
for (const N of [1, 7, 33, 300]) for (const V of [5, 100, 1000, 4099]) SIZES.push([N, V]);

describe('head_lse', () => {
  it.each(SIZES)('running (m, l, z_t) and losses match the twin, N = %i, V = %i, chunks not dividing V', (N, V) =>
    check(N, V, CHUNK[V], 0, N * 7919 + V),
  );

  it.each([
    [7, 100],
    [33, 1000],
    [300, 4099],
  ])('with a soft cap c = 5 (Gemma 3), N = %i, V = %i', (N, V) => check(N, V, CHUNK[V], 5, N + V));

  it('one chunk of the whole row (VC = V = 1000)', () => check(5, 1000, 1000, 0, 3));

  it('V = 4099: the max in the first or the last chunk, and logits whose exp alone overflows f32', () =>
    [0, 30].reduce(
      (prev, c) =>
        prev.then(() =>
          check(3, 4099, 2048, c, 4, (logits) => {
            const V = 4099;
            logits[0] = 40; // row 0: the max is its first element
            logits[V + V - 1] = 40; // row 1: the max is its last element, in the last chunk of 3 columns
            for (let v = 0; v < V; v++) logits[2 * V + v] += 80; // row 2: exp(y) alone overflows
          }),
        ),
      Promise.resolve(),
    ));

  it('a target >= V gives a NaN loss', async () => {
    const ctx = await gpu();
    const tl = Tensor.from(ctx, [1, 2, 3, 4, 5, 6], [2, 3]),
      tt = Tensor.fromU32(ctx, [3, 1], [2]);
    const stats = Tensor.empty(ctx, [2, 3]),
      losses = Tensor.empty(ctx, [2]);
    head_lse_forward(tl, tt, stats, losses, { v0: 0, V: 3, first: true, last: true, softcap: 0 });
    const l = await losses.read();
    expect(l[0]).toBeNaN();
    expect(l[1]).toBeCloseTo(Math.log(Math.exp(-1) + 1 + Math.exp(1)), 6);
    [tl, tt, stats, losses].forEach((t) => t.free());
  });
});

describe('head_lse twin', () => {
  it('chunked statistics equal the whole row computed at once (float64)', () => {
    const N = 4,
      V = 100;
    const { logits, targets } = inputs(N, V, 9);
    for (const c of [0, 4]) {
      const whole = head_lse_forward_cpu(logits, targets, null, N, V, { v0: 0, V, last: true, softcap: c });
      let s: Float64Array | null = null;
      let losses: Float64Array | null = null;
      for (const { v0, vc } of cut(V, 37)) {
        const r = head_lse_forward_cpu(columns(logits, N, V, v0, vc), targets, s, N, vc, {
          v0,
          V,
          last: v0 + vc === V,
          softcap: c,
        });
        s = r.stats;
        losses = r.losses;
      }
      for (let n = 0; n < N; n++) expect(Math.abs(losses![n] - whole.losses![n])).toBeLessThan(1e-12);
    }
  });

  it('softcap: c·tanh(y/c), and no cap at c = 0', () => {
    expect(softcap_cpu(3, 0)).toBe(3);
    expect(softcap_cpu(30, 30)).toBeCloseTo(30 * Math.tanh(1), 14);
    expect(softcap_cpu(-1e6, 30)).toBe(-30);
  });
});
