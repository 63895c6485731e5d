// shaders/grad_norm_sumsq.wgsl (every mode: one dispatch, and two stages through partials) against the float64
// twin. The clip factor and the whole optimizer step are in tests/kernels/optim.test.ts.
//
// Error bound (u = 2^-24). Every term of Σg² is non-negative, so
// relative errors add: per tensor, an invocation squares and sums m = ceil(n / (groups·256)) values ((m + 1)u),
// the workgroup tree adds 8 levels (8u), stage 2 sums ≤ 256 partials, one per invocation, with another 8-level
// tree (8u), and the add into acc is u; k tensors accumulated one after another add ≤ k·u more. So
//   δacc/acc ≤ (m_max + 18 + k)·u.  The tests allow twice this bound.
import { describe, expect, it } from 'vitest';
import { sumsq_accumulate, sumsqGroups } from '../../src/kernels/grad_norm';
import { sumsq_cpu } from '../../src/kernels/grad_norm.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { gpu, rng } from '../helpers/gpu';

const u = 2 ** -24;

/** Sizes around every boundary of the kernel: one workgroup (≤ 4096 values), two stages, the 256-group cap. */
const SIZES = [1, 7, 33, 100, 257, 4095, 4096, 4097, 70000, 70001, 1_000_003];

function relBound(sizes: number[]) {
  const m = Math.max(...sizes.map((n) => Math.ceil(n / (sumsqGroups(n) * 256))));
  return (m + 18 + sizes.length) * u;
}

describe('grad_norm', () => {
  it('Σg² over many awkward-size tensors matches the twin', async () => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const r = rng(11);
    const grads = SIZES.map((n, i) => r.normal(n, 10 ** ((i % 5) - 2))); // mixed magnitudes 1e-2 .. 1e2
    const ts = grads.map((g) => Tensor.from(ctx, g, [g.length]));
    const acc = Tensor.zeros(ctx, [1]);
    for (const t of ts) sumsq_accumulate(t, acc);
    const want = sumsq_cpu(grads);
    const [got] = await acc.read();
    expect(Math.abs(got - want)).toBeLessThanOrEqual(2 * relBound(SIZES) * want);
    [...ts, acc].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it.each(SIZES)('one tensor of n = %i on its own', async (n) => {
    const ctx = await gpu();
    const g = rng(n).uniform(n, -3, 3);
    const t = Tensor.from(ctx, g, [n]);
    const acc = Tensor.from(ctx, [0.5], [1]); // accumulates onto what is there
    sumsq_accumulate(t, acc);
    const want = sumsq_cpu([g]) + 0.5;
    const [got] = await acc.read();
    expect(Math.abs(got - want)).toBeLessThanOrEqual(2 * relBound([n, n]) * want);
    [t, acc].forEach((x) => x.free());
  });

  it('a zero gradient gives exactly 0', async () => {
    const ctx = await gpu();
    const g = Tensor.zeros(ctx, [5000]),
      acc = Tensor.zeros(ctx, [1]);
    sumsq_accumulate(g, acc);
    expect((await acc.read())[0]).toBe(0);
    [g, acc].forEach((t) => t.free());
  });

  it('rejects a non-scalar accumulator and an f16 gradient', async () => {
    const ctx = await gpu();
    const g = Tensor.zeros(ctx, [4]),
      acc2 = Tensor.zeros(ctx, [2]),
      h = Tensor.zeros(ctx, [4], 'h', 'f16');
    const acc = Tensor.zeros(ctx, [1]);
    expect(() => sumsq_accumulate(g, acc2)).toThrow(/acc must be \(1,\) f32/);
    expect(() => sumsq_accumulate(h, acc)).toThrow(/g must be f32/);
    [g, acc2, h, acc].forEach((t) => t.free());
  });
});
