// shaders/lora_rank.wgsl (the rank-r products u = drop(x)·Aᵀ and G = dy·B) against its float64 twin
// (src/kernels/lora_rank.cpu.ts) at awkward sizes, with and without dropout, both layouts of w.
// Bound per element: |got − want| ≤ (K + 4)·u·Σ_k |drop(x)[n, k]·w[j, k]| (u = 2⁻²⁴): each thread sums
// ≈ K / KS terms and KS partials are summed after, K + KS chained f32 roundings at most (Higham's γ), and the
// mask multiplier adds two roundings. A wrong, missing or unmasked term is O(1) of the magnitude.
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/gpu/tensor';
import { lora_rank_product, lora_rank_segments, RANK_ROWS, rankTile } from '../../src/kernels/lora_rank';
import { lora_rank_cpu, type RankCpu } from '../../src/kernels/lora_rank.cpu';
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
