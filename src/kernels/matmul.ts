// Matrix multiply: C = alpha · op(A) · op(B) (+ C with accumulate), the workhorse of every linear layer.
// `matmul` takes Tensors; `matmulRaw` takes bindings, leading dimensions and strides, for chunked weights
// (row ranges of a weight bigger than one binding) and strided outputs. The kernels carry the fused LoRA
// epilogue used by src/kernels/lora.ts (see shaders/matmul.wgsl). matmulRaw runs one of several variants (below):
// the one forced by setMatmulPolicy / WEBLORA_MATMUL, else the autotuner's pick for the call's shape class
// (src/kernels/autotune.ts), else the baseline, today's register-blocked kernel.
// B (the weight) may be f32, f16, or q8 / q4 blocks of a frozen weight (src/gpu/quant.ts): every variant reads the
// blocks as they are and dequantizes in registers (or while staging into workgroup memory), never in GPU memory.
import type { Binding, DispatchCost, GpuContext } from '../gpu/context';
import { GpuError } from '../gpu/context';
import { QUANT_BLOCK, quantWordsPerBlock, type QuantKind } from '../gpu/quant';
import { isQuant, Tensor } from '../gpu/tensor';

export interface MatmulOpts {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  accumulate?: boolean /* C += alpha·op(A)·op(B) into opts.out */;
  out?: Tensor;
}

/** B's element type: f32, f16 (weights, where the adapter has shader-f16), or q8 / q4 blocks (src/gpu/quant.ts). */
export type BDtype = 'f32' | 'f16' | QuantKind;

export interface MatmulRaw {
  a: Binding;
  b: Binding /* q8 / q4: the blocks' quants (Tensor.quantParts.q); ldb, strideB count values, as for f32 */;
  /** q8 / q4 B: its f16 scales (Tensor.quantParts.scales) */
  bScales?: Binding;
  c: Binding;
  bias?: Binding /* (N,) added to each row */;
  M: number;
  N: number;
  K: number;
  lda: number;
  ldb: number;
  ldc: number;
  transA: boolean;
  transB: boolean;
  batch?: number;
  strideA?: number;
  strideB?: number;
  strideC?: number;
  alpha?: number;
  accumulate?: boolean;
  bDtype?: BDtype;
}

/** A weight tensor as matmulRaw's B: its binding(s) and element type. */
export function weightB(w: Tensor): Pick<MatmulRaw, 'b' | 'bScales' | 'bDtype'> {
  if (isQuant(w.dtype)) {
    const { q, scales } = w.quantParts;
    return { b: q, bScales: scales, bDtype: w.dtype };
  }
  if (w.dtype !== 'f32' && w.dtype !== 'f16')
    throw new Error(`matmul: a weight must be f32, f16, q8 or q4, got ${w.dtype}`);
  if (w.dtype === 'f16') assertF16(w.ctx);
  return { b: w.binding, bDtype: w.dtype };
}

/** Rows rowStart .. rowStart + rows of a 2-D weight (rows, cols) as matmulRaw's B (a chunk of the LM head). The
 * rows' bytes must start 256-byte aligned (for q8 / q4 both the quants and the scales), which the caller ensures
 * by choosing rowStart (a multiple of 128 rows for any cols % 32 == 0). */
export function weightRowsB(w: Tensor, rowStart: number, rows: number): Pick<MatmulRaw, 'b' | 'bScales' | 'bDtype'> {
  const cols = w.shape[w.shape.length - 1];
  if (rowStart === 0 && rows * cols === w.numel) return weightB(w);
  const whole = weightB(w);
  const part = (bind: Binding, bytesPerValue: number): Binding => {
    const r = 'buf' in bind ? bind : { buf: bind, offset: 0, size: bind.size };
    return { buf: r.buf, offset: r.offset + rowStart * cols * bytesPerValue, size: rows * cols * bytesPerValue };
  };
  if (isQuant(w.dtype)) {
    const perValue = (quantWordsPerBlock(w.dtype) * 4) / QUANT_BLOCK;
    return { ...whole, b: part(whole.b, perValue), bScales: part(whole.bScales!, 2 / QUANT_BLOCK) };
  }
  return { ...whole, b: part(whole.b, w.dtype === 'f16' ? 2 : 4) };
}

/** WGSL spellings of B's loads (defines of the matmul shaders): its array's element type BELEM, value i as f32
 * (B_AT), and values i .. i + 3 as a vec4f (B_VEC, i a multiple of 4; only where `vec4`, else unused).
 * q8 / q4: one word of quants and one of scales per load, dequantized by shaders/lib_quant.wgsl. */
function bAccess(dtype: BDtype, vec4: boolean) {
  if (isQuant(dtype)) {
    const word = (i: string) => `b[${dtype}_word(${i})], bs[(${i}) >> 6u], ${i}`;
    return {
      BELEM: 'u32',
      B_AT: `${dtype}_at(${word('i')})`,
      B_VEC: vec4 ? `${dtype}_vec(${word('i')})` : 'vec4f(0.0)',
    };
  }
  return {
    BELEM: vec4 ? `vec4<${dtype}>` : dtype,
    B_AT: vec4 ? 'f32(b[i >> 2u][i & 3u])' : 'f32(b[i])',
    B_VEC: vec4 ? 'vec4f(b[i >> 2u])' : 'vec4f(0.0)',
  };
}

/** The LoRA epilogue and dropout options of the kernel (used by lora.ts): C[m, n] += lscale · mask · Σ_j u[m, j] · op(v)[j, n]. */
export interface MatmulLora {
  u: Binding /* (M, R) */;
  v: Binding /* (N, R), or (R, N) when vT */;
  R: number;
  ldv: number;
  vT: boolean;
  lscale: number;
}
export interface MatmulDropout {
  seed: number;
  p: number;
  dropLd: number /* row stride of x in the mask index row * dropLd + col */;
  on: 'a' | 'b' | 'epilogue';
}

/** A workgroup of wgM x wgN threads, each computing tm rows x 4 columns of C (tm = 1, 2, 4 or 8).
 * Measured (bench/tune.ts, 512³, min of 5, busy 2-core machine): 8x4 per thread beat 4x4 by 1.3-1.9x on
 * lavapipe and ~1.3x on SwiftShader; 2x4 was worst on both; 8x16 and 16x16 threads were within noise of each
 * other on both drivers, so one choice serves both: a 64x64 tile of 8x16 threads. Skinny outputs (the rank-r
 * products of LoRA) get narrow tiles so that threads are not left idle. */
export interface MatmulTile {
  wgM: number;
  wgN: number;
  tm: number;
}
export function matmulTile(M: number, N: number, K = 0, batch = 1, wideGrid = false): MatmulTile {
  const pow2 = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));
  const tm = Math.min(8, pow2(M));
  let wgN = Math.min(16, pow2(Math.ceil(N / 4)));
  let wgM = Math.min(8, pow2(Math.ceil(M / tm)));
  // widen toward 64 threads per workgroup while the long side still splits into >= 4 workgroups
  while (wgM * wgN < 64 && wgM * tm * 8 <= M) wgM *= 2;
  while (wgM * wgN < 64 && wgN * 4 * 8 <= N) wgN *= 2;
  // On a real GPU (wideGrid) a big product (> WIDE_GRID_MFLOP) on a narrow grid starves the chip (it wants >= 2
  // workgroups per compute unit: 264 on an H200): narrow the tile's columns, then rows, down to 32 threads. Each
  // output is still one thread's K loop, so results are bit-identical. Software drivers keep the tiles tuned there.
  // A K loop longer than LONG_LOOP (the LM head's dx, K = its vocabulary chunk) wants LONG_LOOP_WORKGROUPS, so
  // that the long serial loop runs on many units at once.
  const grid = () => Math.ceil(M / (wgM * tm)) * Math.ceil(N / (wgN * 4)) * batch;
  const want = K > LONG_LOOP ? LONG_LOOP_WORKGROUPS : WIDE_GRID_WORKGROUPS;
  if (wideGrid && 2 * M * N * K * batch > WIDE_GRID_MFLOP * 1e6) {
    while (grid() < want && wgN > 4 && wgM * wgN > 32) wgN /= 2;
    while (grid() < want && wgM > 4 && wgM * wgN > 32) wgM /= 2;
  }
  return { wgM, wgN, tm };
}
/** Products above this many MFLOP get at least WIDE_GRID_WORKGROUPS workgroups where the tile can shrink. */
export const WIDE_GRID_MFLOP = 10;
export const WIDE_GRID_WORKGROUPS = 264;
/** Products with a K loop longer than LONG_LOOP get at least LONG_LOOP_WORKGROUPS where the tile can shrink. */
export const LONG_LOOP = 2048;
export const LONG_LOOP_WORKGROUPS = 1024;

const bindingOf = (t: Tensor): Binding => t.binding;

// ---- variants ----------------------------------------------------------------------------------------------
// Every variant computes the same function (CPU twin: src/kernels/matmul.cpu.ts) with every option matmulRaw has:
//   baseline          shaders/matmul.wgsl, register-blocked, no workgroup memory (the fastest on software Vulkan)
//   tile64-bk16/32    shaders/matmul_tiled.wgsl, 64 x 64 tile of C per 256 threads, BK 16 or 32 staged in workgroup
//   tile128-bk16      memory; 128 x 128 (8 x 8 per thread) only at BK 16: at BK 32 its tiles take 32 KiB, over 16 KiB
//   splitk            shaders/matmul_splitk.wgsl, a 4 x 4 tile per 256 threads, K split over them (skinny C, long K)
//   splitk-subgroups  the same, reduced with subgroupAdd first (only where the adapter has `subgroups`)
export const MATMUL_VARIANTS = [
  'baseline',
  'tile64-bk16',
  'tile64-bk32',
  'tile128-bk16',
  'splitk',
  'splitk-subgroups',
] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];
/** 'auto': the autotuner's choice per shape class (baseline where it has none); a variant or 'baseline' forces it. */
export type MatmulPolicy = MatmulVariant | 'auto';

export function isMatmulPolicy(s: string): s is MatmulPolicy {
  return s === 'auto' || (MATMUL_VARIANTS as readonly string[]).includes(s);
}

/** Whether `v` can run on this adapter (every variant supports every option of matmulRaw; see variantSupports). */
export function variantAvailable(ctx: GpuContext, v: MatmulVariant): boolean {
  return v !== 'splitk-subgroups' || ctx.hasSubgroups;
}

/** Whether `v` runs this call: available, and not splitk-subgroups with an f16, q8 or q4 B (on lavapipe the f16
 * pipeline did not finish within 120 s in the tests, and a q8 or q4 one took 40-58 s each on a loaded machine,
 * against ~1 s for the other variants: too long for the autotuner at model load; those products run on splitk). */
export function variantSupports(ctx: GpuContext, v: MatmulVariant, m: { bDtype?: BDtype }): boolean {
  return variantAvailable(ctx, v) && !(v === 'splitk-subgroups' && (m.bDtype ?? 'f32') !== 'f32');
}

interface MatmulChoices {
  policy?: MatmulPolicy /* the setting; unset: WEBLORA_MATMUL, else 'auto' */;
  byClass: Map<string, MatmulVariant> /* the autotuner's picks */;
}
const choicesOf = new WeakMap<GpuContext, MatmulChoices>();
function choices(ctx: GpuContext): MatmulChoices {
  let c = choicesOf.get(ctx);
  if (!c) choicesOf.set(ctx, (c = { byClass: new Map() }));
  return c;
}

/** The environment's WEBLORA_MATMUL (Node only), checked. */
export function envMatmulPolicy(): MatmulPolicy | undefined {
  const env = typeof process !== 'undefined' ? process.env?.WEBLORA_MATMUL : undefined;
  if (!env) return undefined;
  if (!isMatmulPolicy(env))
    throw new Error(`WEBLORA_MATMUL='${env}' is not one of auto, ${MATMUL_VARIANTS.join(', ')}`);
  return env;
}

/** The setting: force a variant (or 'baseline') for every matmul on ctx, or 'auto'; undefined: back to the env var. */
export function setMatmulPolicy(ctx: GpuContext, policy: MatmulPolicy | undefined): void {
  choices(ctx).policy = policy;
}
export function matmulPolicy(ctx: GpuContext): MatmulPolicy {
  return choices(ctx).policy ?? envMatmulPolicy() ?? 'auto';
}
/** Records the autotuner's pick for a shape class (see matmulShapeClass). */
export function setMatmulChoice(ctx: GpuContext, shapeClass: string, v: MatmulVariant): void {
  choices(ctx).byClass.set(shapeClass, v);
}
export function matmulChoices(ctx: GpuContext): ReadonlyMap<string, MatmulVariant> {
  return choices(ctx).byClass;
}

/** The shape class of a product: layout (N/T for op(A), op(B)), B's element type, batched or not, and M, N, K
 * rounded up to powers of two (at least 16). Products of one class run best on the same variant. */
export function matmulShapeClass(m: {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  bDtype?: BDtype;
  batch?: number;
}): string {
  const b = (x: number) => Math.max(16, 2 ** Math.ceil(Math.log2(x)));
  const lay = (m.transA ? 'T' : 'N') + (m.transB ? 'T' : 'N');
  return `${lay} ${m.bDtype ?? 'f32'}${(m.batch ?? 1) > 1 ? ' batched' : ''} M${b(m.M)} N${b(m.N)} K${b(m.K)}`;
}

/** The variant a call runs on: the forced one, else the tuned one for its class, else baseline. */
export function matmulVariantFor(ctx: GpuContext, m: MatmulRaw): MatmulVariant {
  const policy = matmulPolicy(ctx);
  const v = policy === 'auto' ? (choices(ctx).byClass.get(matmulShapeClass(m)) ?? 'baseline') : policy;
  return variantSupports(ctx, v, m) ? v : 'baseline';
}

/** Launches a matmul; `lora` and `dropout` are the fused LoRA epilogue and the dropout mask (lora.ts). `tile`
 * (the baseline's thread tile) and `variant` override the choice (benchmarks, tests, the autotuner). */
export function matmulRaw(
  ctx: GpuContext,
  m: MatmulRaw,
  lora?: MatmulLora,
  dropout?: MatmulDropout,
  tile?: MatmulTile,
  variant?: MatmulVariant,
): void {
  const batch = m.batch ?? 1;
  const f16 = m.bDtype === 'f16';
  if (f16) assertF16(ctx);
  const quant = isQuant(m.bDtype ?? 'f32');
  if (quant !== !!m.bScales) throw new Error(`matmul: bScales goes with a q8 / q4 B (bDtype ${m.bDtype ?? 'f32'})`);
  if (lora && batch !== 1) throw new Error('matmul: the LoRA epilogue is for a plain 2-D product');
  if (M_N_K_bad(m)) throw new Error(`matmul: bad sizes M=${m.M} N=${m.N} K=${m.K}`);
  const drop = dropout && dropout.p > 0 ? dropout : undefined;
  const v = tile ? 'baseline' : (variant ?? matmulVariantFor(ctx, m));
  if (!variantSupports(ctx, v, m))
    throw new GpuError(`matmul: variant ${v} cannot run this product (needs subgroups; f32 B only)`);
  const common = {
    ENABLE_F16: f16 ? 'enable f16;' : '',
    TRANS_A: m.transA,
    TRANS_B: m.transB,
    HAS_BIAS: !!m.bias,
    ACCUM: !!m.accumulate,
    LORA: !!lora,
    LORA_VT: !!lora?.vT,
    MASK_A: drop?.on === 'a',
    MASK_B: drop?.on === 'b',
    MASK_EPI: drop?.on === 'epilogue',
  };
  // Unused optional inputs are bound to A (read-only aliases are allowed): the kernels always declare them.
  const bindings = [m.a, m.b, m.c, m.bias ?? m.a, lora?.u ?? m.a, lora?.v ?? m.a, m.bScales ?? m.a];
  const u32 = [
    m.M,
    m.N,
    m.K,
    m.lda,
    m.ldb,
    m.ldc,
    m.strideA ?? 0,
    m.strideB ?? 0,
    m.strideC ?? 0,
    lora?.R ?? 0,
    lora?.ldv ?? 0,
    (drop?.seed ?? 0) >>> 0,
    drop?.dropLd ?? 0,
  ];
  const f32 = [m.alpha ?? 1, lora?.lscale ?? 0, drop?.p ?? 0];
  if (v === 'baseline') {
    const { wgM, wgN, tm } = tile ?? matmulTile(m.M, m.N, m.K, m.batch ?? 1, !ctx.softwareAdapter);
    // B read as vec4 rows (one load per k) where op(B) rows are 16-byte aligned: +6-9 % on lavapipe at 512-1024,
    // neutral on SwiftShader (measured in one run each).
    const vec4B = !m.transB && m.N % 4 === 0 && m.ldb % 4 === 0 && (m.strideB ?? 0) % 4 === 0 && drop?.on !== 'b';
    const defines = {
      ...common,
      ...bAccess(m.bDtype ?? 'f32', vec4B),
      B_VEC4: vec4B,
      WG_M: wgM,
      WG_N: wgN,
      TM: tm,
    };
    ctx.dispatch('matmul', {
      defines,
      bindings,
      u32,
      f32,
      workgroups: [Math.ceil(m.N / (4 * wgN)), Math.ceil(m.M / (tm * wgM)), batch],
      cost: matmulCost(m, lora),
    });
  } else if (v === 'splitk' || v === 'splitk-subgroups') {
    const sg = v === 'splitk-subgroups';
    const defines = {
      ...common,
      ENABLE_SUBGROUPS: sg ? 'enable subgroups;' : '',
      SG_ADD: sg ? 'subgroupAdd(x)' : 'x',
      SG_KEEP: sg ? 'subgroupElect()' : 'true',
      ...bAccess(m.bDtype ?? 'f32', false),
    };
    ctx.dispatch('matmul_splitk', {
      defines,
      bindings,
      u32,
      f32,
      workgroups: [Math.ceil(m.N / 4), Math.ceil(m.M / 4), batch],
      // each thread sums ceil(K / 256) terms, then 4 rows of an 8-step tree
      cost: { ...matmulCost(m, lora), serialLoop: Math.ceil(m.K / 256) + 8 * 4 + (lora?.R ?? 0) },
    });
  } else {
    const [BMN, BK] = v === 'tile64-bk16' ? [64, 16] : v === 'tile64-bk32' ? [64, 32] : [128, 16];
    // 4 consecutive elements of an operand's contiguous dimension per load where that extent, its leading
    // dimension and its batch stride are multiples of 4 (binding offsets are 256-byte multiples already).
    const aVec = (m.transA ? m.M : m.K) % 4 === 0 && m.lda % 4 === 0 && (m.strideA ?? 0) % 4 === 0;
    const bVec = (m.transB ? m.K : m.N) % 4 === 0 && m.ldb % 4 === 0 && (m.strideB ?? 0) % 4 === 0;
    const defines = {
      ...common,
      AELEM: aVec ? 'vec4f' : 'f32',
      A_AT: aVec ? 'a[i >> 2u][i & 3u]' : 'a[i]',
      A_VEC: aVec ? 'a[i >> 2u]' : 'vec4f(0.0)',
      A_VEC4: aVec,
      ...bAccess(m.bDtype ?? 'f32', bVec),
      B_VEC4: bVec,
      BM: BMN,
      BN: BMN,
      BK,
    };
    ctx.dispatch('matmul_tiled', {
      defines,
      bindings,
      u32,
      f32,
      workgroups: [Math.ceil(m.N / BMN), Math.ceil(m.M / BMN), batch],
      cost: matmulCost(m, lora),
    });
  }
}

/** Bytes of global memory per value of B: 4 (f32), 2 (f16), or a q8 / q4 block's quants and f16 scale over its
 * 32 values (1.0625, 0.5625): a quantized weight is read as it is stored. */
export function bBytesPerValue(d: BDtype = 'f32'): number {
  return isQuant(d) ? (quantWordsPerBlock(d) * 4 + 2) / QUANT_BLOCK : d === 'f16' ? 2 : 4;
}

/** Paper cost of one matmulRaw launch: C (batch, M, N) = alpha·op(A)·op(B), A (batch, M, K), B (batch, K, N)
 * (one B for all when strideB is 0; bBytesPerValue bytes a value), plus C itself when accumulating, the bias (N,)
 * and the LoRA epilogue's U (M, R) and V (N, R). Each thread loops over K (the epilogue's R-term loop is shorter). */
export function matmulCost(m: MatmulRaw, lora?: MatmulLora): DispatchCost {
  const batch = m.batch ?? 1;
  const MN = batch * m.M * m.N;
  const R = lora?.R ?? 0;
  const bBytes = bBytesPerValue(m.bDtype);
  const aCopies = batch > 1 && m.strideA ? batch : 1;
  const bCopies = batch > 1 && m.strideB ? batch : 1;
  return {
    flops: 2 * MN * m.K + 2 * MN * R + (m.bias ? MN : 0) + (m.accumulate ? MN : 0),
    bytesRead:
      4 * aCopies * m.M * m.K +
      bBytes * bCopies * m.K * m.N +
      (m.accumulate ? 4 * MN : 0) +
      (m.bias ? 4 * m.N : 0) +
      4 * R * (m.M + m.N),
    bytesWritten: 4 * MN,
    serialLoop: m.K,
  };
}

/** f16 weights are refused (not silently widened) where the adapter has no shader-f16: the caller uploads f32. */
export function assertF16(ctx: GpuContext): void {
  if (!ctx.hasF16) {
    throw new GpuError(
      'matmul: f16 weights need the shader-f16 feature, which this adapter lacks; upload the weights as f32',
    );
  }
}

function M_N_K_bad(m: MatmulRaw): boolean {
  return ![m.M, m.N, m.K].every((x) => Number.isInteger(x) && x >= 1);
}

/** c = alpha · op(a) · op(b). a is (batch, M, K), or (batch, K, M) with transA; b is (batch, K, N), or
 * (batch, N, K) with transB (f32, f16 weights where ctx.hasF16, or a 2-D q8 / q4 weight). Returns c (batch, M, N) ([M, N] for 2-D inputs). */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOpts = {}): Tensor {
  const ctx = a.ctx;
  const transA = !!opts.transA,
    transB = !!opts.transB;
  if (a.dtype !== 'f32') throw new Error(`matmul: a must be f32, got ${a.dtype}`);
  const bw = weightB(b); // f32, f16 or q8 / q4 (2-D)
  const as3 = (t: Tensor, what: string) => {
    if (t.shape.length === 2) return [1, t.shape[0], t.shape[1]];
    if (t.shape.length === 3) return [...t.shape];
    throw new Error(`matmul: ${what} must be 2-D or 3-D, got [${t.shape}]`);
  };
  const [ba, ra, ca] = as3(a, 'a');
  const [bb, rb, cb] = as3(b, 'b');
  const M = transA ? ca : ra,
    K = transA ? ra : ca;
  const Kb = transB ? cb : rb,
    N = transB ? rb : cb;
  if (K !== Kb) throw new Error(`matmul: inner sizes differ: op(a) is ${M}x${K}, op(b) is ${Kb}x${N}`);
  if (ba !== bb) throw new Error(`matmul: batch sizes differ (${ba} vs ${bb})`);
  const batch = ba;
  const shape = a.shape.length === 2 && b.shape.length === 2 ? [M, N] : [batch, M, N];
  let c: Tensor;
  if (opts.out) {
    if (opts.out.numel !== batch * M * N) throw new Error(`matmul: out is [${opts.out.shape}], expected [${shape}]`);
    c = opts.out;
  } else {
    if (opts.accumulate) throw new Error('matmul: accumulate needs opts.out');
    c = Tensor.empty(ctx, shape, 'matmul.out');
  }
  matmulRaw(ctx, {
    ...bw,
    a: bindingOf(a),
    c: bindingOf(c),
    M,
    N,
    K,
    lda: ca,
    ldb: cb,
    ldc: N,
    transA,
    transB,
    batch,
    strideA: ra * ca,
    strideB: rb * cb,
    strideC: M * N,
    alpha: opts.alpha ?? 1,
    accumulate: !!opts.accumulate,
  });
  return c;
}
