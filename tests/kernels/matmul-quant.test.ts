// The matmul with a quantized B (q8 / q4 blocks of a frozen weight, src/gpu/quant.ts; dequantized in registers by
// shaders/lib_quant.wgsl) against the CPU twin src/kernels/matmul.cpu.ts applied to dequantize(blocks), in both
// orientations of a LoRA linear: y = x·W0ᵀ (B (N, K), transB: the forward) and dx = dy·W0 (B (K, N): the input
// gradient), at awkward M and N (partial tiles) and K a multiple of 32 but not of a tile's BK, with bias, the LoRA
// epilogue (and its dropout mask), accumulate, alpha, batch strides and leading dimensions wider than the product.
// Then: the same kernel on f32 weights holding dequantize(blocks) gives bit-identical results (it computes the same
// function, value for value), every variant either runs a quantized B or says it cannot (variantSupports), and the
// dispatch cost counts the quantized bytes.
import { describe, expect, it } from 'vitest';
import {
  MATMUL_VARIANTS,
  matmulCost,
  matmulRaw,
  matmulVariantFor,
  setMatmulPolicy,
  variantAvailable,
  variantSupports,
  weightB,
  type MatmulVariant,
} from '../../src/kernels/matmul';
import { matmul_cpu, type MatmulCpuOpts } from '../../src/kernels/matmul.cpu';
import { dequantize, quantize, type QuantKind } from '../../src/gpu/quant';
import { Tensor } from '../../src/gpu/tensor';
import { expectSumBounded, gpu, rng } from '../helpers/gpu';

const abs = (x: ArrayLike<number>) => Float64Array.from(x, Math.abs);

// The bound (expectSumBounded, terms = K + R) as in matmul_variants.test.ts: a (K + R)-term f32 sum in any order
// plus the roundings of alpha, bias, the dropout multiplier and the accumulate. The twin's B is dequantize(blocks),
// which the kernels reproduce exactly (each value is an f16 scale times a small integer, exact in f32), so a wrong
// nibble, byte, scale or block is an O(1) error.

/** Packs a (rows, cols) matrix stored with row stride ld into a dense one (for the twin). */
function dense(x: ArrayLike<number>, rows: number, cols: number, ld: number, batch = 1, stride = rows * ld) {
  const out = new Float64Array(batch * rows * cols);
  for (let z = 0; z < batch; z++)
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) out[(z * rows + r) * cols + c] = x[z * stride + r * ld + c];
  return out;
}

interface QCase {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB: boolean;
  /** B's row stride (its quantized columns), a multiple of 32, at least op(B)'s contiguous extent */
  ldb?: number;
  batch?: number;
  alpha?: number;
  bias?: boolean;
  accumulate?: boolean;
  lora?: { R: number; vT: boolean };
  drop?: 'epilogue' | 'b';
}

/** Runs one product with a `kind` B on variant v and checks it against the twin; with `vsF32`, also against the
 * same launch on an f32 B of dequantize(blocks) (a second pipeline to compile). */
async function runQuantCase(
  kind: QuantKind,
  v: MatmulVariant,
  c: QCase,
  seed: number,
  vsF32: boolean,
  byPolicy = false,
) {
  const ctx = await gpu();
  const { M, N, K, transB } = c;
  const transA = !!c.transA,
    batch = c.batch ?? 1;
  const [ra, ca] = transA ? [K, M] : [M, K];
  const [rb, cb] = transB ? [N, K] : [K, N];
  const ldb = c.ldb ?? cb;
  const r = rng(seed);
  const a = r.uniform(batch * ra * ca),
    c0 = r.uniform(batch * M * N),
    bias = r.uniform(N);
  // B: batch matrices (rb, ldb) quantized as one (batch·rb, ldb) weight; the scales vary over blocks
  const bvals = r.normal(batch * rb * ldb, 0.5);
  const qb = quantize(kind, bvals, batch * rb, ldb);
  const b = dequantize(qb);
  const R = c.lora?.R ?? 0;
  const u = r.uniform(Math.max(1, M * R)),
    vv = r.uniform(Math.max(1, N * R));
  const ta = Tensor.from(ctx, a, [a.length]),
    tb = Tensor.fromQuant(ctx, qb, 'b'),
    tc = Tensor.from(ctx, c0, [c0.length]),
    tbias = Tensor.from(ctx, bias, [N]),
    tu = Tensor.from(ctx, u, [u.length]),
    tv = Tensor.from(ctx, vv, [vv.length]);
  const dropout = c.drop ? { seed: 99 + seed, p: 0.3, dropLd: N, on: c.drop } : undefined;
  const lora = c.lora ? { u: tu.buf, v: tv.buf, R, ldv: c.lora.vT ? N : R, vT: c.lora.vT, lscale: 0.75 } : undefined;
  const m = {
    ...weightB(tb),
    a: ta.buf,
    c: tc.buf,
    bias: c.bias ? tbias.buf : undefined,
    M,
    N,
    K,
    lda: ca,
    ldb,
    ldc: N,
    transA,
    transB,
    batch,
    strideA: ra * ca,
    strideB: rb * ldb,
    strideC: M * N,
    alpha: c.alpha,
    accumulate: c.accumulate,
  };
  expect(m.bDtype).toBe(kind);
  matmulRaw(ctx, m, lora, dropout, undefined, byPolicy ? undefined : v); // byPolicy: the dispatcher chooses
  const got = await tc.read();
  const B = dense(b, rb, cb, ldb, batch, rb * ldb);
  const o: MatmulCpuOpts = {
    batch,
    transA,
    transB,
    alpha: c.alpha,
    bias: c.bias ? bias : undefined,
    c0: c.accumulate ? c0 : undefined,
    lora: c.lora ? { u, v: vv, R, vT: c.lora.vT, lscale: 0.75 } : undefined,
    dropout,
  };
  const mo: MatmulCpuOpts = {
    ...o,
    alpha: Math.abs(c.alpha ?? 1),
    bias: o.bias && abs(bias),
    c0: o.c0 && abs(c0),
    lora: o.lora && { ...o.lora, u: abs(u), v: abs(vv) },
  };
  expectSumBounded(got, matmul_cpu(a, B, M, N, K, o), matmul_cpu(abs(a), abs(B), M, N, K, mo), K + R, `${kind} ${v}`);

  if (vsF32) {
    // The same launch on an f32 B holding dequantize(blocks): bit-identical (the same sums of the same values).
    const tf = Tensor.from(ctx, b, [b.length]);
    ctx.write(tc.buf, c0);
    matmulRaw(ctx, { ...m, ...weightB(tf), bScales: undefined }, lora, dropout, undefined, v);
    expect(Array.from(await tc.read())).toEqual(Array.from(got));
    tf.free();
  }
  [ta, tb, tc, tbias, tu, tv].forEach((t) => t.free());
}

const F = false,
  T = true;
// y = x·W0ᵀ (+ bias + s·U·Bᵀ): B is W0 (N_out, K_in), transB; dx = dy·W0 (+ s·mask ⊙ G·A): B is W0 (K, N), N = its
// quantized columns (the vec4 path: one word of quants per 4 values), or N < ldb (scalar loads).
const QCASES: [string, QCase][] = [
  ['x·W0ᵀ, bias, LoRA epilogue', { M: 37, N: 45, K: 96, transB: T, bias: T, lora: { R: 5, vT: F } }],
  ['x·W0ᵀ, accumulate (residual), ldb > K', { M: 100, N: 33, K: 160, transB: T, ldb: 192, accumulate: T }],
  [
    'dy·W0, LoRA epilogue with its mask, accumulate',
    { M: 29, N: 96, K: 45, transB: F, lora: { R: 3, vT: T }, drop: 'epilogue', accumulate: T },
  ],
  ['dy·W0, N < ldb (scalar loads), alpha', { M: 37, N: 70, K: 50, transB: F, ldb: 96, alpha: -0.5 }],
  ['batch 3, Aᵀ·Bᵀ, bias', { M: 7, N: 19, K: 224, transA: T, transB: T, batch: 3, bias: T }],
  ['batch 2, Aᵀ·B, mask on B', { M: 33, N: 64, K: 21, transA: T, transB: F, batch: 2, drop: 'b' }],
];

// SwiftShader compiles each matmul pipeline slowly (7-15 s for a tiled one on this machine): there the baseline
// runs the SWIFT cases and the variants one case each (both kinds between them); lavapipe runs everything.
const swift = process.env.WEBLORA_DRIVER === 'swiftshader';
const SWIFT = new Set(['x·W0ᵀ, bias, LoRA epilogue', 'dy·W0, LoRA epilogue with its mask, accumulate']); // FWD, DX below

describe.each(['q8', 'q4'] as const)('matmul baseline, %s B', (kind) => {
  it.each(QCASES.filter(([name]) => !swift || SWIFT.has(name)))(
    '%s matches the twin on dequantize(blocks)',
    async (name, c) => {
      await runQuantCase(kind, 'baseline', c, name.length * 7 + c.M + (kind === 'q4' ? 1 : 0), true);
    },
  );

  it('the matmul(Tensor) entry takes a quantized 2-D weight', async () => {
    const ctx = await gpu();
    const { matmul } = await import('../../src/kernels/matmul');
    const r = rng(5);
    const [M, N, K] = [9, 31, 64];
    const x = r.uniform(M * K),
      qb = quantize(kind, r.normal(N * K), N, K);
    const tx = Tensor.from(ctx, x, [M, K]),
      tw = Tensor.fromQuant(ctx, qb);
    const y = matmul(tx, tw, { transB: true });
    const W = dequantize(qb);
    expectSumBounded(
      await y.read(),
      matmul_cpu(x, W, M, N, K, { transB: true }),
      matmul_cpu(abs(x), abs(W), M, N, K, { transB: true }),
      K,
      'matmul(Tensor)',
    );
    [tx, tw, y].forEach((t) => t.free());
  });
});

// The tiled variants stage dequantized f32 values in workgroup memory (vec4 staging: one word of quants per 4
// values); split-K reads B through the same B_AT. Forced through matmulRaw's `variant`.
// Each variant runs the kinds in turn rather than all pairs (pipelines take seconds to compile on the software
// drivers): every variant meets both orientations, and both kinds between its runs and its peers'. splitk-subgroups
// does not take a quantized B (variantSupports; tested below).
const FWD = 'x·W0ᵀ, bias, LoRA epilogue',
  DX = 'dy·W0, LoRA epilogue with its mask, accumulate';
const VARIANT_RUNS: [MatmulVariant, QuantKind, string][] = [
  ['tile64-bk16', 'q8', FWD],
  ['tile64-bk16', 'q8', DX],
  ['tile64-bk32', 'q4', FWD],
  ['tile64-bk32', 'q4', DX],
  ['tile128-bk16', 'q8', FWD],
  ['tile128-bk16', 'q4', DX],
  ['splitk', 'q4', FWD],
  ['splitk', 'q8', DX],
];
const SWIFT_RUNS = new Set([`tile64-bk32 q4 ${FWD}`, `splitk q8 ${DX}`]);

describe('matmul variants, quantized B', () => {
  it.each(VARIANT_RUNS.filter(([v, kind, name]) => !swift || SWIFT_RUNS.has(`${v} ${kind} ${name}`)))(
    '%s, %s B: %s matches the twin',
    async (v, kind, name) => {
      const c = QCASES.find(([n]) => n === name)![1];
      await runQuantCase(kind, v, c, name.length * 5 + c.N, false);
    },
  );
});

describe('quantized B: variants and cost', () => {
  it('every variant but splitk-subgroups runs a q8 / q4 B; forced there, the dispatcher falls back to the baseline', async () => {
    const ctx = await gpu();
    for (const v of MATMUL_VARIANTS)
      for (const d of ['q8', 'q4'] as const)
        expect(variantSupports(ctx, v, { bDtype: d })).toBe(v !== 'splitk-subgroups' && variantAvailable(ctx, v));
    const m = {
      M: 8,
      N: 64,
      K: 4096,
      transA: true,
      transB: false,
      a: null!,
      b: null!,
      c: null!,
      lda: 8,
      ldb: 64,
      ldc: 64,
    };
    setMatmulPolicy(ctx, 'splitk-subgroups');
    try {
      expect(matmulVariantFor(ctx, { ...m, bDtype: 'q4' })).toBe('baseline');
      if (ctx.hasSubgroups) expect(matmulVariantFor(ctx, { ...m, bDtype: 'f32' })).toBe('splitk-subgroups');
      // the q8 product itself, forced: it runs (on the baseline) and matches the twin
      await runQuantCase('q8', 'baseline', { M: 5, N: 64, K: 37, transA: true, transB: false }, 3, false, true);
    } finally {
      setMatmulPolicy(ctx, undefined);
    }
    // asked for by name, it is refused rather than run on another kernel
    await expect(
      runQuantCase('q4', 'splitk-subgroups', { M: 5, N: 64, K: 37, transB: false }, 4, false),
    ).rejects.toThrow(/cannot run this product/);
  });

  it('the dispatch cost reads the quantized bytes of B', () => {
    const base = { a: null!, b: null!, c: null!, M: 64, N: 576, K: 576, lda: 576, ldb: 576, ldc: 576 };
    const m = { ...base, transA: false, transB: true };
    const bytes = (d: 'f32' | 'f16' | 'q8' | 'q4') => matmulCost({ ...m, bDtype: d }).bytesRead - 4 * 64 * 576;
    expect(bytes('f32')).toBe(4 * 576 * 576);
    expect(bytes('f16')).toBe(2 * 576 * 576);
    expect(bytes('q8')).toBe((576 * 576 * 34) / 32);
    expect(bytes('q4')).toBe((576 * 576 * 18) / 32);
  });
});

describe('LoRA linear with a quantized W0 (src/kernels/lora.ts takes its type from the tensor)', () => {
  it.each([
    ['q8', false],
    ['q4', true],
  ] as const)(
    '%s W0 (w0Transposed %s): y, dA, dB and dx bit-identical to f32 W0 = dequantize(blocks)',
    async (kind, w0T) => {
      const ctx = await gpu();
      const { lora_forward, lora_backward } = await import('../../src/kernels/lora');
      const [N, IN, OUT, R] = [13, 64, 96, 4];
      const r = rng(kind === 'q8' ? 31 : 32);
      const [rows, cols] = w0T ? [IN, OUT] : [OUT, IN];
      const qb = quantize(kind, r.normal(rows * cols, 0.2), rows, cols);
      const wq = Tensor.fromQuant(ctx, qb, 'w0'),
        wf = Tensor.from(ctx, dequantize(qb), [rows, cols], 'w0.f32');
      const x = Tensor.from(ctx, r.uniform(N * IN), [N, IN]),
        dy = Tensor.from(ctx, r.uniform(N * OUT), [N, OUT]),
        bias = Tensor.from(ctx, r.uniform(OUT), [OUT]);
      const lora = {
        A: Tensor.from(ctx, r.uniform(R * IN), [R, IN]),
        B: Tensor.from(ctx, r.uniform(OUT * R), [OUT, R]),
        scale: 0.5,
        dropout: 0.2,
        seed: 7,
      };
      const run = async (w: Tensor) => {
        const { y, u } = lora_forward(x, w, bias, lora, { w0Transposed: w0T });
        const g = lora_backward(dy, x, u, w, lora, { w0Transposed: w0T, needDx: true });
        const out = await Promise.all([y, g.dA!, g.dB!, g.dx!].map((t) => t.read()));
        [y, u!, g.dA!, g.dB!, g.dx!].forEach((t) => t.free());
        return out.map((a) => Array.from(a));
      };
      const [q, f] = [await run(wq), await run(wf)];
      expect(q).toEqual(f);
      [wq, wf, x, dy, bias, lora.A, lora.B].forEach((t) => t.free());
    },
  );
});
