// The LM head fused with the softmax cross-entropy and its backward, chunked over the vocabulary so that the
// (N, V) logits never exist (Gemma 3: V = 262k):
//   logits  = x · Wᵀ                     x is (N, C), W is the (V, C) table (tied embedding or lm_head)
//   z       = softcap(logits)            c·tanh(logits / c) with a soft cap c (Gemma 3), else the logits
//   loss[n] = logsumexp(z[n, :]) − z[n, t_n]                      (0 for IGNORE_INDEX rows)
//   dx      = dlogits · W,   dlogits = (softmax(z) − onehot(t))·gradScale·softcap'(z)
// The vocabulary is cut into chunks of at most VC columns, each inside one row chunk of the table:
//   pass 1, per chunk c:  logits_c = x · W_cᵀ (N, vc), one wide matmul over all N rows; head_lse merges it into
//                         each row's running (max m, Σ exp(z − m) = l) and picks z at the target; the last chunk
//                         writes the losses.
//   pass 2, per chunk c (last first: its logits are still in the buffer, the others are recomputed):
//                         head_dlogits turns logits_c into dlogits_c in place, and dx (N, C) += dlogits_c · W_c,
//                         one wide matmul with K = vc.
// Above x, dx and the table, the head holds one (N, VC) chunk and the (N, 3) row statistics. The table may be
// f32, f16 or q8 / q4 blocks (src/gpu/quant.ts): the matmuls read each chunk's rows as they are stored.

import type { GpuContext } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { checkChunks, type RowChunk } from '../kernels/embedding';
import { head_dlogits_backward } from '../kernels/head_dlogits';
import { head_lse_forward } from '../kernels/head_lse';
import { matmulRaw, weightB, weightRowsB, type MatmulRaw } from '../kernels/matmul';
import { softcap_inplace } from '../kernels/softcap';

/** Longest chunk: K of the dx matmul, the longest loop one of its threads runs. */
const MAX_CHUNK = 2048;
/** Chunk widths are multiples of this, so that a chunk's offset into an f32 or f16 table, and into a q8 / q4
 * table's quants and scales (C % 32 == 0), is 256-byte aligned. */
const CHUNK_ALIGN = 128;
/** Bytes of one (N, VC) logits chunk the head may hold. */
const CHUNK_BUDGET = 32 * 1024 * 1024;

/** Vocabulary columns per chunk for N rows: a multiple of 128, at most 2,048, and small enough that the
 * (N, VC) f32 chunk stays within 32 MiB and one storage binding (for N up to maxBindingBytes / 512 rows; headLoss
 * refuses more). The one place the head's chunk width is decided (src/models/memory.ts counts with it). */
export function headChunkCols(N: number, maxBindingBytes: number): number {
  const budget = Math.min(CHUNK_BUDGET, maxBindingBytes);
  const vc = Math.floor(budget / (N * 4) / CHUNK_ALIGN) * CHUNK_ALIGN;
  return Math.min(MAX_CHUNK, Math.max(CHUNK_ALIGN, vc));
}

/** One vocabulary chunk: columns v0 .. v0 + vc, rows r0 .. r0 + vc of a row chunk `table` of the (V, C) table. */
interface VocabChunk {
  table: Tensor;
  r0: number;
  v0: number;
  vc: number;
}

/** The chunk's rows (vc, C) as the matmul's B. */
const chunkB = (ch: VocabChunk): Pick<MatmulRaw, 'b' | 'bScales' | 'bDtype'> => weightRowsB(ch.table, ch.r0, ch.vc);

/** The table's row chunks cut into vocabulary chunks of at most `cols` rows; they must cover 0 .. V exactly. */
function vocabChunks(chunks: RowChunk[], V: number, cols: number): VocabChunk[] {
  const out: VocabChunk[] = [];
  let next = 0;
  for (const ch of [...chunks].sort((a, b) => a.rowStart - b.rowStart)) {
    const rows = ch.table.shape[0];
    if (ch.rowStart !== next) throw new Error(`LM head: table rows ${next}..${ch.rowStart} are in no chunk`);
    for (let r = 0; r < rows; r += cols) {
      const vc = Math.min(cols, rows - r);
      out.push({ table: ch.table, r0: r, v0: ch.rowStart + r, vc });
    }
    next = ch.rowStart + rows;
  }
  if (next !== V) throw new Error(`LM head: the table has ${next} rows, expected V = ${V}`);
  return out;
}

/** logits (N, vc) = x · W_cᵀ, x is (N, C), into the start of `out`. */
function chunkLogits(ctx: GpuContext, x: Tensor, ch: VocabChunk, out: Tensor): void {
  const [N, C] = x.shape;
  matmulRaw(ctx, {
    ...chunkB(ch),
    a: x.buf,
    c: out.buf,
    M: N,
    N: ch.vc,
    K: C,
    lda: C,
    ldb: C,
    ldc: ch.vc,
    transA: false,
    transB: true,
  });
}

/** dx (N, C) (+)= dlogits_c · W_c, dlogits_c is (N, vc) at the start of `dlogits`. */
function chunkDx(ctx: GpuContext, dlogits: Tensor, ch: VocabChunk, dx: Tensor, accumulate: boolean): void {
  const [N, C] = dx.shape;
  matmulRaw(ctx, {
    ...chunkB(ch),
    a: dlogits.buf,
    c: dx.buf,
    M: N,
    N: C,
    K: ch.vc,
    lda: ch.vc,
    ldb: C,
    ldc: C,
    transA: false,
    transB: false,
    accumulate,
  });
}

/** Logits of every row of x (N, C): (N, V), soft-capped when softcap > 0. For generation and tests (a few rows);
 * training uses headLoss. */
export function headLogits(x: Tensor, chunks: RowChunk[], V: number, softcap = 0): Tensor {
  const ctx = x.ctx;
  const [N, C] = x.shape;
  if (checkChunks('headLogits', chunks) !== C) throw new Error(`headLogits: x is [${x.shape}], the table is (V, ?)`);
  if (N * V * 4 > ctx.limits.maxStorageBufferBindingSize)
    throw new Error(`logits (${N} x ${V}) exceed one storage binding; use headLoss`);
  const out = Tensor.empty(ctx, [N, V], 'logits');
  for (const ch of chunks) {
    const rows = ch.table.shape[0];
    matmulRaw(ctx, {
      ...weightB(ch.table),
      a: x.buf,
      c: { buf: out.buf, offset: ch.rowStart * 4, size: ((N - 1) * V + rows) * 4 },
      M: N,
      N: rows,
      K: C,
      lda: C,
      ldb: C,
      ldc: V,
      transA: false,
      transB: true,
    });
  }
  return softcap > 0 ? softcap_inplace(out, softcap) : out;
}

export interface HeadOptions {
  /** Soft cap c of the logits (z = c·tanh(logits / c)); 0 or absent: none. */
  softcap?: number;
  /** Vocabulary columns per chunk (a multiple of 128); default headChunkCols. */
  chunkCols?: number;
}

/**
 * Loss of each row (N,) and, when wantGrad, dx (N, C) = dlogits · W with dlogits = (softmax − onehot)·gradScale.
 * x is (N, C); chunks hold the (V, C) table by rows; targets (N,) are known on the CPU (IGNORE_INDEX for masked
 * rows). A target >= V gives a NaN loss.
 */
export function headLoss(
  x: Tensor,
  chunks: RowChunk[],
  V: number,
  targets: Uint32Array,
  gradScale: number,
  wantGrad: boolean,
  opts: HeadOptions = {},
): { losses: Tensor; dx: Tensor | null } {
  const ctx = x.ctx;
  const [N, C] = x.shape;
  if (x.shape.length !== 2 || x.dtype !== 'f32') throw new Error(`headLoss: x must be (N, C) f32, got [${x.shape}]`);
  if (checkChunks('headLoss', chunks) !== C) throw new Error(`headLoss: x is [${x.shape}], the table's rows differ`);
  if (targets.length !== N) throw new Error(`headLoss: ${targets.length} targets for ${N} rows`);
  const softcap = opts.softcap ?? 0;
  const cols = opts.chunkCols ?? headChunkCols(N, ctx.limits.maxStorageBufferBindingSize);
  if (!Number.isInteger(cols) || cols < 1 || cols % CHUNK_ALIGN !== 0)
    throw new Error(`headLoss: chunkCols ${cols} is not a positive multiple of ${CHUNK_ALIGN}`);
  const vocab = vocabChunks(chunks, V, cols);
  const widest = Math.max(...vocab.map((c) => c.vc));
  if (N * widest * 4 > ctx.limits.maxStorageBufferBindingSize)
    throw new Error(`headLoss: ${N} rows of ${widest} logits exceed one storage binding; use fewer rows`);

  const tgt = Tensor.fromU32(ctx, targets, [N], 'head.targets');
  const stats = Tensor.empty(ctx, [N, 3], 'head.stats'); // (m, l, z_t) per row
  const losses = Tensor.empty(ctx, [N], 'losses');
  const buf = Tensor.empty(ctx, [N, widest], 'head.logits'); // one chunk of logits, then of dlogits
  const view = (ch: VocabChunk) => new Tensor(ctx, buf.buf, [N, ch.vc]);

  // Pass 1: the running log-sum-exp over the chunks; the last writes the losses.
  vocab.forEach((ch, i) => {
    chunkLogits(ctx, x, ch, buf);
    head_lse_forward(view(ch), tgt, stats, losses, {
      v0: ch.v0,
      V,
      first: i === 0,
      last: i === vocab.length - 1,
      softcap,
    });
  });

  // Pass 2: dlogits per chunk, accumulated into dx; the last chunk of pass 1 goes first, its logits still here.
  let dx: Tensor | null = null;
  if (wantGrad) {
    dx = Tensor.empty(ctx, [N, C], 'head.dx');
    [...vocab].reverse().forEach((ch, i) => {
      if (i > 0) chunkLogits(ctx, x, ch, buf);
      head_dlogits_backward(view(ch), tgt, stats, { v0: ch.v0, gradScale, softcap });
      chunkDx(ctx, buf, ch, dx!, i > 0);
    });
  }
  [tgt, stats, buf].forEach((t) => t.free());
  return { losses, dx };
}
