// One vocabulary chunk of the chunked LM head: its logits merged into each row's running log-sum-exp (an online
// softmax), the target's logit picked when it falls in the chunk, and on the last chunk the loss
// (head_lse_forward); with the gradient, also the chunk's logits turned in place into the softmax numerators at
// the new running max, and the running dx rescaled to it (head_lse_grad).
// Shaders: shaders/head_lse.wgsl, shaders/head_lse_grad.wgsl (both on shaders/lib_head_lse.wgsl).
// CPU twin: head_lse.cpu.ts. Used by src/models/head.ts.
import { grid1d, type DispatchCost } from '../gpu/context';
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

function check(what: string, logits: Tensor, targets: Tensor, stats: Tensor, losses: Tensor, chunk: LseChunk) {
  if (logits.shape.length !== 2 || logits.dtype !== 'f32')
    throw new Error(`${what}: logits must be (N, VC) f32, got [${logits.shape}] ${logits.dtype}`);
  const [N, VC] = logits.shape;
  if (targets.dtype !== 'u32' || targets.numel !== N)
    throw new Error(`${what}: targets must be (${N},) u32, got [${targets.shape}] ${targets.dtype}`);
  if (stats.numel !== 3 * N || losses.numel !== N)
    throw new Error(`${what}: stats must be (${N}, 3) and losses (${N},), got [${stats.shape}], [${losses.shape}]`);
  if (!(chunk.softcap >= 0)) throw new Error(`${what}: softcap ${chunk.softcap} must be >= 0`);
  return { N, VC };
}

/** The log-sum-exp update's cost (lib_head_lse.wgsl), shared by both kernels. */
function lseCost(N: number, VC: number, WG: number, chunk: LseChunk): DispatchCost {
  const capFlops = chunk.softcap > 0 ? 6 : 0; // a division, exp, add, division, subtraction, product
  return {
    flops: N * VC * (4 + capFlops) + N * WG * 6, // compare, subtract, exp, add per logit; the tree merge
    bytesRead: N * VC * 4 + N * 4 + (chunk.first ? 0 : N * 12),
    bytesWritten: N * 12 + (chunk.last ? N * 4 : 0),
    serialLoop: Math.ceil(VC / WG),
  };
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
  const { N, VC } = check('head_lse', logits, targets, stats, losses, chunk);
  const WG = rowWorkgroupSize(VC);
  logits.ctx.dispatch('head_lse', {
    defines: { WG },
    bindings: [logits.buf, targets.buf, stats.buf, losses.buf],
    u32: [N, VC, chunk.V, chunk.v0, chunk.first ? 1 : 0, chunk.last ? 1 : 0, 0],
    f32: [chunk.softcap],
    workgroups: grid1d(N, 1),
    cost: lseCost(N, VC, WG, chunk),
  });
}

/**
 * head_lse_forward (the same statistics and losses, bit for bit), and then, with m and m' the row's running max
 * before and after this chunk: logits[n, j] ← exp(z[n, j] − m'[n])·softcap'(z[n, j]) in place, and dx (N, C) f32
 * rows ← dx·exp(m − m') (not read on the first chunk). Summing p_c · W_c into dx after each chunk leaves
 * dx[n] = l[n]·Σ_v softmax(z)[v]·softcap'(z_v)·W[v] after the last; head_dx_finish completes the gradient.
 */
export function head_lse_grad(
  logits: Tensor,
  targets: Tensor,
  stats: Tensor,
  losses: Tensor,
  dx: Tensor,
  chunk: LseChunk,
): void {
  const { N, VC } = check('head_lse_grad', logits, targets, stats, losses, chunk);
  if (dx.dtype !== 'f32' || dx.shape.length !== 2 || dx.shape[0] !== N)
    throw new Error(`head_lse_grad: dx must be (${N}, C) f32, got [${dx.shape}] ${dx.dtype}`);
  const C = dx.shape[1];
  const WG = rowWorkgroupSize(VC);
  const lse = lseCost(N, VC, WG, chunk);
  const capFlops = chunk.softcap > 0 ? 10 : 0; // softcap (6) and its derivative (4)
  const rescale = chunk.first ? 0 : N * C; // at most: skipped where the row's max did not move
  logits.ctx.dispatch('head_lse_grad', {
    defines: { WG },
    bindings: [logits.buf, targets.buf, stats.buf, losses.buf, dx.buf],
    u32: [N, VC, chunk.V, chunk.v0, chunk.first ? 1 : 0, chunk.last ? 1 : 0, C],
    f32: [chunk.softcap],
    workgroups: grid1d(N, 1),
    cost: {
      flops: lse.flops + N * VC * (3 + capFlops) + rescale, // p: subtract, exp, product; dx: one product
      bytesRead: lse.bytesRead + N * VC * 4 + rescale * 4,
      bytesWritten: lse.bytesWritten + N * VC * 4 + rescale * 4,
      serialLoop: 2 * Math.ceil(VC / WG) + (chunk.first ? 0 : Math.ceil(C / WG)),
    },
  });
}
