// shaders/grad_norm_sumsq.wgsl and shaders/grad_norm_clip.wgsl against the float64 twin.
//
// Error bound (u = 2^-24; WGSL sqrt 4.5 ULP = 9u, division 2.5 ULP = 5u). Every term of Σg² is non-negative, so
// relative errors add: per tensor, an invocation squares and sums m = ceil(n / (groups·256)) values ((m + 1)u),
// the workgroup tree adds 8 levels (8u), stage 2 sums ≤ 256 partials, one per invocation, with another 8-level
// tree (8u), and the add into acc is u; k tensors accumulated one after another add ≤ k·u more. So
//   δacc/acc ≤ (m_max + 18 + k)·u,  δnorm/norm ≤ ½·δacc/acc + 9u,  δscale/scale ≤ δnorm/norm + 6u (when < 1).
// The tests allow twice these bounds.
import { describe, expect, it } from 'vitest';
import { clip_scale, sumsq_accumulate, sumsqGroups } from '../../src/kernels/grad_norm';
import { grad_norm_cpu } from '../../src/kernels/grad_norm.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { gpu, rng } from '../helpers/gpu';

const u = 2 ** -24;

/** Sizes around every boundary of the kernel: one workgroup (≤ 4096 values), two stages, the 256-group cap. */
const SIZES = [1, 7, 33, 100, 257, 4095, 4096, 4097, 70000, 70001, 1_000_003];

function relBound(sizes: number[]) {
  const m = Math.max(...sizes.map((n) => Math.ceil(n / (sumsqGroups(n) * 256))));
  const acc = (m + 18 + sizes.length) * u;
  return { acc, norm: acc / 2 + 9 * u, scale: acc / 2 + 15 * u };
}

describe('grad_norm', () => {
  it('Σg² over many awkward-size tensors, norm and clip factor match the twin', async () => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const r = rng(11);
    const grads = SIZES.map((n, i) => r.normal(n, 10 ** ((i % 5) - 2))); // mixed magnitudes 1e-2 .. 1e2
    const ts = grads.map((g) => Tensor.from(ctx, g, [g.length]));
    const acc = Tensor.zeros(ctx, [1]);
    for (const t of ts) sumsq_accumulate(t, acc);
    const want = grad_norm_cpu(grads, 1.0);
    const { scale, norm } = clip_scale(acc, 1.0);
    const b = relBound(SIZES);
    const [gotAcc] = await acc.read(),
      [gotNorm] = await norm.read(),
      [gotScale] = await scale.read();
    expect(Math.abs(gotAcc - want.sumsq)).toBeLessThanOrEqual(2 * b.acc * want.sumsq);
    expect(Math.abs(gotNorm - want.norm)).toBeLessThanOrEqual(2 * b.norm * want.norm);
    expect(want.scale).toBeLessThan(0.01); // clipping is active here
    expect(Math.abs(gotScale - want.scale)).toBeLessThanOrEqual(2 * b.scale * want.scale);
    [...ts, acc, scale, norm].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it.each(SIZES)('one tensor of n = %i on its own', async (n) => {
    const ctx = await gpu();
    const g = rng(n).uniform(n, -3, 3);
    const t = Tensor.from(ctx, g, [n]);
    const acc = Tensor.from(ctx, [0.5], [1]); // accumulates onto what is there
    sumsq_accumulate(t, acc);
    const want = grad_norm_cpu([g], Infinity).sumsq + 0.5;
    const [got] = await acc.read();
    expect(Math.abs(got - want)).toBeLessThanOrEqual(2 * relBound([n, n]).acc * want);
    [t, acc].forEach((x) => x.free());
  });

  it('clip factor: 1 below maxNorm and with maxNorm = Infinity, maxNorm/(norm + 1e-6) above, 0 for maxNorm 0', async () => {
    const ctx = await gpu();
    const acc = Tensor.from(ctx, [25], [1]); // norm 5
    const cases: [number, number][] = [
      [Infinity, 1],
      [100, 1],
      [5.5, 1],
      [2, 2 / (5 + 1e-6)],
      [0, 0],
    ];
    for (const [maxNorm, want] of cases) {
      const { scale, norm } = clip_scale(acc, maxNorm);
      expect((await norm.read())[0]).toBe(5);
      const [s] = await scale.read();
      if (want === 1 || want === 0) expect(s).toBe(want);
      else expect(Math.abs(s - want)).toBeLessThanOrEqual(2 * 15 * u * want);
      scale.free();
      norm.free();
    }
    expect(() => clip_scale(acc, -1)).toThrow(/maxNorm must be >= 0/);
    expect(() => clip_scale(acc, NaN)).toThrow(/maxNorm must be >= 0/);
    acc.free();
  });

  it('a zero gradient gives norm 0 and scale 1', async () => {
    const ctx = await gpu();
    const g = Tensor.zeros(ctx, [5000]),
      acc = Tensor.zeros(ctx, [1]);
    sumsq_accumulate(g, acc);
    const { scale, norm } = clip_scale(acc, 1);
    expect((await norm.read())[0]).toBe(0);
    expect((await scale.read())[0]).toBe(1);
    [g, acc, scale, norm].forEach((t) => t.free());
  });

  it('rejects a non-scalar accumulator and an f16 gradient', async () => {
    const ctx = await gpu();
    const g = Tensor.zeros(ctx, [4]),
      acc2 = Tensor.zeros(ctx, [2]),
      h = Tensor.zeros(ctx, [4], 'h', 'f16');
    const acc = Tensor.zeros(ctx, [1]);
    expect(() => sumsq_accumulate(g, acc2)).toThrow(/acc must be \(1,\) f32/);
    expect(() => sumsq_accumulate(h, acc)).toThrow(/g must be f32/);
    expect(() => clip_scale(acc2, 1)).toThrow(/acc must be \(1,\) f32/);
    [g, acc2, h, acc].forEach((t) => t.free());
  });
});
