// The whole-model optimizer step over flat buffers (src/kernels/optim.ts): shaders/grad_norm_sumsq.wgsl (stage 1),
// shaders/optim_finalize.wgsl (norm, clip, guard) and shaders/optim_adamw.wgsl (AdamW + zeroed gradients)
// against the float64 twin (src/kernels/optim.cpu.ts), on awkward sizes, in one chunk and in several.
//
// Error bound (u = 2^-24; WGSL sqrt 4.5 ULP = 9u, division 2.5 ULP = 5u). Norm: every term of Σg² is
// non-negative, so relative errors add: an invocation of stage 1 squares and sums m = ceil(n_chunk / (groups·256))
// values ((m + 1)u), its workgroup tree adds 8 levels (8u); the finalize invocation sums ceil(chunks·groups / 256)
// partials (≤ chunks·u) and another 8-level tree (8u). So
//   δsumsq/sumsq ≤ (m + 17 + chunks)·u,  δnorm/norm ≤ ½·δsumsq/sumsq + 9u,  δscale/scale ≤ δnorm/norm + 6u.
// AdamW: the twin is run with the GPU's own scale (checked on its own above), so what remains is the update's
// arithmetic, per element, one step from given m, v (WGSL: division 2.5 ULP, sqrt 4.5 ULP as 1/inverseSqrt, an ULP
// ≤ 2u relative; the kernel's uniforms 1 - lr·wd, 1 - β1, lr/bc1, ... are rounded to f32, u each):
//   Δg ≤ u·|g| (the product with the scale)
//   Δm ≤ (1-β1)·(Δg + 3u·|g - m|) + u·|m'|        (g - m, · (1-β1), + m, and 1-β1's rounding)
//   Δv ≤ (1-β2)·(2|g|·Δg + 3u·g²) + 2u·v'          (all terms positive)
//   denom = sqrt(v')/sqrt(bc2) + eps:  Δdenom ≤ ½·Δv/sqrt(v'·bc2) + 16u·denom   (sqrt 9u, division 5u, add, rounding)
//   Δp ≤ 2u·|p·decay| + step·(Δm + |m'|·Δdenom/denom + 8u·|m'|)/denom + u·|p'|,  step = lr/bc1.
// The tests allow twice these bounds.
import { describe, expect, it } from 'vitest';
import type { GpuBuffer } from '../../src/gpu/allocator';
import type { GpuContext } from '../../src/gpu/context';
import { flatChunks, optim_adamw, optim_norm_clip, PART_STRIDE, STATS } from '../../src/kernels/optim';
import { optim_adamw_cpu, optim_norm_clip_cpu } from '../../src/kernels/optim.cpu';
import { sumsqGroups } from '../../src/kernels/grad_norm';
import { expectWithin, gpu, rng } from '../helpers/gpu';

const u = 2 ** -24;
const HP = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3 };

interface Bufs {
  params: GpuBuffer;
  grads: GpuBuffer;
  m: GpuBuffer;
  v: GpuBuffer;
  stats: GpuBuffer;
  partials: GpuBuffer;
}

function upload(
  ctx: GpuContext,
  h: { p: Float32Array; g: Float32Array; m: Float32Array; v: Float32Array },
  chunks: number,
) {
  const b: Bufs = {
    params: ctx.upload(h.p, 'params'),
    grads: ctx.upload(h.g, 'grads'),
    m: ctx.upload(h.m, 'm'),
    v: ctx.upload(h.v, 'v'),
    stats: ctx.buffer(STATS.count * 4, 'stats'),
    partials: ctx.buffer(chunks * PART_STRIDE * 4, 'partials'),
  };
  return b;
}

function setStats(ctx: GpuContext, b: Bufs, loss: number, ok: boolean) {
  const s = new Float32Array(STATS.count);
  s[STATS.loss] = loss;
  s[STATS.bad] = ok ? 0 : 1;
  ctx.write(b.stats, s);
}

const freeAll = (ctx: GpuContext, b: Bufs) => Object.values(b).forEach((x) => ctx.free(x));

/** Random state: params, moments (v > 0), and gradients of mixed magnitudes with zeros and tiny values. */
function host(n: number, seed: number, gstd: number) {
  const r = rng(seed);
  const g = r.normal(n, gstd);
  if (n > 4) [g[1], g[2], g[3]] = [0, 1e-7 * gstd, -1e-9 * gstd];
  const v = r.uniform(n, 0, 1e-2 * gstd * gstd);
  return { p: r.normal(n, 0.5), g, m: r.normal(n, 0.1 * gstd), v };
}

async function run(n: number, maxNorm: number, maxBinding: number | undefined, seed: number, gstd: number) {
  const ctx = await gpu();
  const live = ctx.alloc.liveBytes;
  const h = host(n, seed, gstd);
  const chunks = flatChunks(n, maxBinding ?? ctx.limits.maxStorageBufferBindingSize);
  const b = upload(ctx, h, chunks.length);
  setStats(ctx, b, 123.5, true);
  const before = ctx.dispatchCount;
  optim_norm_clip(ctx, b.grads, n, b.partials, b.stats, maxNorm, maxBinding);
  optim_adamw(ctx, b, n, HP, maxBinding);
  expect(ctx.dispatchCount - before).toBe(2 * chunks.length + 1); // 3 for a model that fits one binding

  // Norm, scale, guard.
  const want = optim_norm_clip_cpu(h.g, 123.5, maxNorm, true);
  const st = await ctx.readF32(b.stats, STATS.count);
  const m = Math.ceil(chunks[0].n / (sumsqGroups(chunks[0].n) * 256));
  const dSum = (m + 17 + chunks.length) * u,
    dNorm = dSum / 2 + 9 * u,
    dScale = dNorm + 6 * u;
  expect(st[STATS.loss]).toBe(123.5); // read, never written
  expect(st[STATS.bad]).toBe(0);
  expect(Math.abs(st[STATS.sumsq] - want.norm ** 2)).toBeLessThanOrEqual(2 * dSum * want.norm ** 2);
  expect(Math.abs(st[STATS.norm] - want.norm)).toBeLessThanOrEqual(2 * dNorm * want.norm);
  expect(Math.abs(st[STATS.scale] - want.scale)).toBeLessThanOrEqual(2 * dScale * want.scale);

  // AdamW with the GPU's scale; gradients zeroed.
  const scale = st[STATS.scale];
  const next = optim_adamw_cpu(h.p, h.g, h.m, h.v, { ...want, scale }, HP);
  const bc2 = 1 - HP.beta2 ** HP.step,
    stepSize = HP.lr / (1 - HP.beta1 ** HP.step),
    decay = 1 - HP.lr * HP.weightDecay;
  const dp = new Float64Array(n),
    dm = new Float64Array(n),
    dv = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = h.g[i] * scale,
      dg = u * Math.abs(g);
    const mi = next.m[i],
      vi = next.v[i];
    dm[i] = (1 - HP.beta1) * (dg + 3 * u * Math.abs(g - h.m[i])) + u * Math.abs(mi);
    dv[i] = (1 - HP.beta2) * (2 * Math.abs(g) * dg + 3 * u * g * g) + 2 * u * vi;
    const denom = Math.sqrt(vi / bc2) + HP.eps;
    const ddenom = (vi > 0 ? (0.5 * dv[i]) / Math.sqrt(vi * bc2) : Math.sqrt(dv[i] / bc2)) + 16 * u * denom;
    dp[i] =
      2 * u * Math.abs(h.p[i] * decay) +
      (stepSize * (dm[i] + (Math.abs(mi) * ddenom) / denom + 8 * u * Math.abs(mi))) / denom +
      u * Math.abs(next.param[i]);
  }
  const twice = (d: Float64Array) => d.map((x) => 2 * x);
  expectWithin(await ctx.readF32(b.m, n), next.m, twice(dm), 'm');
  expectWithin(await ctx.readF32(b.v, n), next.v, twice(dv), 'v');
  expectWithin(await ctx.readF32(b.params, n), next.param, twice(dp), 'param');
  expect((await ctx.readF32(b.grads, n)).every((x) => x === 0)).toBe(true);
  // The update moved the parameters well beyond the bound, so the comparison means something.
  let moved = 0;
  for (let i = 0; i < n; i++) moved = Math.max(moved, Math.abs(next.param[i] - h.p[i]) / (2 * dp[i]));
  expect(moved).toBeGreaterThan(100);
  freeAll(ctx, b);
  expect(ctx.alloc.liveBytes).toBe(live);
}

describe('optim (flat norm, clip, AdamW)', () => {
  it.each([1, 7, 33, 100, 257, 4097, 70001, 1_000_003])('one chunk, clipping active, n = %i', async (n) => {
    await run(n, 0.5, undefined, n, 3);
  });
  it.each([33, 70001])('one chunk, no clipping (maxNorm Infinity: scale exactly 1), n = %i', async (n) => {
    await run(n, Infinity, undefined, n + 1, 1e-3);
  });
  it.each([
    [100_000, 64 * 1024],
    [1_000_003, 1024 * 1024],
  ])('several chunks: n = %i over %i-byte bindings', async (n, bytes) => {
    expect(flatChunks(n, bytes).length).toBeGreaterThan(1);
    await run(n, 1, bytes, n + 2, 2);
  });

  it('step 1 from zero moments: param·(1 - lr·wd) - lr·g/(|g| + eps) (torch.optim.AdamW by hand)', async () => {
    const ctx = await gpu();
    const p = [1, -2, 0.5, 3],
      g = [0.5, -4, 1e-8, 0];
    const f = (x: number[]) => new Float32Array(x);
    const b = upload(ctx, { p: f(p), g: f(g), m: f([0, 0, 0, 0]), v: f([0, 0, 0, 0]) }, 1);
    setStats(ctx, b, 1, true);
    optim_norm_clip(ctx, b.grads, 4, b.partials, b.stats, Infinity); // scale exactly 1
    optim_adamw(ctx, b, 4, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5, step: 1 });
    const got = await ctx.readF32(b.params, 4);
    const byHand = (i: number) => p[i] * (1 - 0.05) - (0.1 * g[i]) / (Math.abs(g[i]) + 1e-8);
    for (let i = 0; i < 4; i++) expect(got[i]).toBeCloseTo(byHand(i), 6);
    expect(got[0]).toBeCloseTo(0.85, 6); // 1·0.95 - 0.1
    expect(got[2]).toBeCloseTo(0.475 - 0.05, 6); // |g| = eps: half a step
    const m = await ctx.readF32(b.m, 4),
      v = await ctx.readF32(b.v, 4);
    for (let i = 0; i < 4; i++) {
      expect(m[i]).toBeCloseTo(0.1 * g[i], 7); // (1 - β1)·g
      expect(v[i]).toBeCloseTo(0.001 * g[i] * g[i], 7); // (1 - β2)·g²
    }
    freeAll(ctx, b);
  });

  it('clip factor: 1 below maxNorm and with maxNorm = Infinity, maxNorm/(norm + 1e-6) above, 0 for maxNorm 0', async () => {
    const ctx = await gpu();
    const z = new Float32Array(2);
    const cases: [number, number][] = [
      [Infinity, 1],
      [100, 1],
      [5.5, 1],
      [2, 2 / (5 + 1e-6)],
      [0, 0],
    ];
    for (const [maxNorm, want] of cases) {
      const b = upload(ctx, { p: z, g: new Float32Array([3, 4]), m: z, v: z }, 1); // norm 5
      setStats(ctx, b, 1, true);
      optim_norm_clip(ctx, b.grads, 2, b.partials, b.stats, maxNorm);
      const st = await ctx.readF32(b.stats, STATS.count);
      expect(st[STATS.norm]).toBe(5);
      if (want === 1 || want === 0) expect(st[STATS.scale], `maxNorm ${maxNorm}`).toBe(want);
      else expect(Math.abs(st[STATS.scale] - want)).toBeLessThanOrEqual(2 * 15 * u * want);
      freeAll(ctx, b);
    }
    const b = upload(ctx, { p: z, g: z, m: z, v: z }, 1);
    expect(() => optim_norm_clip(ctx, b.grads, 2, b.partials, b.stats, -1)).toThrow(/maxNorm must be >= 0/);
    expect(() => optim_norm_clip(ctx, b.grads, 2, b.partials, b.stats, NaN)).toThrow(/maxNorm must be >= 0/);
    // A zero gradient: norm 0 and scale 1.
    setStats(ctx, b, 1, true);
    optim_norm_clip(ctx, b.grads, 2, b.partials, b.stats, 1);
    const st = await ctx.readF32(b.stats, STATS.count);
    expect([st[STATS.norm], st[STATS.scale]]).toEqual([0, 1]);
    freeAll(ctx, b);
  });

  it('rejects a 0-based step and aliased buffers', async () => {
    const ctx = await gpu();
    const z = new Float32Array(4);
    const b = upload(ctx, { p: z, g: z, m: z, v: z }, 1);
    expect(() => optim_adamw(ctx, b, 4, { ...HP, step: 0 })).toThrow(/1-based/);
    expect(() => optim_adamw(ctx, { ...b, m: b.v }, 4, HP)).toThrow(/different/);
    expect(() => optim_adamw(ctx, b, 5, HP)).toThrow(/fewer than 5 floats/);
    freeAll(ctx, b);
  });

  it('non-finite gradient, or loss, or an earlier bad step: params and moments stay bit-identical', async () => {
    const ctx = await gpu();
    const n = 1000;
    const cases: { name: string; nanAt: number | null; loss: number; ok: boolean }[] = [
      { name: 'NaN gradient', nanAt: 517, loss: 1, ok: true },
      { name: 'Inf gradient', nanAt: -1, loss: 1, ok: true },
      { name: 'NaN loss', nanAt: null, loss: NaN, ok: true },
      { name: 'Inf loss', nanAt: null, loss: Infinity, ok: true },
      { name: 'guard already down', nanAt: null, loss: 1, ok: false },
    ];
    for (const c of cases) {
      const h = host(n, 5, 1);
      if (c.nanAt !== null) h.g[c.nanAt < 0 ? n - 1 : c.nanAt] = c.nanAt < 0 ? Infinity : NaN;
      const b = upload(ctx, h, 1);
      setStats(ctx, b, c.loss, c.ok);
      optim_norm_clip(ctx, b.grads, n, b.partials, b.stats, 1);
      optim_adamw(ctx, b, n, HP);
      expect(await ctx.readF32(b.params, n), c.name).toEqual(h.p);
      expect(await ctx.readF32(b.m, n), c.name).toEqual(h.m);
      expect(await ctx.readF32(b.v, n), c.name).toEqual(h.v);
      expect(
        (await ctx.readF32(b.grads, n)).every((x) => x === 0),
        c.name,
      ).toBe(true);
      const st = await ctx.readF32(b.stats, STATS.count);
      expect(st[STATS.bad], c.name).toBe(1);
      // Sticky: a finite step after it changes nothing either.
      const g2 = rng(9).normal(n);
      ctx.write(b.grads, g2);
      ctx.clear(b.stats, 0, 4);
      optim_norm_clip(ctx, b.grads, n, b.partials, b.stats, 1);
      optim_adamw(ctx, b, n, HP);
      expect(await ctx.readF32(b.params, n), `${c.name}, next step`).toEqual(h.p);
      expect((await ctx.readF32(b.stats, STATS.count))[STATS.bad]).toBe(1);
      freeAll(ctx, b);
    }
  });
});
