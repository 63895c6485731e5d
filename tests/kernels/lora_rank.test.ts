// shaders/lora_rank.wgsl (the rank-r products u = drop(x)·Aᵀ and G = dy·B; its rank loop is shaders/lib_lora_rank.wgsl,
// shared with lora_rank_norm and lora_rank_glu, tested below too) against its float64 twin
// (src/kernels/lora_rank.cpu.ts) at awkward sizes, with and without dropout, both layouts of w.
// Bound per element: |got − want| ≤ (K + 4)·u·Σ_k |drop(x)[n, k]·w[j, k]| (u = 2⁻²⁴): each thread sums
// ≈ K / KS terms and KS partials are summed after, K + KS chained f32 roundings at most (Higham's γ), and the
// mask multiplier adds two roundings. A wrong, missing or unmasked term is O(1) of the magnitude.
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/gpu/tensor';
import {
  lora_rank_glu,
  lora_rank_norm,
  lora_rank_product,
  lora_rank_segments,
  RANK_ROWS,
  rankTile,
  type RankTile,
} from '../../src/kernels/lora_rank';
import { lora_rank_cpu, lora_rank_glu_cpu, lora_rank_norm_cpu, type RankCpu } from '../../src/kernels/lora_rank.cpu';
import { geglu_forward } from '../../src/kernels/geglu';
import { swiglu_forward } from '../../src/kernels/swiglu';
import { expectWithin, gpu, rng } from '../helpers/gpu';

const U32 = 2 ** -24;

interface Case {
  N: number;
  K: number;
  r: number;
  p: number;
  wKR: boolean;
  KS?: number /* a tile override (the default depends on the adapter) */;
}
const CASES: Case[] = [
  { N: 1, K: 5, r: 1, p: 0, wKR: false },
  { N: 7, K: 100, r: 3, p: 0.25, wKR: true },
  { N: 33, K: 577, r: 8, p: 0.1, wKR: false },
  { N: 257, K: 100, r: 16, p: 0, wKR: true },
  { N: 300, K: 5, r: 64, p: 0.5, wKR: false },
  { N: 33, K: 577, r: 64, p: 0.1, wKR: true },
  { N: 4100, K: 577, r: 8, p: 0.1, wKR: false },
  { N: 4100, K: 100, r: 3, p: 0, wKR: true },
  { N: 257, K: 577, r: 8, p: 0.1, wKR: false, KS: 32 },
  { N: 33, K: 100, r: 64, p: 0, wKR: true, KS: 8 },
  { N: 7, K: 577, r: 3, p: 0.25, wKR: true, KS: 64 },
];

describe('lora_rank (shaders/lora_rank.wgsl)', () => {
  it.each(CASES)('drop(x)·op(w) matches the twin: %o', async (c) => {
    const ctx = await gpu();
    await ctx.sync();
    const live = ctx.alloc.liveBytes;
    const R = rng(c.N * 13 + c.K * 7 + c.r);
    const x = R.uniform(c.N * c.K),
      w = R.uniform(c.r * c.K);
    const d: RankCpu = { N: c.N, K: c.K, r: c.r, wKR: c.wKR, p: c.p, seed: 4321 + c.r };
    const tx = Tensor.from(ctx, x, [c.N, c.K]),
      tw = Tensor.from(ctx, w, c.wKR ? [c.K, c.r] : [c.r, c.K]);
    const tile = c.KS ? { KS: c.KS, JQ: Math.ceil(c.r / 4) } : undefined;
    const out = lora_rank_product(tx, tw, { wKR: c.wKR, dropout: c.p, seed: d.seed }, tile);
    expect(out.shape).toEqual([c.N, c.r]);
    const want = lora_rank_cpu(x, w, d);
    const mag = lora_rank_cpu(Float64Array.from(x, Math.abs), Float64Array.from(w, Math.abs), d);
    const bound = Float64Array.from(mag, (m) => (c.K + 4) * U32 * m + 1e-30);
    expectWithin(await out.read(), want, bound, 'out');
    for (const t of [tx, tw, out]) t.free();
    await ctx.sync();
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  // segments: 2 or 3 A's at scattered offsets of one buffer (as in the flat LoRA parameters), each with its own
  // dropout stream, in one dispatch; each u against the twin with its own seed
  it.each([
    { N: 7, K: 100, r: 3, p: 0.25, gaps: [0, 1] },
    { N: 257, K: 577, r: 8, p: 0.1, gaps: [3, 0, 2] },
    { N: 33, K: 5, r: 64, p: 0, gaps: [1, 1, 1] },
  ])('segments: drop_s(x)·A_sᵀ for each A_s of one buffer match the twin: %o', async (c) => {
    const ctx = await gpu();
    await ctx.sync();
    const live = ctx.alloc.liveBytes;
    const R = rng(c.N * 3 + c.K + c.r);
    const x = R.uniform(c.N * c.K);
    const slot = Math.ceil((c.r * c.K) / 64) * 64; // floats per A, padded to a binding offset as in the flat layout
    const offs: number[] = [];
    let at = 0;
    for (const g of c.gaps) {
      at += g * 64;
      offs.push(at);
      at += slot;
    }
    const flat = R.uniform(at);
    const buf = Tensor.from(ctx, flat, [at]);
    const As = offs.map((o) => Tensor.view(ctx, buf.base, 4 * o, [c.r, c.K]));
    const seeds = offs.map((_, s) => 777 + 31 * s);
    const tx = Tensor.from(ctx, x, [c.N, c.K]);
    const { all, u } = lora_rank_segments(tx, As, seeds, c.p);
    for (let s = 0; s < As.length; s++) {
      const w = flat.subarray(offs[s], offs[s] + c.r * c.K);
      const d: RankCpu = { N: c.N, K: c.K, r: c.r, p: c.p, seed: seeds[s] };
      const mag = lora_rank_cpu(Float64Array.from(x, Math.abs), Float64Array.from(w, Math.abs), d);
      const bound = Float64Array.from(mag, (m) => (c.K + 4) * U32 * m + 1e-30);
      expectWithin(await u[s].read(), lora_rank_cpu(x, w, d), bound, `u[${s}]`);
    }
    for (const t of [tx, buf, all]) t.free();
    await ctx.sync();
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  // the fused kernels: RMSNorm's y and rstd with the U's of the linears reading y (lora_rank_norm), and a gated
  // activation's h with the U of the linear reading h (lora_rank_glu), against the twins of their two halves.
  // rstd: Σx² of a row is ceil(K / T) terms per thread (T = KS·JQ threads) and then the T partials in order, m
  // chained additions of positive terms, so (as in tests/kernels/rmsnorm.test.ts) |Δy| ≤ (½m + 16)·u·|y|, and
  // rstd alike; twice that is allowed. u_s is the plain product over the y the kernel stored: the bound above
  // plus y's relative error carried through, (K + 4 + relY / u)·u·Σ_k |drop(y)·A|.
  const slots = (ctx: { softwareAdapter: boolean }, K: number, r: number, tile?: RankTile) =>
    tile ?? rankTile(K, r, ctx.softwareAdapter ? 16 : 64);
  it.each([
    { N: 1, K: 5, r: 1, p: 0, S: 1 },
    { N: 7, K: 100, r: 3, p: 0.25, S: 2 },
    { N: 33, K: 577, r: 8, p: 0.1, S: 3 },
    { N: 257, K: 100, r: 64, p: 0, S: 3 },
    { N: 4100, K: 577, r: 8, p: 0.1, S: 3 },
    { N: 257, K: 577, r: 8, p: 0, S: 2, tile: { KS: 32, JQ: 2 } /* the tile of a hardware adapter */ },
    { N: 33, K: 100, r: 3, p: 0.1, S: 1, tile: { KS: 128, JQ: 1 } },
    { N: 9, K: 1000, r: 16, p: 0.1, S: 2, tile: { KS: 8, JQ: 4 } },
  ])('norm: y, rstd and drop_s(y)·A_sᵀ in one dispatch match the twin: %o', async (c) => {
    const ctx = await gpu();
    await ctx.sync();
    const live = ctx.alloc.liveBytes;
    const R = rng(c.N * 5 + c.K * 3 + c.r + c.S);
    const x = R.normal(c.N * c.K, 2),
      g = R.uniform(c.K, 0.5, 1.5);
    const slot = Math.ceil((c.r * c.K) / 64) * 64; // A's padded to binding offsets, as in the flat LoRA layout
    const flat = R.uniform(c.S * slot);
    const buf = Tensor.from(ctx, flat, [c.S * slot]);
    const As = Array.from({ length: c.S }, (_, s) => Tensor.view(ctx, buf.base, 4 * s * slot, [c.r, c.K]));
    const seeds = As.map((_, s) => 91 + 17 * s);
    const [tx, tg] = [Tensor.from(ctx, x, [c.N, c.K]), Tensor.from(ctx, g, [c.K])];
    const got = lora_rank_norm(tx, tg, 1e-5, As, seeds, c.p, c.tile);
    const d = { N: c.N, K: c.K, r: c.r, p: c.p };
    const Aw = As.map((_, s) => flat.subarray(s * slot, s * slot + c.r * c.K));
    const want = lora_rank_norm_cpu(x, g, 1e-5, Aw, seeds, d);
    const t = slots(ctx, c.K, c.r, c.tile);
    const m = Math.ceil(c.K / (t.KS * t.JQ)) + t.KS * t.JQ;
    const relY = 2 * (0.5 * m + 16) * U32;
    expectWithin(
      await got.y.read(),
      want.y,
      Float64Array.from(want.y, (v) => relY * Math.abs(v) + 1e-30),
      'y',
    );
    expectWithin(
      await got.rstd.read(),
      want.rstd,
      Float64Array.from(want.rstd, (v) => relY * v),
      'rstd',
    );
    const absY = Float64Array.from(want.y, Math.abs);
    for (let s = 0; s < c.S; s++) {
      const mag = lora_rank_cpu(absY, Float64Array.from(Aw[s], Math.abs), { ...d, seed: seeds[s] });
      const bound = Float64Array.from(mag, (v) => (c.K + 4 + relY / U32) * U32 * v + 1e-30);
      expectWithin(await got.u[s].read(), want.u[s], bound, `u[${s}]`);
    }
    for (const tt of [tx, tg, buf, got.y, got.rstd, got.all]) tt.free();
    await ctx.sync();
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  // h: the same lib functions as swiglu_forward.wgsl / geglu_forward.wgsl, so the same f32 bits; against the twin,
  // with |gate| ≤ 1 both are within 32·u relative (tests/kernels/{swiglu,geglu}.test.ts), 64·u allowed, and u as
  // the norm's above with relH = 64·u
  it.each([
    { kind: 'swiglu', N: 1, K: 5, r: 1, p: 0 },
    { kind: 'swiglu', N: 7, K: 100, r: 3, p: 0.25 },
    { kind: 'swiglu', N: 4100, K: 100, r: 8, p: 0.1 },
    { kind: 'swiglu', N: 257, K: 1536, r: 8, p: 0, tile: { KS: 32, JQ: 2 } },
    { kind: 'geglu', N: 33, K: 577, r: 64, p: 0.1 },
    { kind: 'geglu', N: 9, K: 100, r: 16, p: 0, tile: { KS: 8, JQ: 4 } },
  ] as const)('glu: h = act(gate)·up and drop(h)·Aᵀ in one dispatch match the twin: %o', async (c) => {
    const ctx = await gpu();
    await ctx.sync();
    const live = ctx.alloc.liveBytes;
    const R = rng(c.N * 11 + c.K + c.r);
    const gate = R.uniform(c.N * c.K),
      up = R.uniform(c.N * c.K, -2, 2),
      A = R.uniform(c.r * c.K);
    const [tg, tu, tA] = [
      Tensor.from(ctx, gate, [c.N, c.K]),
      Tensor.from(ctx, up, [c.N, c.K]),
      Tensor.from(ctx, A, [c.r, c.K]),
    ];
    const d = { N: c.N, K: c.K, r: c.r, p: c.p, seed: 4242 };
    const got = lora_rank_glu(c.kind, tg, tu, tA, d.seed, c.p, 'tile' in c ? c.tile : undefined);
    const want = lora_rank_glu_cpu(c.kind, gate, up, A, d);
    const h = await got.h.read();
    const plain = (c.kind === 'geglu' ? geglu_forward : swiglu_forward)(tg, tu);
    expect(h).toEqual(await plain.read()); // bit for bit the unfused kernel's h
    const relH = 64 * U32;
    expectWithin(
      h,
      want.h,
      Float64Array.from(want.h, (v) => relH * Math.abs(v) + 1e-30),
      'h',
    );
    const mag = lora_rank_cpu(Float64Array.from(want.h, Math.abs), Float64Array.from(A, Math.abs), d);
    const bound = Float64Array.from(mag, (v) => (c.K + 4 + relH / U32) * U32 * v + 1e-30);
    expectWithin(await got.u.read(), want.u, bound, 'u');
    for (const t of [tg, tu, tA, got.h, got.u, plain]) t.free();
    await ctx.sync();
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('the grid is wide: N = 4096 makes ≥ 264 workgroups at every rank, ≤ 256 threads and ≤ 16 KiB each', () => {
    expect(Math.ceil(4096 / RANK_ROWS)).toBeGreaterThanOrEqual(264);
    for (const r of [1, 3, 8, 16, 64])
      for (const K of [5, 576, 1536])
        for (const threads of [16, 64]) {
          const t = rankTile(K, r, threads);
          expect(t.KS * t.JQ).toBeLessThanOrEqual(256);
          expect(t.KS * RANK_ROWS * t.JQ * 16).toBeLessThanOrEqual(16384);
          expect(Math.ceil(K / t.KS)).toBeLessThanOrEqual(2048);
        }
  });

  it('refuses mismatched shapes and ranks above 64; knows the test drivers are CPU adapters', async () => {
    const ctx = await gpu();
    expect(ctx.softwareAdapter).toBe(true); // lavapipe and SwiftShader get the 16-thread tile
    const x = Tensor.zeros(ctx, [3, 5]),
      w = Tensor.zeros(ctx, [2, 4]),
      big = Tensor.zeros(ctx, [65, 5]);
    expect(() => lora_rank_product(x, w)).toThrow(/lora_rank/);
    expect(() => lora_rank_product(x, big)).toThrow(/rank 65/);
    for (const t of [x, w, big]) t.free();
  });
});
