// Pass 2 of the chunked LM head: one vocabulary chunk of logits turned in place into its gradient,
// dlogits = (softmax − onehot(target))·gradScale·softcap', from the per-row statistics of pass 1.
// Shader: shaders/head_dlogits.wgsl. CPU twin: head_dlogits.cpu.ts. Used by src/models/head.ts.
import { grid1d } from '../gpu/context';
import type { Tensor } from '../gpu/tensor';

/**
 * logits is (N, VC) f32, columns v0 .. v0 + VC of the (N, V) logits, overwritten by their gradient; targets is
 * (N,) u32 (IGNORE_INDEX rows get zeros); stats is (N, 3) f32 = (m, l, z_t) from head_lse_forward over every chunk.
 */
export function head_dlogits_backward(
  logits: Tensor,
  targets: Tensor,
  stats: Tensor,
  opts: { v0: number; gradScale: number; softcap: number },
): void {
  if (logits.shape.length !== 2 || logits.dtype !== 'f32')
    throw new Error(`head_dlogits: logits must be (N, VC) f32, got [${logits.shape}] ${logits.dtype}`);
  const [N, VC] = logits.shape;
  if (targets.dtype !== 'u32' || targets.numel !== N)
    throw new Error(`head_dlogits: targets must be (${N},) u32, got [${targets.shape}] ${targets.dtype}`);
  if (stats.numel !== 3 * N) throw new Error(`head_dlogits: stats must be (${N}, 3), got [${stats.shape}]`);
  if (!Number.isFinite(opts.gradScale)) throw new Error(`head_dlogits: gradScale ${opts.gradScale} is not finite`);
  if (!(opts.softcap >= 0)) throw new Error(`head_dlogits: softcap ${opts.softcap} must be >= 0`);
  const capFlops = opts.softcap > 0 ? 10 : 0; // softcap (6) and its derivative (4)
  logits.ctx.dispatch('head_dlogits', {
    bindings: [logits.buf, targets.buf, stats.buf],
    u32: [N, VC, opts.v0],
    f32: [opts.gradScale, opts.softcap],
    workgroups: grid1d(N * VC, 256),
    cost: {
      flops: N * VC * (5 + capFlops), // subtract, exp, divide, product, compare-and-subtract
      bytesRead: N * VC * 4 + N * 4 + N * 12,
      bytesWritten: N * VC * 4,
      serialLoop: 1,
    },
  });
}
