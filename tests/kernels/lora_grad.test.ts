// shaders/lora_grad.wgsl + shaders/lora_grad_sum.wgsl (G = dy·B, and dA, dB split over chunks of tokens, in two
// dispatches) against the float64 twin (src/kernels/lora_grad.cpu.ts) at awkward sizes, with and without dropout,
// accumulation and several blocks per chunk; the twins of dA and dB against finite differences; and bit-for-bit
// determinism of lora_backward across two identical runs.
// Bounds per element (u = 2⁻²⁴), each a chain of f32 roundings (Higham's γ_K) on the same sums of |terms|:
// G sums OUT terms (KS partials of strided terms, then KS in order): (OUT + 4)·u·Σ|dy·B|; dB sums N terms (8 per
// block, blocks and chunks in order): (N + 4)·u·(|base| + |scale|·Σ_n |dy·u|); dA the same over N terms of
// G·drop(x), with G itself off by (OUT + 4)·u relative: (N + OUT + 4)·u·(…). A wrong, missing or unmasked term is O(1).
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/gpu/tensor';
import { lora_backward, lora_forward, type LoraParams } from '../../src/kernels/lora';
import {
  GRAD_ROWS,
  GradGroup,
  gradTile,
  lora_grad,
  MAX_CHUNKS,
  PART_BUDGET,
  type GradTile,
} from '../../src/kernels/lora_grad';
import { lora_grad_cpu, type GradCpu } from '../../src/kernels/lora_grad.cpu';
import { lora_rank_cpu } from '../../src/kernels/lora_rank.cpu';
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
    const G = lora_grad(
      tdy,
      tx,
      tu,
      tB,
      out,
      { scale: d.scale, accumulate: c.accumulate, dropout: c.p, seed: d.seed },
      t,
    );
    const want = lora_grad_cpu(dy, x, u, B, c.accumulate ? base : null, d);
    const absBase = c.accumulate ? { dA: abs(base.dA), dB: abs(base.dB) } : null;
    const mag = lora_grad_cpu(abs(dy), abs(x), abs(u), abs(B), absBase, { ...d, scale: Math.abs(d.scale) });
    expectSumBounded(await G.read(), want.G, mag.G, OUT, 'G');
    expectSumBounded(await out.dB.read(), want.dB, mag.dB, N, 'dB');
    expectSumBounded(await out.dA.read(), want.dA, mag.dA, N + OUT, 'dA');
    for (const v of [tdy, tx, tu, tB, out.dA, out.dB, G]) v.free();
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

  it('a GradGroup (q, k, v side by side in one gradient buffer) adds what three separate calls add', async () => {
    const ctx = await gpu();
    await ctx.sync();
    const live = ctx.alloc.liveBytes;
    const [N, IN, r] = [37, 33, 5];
    const OUTS = [33, 7, 7];
    const pad = (n: number) => Math.ceil(n / 64) * 64;
    const R = rng(5);
    const x = Tensor.from(ctx, R.uniform(N * IN), [N, IN]);
    const lin = OUTS.map((OUT) => ({
      OUT,
      dy: Tensor.from(ctx, R.uniform(N * OUT), [N, OUT]),
      u: Tensor.from(ctx, R.uniform(N * r), [N, r]),
      B: Tensor.from(ctx, R.uniform(OUT * r), [OUT, r]),
    }));
    // the flat layout: dA then dB per linear, each padded to 64 floats; the padding starts non-zero and must stay
    const slots = OUTS.flatMap((OUT) => [pad(r * IN), pad(OUT * r)]);
    const total = slots.reduce((a, b) => a + b, 0);
    const base = R.uniform(total);
    const flat = Tensor.from(ctx, base, [total]);
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
    const grads = views(flat);
    const o = { scale: 0.7, accumulate: true, dropout: 0.1, seed: 3 };
    const group = GradGroup.of(grads, N, o.scale)!;
    expect(group).not.toBeNull();
    const Gs = lin.map((l, i) => lora_grad(l.dy, x, l.u, l.B, grads[i], o, undefined, group));
    group.flush();
    // the same three without the group, into a copy of the starting values
    const flat2 = Tensor.from(ctx, base, [total]);
    const grads2 = views(flat2);
    const Gs2 = lin.map((l, i) => lora_grad(l.dy, x, l.u, l.B, grads2[i], o));
    expect(Array.from(await flat.read())).toEqual(Array.from(await flat2.read()));
    for (let i = 0; i < 3; i++) expect(Array.from(await Gs[i].read())).toEqual(Array.from(await Gs2[i].read()));
    expect(GradGroup.of([grads[0], grads[2]], N, 1)).toBeNull(); // not side by side
    for (const t of [x, flat, flat2, ...Gs, ...Gs2, ...lin.flatMap((l) => [l.dy, l.u, l.B])]) t.free();
    await ctx.sync();
    expect(ctx.alloc.liveBytes).toBe(live);
  });

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
