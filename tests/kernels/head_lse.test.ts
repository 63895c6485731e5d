// shaders/head_lse.wgsl and shaders/head_lse_grad.wgsl (with shaders/lib_head_lse.wgsl, lib_softcap.wgsl) against
// their float64 twin, src/kernels/head_lse.cpu.ts: the (N, V) logits are fed as vocabulary chunks that do not
// divide V, and the running statistics (m, l, z_t) and the losses after the last chunk are compared; head_lse_grad
// must give head_lse's statistics and losses bit for bit, and per chunk its p = exp(z − m')·softcap'(z) and its
// rescaled dx are compared with the twin's, given the GPU's m and m' (read before and after each chunk).
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
//   p = exp(z − m')·softcap'(z), the same f32 m' on both sides: the subtraction and exp cost (6 + 5|z − m'|)u
//     relative; a cap moves z by δz, p by p·δz and softcap' = 1 − (z/c)² by 2|z|δz/c² + 4u; the product u:
//     δp ≤ p·((6 + 5|z − m'|)u + δz)·softcap' + p·(2|z|δz/c² + 4u) + u·|p·softcap'|   (δz = 0, softcap' = 1 without a cap).
//   dx·exp(m − m'), the same f32 m, m': (6 + 5|m − m'|)u for exp, u for the product.
// The tests allow twice these first-order bounds.
import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX } from '../../src/kernels/ignore_index';
import { head_lse_forward, head_lse_grad } from '../../src/kernels/head_lse';
import { head_lse_forward_cpu, head_lse_grad_cpu, softcap_cpu, softcap_grad_cpu } from '../../src/kernels/head_lse.cpu';
import { capErr, CHUNK, columns, cut, inputs } from '../helpers/head';
import { rowWorkgroupSize } from '../../src/kernels/rmsnorm';
import { Tensor } from '../../src/gpu/tensor';
import { expectWithin, gpu, rng } from '../helpers/gpu';

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
  const C = 37; // columns of dx
  const tt = Tensor.fromU32(ctx, targets, [N]);
  const stats = Tensor.empty(ctx, [N, 3]);
  const losses = Tensor.empty(ctx, [N]);
  const statsG = Tensor.empty(ctx, [N, 3]); // head_lse_grad's, the same chunks
  const lossesG = Tensor.empty(ctx, [N]);
  let want: { stats: Float64Array; losses: Float64Array | null } | null = null;
  const r = rng(seed + 1);
  for (const [i, { v0, vc }] of chunks.entries()) {
    const block = columns(logits, N, V, v0, vc);
    const tl = Tensor.from(ctx, block, [N, vc]);
    const chunk = { v0, V, first: i === 0, last: i === chunks.length - 1, softcap };
    head_lse_forward(tl, tt, stats, losses, chunk);
    want = head_lse_forward_cpu(block, targets, want?.stats ?? null, N, vc, chunk);
    // The gradient kernel on the same chunk, with the GPU's statistics before and after.
    const before = i === 0 ? null : Float64Array.from(await statsG.read());
    const dxIn = r.uniform(N * C);
    const dx = Tensor.from(ctx, dxIn, [N, C]);
    head_lse_grad(tl, tt, statsG, lossesG, dx, chunk);
    const after = Float64Array.from(await statsG.read());
    const twin = head_lse_grad_cpu(block, targets, before, i === 0 ? null : dxIn, N, vc, C, chunk);
    // the twin's p and dx at the GPU's m' (its m' is the GPU's too when before is the GPU's and z has no cap)
    const bp = new Float64Array(N * vc),
      wp = new Float64Array(N * vc),
      bdx = new Float64Array(N * C),
      wdx = new Float64Array(N * C);
    for (let n = 0; n < N; n++) {
      const m1 = after[3 * n];
      for (let j = 0; j < vc; j++) {
        const y = block[n * vc + j];
        const z = softcap_cpu(y, softcap);
        const dz = capErr(y, softcap);
        const cap = softcap_grad_cpu(z, softcap);
        const pz = Math.exp(z - m1);
        const dcap = softcap > 0 ? (2 * Math.abs(z) * dz) / softcap ** 2 + 4 * u : 0;
        wp[n * vc + j] = pz * cap;
        bp[n * vc + j] = 2 * (pz * ((6 + 5 * Math.abs(z - m1)) * u + dz) * cap + pz * dcap + u * Math.abs(pz * cap));
      }
      if (!before) continue;
      const a = Math.exp(before[3 * n] - m1);
      for (let c = 0; c < C; c++) {
        wdx[n * C + c] = dxIn[n * C + c] * a;
        bdx[n * C + c] = 2 * Math.abs(dxIn[n * C + c] * a) * (7 + 5 * Math.abs(before[3 * n] - m1)) * u;
      }
    }
    expectWithin(await tl.read(), wp, bp, `p, chunk ${i}`);
    if (before) expectWithin(await dx.read(), wdx, bdx, `dx, chunk ${i}`);
    if (softcap === 0) {
      // Without a cap the twin, fed the GPU's statistics, has the GPU's m' exactly: it must give the same p and dx.
      expectWithin(
        twin.p,
        wp,
        wp.map((v) => 1e-15 * Math.abs(v)),
        `twin p, chunk ${i}`,
      );
      if (before)
        expectWithin(
          twin.dx!,
          wdx,
          wdx.map((v) => 1e-15 * Math.abs(v)),
          `twin dx, chunk ${i}`,
        );
    }
    [tl, dx].forEach((t) => t.free());
  }
  // head_lse_grad's statistics and losses are head_lse's, bit for bit.
  expect(Array.from(await statsG.read())).toEqual(Array.from(await stats.read()));
  expect(Array.from(await lossesG.read())).toEqual(Array.from(await losses.read()));
  [statsG, lossesG].forEach((t) => t.free());
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

describe('head_lse and head_lse_grad', () => {
  it.each(SIZES)(
    'running (m, l, z_t), losses, p and rescaled dx match the twin, N = %i, V = %i, chunks not dividing V',
    (N, V) => check(N, V, CHUNK[V], 0, N * 7919 + V),
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
