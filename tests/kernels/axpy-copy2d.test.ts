// shaders/axpy.wgsl and shaders/copy2d.wgsl against their CPU twins. Both are exact in f32:
// axpy is one fused multiply-add per element (bound: 1 ulp of the result), copy2d moves bits.
import { describe, expect, it } from 'vitest';
import { axpy_inplace } from '../../src/kernels/axpy';
import { axpy_cpu } from '../../src/kernels/axpy.cpu';
import { copy2d, take_cols, put_cols } from '../../src/kernels/copy2d';
import { copy2d_cpu } from '../../src/kernels/copy2d.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { AWKWARD, expectClose, gpu, rng } from '../helpers/gpu';

describe('axpy', () => {
  it.each(AWKWARD)('y += alpha·x matches the twin, n = %i', async (n) => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const r = rng(n + 1);
    const x = r.uniform(n),
      y = r.uniform(n);
    const tx = Tensor.from(ctx, x, [n]),
      ty = Tensor.from(ctx, y, [n]);
    axpy_inplace(ty, tx, -0.37);
    expectClose(await ty.read(), axpy_cpu(y, x, -0.37), 1e-7, 1.2e-7);
    tx.free();
    ty.free();
    expect(ctx.alloc.liveBytes).toBe(live);
  });
  it('refuses aliasing', async () => {
    const ctx = await gpu();
    const t = Tensor.zeros(ctx, [3]);
    expect(() => axpy_inplace(t, t)).toThrow(/different buffers/);
    t.free();
  });
});

describe('copy2d', () => {
  it.each([
    [1, 1],
    [7, 33],
    [33, 100],
    [257, 7],
  ])('strided block copy matches the twin, %i x %i', async (rows, cols) => {
    const ctx = await gpu();
    const r = rng(rows * 31 + cols);
    const srcLd = cols + 5,
      dstLd = cols + 3;
    const src = r.uniform(rows * srcLd),
      dst = r.uniform(rows * dstLd);
    const ts = Tensor.from(ctx, src, [rows, srcLd]),
      td = Tensor.from(ctx, dst, [rows, dstLd]);
    const c = { rows, cols, srcLd, srcCol: 4, dstLd, dstCol: 2 };
    copy2d(ts, td, c);
    expectClose(await td.read(), copy2d_cpu(src, dst, c), 0);
    ts.free();
    td.free();
  });
  it('take_cols / put_cols split and rebuild a fused (N, 3C) matrix', async () => {
    const ctx = await gpu();
    const n = 13,
      C = 10;
    const x = rng(5).uniform(n * 3 * C);
    const tx = Tensor.from(ctx, x, [n, 3 * C]);
    const parts = [0, 1, 2].map((i) => take_cols(tx, i * C, C));
    const back = Tensor.zeros(ctx, [n, 3 * C]);
    parts.forEach((p, i) => put_cols(p, back, i * C));
    expectClose(await back.read(), x, 0);
    expectClose(
      await parts[1].read(),
      Float32Array.from({ length: n * C }, (_, i) => x[Math.floor(i / C) * 3 * C + C + (i % C)]),
      0,
    );
    [tx, back, ...parts].forEach((t) => t.free());
  });
});
