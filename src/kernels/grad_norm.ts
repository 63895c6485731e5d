// Sums on the GPU without any readback, through shaders/grad_norm_sumsq.wgsl: Σg² of a tensor into a (1,)
// accumulator (one dispatch, or two stages through partials), and the step's loss sum. The optimizer
// (./optim.ts) runs the same shader's stage 1 over the flat gradients. CPU twin: grad_norm.cpu.ts.
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
