// The LM head: logits = x · Wᵀ against the (V, C) table (tied embedding or lm_head), fused with the
// softmax cross-entropy and its backward. Rows are processed in blocks so that the (rows, V) logits
// stay small (GPT-2: 50,257 columns) and fit one storage binding; the table may be row-chunked.

import type { GpuContext } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { cross_entropy_forward_backward } from '../kernels/cross_entropy';
import type { RowChunk } from '../kernels/embedding';
import { matmulRaw } from '../kernels/matmul';

/** Rows per block: a multiple of 64 (aligned binding offsets) whose logits stay under ~32 MiB and one binding. */
export function headRowsPerBlock(ctx: GpuContext, V: number): number {
  const budget = Math.min(32 * 1024 * 1024, ctx.limits.maxStorageBufferBindingSize);
  return Math.max(64, Math.floor(budget / (V * 4) / 64) * 64);
}

/** logits (n, V) for rows [r0, r0 + n) of x (N, C); writes into `logits`. */
function blockLogits(x: Tensor, r0: number, n: number, chunks: RowChunk[], V: number, logits: Tensor): void {
  const C = x.shape[1];
  for (const ch of chunks) {
    const rows = ch.table.shape[0];
    matmulRaw(x.ctx, {
      a: { buf: x.buf, offset: r0 * C * 4, size: n * C * 4 },
      b: ch.table.buf,
      c: { buf: logits.buf, offset: ch.rowStart * 4, size: ((n - 1) * V + rows) * 4 },
      M: n,
      N: rows,
      K: C,
      lda: C,
      ldb: C,
      ldc: V,
      transA: false,
      transB: true,
      bDtype: ch.table.dtype === 'f16' ? 'f16' : 'f32',
    });
  }
}

/** Logits of every row of x (N, C): (N, V). For generation and tests; training uses headLoss. */
export function headLogits(x: Tensor, chunks: RowChunk[], V: number): Tensor {
  const N = x.shape[0];
  const out = Tensor.empty(x.ctx, [N, V], 'logits');
  const per = headRowsPerBlock(x.ctx, V);
  if (N > per) {
    // Whole-matrix logits are only for small N; keep one binding.
    if (N * V * 4 > x.ctx.limits.maxStorageBufferBindingSize)
      throw new Error(`logits (${N} x ${V}) exceed one storage binding; use headLoss`);
  }
  blockLogits(x, 0, N, chunks, V, out);
  return out;
}

/**
 * Loss of each row (N,) and, when wantGrad, dx (N, C) = dlogits · W with dlogits = (softmax − onehot)·gradScale.
 * targets are known on the CPU (IGNORE_INDEX for masked rows).
 */
export function headLoss(
  x: Tensor,
  chunks: RowChunk[],
  V: number,
  targets: Uint32Array,
  gradScale: number,
  wantGrad: boolean,
): { losses: Tensor; dx: Tensor | null } {
  const ctx = x.ctx;
  const [N, C] = x.shape;
  if (targets.length !== N) throw new Error(`headLoss: ${targets.length} targets for ${N} rows`);
  const losses = Tensor.empty(ctx, [N], 'losses');
  const dx = wantGrad ? Tensor.empty(ctx, [N, C], 'head.dx') : null;
  const per = headRowsPerBlock(ctx, V);
  for (let r0 = 0; r0 < N; r0 += per) {
    const n = Math.min(per, N - r0);
    const logits = Tensor.empty(ctx, [n, V], 'logits');
    blockLogits(x, r0, n, chunks, V, logits);
    const tgt = Tensor.fromU32(ctx, targets.subarray(r0, r0 + n), [n], 'targets');
    const ce = cross_entropy_forward_backward(logits, tgt, { gradScale, wantGrad });
    ctx.copy(ce.losses.buf, 0, losses.buf, r0 * 4, n * 4);
    if (dx && ce.dlogits) {
      chunks.forEach((ch, j) => {
        const rows = ch.table.shape[0];
        matmulRaw(ctx, {
          a: { buf: ce.dlogits!.buf, offset: ch.rowStart * 4, size: ((n - 1) * V + rows) * 4 },
          b: ch.table.buf,
          c: { buf: dx.buf, offset: r0 * C * 4, size: n * C * 4 },
          M: n,
          N: C,
          K: rows,
          lda: V,
          ldb: C,
          ldc: C,
          transA: false,
          transB: false,
          accumulate: j > 0,
          bDtype: ch.table.dtype === 'f16' ? 'f16' : 'f32',
        });
      });
    }
    [logits, tgt, ce.losses, ...(ce.dlogits ? [ce.dlogits] : [])].forEach((t) => t.free());
  }
  return { losses, dx };
}
