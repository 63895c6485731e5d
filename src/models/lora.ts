// The trainable LoRA parameters of a model: for each selected linear module, A (r, IN) and B (OUT, r)
// on the GPU with their gradient accumulators. PEFT initialisation: A ~ kaiming-uniform(a = sqrt(5)),
// i.e. U(-1/sqrt(IN), 1/sqrt(IN)), and B = 0, so training starts exactly at the base model.
//
// Storage is flat: all parameters live in one buffer and all gradients in another, laid out alike
// (module by module, A then B, each padded to a multiple of 64 floats so every view starts on a 256-byte
// binding offset). Each module's A, B, gradA, gradB are views into them, and the optimizer keeps its
// moments in two more buffers of the same layout, so norm, clip and AdamW run over the whole model at once.
// Padding is zero in every buffer and stays zero (a zero gradient leaves a zero parameter and moments).
// The gradients' last sums may wait on the state's GradCarry (src/kernels/lora_grad.ts: each lora_grad's stage 2
// rides on the next one); reading them through `grads` or `readGrads()` flushes it first.

import type { Tape } from '../autograd/tape';
import type { LoraBranch } from '../autograd/ops';
import type { GpuContext } from '../gpu/context';
import type { GpuBuffer } from '../gpu/allocator';
import { Tensor, VIEW_ALIGN } from '../gpu/tensor';
import { GradCarry } from '../kernels/lora_grad';
import { pcgHash, rngUniform } from '../kernels/rng.cpu';
import type { ModelConfig } from './config';
import { selectModules, type LinearModule } from './modules';

export interface LoraConfig {
  r: number;
  alpha: number;
  useRslora: boolean;
  dropout: number;
  targets: string[];
}

export function loraScale(c: Pick<LoraConfig, 'r' | 'alpha' | 'useRslora'>): number {
  return c.useRslora ? c.alpha / Math.sqrt(c.r) : c.alpha / c.r;
}

/**
 * Dropout streams per layer: module `slot` of layer `layer` draws stream layer · MODULE_STREAMS_PER_LAYER
 * + slot, so streams stay distinct while a layer has fewer linear modules than this (Llama has 7).
 */
export const MODULE_STREAMS_PER_LAYER = 16;

/** The dropout stream of module `mod` in the training forward pass whose stream is `passSeed`. */
export function moduleDropoutSeed(passSeed: number, mod: Pick<LinearModule, 'path' | 'layer' | 'slot'>): number {
  if (mod.slot >= MODULE_STREAMS_PER_LAYER)
    throw new Error(
      `${mod.path} is linear module ${mod.slot} of its layer; dropout streams allow ${MODULE_STREAMS_PER_LAYER} per layer`,
    );
  return pcgHash((passSeed ^ pcgHash(mod.layer * MODULE_STREAMS_PER_LAYER + mod.slot)) >>> 0);
}

/** Trainable parameters of rank-r LoRA on `modules`: A (r, IN) and B (OUT, r) each. */
export function loraParamCount(modules: LinearModule[], r: number): number {
  return modules.reduce((n, m) => n + r * (m.inFeatures + m.outFeatures), 0);
}

export interface LoraModule {
  mod: LinearModule;
  A: Tensor; // (r, IN)
  B: Tensor; // (OUT, r)
  gradA: Tensor; // views of the flat gradients: read them through LoraState (its carry may hold their last sums)
  gradB: Tensor;
}

export type LoraArrays = Map<string, { A: Float32Array; B: Float32Array }>;

/** Floats per padding unit of the flat layout: one 256-byte binding offset. */
export const FLAT_ALIGN = VIEW_ALIGN / 4;

/** Where one tensor sits in the flat buffers (in floats). */
export interface FlatSlot {
  name: string /* `${path}.lora_A` or `${path}.lora_B` */;
  offset: number /* multiple of FLAT_ALIGN */;
  numel: number;
}

/** The flat layout of the modules' A and B tensors, in module order, A before B; `numel` includes padding. */
export function flatLayout(mods: { path: string; inFeatures: number; outFeatures: number }[], r: number) {
  const slots: FlatSlot[] = [];
  let n = 0;
  for (const m of mods) {
    for (const [name, size] of [
      ['lora_A', r * m.inFeatures],
      ['lora_B', m.outFeatures * r],
    ] as const) {
      slots.push({ name: `${m.path}.${name}`, offset: n, numel: size });
      n += Math.ceil(size / FLAT_ALIGN) * FLAT_ALIGN;
    }
  }
  return { slots, numel: Math.max(n, FLAT_ALIGN) };
}

export class LoraState {
  /** Multiplies the scale (the "adapter strength" control when trying an adapter). */
  strength = 1;
  /** Where the backward's gradient sums wait to ride on the next lora_grad (see the header). */
  readonly carry: GradCarry;

  private constructor(
    readonly ctx: GpuContext,
    readonly config: LoraConfig,
    readonly modules: Map<string, LoraModule>,
    /** Every A and B, flat; `slots` says where each one is. */
    readonly params: GpuBuffer,
    /** Their gradient accumulators, same layout (read through `grads`). */
    private readonly gradBuf: GpuBuffer,
    readonly slots: FlatSlot[],
    /** Floats in each flat buffer, padding included. */
    readonly flatNumel: number,
  ) {
    this.carry = new GradCarry(ctx);
  }

  /** The flat gradient accumulators, complete: the carry's waiting sum, if any, is recorded first. */
  get grads(): GpuBuffer {
    this.carry.flush();
    return this.gradBuf;
  }

  get scale(): number {
    return loraScale(this.config) * this.strength;
  }

  get paramCount(): number {
    return loraParamCount(
      [...this.modules.values()].map((m) => m.mod),
      this.config.r,
    );
  }

  /** Fresh adapter with PEFT's initialisation, reproducible from `seed`. */
  static init(ctx: GpuContext, cfg: ModelConfig, lc: LoraConfig, seed: number): LoraState {
    const arrays: LoraArrays = new Map();
    let stream = pcgHash(seed >>> 0);
    for (const m of selectModules(cfg, lc.targets)) {
      const bound = 1 / Math.sqrt(m.inFeatures);
      const A = new Float32Array(lc.r * m.inFeatures);
      stream = pcgHash(stream + 1);
      for (let i = 0; i < A.length; i++) A[i] = (2 * rngUniform(stream, i) - 1) * bound;
      arrays.set(m.path, { A, B: new Float32Array(m.outFeatures * lc.r) });
    }
    return LoraState.fromArrays(ctx, cfg, lc, arrays);
  }

  /** An adapter from given weights (an imported file, a checkpoint, a test fixture). Shapes are checked. */
  static fromArrays(ctx: GpuContext, cfg: ModelConfig, lc: LoraConfig, arrays: LoraArrays): LoraState {
    if (!(lc.r >= 1 && Number.isInteger(lc.r))) throw new Error(`LoRA rank must be a positive integer, got ${lc.r}`);
    const mods = selectModules(cfg, lc.targets);
    for (const m of mods) {
      const a = arrays.get(m.path);
      if (!a) throw new Error(`LoRA weights for module '${m.path}' are missing`);
      if (a.A.length !== lc.r * m.inFeatures)
        throw new Error(`LoRA A of '${m.path}' has ${a.A.length} values, expected [${lc.r}, ${m.inFeatures}]`);
      if (a.B.length !== m.outFeatures * lc.r)
        throw new Error(`LoRA B of '${m.path}' has ${a.B.length} values, expected [${m.outFeatures}, ${lc.r}]`);
    }
    const layout = flatLayout(mods, lc.r);
    // host is (flatNumel,): A and B of every module at their slots, zero padding between
    const host = new Float32Array(layout.numel);
    for (let i = 0; i < mods.length; i++) {
      const a = arrays.get(mods[i].path)!;
      host.set(a.A, layout.slots[2 * i].offset);
      host.set(a.B, layout.slots[2 * i + 1].offset);
    }
    const params = ctx.upload(host, 'lora.params');
    const grads = ctx.buffer(layout.numel * 4, 'lora.grads');
    ctx.clear(grads);
    const modules = new Map<string, LoraModule>();
    mods.forEach((m, i) => {
      const [sa, sb] = [layout.slots[2 * i], layout.slots[2 * i + 1]];
      const [shapeA, shapeB] = [
        [lc.r, m.inFeatures],
        [m.outFeatures, lc.r],
      ];
      modules.set(m.path, {
        mod: m,
        A: Tensor.view(ctx, params, sa.offset * 4, shapeA),
        B: Tensor.view(ctx, params, sb.offset * 4, shapeB),
        gradA: Tensor.view(ctx, grads, sa.offset * 4, shapeA),
        gradB: Tensor.view(ctx, grads, sb.offset * 4, shapeB),
      });
    });
    return new LoraState(ctx, lc, modules, params, grads, layout.slots, layout.numel);
  }

  /** The LoRA branch of module `path` on this tape, or null if the module has no adapter.
   * passSeed null: no dropout (inference); a training pass gives its stream, also when recomputing. */
  branch(tape: Tape, path: string, passSeed: number | null): LoraBranch | null {
    const m = this.modules.get(path);
    if (!m) return null;
    const dropoutSeed = passSeed === null ? null : moduleDropoutSeed(passSeed, m.mod);
    return {
      A: tape.param(m.A, m.gradA, `${path}.lora_A`),
      B: tape.param(m.B, m.gradB, `${path}.lora_B`),
      scale: this.scale,
      dropout: dropoutSeed === null ? 0 : this.config.dropout,
      seed: dropoutSeed ?? 0,
      carry: this.carry,
    };
  }

  zeroGrads(): void {
    this.ctx.clear(this.grads);
  }

  async read(): Promise<LoraArrays> {
    return this.unflatten(await this.ctx.readF32(this.params, this.flatNumel));
  }

  async readGrads(): Promise<LoraArrays> {
    return this.unflatten(await this.ctx.readF32(this.grads, this.flatNumel));
  }

  /** Per-module copies of A and B out of a flat (flatNumel,) array laid out as `slots`. */
  unflatten(flat: Float32Array): LoraArrays {
    const out: LoraArrays = new Map();
    let i = 0;
    for (const path of this.modules.keys()) {
      const [a, b] = [this.slots[i], this.slots[i + 1]];
      out.set(path, {
        A: flat.slice(a.offset, a.offset + a.numel),
        B: flat.slice(b.offset, b.offset + b.numel),
      });
      i += 2;
    }
    return out;
  }

  free(): void {
    if (this.params.freed) return;
    this.carry.free();
    this.ctx.free(this.params);
    this.ctx.free(this.gradBuf);
    this.modules.clear();
  }
}
