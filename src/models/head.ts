// The LM head fused with the softmax cross-entropy and its backward, chunked over the vocabulary so that the
// (N, V) logits never exist (Gemma 3: V = 262k):
//   logits  = x · Wᵀ                     x is (N, C), W is the (V, C) table (tied embedding or lm_head)
//   z       = softcap(logits)            c·tanh(logits / c) with a soft cap c (Gemma 3), else the logits
//   loss[n] = logsumexp(z[n, :]) − z[n, t_n]                      (0 for IGNORE_INDEX rows)
//   dx      = dlogits · W,   dlogits = (softmax(z) − onehot(t))·gradScale·softcap'(z)
// The vocabulary is cut into chunks of at most VC columns (headChunkCols: 4,096 at 4,096 rows), each inside one
// row chunk of the table, and walked
// once, with an online softmax (as FlashAttention does for its output): per row the running max m, the running
// l = Σ exp(z − m) and z at the target, and with the gradient a running dx kept at the scale of the current m.
// Per chunk c:
//   logits_c = x · W_cᵀ (N, vc)       one wide matmul over all N rows
//   head_lse (without the gradient)    merges logits_c into (m, l, z_t); the last chunk writes the losses
//   head_lse_grad (with it)            the same, then, with m' the new max: dx[n] *= exp(m − m'), and logits_c
//                                      turned in place into p_c = exp(z_c − m')·softcap'(z_c)
//   dx (N, C) += p_c · W_c             one wide matmul with K = vc (the first chunk writes dx)
// so that after the last chunk dx[n] = l[n]·Σ_v softmax(z)[v]·softcap'(z_v)·W[v]. Then the target rows W[t_n]
// are gathered into the logits buffer (the embedding gather, one dispatch per row chunk of the table) and
// head_dx finishes: dx[n] = gradScale·(dx[n]/l[n] − softcap'(z_t)·W[t_n]), 0 for ignored rows. Three dispatches
// per chunk and three at the end (for a table in one row chunk); no logits are computed twice.
// Above x, dx and the table, the head holds one (N, max(VC, C)) buffer (a chunk of logits, then the target rows)
// and the (N, 3) row statistics. The table may be f32, f16 or q8 / q4 blocks (src/gpu/quant.ts): the matmuls
// and the gather read each chunk's rows as they are stored.

import type { GpuContext } from '../gpu/context';
import { Tensor, VIEW_ALIGN } from '../gpu/tensor';
import { checkChunks, embedding_forward, type RowChunk } from '../kernels/embedding';
import { head_dx_finish } from '../kernels/head_dx';
import { head_lse_forward, head_lse_grad } from '../kernels/head_lse';
import { matmulRaw, weightB, weightRowsB, type MatmulRaw } from '../kernels/matmul';
import { softcap_inplace } from '../kernels/softcap';

/** Longest chunk: K of the dx matmul, the longest loop one of its threads runs (on a real GPU matmulTile gives
 * a loop longer than LONG_LOOP a grid of LONG_LOOP_WORKGROUPS where it can). */
const MAX_CHUNK = 4096;
/** Chunk widths are multiples of this, so that a chunk's offset into an f32 or f16 table, and into a q8 / q4
 * table's quants and scales (C % 32 == 0), is 256-byte aligned. */
const CHUNK_ALIGN = 128;
/** Bytes of one (N, VC) logits chunk the head may hold. */
const CHUNK_BUDGET = 64 * 1024 * 1024;

/** Vocabulary columns per chunk for N rows: a multiple of 128, at most 4,096, and small enough that the
 * (N, VC) f32 chunk stays within 64 MiB and one storage binding (for N up to maxBindingBytes / 512 rows; headLoss
 * refuses more). The one place the head's chunk width is decided (src/models/memory.ts counts with it). */
export function headChunkCols(N: number, maxBindingBytes: number): number {
  const budget = Math.min(CHUNK_BUDGET, maxBindingBytes);
  const vc = Math.floor(budget / (N * 4) / CHUNK_ALIGN) * CHUNK_ALIGN;
  return Math.min(MAX_CHUNK, Math.max(CHUNK_ALIGN, vc));
}

/** Columns of the head's one (N, cols) buffer: a chunk of vc logits, then the (N, C) target rows of the table.
 * The one place its size is decided (src/models/memory.ts counts with it). */
export function headBufferCols(vc: number, C: number): number {
  return Math.max(vc, C);
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

/** dx (N, C) (+)= p_c · W_c, p_c is (N, vc) at the start of `p`. */
function chunkDx(ctx: GpuContext, p: Tensor, ch: VocabChunk, dx: Tensor, accumulate: boolean): void {
  const [N, C] = dx.shape;
  matmulRaw(ctx, {
    ...chunkB(ch),
    a: p.buf,
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
  // each chunk's columns start at a binding offset: a multiple of VIEW_ALIGN bytes (64 rows of f32 logits)
  const misaligned = chunks.find((ch) => (ch.rowStart * 4) % VIEW_ALIGN !== 0);
  if (misaligned)
    throw new Error(
      `headLogits: a table chunk starts at row ${misaligned.rowStart}, not a multiple of ${VIEW_ALIGN / 4} rows; split the table at such rows`,
    );
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
 * Loss of each row (N,) and, when wantGrad, dx (N, C) = dlogits · W with dlogits = (softmax − onehot)·gradScale
 * (times softcap' under a soft cap).
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
  const buf = Tensor.empty(ctx, [N, headBufferCols(widest, C)], 'head.logits'); // a chunk of logits, then W[t]
  const view = (cols: number) => new Tensor(ctx, buf.buf, [N, cols]);
  const dx = wantGrad ? Tensor.empty(ctx, [N, C], 'head.dx') : null;

  // One pass over the chunks: the running log-sum-exp; with the gradient also p_c and the running dx.
  vocab.forEach((ch, i) => {
    const chunk = { v0: ch.v0, V, first: i === 0, last: i === vocab.length - 1, softcap };
    chunkLogits(ctx, x, ch, buf);
    if (dx) {
      head_lse_grad(view(ch.vc), tgt, stats, losses, dx, chunk);
      chunkDx(ctx, buf, ch, dx, i > 0);
    } else {
      head_lse_forward(view(ch.vc), tgt, stats, losses, chunk);
    }
  });

  // dx[n] = gradScale·(dx[n]/l[n] − softcap'(z_t)·W[t_n]): the target rows gathered into the logits buffer.
  if (dx) {
    const wt = view(C);
    embedding_forward(tgt, chunks, wt);
    head_dx_finish(dx, tgt, stats, wt, { gradScale, softcap });
  }
  [tgt, stats, buf].forEach((t) => t.free());
  return { losses, dx };
}
