// AdamW on the GPU for the LoRA parameters, with global gradient-norm clipping that never reads back:
// the clip factor is computed into a 1-element tensor that the AdamW kernel reads.
// Semantics are torch.optim.AdamW + torch.nn.utils.clip_grad_norm_ (tests replay a PyTorch run).

import { Tensor } from '../gpu/tensor';
import { adamw_step } from '../kernels/adamw';
import { clip_scale, sumsq_accumulate } from '../kernels/grad_norm';
import type { LoraState } from '../models/lora';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this (0 = no clipping). */
  maxGradNorm: number;
}

interface Slot {
  param: Tensor;
  grad: Tensor;
  m: Tensor;
  v: Tensor;
  name: string;
}

export class AdamW {
  /** Number of updates done (torch's `step` state). */
  step = 0;
  private slots: Slot[] = [];

  constructor(
    readonly lora: LoraState,
    readonly cfg: AdamWConfig,
  ) {
    for (const [path, m] of lora.modules) {
      for (const [p, g, name] of [
        [m.A, m.gradA, 'lora_A'],
        [m.B, m.gradB, 'lora_B'],
      ] as const) {
        this.slots.push({
          param: p,
          grad: g,
          m: Tensor.zeros(lora.ctx, p.shape, `${path}.${name}.m`),
          v: Tensor.zeros(lora.ctx, p.shape, `${path}.${name}.v`),
          name: `${path}.${name}`,
        });
      }
    }
  }

  /**
   * One update with learning rate `lr` from the accumulated gradients, which are then zeroed.
   * Returns the gradient norm before clipping, as a 1-element tensor the caller reads (or frees).
   */
  update(lr: number): Tensor {
    const ctx = this.lora.ctx;
    const acc = Tensor.zeros(ctx, [1], 'grad_sumsq');
    for (const s of this.slots) sumsq_accumulate(s.grad, acc);
    const { scale, norm } = clip_scale(acc, this.cfg.maxGradNorm > 0 ? this.cfg.maxGradNorm : Infinity);
    this.step++;
    for (const s of this.slots) {
      adamw_step(s.param, s.grad, s.m, s.v, {
        lr,
        beta1: this.cfg.beta1,
        beta2: this.cfg.beta2,
        eps: this.cfg.eps,
        weightDecay: this.cfg.weightDecay,
        step: this.step,
        gradScale: scale,
      });
    }
    acc.free();
    scale.free();
    this.lora.zeroGrads();
    return norm;
  }

  /** Optimizer state for a checkpoint: the moments by parameter name, and the step. */
  async state(): Promise<{ step: number; m: Record<string, Float32Array>; v: Record<string, Float32Array> }> {
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (const s of this.slots) {
      m[s.name] = await s.m.read();
      v[s.name] = await s.v.read();
    }
    return { step: this.step, m, v };
  }

  /** Restores a state saved by `state()`; every moment must be present with the right size. */
  restore(st: { step: number; m: Record<string, Float32Array>; v: Record<string, Float32Array> }): void {
    const ctx = this.lora.ctx;
    for (const s of this.slots) {
      const m = st.m[s.name];
      const v = st.v[s.name];
      if (!m || !v || m.length !== s.m.numel || v.length !== s.v.numel)
        throw new Error(`checkpoint optimizer state for '${s.name}' is missing or has the wrong size`);
      ctx.write(s.m.buf, m);
      ctx.write(s.v.buf, v);
    }
    this.step = st.step;
  }

  get bytes(): number {
    return this.slots.reduce((n, s) => n + s.m.bytes + s.v.bytes, 0);
  }

  free(): void {
    for (const s of this.slots) {
      s.m.free();
      s.v.free();
    }
    this.slots = [];
  }
}
