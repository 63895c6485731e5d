// shaders/lora_grad.wgsl + its stage 2 (G = dy·B, and dA, dB split over chunks of tokens; the chunks summed by
// shaders/lora_grad_sum.wgsl on its own or carried by the next lora_grad dispatch) against the float64 twin
// (src/kernels/lora_grad.cpu.ts) at awkward sizes, with and without dropout, accumulation and several blocks per
// chunk; the same for lora_grad_segments (1 to 3 linears of one x, their gradients side by side: one dispatch),
// also bit for bit against separate calls; a carried stage 2 bit for bit against the same one on its own; the
// twins of dA and dB against finite differences; and bit-for-bit determinism of lora_backward across two runs.
// Bounds per element (u = 2⁻²⁴), each a chain of f32 roundings (Higham's γ_K) on the same sums of |terms|:
// G sums OUT terms (KS partials of strided terms, then KS in order): (OUT + 4)·u·Σ|dy·B|; dB sums N terms (8 per
// block, blocks and chunks in order): (N + 4)·u·(|base| + |scale|·Σ_n |dy·u|); dA the same over N terms of
// G·drop(x), with G itself off by (OUT + 4)·u relative: (N + OUT + 4)·u·(…). A wrong, missing or unmasked term is O(1).
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/gpu/tensor';
import { lora_backward, lora_forward, type LoraParams } from '../../src/kernels/lora';
import {
  GRAD_ROWS,
  GradCarry,
  GradGroup,
  gradTile,
  lora_grad,
  lora_grad_segments,
  MAX_CHUNKS,
  PART_BUDGET,
  type GradTile,
} from '../../src/kernels/lora_grad';
import { lora_grad_cpu, lora_grad_segments_cpu, type GradCpu } from '../../src/kernels/lora_grad.cpu';
import { lora_rank_cpu } from '../../src/kernels/lora_rank.cpu';
import { rankTile } from '../../src/kernels/lora_rank';
import { lora_backward_cpu, lora_forward_cpu } from '../../src/kernels/lora.cpu';
import { expectSumBounded, finiteDiff, gpu, rng } from '../helpers/gpu';

const abs = (x: ArrayLike<number>) => Float64Array.from(x, Math.abs);

interface Case {
  N: number;
  IN: number;
  OUT: number;
  r: number;
  p: number;
  accumulate: boolean;
  SB?: number /* blocks of 8 rows per chunk (a tile override); default: gradTile's */;
  threads?: number;
}
const CASES: Case[] = [
  { N: 1, IN: 5, OUT: 3, r: 1, p: 0, accumulate: false },
  { N: 7, IN: 100, OUT: 33, r: 3, p: 0.25, accumulate: true },
  { N: 33, IN: 577, OUT: 100, r: 8, p: 0, accumulate: true, SB: 2 },
  { N: 257, IN: 100, OUT: 577, r: 16, p: 0.1, accumulate: false, threads: 16 },
  { N: 300, IN: 5, OUT: 7, r: 64, p: 0.5, accumulate: true, SB: 3 },
  { N: 257, IN: 577, OUT: 33, r: 64, p: 0.1, accumulate: true },
  { N: 4100, IN: 577, OUT: 100, r: 8, p: 0.1, accumulate: true }, // 2 blocks per chunk, 257 chunks
  { N: 100, IN: 33, OUT: 5, r: 5, p: 0, accumulate: false, threads: 16, SB: 5 },
];

describe('lora_grad (shaders/lora_grad.wgsl, shaders/lora_grad_sum.wgsl)', () => {
  it.each(CASES)('G = dy·B and dA, dB [+]= scale·(Gᵀ·drop(x), dyᵀ·u) match the twin: %o', async (c) => {
    const ctx = await gpu();
    await ctx.sync();
    const live = ctx.alloc.liveBytes;
    const { N, IN, OUT, r } = c;
    const R = rng(N * 11 + IN * 5 + OUT * 3 + r);
    const dy = R.uniform(N * OUT),
      x = R.uniform(N * IN),
      u = R.uniform(N * r),
      B = R.uniform(OUT * r),
      base = { dA: R.uniform(r * IN), dB: R.uniform(OUT * r) };
    let t: GradTile = gradTile(N, IN, OUT, r, c.threads);
    if (c.SB) t = { ...t, SB: c.SB, chunks: Math.ceil(N / (GRAD_ROWS * c.SB)) };
    const d: GradCpu = { N, IN, OUT, r, CH: GRAD_ROWS * t.SB, scale: -1.3, p: c.p, seed: 99 + r };
    const [tdy, tx, tu, tB] = [
      Tensor.from(ctx, dy, [N, OUT]),
      Tensor.from(ctx, x, [N, IN]),
      Tensor.from(ctx, u, [N, r]),
      Tensor.from(ctx, B, [OUT, r]),
    ];
    // without accumulate their contents must be overwritten
    const out = { dA: Tensor.from(ctx, base.dA, [r, IN]), dB: Tensor.from(ctx, base.dB, [OUT, r]) };
    const carry = new GradCarry(ctx);
    const G = lora_grad(
      tdy,
      tx,
      tu,
      tB,
      out,
      { scale: d.scale, accumulate: c.accumulate, dropout: c.p, seed: d.seed },
      carry,
      t,
    );
    expect(carry.waiting).toBe(true);
    carry.flush(); // stage 2 on its own
    const want = lora_grad_cpu(dy, x, u, B, c.accumulate ? base : null, d);
    const absBase = c.accumulate ? { dA: abs(base.dA), dB: abs(base.dB) } : null;
    const mag = lora_grad_cpu(abs(dy), abs(x), abs(u), abs(B), absBase, { ...d, scale: Math.abs(d.scale) });
    expectSumBounded(await G.read(), want.G, mag.G, OUT, 'G');
    expectSumBounded(await out.dB.read(), want.dB, mag.dB, N, 'dB');
    expectSumBounded(await out.dA.read(), want.dA, mag.dA, N + OUT, 'dA');
    for (const v of [tdy, tx, tu, tB, out.dA, out.dB]) v.free();
    carry.free();
    await ctx.sync();
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('the grid is wide, the loops short and the scratch bounded: ≥ 264 workgroups at N = 4096 (SmolLM2-135M, r 8)', () => {
    for (const r of [4, 8])
      for (const [IN, OUT] of [
        [576, 192],
        [576, 576],
        [576, 1536],
        [1536, 576],
      ])
        expect(gradTile(4096, IN, OUT, r).chunks).toBeGreaterThanOrEqual(264);
    for (const [IN, OUT, r] of [
      [576, 1536, 8],
      [1536, 8960, 64],
      [8960, 1536, 16],
    ])
      for (const N of [1, 4097, 65536, 524288]) {
        const t = gradTile(N, IN, OUT, r);
        expect(t.chunks).toBeLessThanOrEqual(MAX_CHUNKS);
        expect(4 * t.chunks * r * (IN + OUT)).toBeLessThanOrEqual(PART_BUDGET);
        expect(t.KS * t.JQ).toBeLessThanOrEqual(128);
      }
    expect(gradTile(1, 5, 3, 1).chunks).toBe(1);
  });

  // segments: q, k, v (3), gate, up (2) or one; several blocks per chunk at N = 4100 (512 chunks at most)
  const SEG_CASES = [
    { N: 37, IN: 33, OUTS: [33, 7, 7], r: 5, p: 0.1 },
    { N: 4100, IN: 65, OUTS: [100, 33], r: 8, p: 0 },
    { N: 7, IN: 100, OUTS: [5], r: 3, p: 0.25 },
    { N: 257, IN: 5, OUTS: [1, 64, 3], r: 16, p: 0.5 },
  ];
  it.each(SEG_CASES)(
    'lora_grad_segments + the group flush: each linear as the twin and bit for bit as its own lora_grad: %o',
    async ({ N, IN, OUTS, r, p }) => {
      const ctx = await gpu();
      await ctx.sync();
      const live = ctx.alloc.liveBytes;
      const pad = (n: number) => Math.ceil(n / 64) * 64;
      const R = rng(N + IN + r);
      const xs = R.uniform(N * IN);
      const x = Tensor.from(ctx, xs, [N, IN]);
      const S = OUTS.length;
      // u's and B's as views of one buffer each (the forward's u group, the flat LoRA parameters)
      const lay = (sizes: number[]) => sizes.map((_, s) => sizes.slice(0, s).reduce((a, n) => a + pad(n), 0));
      const [uAt, bAt] = [lay(OUTS.map(() => N * r)), lay(OUTS.map((OUT) => OUT * r))];
      const [uAll, bAll] = [R.uniform(uAt[S - 1] + pad(N * r)), R.uniform(bAt[S - 1] + pad(OUTS[S - 1] * r))];
      const [tu, tb] = [Tensor.from(ctx, uAll, [uAll.length]), Tensor.from(ctx, bAll, [bAll.length])];
      const segs = OUTS.map((OUT, s) => ({
        OUT,
        dy: R.uniform(N * OUT),
        u: uAll.subarray(uAt[s], uAt[s] + N * r),
        B: bAll.subarray(bAt[s], bAt[s] + OUT * r),
        seed: 40 + s,
      }));
      const gsegs = segs.map((sg, s) => ({
        dy: Tensor.from(ctx, sg.dy, [N, sg.OUT]),
        u: Tensor.view(ctx, tu.base, 4 * uAt[s], [N, r]),
        B: Tensor.view(ctx, tb.base, 4 * bAt[s], [sg.OUT, r]),
        seed: sg.seed,
      }));
      // the flat layout: dA then dB per linear, each padded to 64 floats; the padding starts non-zero and must stay
      const slots = OUTS.flatMap((OUT) => [pad(r * IN), pad(OUT * r)]);
      const total = slots.reduce((a, b) => a + b, 0);
      const base = R.uniform(total);
      const views = (buf: Tensor) => {
        let at = 0;
        return OUTS.map((OUT) => {
          const dA = Tensor.view(ctx, buf.base, 4 * at, [r, IN]);
          at += pad(r * IN);
          const dB = Tensor.view(ctx, buf.base, 4 * at, [OUT, r]);
          at += pad(OUT * r);
          return { dA, dB };
        });
      };
      const scale = 0.7;
      const flats = [0, 1, 2].map(() => Tensor.from(ctx, base, [total]));
      const grads = flats.map(views);
      // twice as one group, and once as separate calls with the same tile, on one carry: each call's stage 2
      // carried by the next one's dispatch (the last flushed on its own)
      const bits = async (v: Tensor) => Array.from(new Uint32Array((await v.read()).buffer));
      const tile = rankTile(Math.min(...OUTS), r, 16);
      const runs = [0, 1].map((k) => {
        const group = GradGroup.of(grads[k], N, scale)!;
        const carry = new GradCarry(ctx);
        const G = lora_grad_segments(x, gsegs, group, carry, p, tile);
        carry.flush();
        return { carry, G, group };
      });
      const { SB, chunks } = runs[0].group;
      const o = { scale, accumulate: true, dropout: p };
      const carry = new GradCarry(ctx);
      const sep: number[][] = [];
      for (const [s, sg] of gsegs.entries()) {
        const G = lora_grad(sg.dy, x, sg.u, sg.B, grads[2][s], { ...o, seed: sg.seed }, carry, { ...tile, SB, chunks });
        sep.push(await bits(G)); // before the next call reuses its room
      }
      carry.flush();
      expect(await bits(flats[1])).toEqual(await bits(flats[0]));
      expect(await bits(flats[2])).toEqual(await bits(flats[0]));
      const d = { N, IN, r, CH: GRAD_ROWS * SB, scale, p };
      const bases = OUTS.map((_, s) => {
        const at = slots.slice(0, 2 * s).reduce((a, b) => a + b, 0);
        return {
          dA: base.subarray(at, at + r * IN),
          dB: base.subarray(at + slots[2 * s], at + slots[2 * s] + OUTS[s] * r),
        };
      });
      const want = lora_grad_segments_cpu(xs, segs, bases, d);
      const abs4 = segs.map((sg) => ({ ...sg, dy: abs(sg.dy), u: abs(sg.u), B: abs(sg.B) }));
      const absBase = bases.map((b) => ({ dA: abs(b.dA), dB: abs(b.dB) }));
      const mag = lora_grad_segments_cpu(abs(xs), abs4, absBase, d);
      const flat = await flats[0].read();
      let at = 0;
      for (let s = 0; s < S; s++) {
        expect(await bits(runs[1].G[s])).toEqual(await bits(runs[0].G[s]));
        expect(sep[s]).toEqual(await bits(runs[0].G[s]));
        expectSumBounded(await runs[0].G[s].read(), want[s].G, mag[s].G, OUTS[s], `G[${s}]`);
        expectSumBounded(flat.subarray(at, at + r * IN), want[s].dA, mag[s].dA, N + OUTS[s], `dA[${s}]`);
        expect(Array.from(flat.subarray(at + r * IN, at + slots[2 * s]))).toEqual(
          Array.from(base.subarray(at + r * IN, at + slots[2 * s])),
        );
        at += slots[2 * s];
        expectSumBounded(flat.subarray(at, at + OUTS[s] * r), want[s].dB, mag[s].dB, N, `dB[${s}]`);
        expect(Array.from(flat.subarray(at + OUTS[s] * r, at + slots[2 * s + 1]))).toEqual(
          Array.from(base.subarray(at + OUTS[s] * r, at + slots[2 * s + 1])),
        );
        at += slots[2 * s + 1];
      }
      if (S >= 2) expect(GradGroup.of([grads[0][1], grads[0][0]], N, 1)).toBeNull(); // not side by side
      for (const v of [x, tu, tb, ...flats, ...gsegs.map((q) => q.dy)]) v.free();
      for (const c of [carry, ...runs.map((q) => q.carry)]) c.free();
      await ctx.sync();
      expect(ctx.alloc.liveBytes).toBe(live);
    },
  );

  // The carry (GradCarry): a group's stage 2 carried by a lone linear's lora_grad of other sizes (other E, chunks and
  // tokens), whose own is carried by the next group's, and so on; against the same calls each flushed on its own
  // (bit for bit, G's too) and against the twins. A fresh carry's workspace holds one job, so the second call grows
  // it (the pending sum goes on its own first); from then on every sum is carried: on a used carry, one
  // lora_grad_sum (the last flush) for all the calls.
  const CARRY_CASES = [
    { N1: 37, IN1: 33, OUTS: [33, 7, 7], N2: 100, IN2: 65, OUT2: 17, r: 5, p: 0.1 },
    { N1: 4100, IN1: 20, OUTS: [9, 30], N2: 13, IN2: 7, OUT2: 100, r: 8, p: 0 },
    { N1: 9, IN1: 5, OUTS: [3], N2: 257, IN2: 100, OUT2: 33, r: 16, p: 0.25 },
  ];
  it.each(CARRY_CASES)(
    'a stage 2 carried by the next lora_grad: bit for bit the sums made on their own, one lora_grad_sum: %o',
    async ({ N1, IN1, OUTS, N2, IN2, OUT2, r, p }) => {
      const ctx = await gpu();
      await ctx.sync();
      const live = ctx.alloc.liveBytes;
      const pad = (n: number) => Math.ceil(n / 64) * 64;
      const R = rng(N1 + 7 * N2 + r);
      const S = OUTS.length;
      // the flat gradients: the group's linears, then the lone one, each dA and dB padded to 64 floats
      const sizes = [...OUTS.flatMap((OUT) => [r * IN1, OUT * r]), r * IN2, OUT2 * r];
      const at = sizes.map((_, i) => sizes.slice(0, i).reduce((a, n) => a + pad(n), 0));
      const total = at[at.length - 1] + pad(sizes[sizes.length - 1]);
      const base = R.uniform(total);
      // inputs: the group's x1 (N1, IN1), dy_s, u_s, B_s (u's and B's in one buffer each); the lone x2, dy2, u2, B2
      const x1 = R.uniform(N1 * IN1);
      const segs = OUTS.map((OUT, s) => ({
        OUT,
        dy: R.uniform(N1 * OUT),
        u: R.uniform(N1 * r),
        B: R.uniform(OUT * r),
        seed: 30 + s,
      }));
      const lone = { dy: R.uniform(N2 * OUT2), x: R.uniform(N2 * IN2), u: R.uniform(N2 * r), B: R.uniform(OUT2 * r) };
      const cat = (vs: Float32Array[]) => {
        const out = new Float32Array(vs.reduce((a, v) => a + pad(v.length), 0));
        vs.reduce((o, v) => (out.set(v, o), o + pad(v.length)), 0);
        return out;
      };
      const tx1 = Tensor.from(ctx, x1, [N1, IN1]);
      const [tu, tb] = [cat(segs.map((sg) => sg.u)), cat(segs.map((sg) => sg.B))].map((v) =>
        Tensor.from(ctx, v, [v.length]),
      );
      const gsegs = segs.map((sg, s) => ({
        dy: Tensor.from(ctx, sg.dy, [N1, sg.OUT]),
        u: Tensor.view(ctx, tu.base, 4 * pad(N1 * r) * s, [N1, r]),
        B: Tensor.view(ctx, tb.base, 4 * OUTS.slice(0, s).reduce((a, OUT) => a + pad(OUT * r), 0), [sg.OUT, r]),
        seed: sg.seed,
      }));
      const [tdy2, tx2, tu2, tB2] = [
        Tensor.from(ctx, lone.dy, [N2, OUT2]),
        Tensor.from(ctx, lone.x, [N2, IN2]),
        Tensor.from(ctx, lone.u, [N2, r]),
        Tensor.from(ctx, lone.B, [OUT2, r]),
      ];
      const scale = -0.9;
      const o2 = { scale, accumulate: true, dropout: p, seed: 77 };
      const bits = async (v: Tensor) => Array.from(new Uint32Array((await v.read()).buffer));
      // group, lone, group, lone (two micro-batches), then the last flush; `alone`: each call's stage 2 flushed
      // right after it
      const run = async (carry: GradCarry, alone: boolean) => {
        const flat = Tensor.from(ctx, base, [total]);
        const view = (i: number, shape: number[]) => Tensor.view(ctx, flat.base, 4 * at[i], shape);
        const members = OUTS.map((OUT, s) => ({ dA: view(2 * s, [r, IN1]), dB: view(2 * s + 1, [OUT, r]) }));
        const into = { dA: view(2 * S, [r, IN2]), dB: view(2 * S + 1, [OUT2, r]) };
        const Gs: number[][] = [];
        const rec = await ctx.record(async () => {
          for (const k of [0, 1, 2, 3]) {
            const G =
              k % 2
                ? [lora_grad(tdy2, tx2, tu2, tB2, into, o2, carry)]
                : lora_grad_segments(tx1, gsegs, GradGroup.of(members, N1, scale)!, carry, p);
            if (alone) carry.flush();
            for (const g of G) Gs.push(await bits(g)); // before the next call reuses its room
          }
          carry.flush();
          expect(carry.waiting).toBe(false);
        });
        const grads = await flat.read();
        flat.free();
        const count = (name: string) => rec.dispatches.filter((d) => d.name === name).length;
        return { grads, Gs, sums: count('lora_grad_sum'), stage1: count('lora_grad') };
      };
      const [carry, own] = [new GradCarry(ctx), new GradCarry(ctx)];
      const runs = [await run(carry, false), await run(carry, false), await run(own, true)];
      expect(runs.map((q) => [q.stage1, q.sums])).toEqual([
        [4, 2],
        [4, 1],
        [4, 4],
      ]);
      const asBits = (v: Float32Array) => Array.from(new Uint32Array(v.buffer));
      for (const q of runs.slice(1)) {
        expect(asBits(q.grads)).toEqual(asBits(runs[0].grads));
        expect(q.Gs).toEqual(runs[0].Gs);
      }
      // against the twins: the group and the lone linear twice each, from the flat's values
      const SB1 = Math.ceil(N1 / (GRAD_ROWS * MAX_CHUNKS)); // the partials' budget is far away at these sizes
      const SB2 = gradTile(N2, IN2, OUT2, r).SB;
      const d1 = { N: N1, IN: IN1, r, CH: GRAD_ROWS * SB1, scale, p };
      const d2 = { N: N2, IN: IN2, OUT: OUT2, r, CH: GRAD_ROWS * SB2, scale, p, seed: 77 };
      const sl = (i: number, v: ArrayLike<number>) => Float64Array.from({ length: sizes[i] }, (_, k) => v[at[i] + k]);
      const bases = OUTS.map((_, s) => ({ dA: sl(2 * s, base), dB: sl(2 * s + 1, base) }));
      const lbase = { dA: sl(2 * S, base), dB: sl(2 * S + 1, base) };
      const absSegs = segs.map((sg) => ({ ...sg, dy: abs(sg.dy), u: abs(sg.u), B: abs(sg.B) }));
      const absOf = (b: { dA: ArrayLike<number>; dB: ArrayLike<number> }) => ({ dA: abs(b.dA), dB: abs(b.dB) });
      const [a1, a2] = [
        { ...d1, scale: Math.abs(scale) },
        { ...d2, scale: Math.abs(scale) },
      ];
      const want = lora_grad_segments_cpu(x1, segs, lora_grad_segments_cpu(x1, segs, bases, d1), d1);
      const mag = lora_grad_segments_cpu(
        abs(x1),
        absSegs,
        lora_grad_segments_cpu(abs(x1), absSegs, bases.map(absOf), a1),
        a1,
      );
      const [ldy, lx, lu, lB] = [lone.dy, lone.x, lone.u, lone.B];
      const lwant = lora_grad_cpu(ldy, lx, lu, lB, lora_grad_cpu(ldy, lx, lu, lB, lbase, d2), d2);
      const [Ady, Ax, Au, AB] = [abs(ldy), abs(lx), abs(lu), abs(lB)];
      const lmag = lora_grad_cpu(Ady, Ax, Au, AB, lora_grad_cpu(Ady, Ax, Au, AB, absOf(lbase), a2), a2);
      const got = runs[0].grads;
      const f32 = (b: number[]) => new Float32Array(Uint32Array.from(b).buffer);
      for (let s = 0; s < S; s++) {
        expectSumBounded(sl(2 * s, got), want[s].dA, mag[s].dA, 2 * (N1 + OUTS[s]), `dA[${s}]`);
        expectSumBounded(sl(2 * s + 1, got), want[s].dB, mag[s].dB, 2 * N1, `dB[${s}]`);
        expectSumBounded(f32(runs[0].Gs[s]), want[s].G, mag[s].G, OUTS[s], `G[${s}]`);
      }
      expectSumBounded(sl(2 * S, got), lwant.dA, lmag.dA, 2 * (N2 + OUT2), 'lone dA');
      expectSumBounded(sl(2 * S + 1, got), lwant.dB, lmag.dB, 2 * N2, 'lone dB');
      expectSumBounded(f32(runs[0].Gs[S]), lwant.G, lmag.G, OUT2, 'lone G');
      // the padding stays as it was
      for (let i = 0; i < sizes.length; i++)
        for (let k = at[i] + sizes[i]; k < (at[i + 1] ?? total); k++) expect(got[k]).toBe(base[k]);
      for (const v of [tx1, tu, tb, ...gsegs.map((q) => q.dy), tdy2, tx2, tu2, tB2]) v.free();
      for (const c of [carry, own]) c.free();
      await ctx.sync();
      expect(ctx.alloc.liveBytes).toBe(live);
    },
  );

  it('dA and dB twins = finite differences of sum(dy ⊙ y) in float64 (with dropout)', () => {
    // y = s·(drop(x)·Aᵀ)·Bᵀ (the LoRA branch; W0 and bias add nothing to dA, dB), loss = Σ dy ⊙ y
    const [N, IN, OUT, r, s, p, seed] = [5, 6, 4, 3, 0.7, 0.25, 5]; // p exact in f32: lora.cpu.ts uses p as is, the kernel twins fround(p)
    const R = rng(3);
    const x = R.uniform(N * IN),
      dy = R.uniform(N * OUT),
      w0 = new Float64Array(OUT * IN);
    const A = Float64Array.from(R.uniform(r * IN)),
      B = Float64Array.from(R.uniform(OUT * r));
    const d = { N, IN, OUT, r, scale: s, p, seed };
    const loss = (AA: ArrayLike<number>, BB: ArrayLike<number>) =>
      lora_forward_cpu(x, w0, null, AA, BB, d).y.reduce((t, v, i) => t + v * dy[i], 0);
    const u = lora_rank_cpu(x, A, { N, K: IN, r, p, seed });
    expect(u.some((v, i) => v !== lora_rank_cpu(x, A, { N, K: IN, r })[i])).toBe(true); // the mask is on
    // several chunks (CH = 2), so the two-stage sum is what is checked
    const { dA, dB } = lora_grad_cpu(dy, x, u, B, null, { N, IN, OUT, r, CH: 2, scale: s, p, seed });
    // the loss is bilinear in A and in B, so central differences are exact for any step: a large one (1e-3)
    // keeps float64 cancellation small (~1e-12)
    const close = (got: Float64Array, want: Float64Array) =>
      got.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThan(1e-9));
    close(
      dA,
      finiteDiff((v) => loss(v, B), A, 1e-3),
    );
    close(
      dB,
      finiteDiff((v) => loss(A, v), B, 1e-3),
    );
  });

  it('the segments twin = finite differences of Σ_s sum(dy_s ⊙ y_s), each linear its own dropout stream', () => {
    const [N, IN, r, s, p] = [5, 6, 2, 0.7, 0.25];
    const OUTS = [4, 3];
    const R = rng(8);
    const x = R.uniform(N * IN);
    const lin = OUTS.map((OUT, i) => ({
      OUT,
      seed: 9 + i,
      dy: R.uniform(N * OUT),
      A: Float64Array.from(R.uniform(r * IN)),
      B: Float64Array.from(R.uniform(OUT * r)),
    }));
    const w0s = OUTS.map((OUT) => new Float64Array(OUT * IN));
    const loss = (As: ArrayLike<number>[], Bs: ArrayLike<number>[]) =>
      lin.reduce((t, l, i) => {
        const d = { N, IN, OUT: l.OUT, r, scale: s, p, seed: l.seed };
        return t + lora_forward_cpu(x, w0s[i], null, As[i], Bs[i], d).y.reduce((a, v, j) => a + v * l.dy[j], 0);
      }, 0);
    const segs = lin.map((l) => ({ ...l, u: lora_rank_cpu(x, l.A, { N, K: IN, r, p, seed: l.seed }) }));
    const got = lora_grad_segments_cpu(x, segs, null, { N, IN, r, CH: 2, scale: s, p });
    const As = lin.map((l) => l.A),
      Bs = lin.map((l) => l.B);
    const close = (a: Float64Array, b: Float64Array) =>
      a.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThan(1e-9));
    lin.forEach((l, i) => {
      const swap = (arr: ArrayLike<number>[], v: ArrayLike<number>) => arr.map((w, k) => (k === i ? v : w));
      close(
        got[i].dA,
        finiteDiff((v) => loss(swap(As, v), Bs), l.A, 1e-3),
      );
      close(
        got[i].dB,
        finiteDiff((v) => loss(As, swap(Bs, v)), l.B, 1e-3),
      );
    });
    expect(
      got[0].dA.some(
        (v, j) => v !== lora_grad_segments_cpu(x, segs, null, { N, IN, r, CH: 2, scale: s, p: 0 })[0].dA[j],
      ),
    ).toBe(true); // the mask is on
  });

  it('lora_backward is bit-identical to itself; gradInto, dxInto and a residual add exactly what it returns otherwise', async () => {
    const ctx = await gpu();
    await ctx.sync();
    const live = ctx.alloc.liveBytes;
    const [N, IN, OUT, r] = [1000, 100, 33, 16]; // 125 token chunks
    const R = rng(17);
    const x = Tensor.from(ctx, R.uniform(N * IN), [N, IN]),
      dy = Tensor.from(ctx, R.uniform(N * OUT), [N, OUT]),
      w0 = Tensor.from(ctx, R.uniform(OUT * IN), [OUT, IN]);
    const lora: LoraParams = {
      A: Tensor.from(ctx, R.uniform(r * IN), [r, IN]),
      B: Tensor.from(ctx, R.uniform(OUT * r), [OUT, r]),
      scale: 1.5,
      dropout: 0.2,
      seed: 11,
    };
    const bits = async (t: Tensor) => new Uint32Array((await t.read()).buffer);
    const runs = [];
    for (let i = 0; i < 2; i++) {
      const { y, u } = lora_forward(x, w0, null, lora);
      const g = lora_backward(dy, x, u, w0, lora, { needDx: true });
      runs.push({
        y: await bits(y),
        u: await bits(u!),
        dA: await bits(g.dA!),
        dB: await bits(g.dB!),
        dx: await bits(g.dx!),
      });
      // the same pass adding into persistent gradients (zeros + dA must be dA, bit for bit)
      const into = { dA: Tensor.zeros(ctx, [r, IN]), dB: Tensor.zeros(ctx, [OUT, r]) };
      const g2 = lora_backward(dy, x, u, w0, lora, { needDx: false, gradInto: into });
      expect(g2.dA).toBeNull();
      expect(g2.dB).toBeNull();
      expect(await bits(into.dA)).toEqual(runs[i].dA);
      expect(await bits(into.dB)).toEqual(runs[i].dB);
      // dxInto: dx added into an existing gradient by the matmul's accumulate epilogue, and a residual added to y:
      // base + dx (res + y) up to a few roundings of the terms (a driver may fuse the last add into an fma, so not
      // bit for bit). mag: the same sums on absolute values (the mask ≤ 1 / (1 - p)); a missing add is O(1).
      const base = R.uniform(N * IN);
      const dxInto = Tensor.from(ctx, base, [N, IN]);
      const g3 = lora_backward(dy, x, u, w0, lora, { needDx: true, dxInto });
      expect(g3.dx).toBeNull();
      const dx = await g.dx!.read();
      const d = { N, IN, OUT, r, scale: lora.scale };
      const [xa, dya, w0a, Aa, Ba] = await Promise.all(
        [x, dy, w0, lora.A, lora.B].map(async (t) => abs(await t.read())),
      );
      const magDx = lora_backward_cpu(dya, xa, w0a, Aa, Ba, d).dx.map((v, j) => Math.abs(base[j]) + v / 0.8);
      expectSumBounded(
        await dxInto.read(),
        Float64Array.from(dx, (v, j) => base[j] + v),
        magDx,
        4,
        'dxInto',
      );
      const res = Tensor.from(ctx, R.uniform(N * OUT), [N, OUT]);
      const f2 = lora_forward(x, w0, null, lora, { residual: res });
      const [yv, rv] = [await y.read(), await res.read()];
      const magY = lora_forward_cpu(xa, w0a, null, Aa, Ba, d).y.map((v, j) => Math.abs(rv[j]) + v / 0.8);
      expectSumBounded(
        await f2.y.read(),
        Float64Array.from(yv, (v, j) => rv[j] + v),
        magY,
        4,
        'y + residual',
      );
      for (const t of [y, u, g.dA, g.dB, g.dx, into.dA, into.dB, dxInto, g3.dA, g3.dB, res, f2.y, f2.u]) t?.free();
    }
    for (const k of ['y', 'u', 'dA', 'dB', 'dx'] as const) expect(runs[1][k]).toEqual(runs[0][k]);
    for (const t of [x, dy, w0, lora.A, lora.B]) t.free();
    await ctx.sync();
    expect(ctx.alloc.liveBytes).toBe(live);
  });
});
