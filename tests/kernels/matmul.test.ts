import { describe, expect, it } from 'vitest';
import { LONG_LOOP_WORKGROUPS, matmul, matmulRaw, matmulTile, WIDE_GRID_WORKGROUPS } from '../../src/kernels/matmul';
import { matmul_cpu } from '../../src/kernels/matmul.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { GpuError } from '../../src/gpu/context';
import { fromF16, toF16 } from '../../src/gpu/f16';
import { gpu, rng } from '../helpers/gpu';

const U32 = 2 ** -24; // unit roundoff of f32

/** Asserts |got - want| <= K·u·Σ_k|a||b| + 1e-30 per element: the classic worst-case bound of a K-term f32 dot
 * product (Higham, γ_K ≈ K·u), computed from the same inputs in absolute value. A wrong or missing term is O(1). */
function expectMatmulClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  absdot: ArrayLike<number>,
  K: number,
  what: string,
) {
  expect(got.length).toBe(want.length);
  let worst = 0,
    at = -1;
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i] - want[i]) / ((K + 2) * U32 * absdot[i] + 1e-30);
    if (!(r <= worst)) {
      worst = Number.isNaN(r) ? Infinity : r;
      at = i;
    }
  }
  if (worst > 1)
    throw new Error(`${what}: element ${at} is ${got[at]}, expected ${want[at]} (${worst.toFixed(2)}x the bound)`);
}
const abs = (x: ArrayLike<number>) => Float64Array.from(x, Math.abs);

// M, N, K mixed from the awkward sizes so every dimension hits a partial tile somewhere
const SHAPES: [number, number, number][] = [
  [1, 7, 33],
  [33, 100, 7],
  [100, 1, 257],
  [257, 33, 100],
  [7, 257, 1],
  [64, 64, 64],
];
const TRANS: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

describe('matmul', () => {
  for (const [M, N, K] of SHAPES) {
    it.each(TRANS)(`M=${M} N=${N} K=${K} transA=%s transB=%s matches the twin`, async (transA, transB) => {
      const ctx = await gpu();
      const live = ctx.alloc.liveBytes;
      const r = rng(M * 1000 + N * 10 + K);
      const a = r.uniform(M * K),
        b = r.uniform(K * N);
      const ta = Tensor.from(ctx, a, transA ? [K, M] : [M, K]);
      const tb = Tensor.from(ctx, b, transB ? [N, K] : [K, N]);
      const c = matmul(ta, tb, { transA, transB });
      expect(c.shape).toEqual([M, N]);
      const want = matmul_cpu(a, b, M, N, K, { transA, transB });
      expectMatmulClose(await c.read(), want, matmul_cpu(abs(a), abs(b), M, N, K, { transA, transB }), K, 'c');
      [ta, tb, c].forEach((t) => t.free());
      expect(ctx.alloc.liveBytes).toBe(live);
    });
  }

  it.each([1, 2, 4, 8])('every rows-per-thread variant (tm = %i), odd workgroup shapes, bias, batch 2', async (tm) => {
    const ctx = await gpu();
    const [B, M, N, K] = [2, 37, 28, 19]; // N % 4 = 0: B read as vec4 rows, batch strides included
    const r = rng(tm);
    const a = r.uniform(B * M * K),
      b = r.uniform(B * K * N),
      bias = r.uniform(N);
    const ta = Tensor.from(ctx, a, [B, M, K]),
      tb = Tensor.from(ctx, b, [B, K, N]),
      tbias = Tensor.from(ctx, bias, [N]);
    const c = Tensor.empty(ctx, [B, M, N]);
    for (const [wgM, wgN] of [
      [2, 4],
      [8, 16],
    ]) {
      matmulRaw(
        ctx,
        {
          a: ta.buf,
          b: tb.buf,
          c: c.buf,
          bias: tbias.buf,
          M,
          N,
          K,
          lda: K,
          ldb: N,
          ldc: N,
          transA: false,
          transB: false,
          batch: B,
          strideA: M * K,
          strideB: K * N,
          strideC: M * N,
        },
        undefined,
        undefined,
        { wgM, wgN, tm },
      );
      const o = { batch: B, bias };
      expectMatmulClose(
        await c.read(),
        matmul_cpu(a, b, M, N, K, o),
        matmul_cpu(abs(a), abs(b), M, N, K, { ...o, bias: abs(bias) }),
        K,
        `c ${wgM}x${wgN}`,
      );
    }
    [ta, tb, tbias, c].forEach((t) => t.free());
  });

  it('batch = 3 with alpha, then accumulate into out', async () => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const [B, M, N, K] = [3, 33, 7, 100];
    const r = rng(5);
    const a = r.uniform(B * K * M),
      b = r.uniform(B * N * K),
      c0 = r.uniform(B * M * N);
    const ta = Tensor.from(ctx, a, [B, K, M]),
      tb = Tensor.from(ctx, b, [B, N, K]);
    const c = matmul(ta, tb, { transA: true, transB: true, alpha: 0.5 });
    expect(c.shape).toEqual([B, M, N]);
    const o = { batch: B, transA: true, transB: true, alpha: 0.5 };
    const bound = matmul_cpu(abs(a), abs(b), M, N, K, o);
    expectMatmulClose(await c.read(), matmul_cpu(a, b, M, N, K, o), bound, K, 'batched c');
    const out = Tensor.from(ctx, c0, [B, M, N]);
    const same = matmul(ta, tb, { ...o, accumulate: true, out });
    expect(same).toBe(out);
    // + 1 for the rounding of the final addition to c0 (|c0| <= 1 adds at most u·(|c0| + |acc|))
    const bound2 = bound.map((x, i) => x + Math.abs(c0[i]) / (K + 2));
    expectMatmulClose(await out.read(), matmul_cpu(a, b, M, N, K, { ...o, c0 }), bound2, K, 'accumulated c');
    [ta, tb, c, out].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('matmulRaw: bias, a weight in two row chunks, and a strided output', async () => {
    // y (M, 2·H) = x (M, K) · w (2·H, K)ᵀ + bias, the two halves of w bound separately (as for a weight bigger
    // than one binding) and written into the column halves of y through ldc = 2·H (offsets are 256-byte multiples).
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const [M, H, K] = [33, 64, 100];
    const r = rng(9);
    const x = r.uniform(M * K),
      w = r.uniform(2 * H * K),
      bias = r.uniform(2 * H);
    const tx = Tensor.from(ctx, x, [M, K]),
      tw = Tensor.from(ctx, w, [2 * H, K]),
      tb = Tensor.from(ctx, bias, [2 * H]);
    const y = Tensor.empty(ctx, [M, 2 * H]);
    for (let h = 0; h < 2; h++) {
      matmulRaw(ctx, {
        a: tx.buf,
        b: { buf: tw.buf, offset: h * H * K * 4, size: H * K * 4 },
        c: { buf: y.buf, offset: h * H * 4, size: ((M - 1) * 2 * H + H) * 4 },
        bias: { buf: tb.buf, offset: h * H * 4, size: H * 4 },
        M,
        N: H,
        K,
        lda: K,
        ldb: K,
        ldc: 2 * H,
        transA: false,
        transB: true,
      });
    }
    const want = matmul_cpu(x, w, M, 2 * H, K, { transB: true, bias });
    const bound = matmul_cpu(abs(x), abs(w), M, 2 * H, K, { transB: true, bias: abs(bias) });
    expectMatmulClose(await y.read(), want, bound, K, 'y');
    [tx, tw, tb, y].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('f16 weights: computed on adapters with shader-f16 (lavapipe), refused clearly without (SwiftShader)', async () => {
    const ctx = await gpu();
    const driver = process.env.WEBLORA_DRIVER;
    if (driver === 'lavapipe') expect(ctx.hasF16).toBe(true);
    if (driver === 'swiftshader') expect(ctx.hasF16).toBe(false);
    const live = ctx.alloc.liveBytes;
    // N = 36 takes the vec4 path for A·B (rows of B 16-byte aligned), N = 33 the scalar one
    for (const N of [33, 36]) await f16Case(ctx, N);
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  async function f16Case(ctx: Awaited<ReturnType<typeof gpu>>, N: number) {
    const [M, K] = [100, 257];
    const r = rng(16 + N);
    const x = r.uniform(M * K),
      w = r.uniform(N * K);
    const tx = Tensor.from(ctx, x, [M, K]),
      tw = Tensor.from(ctx, w, [N, K], 'w', 'f16');
    if (ctx.hasF16) {
      for (const transB of [true, false]) {
        // the twin gets the same f16-rounded weights: the GPU widens f16 to f32 exactly, so the f32 bound holds
        const w16 = fromF16(toF16(w));
        const wt = transB ? w16 : Float32Array.from({ length: N * K }, (_, i) => w16[(i % N) * K + Math.floor(i / N)]);
        const tw2 = transB ? tw : Tensor.from(ctx, wt, [K, N], 'wT', 'f16');
        const y = matmul(tx, tw2, { transB });
        expectMatmulClose(
          await y.read(),
          matmul_cpu(x, wt, M, N, K, { transB }),
          matmul_cpu(abs(x), abs(wt), M, N, K, { transB }),
          K,
          'f16 y',
        );
        y.free();
        if (!transB) tw2.free();
      }
    } else {
      expect(() => matmul(tx, tw, { transB: true })).toThrow(GpuError);
      expect(() => matmul(tx, tw, { transB: true })).toThrow(/shader-f16/);
    }
    [tx, tw].forEach((t) => t.free());
  }

  it('rejects mismatched inner sizes', async () => {
    const ctx = await gpu();
    const ta = Tensor.zeros(ctx, [3, 4]),
      tb = Tensor.zeros(ctx, [5, 6]);
    expect(() => matmul(ta, tb)).toThrow(/inner sizes differ/);
    ta.free();
    tb.free();
  });
});

describe('matmul tile choice (shaders/matmul.wgsl)', () => {
  const grid = (M: number, N: number, t: { wgM: number; wgN: number; tm: number }) =>
    Math.ceil(M / (t.wgM * t.tm)) * Math.ceil(N / (t.wgN * 4));
  it('gives a big product on a narrow output enough workgroups for a real GPU', () => {
    // SmolLM2's k/v projection at B 8 x T 512: 4096 x 192 x 576, 906 MFLOP; the 64 x 64 tile gave 192 workgroups
    const t = matmulTile(4096, 192, 576, 1, true);
    expect(grid(4096, 192, matmulTile(4096, 192, 576))).toBe(192); // software drivers keep their tile
    expect(grid(4096, 192, t)).toBeGreaterThanOrEqual(WIDE_GRID_WORKGROUPS);
    expect(t.wgM * t.wgN).toBeGreaterThanOrEqual(32);
  });
  it('gives a product with a K loop over 2,048 at least 1,024 workgroups (the LM head dx, K = its chunk)', () => {
    // SmolLM2's head dx at B 8 x T 512, 4,096-column chunks: 4096 x 576 x 4096; its tile gave 576 workgroups
    expect(grid(4096, 576, matmulTile(4096, 576, 4096))).toBe(576); // software drivers keep their tile
    const t = matmulTile(4096, 576, 4096, 1, true);
    expect(grid(4096, 576, t)).toBeGreaterThanOrEqual(LONG_LOOP_WORKGROUPS);
    expect(t.wgM * t.wgN).toBeGreaterThanOrEqual(32);
    // K = 2,048 is not a long loop: 264 workgroups are enough
    expect(matmulTile(4096, 576, 2048, 1, true)).toEqual(matmulTile(4096, 576, 2048));
  });
  it('keeps the tile of small products as it was', () => {
    for (const [M, N] of [
      [512, 64],
      [64, 128],
      [100, 7],
    ])
      expect(matmulTile(M, N, 128, 1, true)).toEqual(matmulTile(M, N));
  });
  it('computes the same bits with the narrowed tile as with the wide one', async () => {
    const ctx = await gpu();
    const [M, N, K] = [1100, 70, 300]; // 46 MFLOP, awkward sizes
    const r = rng(7);
    const a = Tensor.from(ctx, r.uniform(M * K), [M, K]);
    const b = Tensor.from(ctx, r.uniform(N * K), [N, K]);
    const narrow = matmulTile(M, N, K, 1, true);
    expect(narrow).not.toEqual(matmulTile(M, N));
    const outs = [narrow, matmulTile(M, N)].map((tile) => {
      const c = Tensor.empty(ctx, [M, N]);
      matmulRaw(
        ctx,
        { a: a.binding, b: b.binding, c: c.binding, M, N, K, lda: K, ldb: K, ldc: N, transA: false, transB: true },
        undefined,
        undefined,
        tile,
        'baseline',
      );
      return c;
    });
    const [x, y] = await Promise.all(outs.map((c) => c.read()));
    expect(x).toEqual(y);
    const want = matmul_cpu(await a.read(), await b.read(), M, N, K, { transB: true });
    // a 300-term f32 dot product of values in [-1, 1]: (K + 4)·2^-24·Σ|a||b| <= 304·2^-24·300 < 1e-2; 1e-4 is ample
    for (let i = 0; i < x.length; i += 97) expect(Math.abs(x[i] - want[i])).toBeLessThanOrEqual(1e-4);
    [a, b, ...outs].forEach((t) => t.free());
  });
});
