// Softmax cross-entropy over V classes, forward and backward in one kernel (the LM head's loss): per row the
// loss and, when wanted, dlogits = (softmax - onehot)·gradScale, so the (N, V) probabilities are never stored.
// Shader: shaders/cross_entropy.wgsl. CPU twin: cross_entropy.cpu.ts.
import { grid1d } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { IGNORE_INDEX } from './ignore_index';
import { rowWorkgroupSize } from './rmsnorm';
import { rowCost } from './cost';

export { IGNORE_INDEX };

/**
 * logits is (N, V) f32; targets is (N,) u32 (IGNORE_INDEX for masked rows). Returns losses (N,) (0 for ignored
 * rows, NaN for a target >= V) and, when wantGrad, dlogits (N, V) = (softmax(logits) - onehot(target))·gradScale
 * (zero rows for ignored targets). gradScale is typically 1 / (number of counted targets), the mean's gradient.
 */
export function cross_entropy_forward_backward(
  logits: Tensor,
  targets: Tensor,
  opts: { gradScale: number; wantGrad: boolean },
): { losses: Tensor; dlogits: Tensor | null } {
  if (logits.shape.length !== 2 || logits.dtype !== 'f32') {
    throw new Error(`cross_entropy: logits must be (N, V) f32, got [${logits.shape}] ${logits.dtype}`);
  }
  const [N, V] = logits.shape;
  if (targets.dtype !== 'u32' || targets.numel !== N) {
    throw new Error(`cross_entropy: targets must be (${N},) u32, got [${targets.shape}] ${targets.dtype}`);
  }
  if (!Number.isFinite(opts.gradScale)) throw new Error(`cross_entropy: gradScale ${opts.gradScale} is not finite`);
  const ctx = logits.ctx;
  const losses = Tensor.empty(ctx, [N], 'ce.losses');
  const dlogits = opts.wantGrad ? Tensor.empty(ctx, [N, V], 'ce.dlogits') : null;
  // Without a gradient the kernel writes nothing to binding 4, but the layout still needs a buffer there.
  const sink = dlogits ?? Tensor.empty(ctx, [1], 'ce.unused');
  ctx.dispatch('cross_entropy', {
    defines: { WG: rowWorkgroupSize(V) },
    bindings: [logits.buf, targets.buf, losses.buf, sink.buf],
    u32: [N, V, opts.wantGrad ? 1 : 0],
    f32: [opts.gradScale],
    workgroups: grid1d(N, 1),
    // max, exp and sum per logit, then (exp, subtract, scale) per dlogit when wanted
    cost: rowCost(N, V, rowWorkgroupSize(V), {
      flops: opts.wantGrad ? 7 : 4,
      reads: 1,
      writes: opts.wantGrad ? 1 : 0,
      rowReads: 1,
      rowWrites: 1,
    }),
  });
  if (!dlogits) sink.free();
  return { losses, dlogits };
}
