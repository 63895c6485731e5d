// Global gradient norm over many tensors and the clip factor of torch.nn.utils.clip_grad_norm_, without any
// readback: Σg² accumulates in a (1,) tensor on the GPU, and the factor goes to adamw_step as gradScale.
// Shaders: shaders/grad_norm_sumsq.wgsl (two-stage sum), shaders/grad_norm_clip.wgsl. CPU twin: grad_norm.cpu.ts.
import type { DispatchCost } from '../gpu/context';
import { Tensor } from '../gpu/tensor';

const WG = 256;
/** At most this many workgroups in stage 1, so that stage 2 is one workgroup summing one value per invocation. */
const MAX_GROUPS = 256;
/** Values per invocation before a second workgroup is worth its extra dispatch. */
const PER_THREAD = 16;

/** Workgroups stage 1 uses for n values: 1 means a single dispatch adds straight into acc. */
export function sumsqGroups(n: number): number {
  return Math.min(MAX_GROUPS, Math.max(1, Math.ceil(n / (WG * PER_THREAD))));
}

/** Paper cost of one sumsq stage: n values (a multiply-add each) over `groups` workgroups of WG threads, each
 * thread striding over n / (groups·WG) of them, then a tree of log2(WG) levels; `outs` values written. */
function sumsqCost(n: number, groups: number, outs: number): DispatchCost {
  return { flops: 2 * n + WG, bytesRead: 4 * n, bytesWritten: 4 * outs, serialLoop: Math.ceil(n / (groups * WG)) };
}

/** acc (1,) += Σ g² over every element of g (any shape, f32). acc starts from Tensor.zeros. */
export function sumsq_accumulate(g: Tensor, acc: Tensor): void {
  if (g.dtype !== 'f32') throw new Error(`sumsq_accumulate: g must be f32, got ${g.dtype}`);
  if (acc.numel !== 1 || acc.dtype !== 'f32')
    throw new Error(`sumsq_accumulate: acc must be (1,) f32, got [${acc.shape}] ${acc.dtype}`);
  if (acc.buf === g.buf) throw new Error('sumsq_accumulate: acc and g must be different buffers');
  const ctx = g.ctx;
  const n = g.numel;
  const groups = sumsqGroups(n);
  if (groups === 1) {
    ctx.dispatch('grad_norm_sumsq', {
      defines: { WG },
      bindings: [g.buf, acc.buf],
      u32: [n, 1, 1],
      workgroups: [1],
      cost: sumsqCost(n, 1, 1),
    });
    return;
  }
  const partials = Tensor.empty(ctx, [groups], 'grad_norm.partials');
  ctx.dispatch('grad_norm_sumsq', {
    defines: { WG },
    bindings: [g.buf, partials.buf],
    u32: [n, 1, 0],
    workgroups: [groups],
    cost: sumsqCost(n, groups, groups),
  });
  ctx.dispatch('grad_norm_sumsq', {
    defines: { WG },
    bindings: [partials.buf, acc.buf],
    u32: [groups, 0, 1],
    workgroups: [1],
    cost: sumsqCost(groups, 1, 1),
  });
  // Safe to free now: a later user of this buffer is recorded after these dispatches and runs after them.
  partials.free();
}

/** acc (1,) += Σ x over every element of x (n,) (a step's per-row losses), one workgroup, no readback. */
export function sum_accumulate(x: Tensor, acc: Tensor): void {
  if (x.dtype !== 'f32' || acc.numel !== 1 || acc.dtype !== 'f32')
    throw new Error(`sum_accumulate: x must be f32 and acc (1,) f32, got [${x.shape}] ${x.dtype}, [${acc.shape}]`);
  if (acc.base === x.base) throw new Error('sum_accumulate: acc and x must be different buffers');
  const n = x.numel;
  x.ctx.dispatch('grad_norm_sumsq', {
    defines: { WG },
    bindings: [x.binding, acc.binding],
    u32: [n, 0, 1],
    workgroups: [1],
    cost: { flops: n, bytesRead: 4 * n + 4, bytesWritten: 4, serialLoop: Math.ceil(n / WG) + 8 },
  });
}

/**
 * acc (1,) holds Σg² over all gradients. Returns scale (1,) = min(1, maxNorm / (sqrt(acc) + 1e-6)) (1 when
 * maxNorm is Infinity: no clipping) and norm (1,) = sqrt(acc) for logging. The caller frees both.
 */
export function clip_scale(acc: Tensor, maxNorm: number): { scale: Tensor; norm: Tensor } {
  if (acc.numel !== 1 || acc.dtype !== 'f32')
    throw new Error(`clip_scale: acc must be (1,) f32, got [${acc.shape}] ${acc.dtype}`);
  if (!(maxNorm >= 0)) throw new Error(`clip_scale: maxNorm must be >= 0 (Infinity for no clipping), got ${maxNorm}`);
  const ctx = acc.ctx;
  const scale = Tensor.empty(ctx, [1], 'grad_norm.scale');
  const norm = Tensor.empty(ctx, [1], 'grad_norm.norm');
  const clip = Number.isFinite(maxNorm);
  ctx.dispatch('grad_norm_clip', {
    bindings: [acc.buf, norm.buf, scale.buf],
    u32: [clip ? 1 : 0],
    f32: [clip ? maxNorm : 0],
    workgroups: [1],
    cost: { flops: 4, bytesRead: 4, bytesWritten: 8, serialLoop: 1 },
  });
  return { scale, norm };
}
