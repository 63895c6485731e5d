// AdamW on the GPU for the LoRA parameters, with global gradient-norm clipping and a non-finite guard, over
// the flat buffers of LoraState: three dispatches a step for the whole model and no readback (src/kernels/optim.ts).
// The moments m and v are two more flat buffers of the same layout. A small persistent `stats` buffer carries
// the step's loss sum (the forward passes add into it), the norm, the clip scale and the guard; the trainer
// copies it out one step late. Semantics are torch.optim.AdamW + torch.nn.utils.clip_grad_norm_ (tests replay
// a PyTorch run); a step whose loss or norm is not finite leaves parameters and moments as they were.

import type { GpuBuffer } from '../gpu/allocator';
import { Tensor } from '../gpu/tensor';
import { optim_adamw, optim_norm_clip, flatChunks, PART_STRIDE, STATS } from '../kernels/optim';
import type { LoraState } from '../models/lora';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this (0 = no clipping). */
  maxGradNorm: number;
}

/** The figures of one step, as read back from `stats`. */
export interface StepStats {
  lossSum: number;
  norm: number;
  /** False when this step or an earlier one (since the last resetGuard) had a non-finite loss or norm. */
  ok: boolean;
}

export class AdamW {
  /** Number of updates done (torch's `step` state). */
  step = 0;
  private m: GpuBuffer;
  private v: GpuBuffer;
  private partials: GpuBuffer;
  /** (8,): [0] loss sum, [1] norm, [2] scale, [3] bad, [4] sumsq (see shaders/optim_finalize.wgsl). */
  readonly stats: GpuBuffer;

  constructor(
    readonly lora: LoraState,
    readonly cfg: AdamWConfig,
  ) {
    const ctx = lora.ctx;
    const bytes = lora.flatNumel * 4;
    this.m = ctx.buffer(bytes, 'adamw.m');
    this.v = ctx.buffer(bytes, 'adamw.v');
    ctx.clear(this.m);
    ctx.clear(this.v);
    const chunks = flatChunks(lora.flatNumel, ctx.limits.maxStorageBufferBindingSize).length;
    this.partials = ctx.buffer(chunks * PART_STRIDE * 4, 'adamw.partials');
    this.stats = ctx.buffer(STATS.count * 4, 'adamw.stats');
    this.resetGuard();
  }

  /** (1,) view of the loss accumulator in `stats`: a training step's forward passes add their loss sums here. */
  get lossAcc(): Tensor {
    return Tensor.view(this.lora.ctx, this.stats, STATS.loss * 4, [1]);
  }

  /** Zeroes the loss accumulator before a step's forward passes (recorded in the command stream). */
  beginStep(): void {
    this.lora.ctx.clear(this.stats, STATS.loss * 4, 4);
  }

  /** Raises the guard again (after a non-finite step was reported) and zeroes the loss accumulator. */
  resetGuard(): void {
    this.lora.ctx.write(this.stats, new Float32Array(STATS.count)); // all zero: no loss yet, guard up
  }

  /**
   * One update with learning rate `lr` from the accumulated gradients, which are then zeroed: norm, clip
   * and AdamW for the whole model, recorded without any readback. The step's figures are in `stats`.
   */
  apply(lr: number): void {
    const { ctx, grads, params, flatNumel } = this.lora;
    optim_norm_clip(
      ctx,
      grads,
      flatNumel,
      this.partials,
      this.stats,
      this.cfg.maxGradNorm > 0 ? this.cfg.maxGradNorm : Infinity,
    );
    this.step++;
    optim_adamw(ctx, { params, grads, m: this.m, v: this.v, stats: this.stats }, flatNumel, {
      lr,
      beta1: this.cfg.beta1,
      beta2: this.cfg.beta2,
      eps: this.cfg.eps,
      weightDecay: this.cfg.weightDecay,
      step: this.step,
    });
  }

  /** apply(lr), returning the gradient norm before clipping as a (1,) tensor the caller reads (or frees). */
  update(lr: number): Tensor {
    this.apply(lr);
    const norm = Tensor.empty(this.lora.ctx, [1], 'grad_norm.norm');
    this.lora.ctx.copy(this.stats, STATS.norm * 4, norm.buf, 0, 4);
    return norm;
  }

  /** Decodes the first 4 floats of `stats` (as copied out by the trainer). */
  static decodeStats(raw: ArrayBuffer): StepStats {
    const s = new Float32Array(raw, 0, 4);
    // The kernels write exactly 0 or 1 there; a device that executes nothing (the shape report's) reads back
    // whatever its memory holds, so only an exact 1 counts as the guard being down.
    return { lossSum: s[STATS.loss], norm: s[STATS.norm], ok: s[STATS.bad] !== 1 };
  }

  /** Optimizer state for a checkpoint: the moments by parameter name, and the step. */
  async state(): Promise<{ step: number; m: Record<string, Float32Array>; v: Record<string, Float32Array> }> {
    const ctx = this.lora.ctx;
    const named = (flat: Float32Array) => {
      const out: Record<string, Float32Array> = {};
      for (const s of this.lora.slots) out[s.name] = flat.slice(s.offset, s.offset + s.numel);
      return out;
    };
    const m = named(await ctx.readF32(this.m, this.lora.flatNumel));
    const v = named(await ctx.readF32(this.v, this.lora.flatNumel));
    return { step: this.step, m, v };
  }

  /** Restores a state saved by `state()`; every moment must be present with the right size. */
  restore(st: { step: number; m: Record<string, Float32Array>; v: Record<string, Float32Array> }): void {
    const m = new Float32Array(this.lora.flatNumel);
    const v = new Float32Array(this.lora.flatNumel);
    for (const s of this.lora.slots) {
      const sm = st.m[s.name];
      const sv = st.v[s.name];
      if (!sm || !sv || sm.length !== s.numel || sv.length !== s.numel)
        throw new Error(`checkpoint optimizer state for '${s.name}' is missing or has the wrong size`);
      m.set(sm, s.offset);
      v.set(sv, s.offset);
    }
    this.lora.ctx.write(this.m, m);
    this.lora.ctx.write(this.v, v);
    this.step = st.step;
  }

  get bytes(): number {
    return 2 * this.lora.flatNumel * 4;
  }

  free(): void {
    if (this.stats.freed) return;
    for (const b of [this.m, this.v, this.partials, this.stats]) this.lora.ctx.free(b);
  }
}
