// The matmul variants (shaders/matmul_tiled.wgsl: tile64-bk16, tile64-bk32, tile128-bk16; shaders/matmul_splitk.wgsl:
// splitk, splitk-subgroups; beside today's shaders/matmul.wgsl) against the CPU twin src/kernels/matmul.cpu.ts, each
// forced through matmulRaw's `variant`, at awkward sizes (partial tiles everywhere), both transposes, the vec4 and
// scalar staging paths, odd leading dimensions, batch strides, alpha, bias, accumulate, f16 B, and the LoRA
// epilogue with each dropout mask (shaders/lib_matmul_epilogue.wgsl, shared by both variant shaders).
import { describe, expect, it } from 'vitest';
import {
  MATMUL_VARIANTS,
  matmulRaw,
  variantAvailable,
  variantSupports,
  type MatmulVariant,
} from '../../src/kernels/matmul';
import { matmul_cpu, type MatmulCpuOpts } from '../../src/kernels/matmul.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { fromF16, toF16 } from '../../src/gpu/f16';
import { expectSumBounded, gpu, rng } from '../helpers/gpu';

const abs = (x: ArrayLike<number>) => Float64Array.from(x, Math.abs);

// The bound (expectSumBounded, terms = K + R): |got - want| <= (K + R + 4)·u·mag per element, mag the same
// product on absolute values: the worst case of a
// (K + R)-term f32 sum in any order (Higham's γ_n; a tree as in splitk is tighter), plus the roundings of alpha,
// bias, the dropout multiplier and the accumulate. A wrong, missing or unmasked term is O(1).

const VARIANTS = MATMUL_VARIANTS.filter((v) => v !== 'baseline');

/** Packs a (rows, cols) matrix stored with row stride ld into a dense one (for the twin). */
function dense(x: ArrayLike<number>, rows: number, cols: number, ld: number, batch = 1, stride = rows * ld) {
  const out = new Float64Array(batch * rows * cols);
  for (let z = 0; z < batch; z++)
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) out[(z * rows + r) * cols + c] = x[z * stride + r * ld + c];
  return out;
}

interface Case {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  pad?: number /* extra elements per row: odd leading dimensions */;
  batch?: number;
  alpha?: number;
  bias?: boolean;
  accumulate?: boolean;
  f16?: boolean;
  lora?: { R: number; vT: boolean };
  drop?: 'a' | 'b' | 'epilogue';
}

async function runCase(v: MatmulVariant, c: Case, seed: number) {
  const ctx = await gpu();
  const { M, N, K, transA, transB } = c;
  const pad = c.pad ?? 0,
    batch = c.batch ?? 1;
  const [ra, ca] = transA ? [K, M] : [M, K];
  const [rb, cb] = transB ? [N, K] : [K, N];
  const lda = ca + pad,
    ldb = cb + pad,
    ldc = N + pad;
  const strideA = ra * lda + pad,
    strideB = rb * ldb + pad,
    strideC = M * ldc + pad;
  const r = rng(seed);
  const a = r.uniform(batch * strideA),
    b0 = r.uniform(batch * strideB),
    c0 = r.uniform(batch * strideC),
    bias = r.uniform(N);
  const b = c.f16 ? fromF16(toF16(b0)) : b0; // the twin gets the f16-rounded weights, widened exactly on the GPU
  const R = c.lora?.R ?? 0;
  const u = r.uniform(Math.max(1, M * R)),
    vv = r.uniform(Math.max(1, N * R));
  const ta = Tensor.from(ctx, a, [a.length]),
    tb = Tensor.from(ctx, b, [b.length], 'b', c.f16 ? 'f16' : 'f32'),
    tc = Tensor.from(ctx, c0, [c0.length]),
    tbias = Tensor.from(ctx, bias, [N]),
    tu = Tensor.from(ctx, u, [u.length]),
    tv = Tensor.from(ctx, vv, [vv.length]);
  const dropout = c.drop
    ? { seed: 1234 + seed, p: 0.3, dropLd: c.drop === 'b' ? N : c.drop === 'a' ? K : N, on: c.drop }
    : undefined;
  const lora = c.lora ? { u: tu.buf, v: tv.buf, R, ldv: c.lora.vT ? N : R, vT: c.lora.vT, lscale: 0.75 } : undefined;
  matmulRaw(
    ctx,
    {
      a: ta.buf,
      b: tb.buf,
      c: tc.buf,
      bias: c.bias ? tbias.buf : undefined,
      M,
      N,
      K,
      lda,
      ldb,
      ldc,
      transA,
      transB,
      batch,
      strideA,
      strideB,
      strideC,
      alpha: c.alpha,
      accumulate: c.accumulate,
      bDtype: c.f16 ? 'f16' : 'f32',
    },
    lora,
    dropout,
    undefined,
    v,
  );
  const all = await tc.read();
  const got = dense(all, M, N, ldc, batch, strideC);
  // what lies outside the (M, N) blocks of c (row padding, batch strides) is untouched
  const inside = new Uint8Array(all.length);
  for (let z = 0; z < batch; z++)
    for (let m = 0; m < M; m++) inside.fill(1, z * strideC + m * ldc, z * strideC + m * ldc + N);
  for (let i = 0; i < all.length; i++)
    if (!inside[i] && all[i] !== c0[i]) throw new Error(`${v}: c[${i}] outside C was written`);
  const A = dense(a, ra, ca, lda, batch, strideA),
    B = dense(b, rb, cb, ldb, batch, strideB),
    C0 = dense(c0, M, N, ldc, batch, strideC);
  const o: MatmulCpuOpts = {
    batch,
    transA,
    transB,
    alpha: c.alpha,
    bias: c.bias ? bias : undefined,
    c0: c.accumulate ? C0 : undefined,
    lora: c.lora ? { u, v: vv, R, vT: c.lora.vT, lscale: 0.75 } : undefined,
    dropout,
  };
  const mo: MatmulCpuOpts = {
    ...o,
    alpha: Math.abs(c.alpha ?? 1),
    bias: o.bias && abs(bias),
    c0: o.c0 && abs(C0),
    lora: o.lora && { ...o.lora, u: abs(u), v: abs(vv) },
  };
  expectSumBounded(got, matmul_cpu(A, B, M, N, K, o), matmul_cpu(abs(A), abs(B), M, N, K, mo), K + R, `${v} c`);
  [ta, tb, tc, tbias, tu, tv].forEach((t) => t.free());
}

// Each case names its options; every variant runs all of them on lavapipe. SwiftShader compiles these kernels
// slowly (7-15 s a pipeline on this machine), so there each variant runs the CORE cases, which still cover both
// transposes, vec4 and scalar staging, odd leading dimensions, batch, alpha, bias, accumulate, the LoRA epilogue and
// every dropout mask.
const F = false,
  T = true;
const CASES: [string, Case][] = [
  // M, N, K from the awkward sizes so that every dimension ends in a partial tile; 300 x 257 spans several tiles
  ['1x7x33 A·B', { M: 1, N: 7, K: 33, transA: F, transB: F }],
  ['33x100x7 A·Bᵀ', { M: 33, N: 100, K: 7, transA: F, transB: T }],
  ['100x1x257 Aᵀ·B', { M: 100, N: 1, K: 257, transA: T, transB: F }],
  ['257x33x100 Aᵀ·Bᵀ', { M: 257, N: 33, K: 100, transA: T, transB: T }],
  ['300x257x33 A·Bᵀ', { M: 300, N: 257, K: 33, transA: F, transB: T }],
  // multiples of 4 along each operand's contiguous dimension: the vec4 staging path (K = 36 is 2¼ tiles of 16)
  ['vec4 68x100x36 A·Bᵀ', { M: 68, N: 100, K: 36, transA: F, transB: T }],
  ['vec4 68x100x36 Aᵀ·B', { M: 68, N: 100, K: 36, transA: T, transB: F }],
  ['vec4 132x12x260 A·B', { M: 132, N: 12, K: 260, transA: F, transB: F }],
  [
    'odd ld, batch 3, alpha, bias, accumulate, A·B',
    { M: 37, N: 29, K: 19, transA: F, transB: F, pad: 3, batch: 3, alpha: -0.5, bias: T, accumulate: T },
  ],
  // leading dimensions multiples of 4 with an odd extent elsewhere: vec4 for one operand, scalar for the other
  [
    'ld % 4 = 0, batch 2, accumulate, Aᵀ·Bᵀ',
    { M: 36, N: 33, K: 44, transA: T, transB: T, pad: 4, batch: 2, alpha: 2, accumulate: T },
  ],
  ['f16 B vec4, A·Bᵀ', { M: 100, N: 36, K: 256, transA: F, transB: T, f16: T, bias: T }],
  ['f16 B scalar, A·B', { M: 100, N: 33, K: 257, transA: F, transB: F, f16: T }],
  // lora.ts: y = x·W0ᵀ + bias + s·U·Bᵀ (v (N, R)); dx = dy·W0 + s·mask ⊙ (G·A) (v (R, N), vT); u = drop(x)·Aᵀ
  // (mask on A); dA = s·Gᵀ·drop(x) (mask on B)
  ['LoRA y epilogue', { M: 33, N: 100, K: 257, transA: F, transB: T, bias: T, lora: { R: 8, vT: F } }],
  [
    'LoRA dx epilogue, mask on it',
    { M: 100, N: 33, K: 7, transA: F, transB: F, lora: { R: 5, vT: T }, drop: 'epilogue' },
  ],
  ['u = drop(x)·Aᵀ, mask on A', { M: 257, N: 8, K: 36, transA: F, transB: T, drop: 'a' }],
  ['dA = Gᵀ·drop(x), mask on B', { M: 7, N: 100, K: 300, transA: T, transB: F, alpha: 2, drop: 'b' }],
];
const CORE = new Set([
  '257x33x100 Aᵀ·Bᵀ',
  'vec4 68x100x36 A·Bᵀ',
  'odd ld, batch 3, alpha, bias, accumulate, A·B',
  'LoRA dx epilogue, mask on it',
  'dA = Gᵀ·drop(x), mask on B',
]);
const swift = process.env.WEBLORA_DRIVER === 'swiftshader';

describe.each(VARIANTS)('matmul variant %s', (v) => {
  it('runs on this adapter, or is refused where it cannot (subgroups)', async () => {
    const ctx = await gpu();
    expect(variantAvailable(ctx, v)).toBe(v !== 'splitk-subgroups' || ctx.hasSubgroups);
    if (v === 'splitk-subgroups') expect(ctx.hasSubgroups).toBe(true); // both test drivers offer subgroups
  });

  const cases = CASES.filter(([name]) => !swift || CORE.has(name));
  it.each(cases)('%s matches the twin', async (name, c) => {
    const ctx = await gpu();
    if (c.f16 && process.env.WEBLORA_DRIVER === 'lavapipe') expect(ctx.hasF16).toBe(true);
    // without shader-f16, f16 weights are refused before any variant is chosen (matmul.test.ts checks that)
    if (c.f16 && !ctx.hasF16) return;
    if (c.f16 && v === 'splitk-subgroups') {
      // not offered for f16 B: refused when asked for, never chosen (the forced policy falls back to the baseline)
      expect(variantSupports(ctx, v, { bDtype: 'f16' })).toBe(false);
      await expect(runCase(v, c, 0)).rejects.toThrow(/cannot run this product/);
      return;
    }
    await runCase(v, c, name.length * 31 + c.M);
  });
});
