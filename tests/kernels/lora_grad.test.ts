// shaders/lora_grad.wgsl + shaders/lora_grad_sum.wgsl (dA, dB split over chunks of tokens) against the float64
// twin (src/kernels/lora_grad.cpu.ts) at awkward sizes, both layouts, with and without dropout and
// accumulation; the twins of dA and dB against finite differences; and bit-for-bit determinism of
// lora_backward across two identical runs.
// Bound per element: |got − want| ≤ (N + 4)·u·(|base| + |scale|·Σ_n |y[n, p]·z[n, j]|) (u = 2⁻²⁴): each
// chunk sums ≤ CH terms and stage 2 sums N / CH chunk partials, ≤ N chained f32 roundings (Higham's γ_N), plus
// the scale, the mask multiplier and the accumulation. A wrong, missing or unmasked term is O(1).
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/gpu/tensor';
import { lora_backward, lora_forward, type LoraParams } from '../../src/kernels/lora';
import { gradTile, lora_grad_accumulate } from '../../src/kernels/lora_grad';
import { lora_grad_cpu, type GradCpu } from '../../src/kernels/lora_grad.cpu';
import { lora_rank_cpu } from '../../src/kernels/lora_rank.cpu';
import { lora_forward_cpu } from '../../src/kernels/lora.cpu';
import { expectWithin, finiteDiff, gpu, rng } from '../helpers/gpu';

const U32 = 2 ** -24;
const abs = (x: ArrayLike<number>) => Float64Array.from(x, Math.abs);

interface Case {
  N: number;
  P: number;
  r: number;
  layout: 'pj' | 'jp';
  p: number;
  accumulate: boolean;
}
const CASES: Case[] = [
  { N: 1, P: 5, r: 1, layout: 'pj', p: 0, accumulate: false },
  { N: 7, P: 100, r: 3, layout: 'jp', p: 0.25, accumulate: true },
  { N: 33, P: 577, r: 8, layout: 'pj', p: 0, accumulate: true },
  { N: 257, P: 100, r: 16, layout: 'jp', p: 0.1, accumulate: false },
  { N: 300, P: 5, r: 64, layout: 'pj', p: 0.5, accumulate: true },
  { N: 257, P: 577, r: 64, layout: 'jp', p: 0.1, accumulate: true },
  { N: 4100, P: 577, r: 8, layout: 'jp', p: 0.1, accumulate: true },
  { N: 4100, P: 100, r: 3, layout: 'pj', p: 0, accumulate: false },
];

describe('lora_grad (shaders/lora_grad.wgsl, shaders/lora_grad_sum.wgsl)', () => {
  it.each(CASES)('out [+]= scale·drop(y)ᵀ·z matches the twin: %o', async (c) => {
    const ctx = await gpu();
    await ctx.sync();
    const live = ctx.alloc.liveBytes;
    const R = rng(c.N * 11 + c.P * 5 + c.r);
    const y = R.uniform(c.N * c.P),
      z = R.uniform(c.N * c.r),
      base = R.uniform(c.P * c.r);
    const shape = c.layout === 'pj' ? [c.P, c.r] : [c.r, c.P];
    const { CH } = gradTile(c.N, c.P, c.r);
    const d: GradCpu = { N: c.N, P: c.P, r: c.r, CH, layout: c.layout, scale: -1.3, p: c.p, seed: 99 + c.r };
    const ty = Tensor.from(ctx, y, [c.N, c.P]),
      tz = Tensor.from(ctx, z, [c.N, c.r]),
      out = Tensor.from(ctx, base, shape); // without accumulate its contents must be overwritten
    lora_grad_accumulate(ty, tz, out, {
      scale: d.scale,
      layout: c.layout,
      accumulate: c.accumulate,
      dropout: c.p,
      seed: d.seed,
    });
    const want = lora_grad_cpu(y, z, c.accumulate ? base : null, d);
    const mag = lora_grad_cpu(abs(y), abs(z), c.accumulate ? abs(base) : null, { ...d, scale: Math.abs(d.scale) });
    const bound = Float64Array.from(mag, (m) => (c.N + 4) * U32 * m + 1e-30);
    expectWithin(await out.read(), want, bound, 'out');
    for (const t of [ty, tz, out]) t.free();
    await ctx.sync();
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('the grid is wide and the loops short at N = 4096: ≥ 264 workgroups, ≤ 256 token rows per thread', () => {
    for (const r of [8, 16, 64])
      for (const P of [192, 576, 1536]) {
        const t = gradTile(4096, P, r);
        expect(Math.ceil(P / (4 * t.WP)) * t.chunks).toBeGreaterThanOrEqual(264);
        expect(t.CH).toBeLessThanOrEqual(256);
        expect(t.WP * t.JW).toBeLessThanOrEqual(256);
      }
    expect(gradTile(1, 5, 1).chunks).toBe(1);
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
    const G = lora_rank_cpu(dy, B, { N, K: OUT, r, wKR: true });
    expect(u.some((v, i) => v !== lora_rank_cpu(x, A, { N, K: IN, r })[i])).toBe(true); // the mask is on
    const CH = 2; // several chunks, so the two-stage sum is what is checked
    const dB = lora_grad_cpu(dy, u, null, { N, P: OUT, r, CH, layout: 'pj', scale: s });
    const dA = lora_grad_cpu(x, G, null, { N, P: IN, r, CH, layout: 'jp', scale: s, p, seed });
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

  it('lora_backward is bit-identical to itself, and gradInto adds exactly what it returns otherwise', async () => {
    const ctx = await gpu();
    await ctx.sync();
    const live = ctx.alloc.liveBytes;
    const [N, IN, OUT, r] = [1000, 100, 33, 16]; // 8 token chunks
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
      for (const t of [y, u, g.dA, g.dB, g.dx, into.dA, into.dB]) t?.free();
    }
    for (const k of ['y', 'u', 'dA', 'dB', 'dx'] as const) expect(runs[1][k]).toEqual(runs[0][k]);
    for (const t of [x, dy, w0, lora.A, lora.B]) t.free();
    await ctx.sync();
    expect(ctx.alloc.liveBytes).toBe(live);
  });
});
