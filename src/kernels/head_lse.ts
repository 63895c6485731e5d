// Pass 1 of the chunked LM head: one vocabulary chunk of logits merged into each row's running log-sum-exp
// (an online softmax), the target's logit picked when it falls in the chunk, and on the last chunk the loss.
// Shader: shaders/head_lse.wgsl. CPU twin: head_lse.cpu.ts. Used by src/models/head.ts.
import { grid1d } from '../gpu/context';
import type { Tensor } from '../gpu/tensor';
import { rowWorkgroupSize } from './rmsnorm';

/** Where a chunk sits in the vocabulary, and what the kernel does with it. */
export interface LseChunk {
  /** First vocabulary column of the chunk. */
  v0: number;
  /** The whole vocabulary (a target >= V gives a NaN loss). */
  V: number;
  /** The first chunk of a row: no running statistics yet. */
  first: boolean;
  /** The last chunk: write the losses. */
  last: boolean;
  /** Soft cap c (z = c·tanh(y / c)); 0 = none. */
  softcap: number;
}

/**
 * logits is (N, VC) f32, columns v0 .. v0 + VC of the (N, V) logits; targets is (N,) u32 (IGNORE_INDEX for
 * masked rows); stats is (N, 3) f32 = (running max m, running Σ exp(z − m), target logit), updated in place;
 * losses is (N,) f32, written when chunk.last: (m + log l) − z_t, 0 for ignored rows, NaN for a target >= V.
 */
export function head_lse_forward(
  logits: Tensor,
  targets: Tensor,
  stats: Tensor,
  losses: Tensor,
  chunk: LseChunk,
): void {
  if (logits.shape.length !== 2 || logits.dtype !== 'f32')
    throw new Error(`head_lse: logits must be (N, VC) f32, got [${logits.shape}] ${logits.dtype}`);
  const [N, VC] = logits.shape;
  if (targets.dtype !== 'u32' || targets.numel !== N)
    throw new Error(`head_lse: targets must be (${N},) u32, got [${targets.shape}] ${targets.dtype}`);
  if (stats.numel !== 3 * N || losses.numel !== N)
    throw new Error(`head_lse: stats must be (${N}, 3) and losses (${N},), got [${stats.shape}], [${losses.shape}]`);
  if (!(chunk.softcap >= 0)) throw new Error(`head_lse: softcap ${chunk.softcap} must be >= 0`);
  const WG = rowWorkgroupSize(VC);
  const capFlops = chunk.softcap > 0 ? 6 : 0; // a division, exp, add, division, subtraction, product
  logits.ctx.dispatch('head_lse', {
    defines: { WG },
    bindings: [logits.buf, targets.buf, stats.buf, losses.buf],
    u32: [N, VC, chunk.V, chunk.v0, chunk.first ? 1 : 0, chunk.last ? 1 : 0],
    f32: [chunk.softcap],
    workgroups: grid1d(N, 1),
    cost: {
      flops: N * VC * (4 + capFlops) + N * WG * 6, // compare, subtract, exp, add per logit; the tree merge
      bytesRead: N * VC * 4 + N * 4 + (chunk.first ? 0 : N * 12),
      bytesWritten: N * 12 + (chunk.last ? N * 4 : 0),
      serialLoop: Math.ceil(VC / WG),
    },
  });
}
