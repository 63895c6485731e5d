// The whole-model optimizer step over flat buffers (see src/models/lora.ts for the layout), in three
// dispatches when the buffers fit one binding (2·chunks + 1 otherwise), with no readback:
//   1. grad_norm_sumsq: partials[g] = Σ grad² over a grid-strided slice, per chunk of the flat gradients
//   2. optim_finalize:  sumsq = Σ partials, norm, clip scale, and the sticky non-finite guard, into stats
//   3. optim_adamw:     AdamW on every parameter (skipped when the guard is down), gradients zeroed
// stats is a small persistent buffer: [0] the step's loss sum, [1] norm, [2] scale, [3] bad (the guard: 0 while
// every loss and norm was finite, then 1 until reset), [4] sumsq.
// Shaders: shaders/grad_norm_sumsq.wgsl, shaders/optim_finalize.wgsl, shaders/optim_adamw.wgsl.
// CPU twin: optim.cpu.ts.
import type { GpuBuffer } from '../gpu/allocator';
import { grid1d, type Binding, type GpuContext } from '../gpu/context';
import { sumsqGroups } from './grad_norm';

export const STATS = { loss: 0, norm: 1, scale: 2, bad: 3, sumsq: 4, count: 8 } as const;
/** Floats per chunk in the partials buffer (stage 1 writes at most 256 per chunk; 1 KiB keeps offsets aligned). */
export const PART_STRIDE = 256;

/** Float ranges [start, start + n) of a flat buffer of `numel` floats, each small enough for one binding
 * (maxBindingBytes: the adapter's limit; tests pass less to exercise several chunks). */
export function flatChunks(numel: number, maxBindingBytes: number): { start: number; n: number }[] {
  const per = Math.max(64, Math.floor(maxBindingBytes / 4 / 64) * 64);
  const out: { start: number; n: number }[] = [];
  for (let s = 0; s < numel; s += per) out.push({ start: s, n: Math.min(per, numel - s) });
  return out;
}

/** Hyper-parameters of one AdamW update (torch.optim.AdamW semantics; see shaders/optim_adamw.wgsl). */
export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based count of updates, this one included (torch's `step` state after its increment). */
  step: number;
}

/** The uniforms the kernel needs, computed in float64 as torch does in Python: [decay, 1-β1, β2, 1-β2, lr/bc1, sqrt(bc2), eps]. */
export function adamwConstants(o: AdamWStep): number[] {
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  return [1 - o.lr * o.weightDecay, 1 - o.beta1, o.beta2, 1 - o.beta2, o.lr / bc1, Math.sqrt(bc2), o.eps];
}

const range = (buf: GpuBuffer, c: { start: number; n: number }): Binding => ({
  buf,
  offset: c.start * 4,
  size: c.n * 4,
});

/**
 * grads is the flat (numel,) gradient buffer; partials holds (chunks · 256,) floats; stats (8,) has the step's
 * loss sum at [0] and the guard at [3]. Writes norm, scale, the updated guard and sumsq into stats.
 */
export function optim_norm_clip(
  ctx: GpuContext,
  grads: GpuBuffer,
  numel: number,
  partials: GpuBuffer,
  stats: GpuBuffer,
  maxNorm: number,
  maxBindingBytes = ctx.limits.maxStorageBufferBindingSize,
): void {
  if (!(maxNorm >= 0)) throw new Error(`optim_norm_clip: maxNorm must be >= 0 (Infinity: no clipping), got ${maxNorm}`);
  const chunks = flatChunks(numel, maxBindingBytes);
  if (partials.size < chunks.length * PART_STRIDE * 4)
    throw new Error(`optim_norm_clip: partials must hold ${chunks.length * PART_STRIDE} floats`);
  // Every chunk but the last is full, so the first chunk has the most groups; all use that count.
  const groups = sumsqGroups(chunks[0].n);
  chunks.forEach((c, i) => {
    // partials[i·256 + g] (groups,) = Σ grad[c]² over group g's grid-strided slice of chunk c (n,)
    const perThread = Math.ceil(c.n / (groups * 256));
    ctx.dispatch('grad_norm_sumsq', {
      defines: { WG: 256 },
      bindings: [range(grads, c), { buf: partials, offset: i * PART_STRIDE * 4, size: groups * 4 }],
      u32: [c.n, 1, 0],
      workgroups: [groups],
      cost: { flops: 2 * c.n, bytesRead: 4 * c.n, bytesWritten: 4 * groups, serialLoop: perThread + 8 },
    });
  });
  // stats (8,) <- norm, scale, ok, sumsq from partials (chunks · groups,) and stats[0] (the loss sum)
  const clip = Number.isFinite(maxNorm);
  const nparts = groups * chunks.length;
  ctx.dispatch('optim_finalize', {
    defines: { WG: 256 },
    bindings: [partials, stats],
    u32: [groups, chunks.length, clip ? 1 : 0],
    f32: [clip ? maxNorm : 0],
    workgroups: [1],
    cost: { flops: nparts + 8, bytesRead: 4 * nparts + 16, bytesWritten: 20, serialLoop: Math.ceil(nparts / 256) + 8 },
  });
}

/** AdamW over the flat (numel,) params, grads, m, v with the clip scale and guard of stats; zeroes grads. */
export function optim_adamw(
  ctx: GpuContext,
  b: { params: GpuBuffer; grads: GpuBuffer; m: GpuBuffer; v: GpuBuffer; stats: GpuBuffer },
  numel: number,
  o: AdamWStep,
  maxBindingBytes = ctx.limits.maxStorageBufferBindingSize,
): void {
  if (!Number.isInteger(o.step) || o.step < 1)
    throw new Error(`optim_adamw: step must be a positive integer (1-based), got ${o.step}`);
  const bufs = [b.params, b.grads, b.m, b.v];
  if (new Set([...bufs, b.stats]).size !== 5) throw new Error('optim_adamw: the five buffers must be different');
  for (const x of bufs)
    if (x.size < numel * 4) throw new Error(`optim_adamw: '${x.label}' holds fewer than ${numel} floats`);
  for (const c of flatChunks(numel, maxBindingBytes)) {
    // param, grad, m, v (n,) of chunk c, updated in place
    ctx.dispatch('optim_adamw', {
      bindings: [...bufs.map((x) => range(x, c)), b.stats],
      u32: [c.n],
      f32: adamwConstants(o),
      workgroups: grid1d(c.n, 256),
      cost: { flops: 18 * c.n, bytesRead: 16 * c.n + 12, bytesWritten: 16 * c.n, serialLoop: 1 },
    });
  }
}
