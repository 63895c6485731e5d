// Matrix multiply: C = alpha · op(A) · op(B) (+ C with accumulate), the workhorse of every linear layer.
// `matmul` takes Tensors; `matmulRaw` takes bindings, leading dimensions and strides, for chunked weights
// (row ranges of a weight bigger than one binding) and strided outputs. The same kernel carries the fused
// LoRA epilogue used by src/kernels/lora.ts (see shaders/matmul.wgsl).
import type { Binding, DispatchCost, GpuContext } from '../gpu/context';
import { GpuError } from '../gpu/context';
import { Tensor } from '../gpu/tensor';

export interface MatmulOpts {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  accumulate?: boolean /* C += alpha·op(A)·op(B) into opts.out */;
  out?: Tensor;
}

export interface MatmulRaw {
  a: Binding;
  b: Binding;
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
  bDtype?: 'f32' | 'f16';
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
export function matmulTile(M: number, N: number): MatmulTile {
  const pow2 = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));
  const tm = Math.min(8, pow2(M));
  let wgN = Math.min(16, pow2(Math.ceil(N / 4)));
  let wgM = Math.min(8, pow2(Math.ceil(M / tm)));
  // widen toward 64 threads per workgroup while the long side still splits into >= 4 workgroups
  while (wgM * wgN < 64 && wgM * tm * 8 <= M) wgM *= 2;
  while (wgM * wgN < 64 && wgN * 4 * 8 <= N) wgN *= 2;
  return { wgM, wgN, tm };
}

const bindingOf = (t: Tensor): Binding => t.binding;

/** Launches the matmul kernel; `lora` and `dropout` are the fused LoRA epilogue and the dropout mask (lora.ts). */
export function matmulRaw(
  ctx: GpuContext,
  m: MatmulRaw,
  lora?: MatmulLora,
  dropout?: MatmulDropout,
  tile?: MatmulTile,
): void {
  const batch = m.batch ?? 1;
  const f16 = m.bDtype === 'f16';
  if (f16) assertF16(ctx);
  if (lora && (m.accumulate || batch !== 1)) throw new Error('matmul: the LoRA epilogue is for a plain 2-D product');
  if (M_N_K_bad(m)) throw new Error(`matmul: bad sizes M=${m.M} N=${m.N} K=${m.K}`);
  const { wgM, wgN, tm } = tile ?? matmulTile(m.M, m.N); // tile: the benchmark's override
  const drop = dropout && dropout.p > 0 ? dropout : undefined;
  // B read as vec4 rows (one load per k) where op(B) rows are 16-byte aligned: +6-9 % on lavapipe at 512-1024,
  // neutral on SwiftShader (measured in one run each).
  const vec4B = !m.transB && m.N % 4 === 0 && m.ldb % 4 === 0 && (m.strideB ?? 0) % 4 === 0 && drop?.on !== 'b';
  const defines = {
    ENABLE_F16: f16 ? 'enable f16;' : '',
    W0T: f16 ? 'f16' : 'f32',
    BELEM: vec4B ? `vec4<${f16 ? 'f16' : 'f32'}>` : f16 ? 'f16' : 'f32',
    B_AT: vec4B ? 'b[i >> 2u][i & 3u]' : 'b[i]',
    B_VEC: vec4B ? 'vec4f(b[i >> 2u])' : 'vec4f(0.0)',
    B_VEC4: vec4B,
    WG_M: wgM,
    WG_N: wgN,
    TM: tm,
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
  // Unused optional inputs are bound to A (read-only aliases are allowed): the kernel always declares them.
  ctx.dispatch('matmul', {
    defines,
    bindings: [m.a, m.b, m.c, m.bias ?? m.a, lora?.u ?? m.a, lora?.v ?? m.a],
    u32: [
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
    ],
    f32: [m.alpha ?? 1, lora?.lscale ?? 0, drop?.p ?? 0],
    workgroups: [Math.ceil(m.N / (4 * wgN)), Math.ceil(m.M / (tm * wgM)), batch],
    cost: matmulCost(m, lora),
  });
}

/** Paper cost of one matmulRaw launch: C (batch, M, N) = alpha·op(A)·op(B), A (batch, M, K), B (batch, K, N)
 * (one B for all when strideB is 0), plus C itself when accumulating, the bias (N,) and the LoRA epilogue's
 * U (M, R) and V (N, R). Each thread loops over K (the epilogue's R-term loop is shorter). */
export function matmulCost(m: MatmulRaw, lora?: MatmulLora): DispatchCost {
  const batch = m.batch ?? 1;
  const MN = batch * m.M * m.N;
  const R = lora?.R ?? 0;
  const bBytes = m.bDtype === 'f16' ? 2 : 4;
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
 * (batch, N, K) with transB (f32, or f16 weights where ctx.hasF16). Returns c (batch, M, N) ([M, N] for 2-D inputs). */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOpts = {}): Tensor {
  const ctx = a.ctx;
  const transA = !!opts.transA,
    transB = !!opts.transB;
  if (a.dtype !== 'f32') throw new Error(`matmul: a must be f32, got ${a.dtype}`);
  if (b.dtype !== 'f32' && b.dtype !== 'f16') throw new Error(`matmul: b must be f32 or f16, got ${b.dtype}`);
  if (b.dtype === 'f16') assertF16(ctx);
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
    a: bindingOf(a),
    b: bindingOf(b),
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
    bDtype: b.dtype as 'f32' | 'f16',
  });
  return c;
}
