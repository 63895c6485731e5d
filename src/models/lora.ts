// The trainable LoRA parameters of a model: for each selected linear module, A (r, IN) and B (OUT, r)
// on the GPU with their gradient accumulators. PEFT initialisation: A ~ kaiming-uniform(a = sqrt(5)),
// i.e. U(-1/sqrt(IN), 1/sqrt(IN)), and B = 0, so training starts exactly at the base model.

import type { Tape } from '../autograd/tape';
import type { LoraBranch } from '../autograd/ops';
import type { GpuContext } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
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
  gradA: Tensor;
  gradB: Tensor;
}

export type LoraArrays = Map<string, { A: Float32Array; B: Float32Array }>;

export class LoraState {
  /** Multiplies the scale (the "adapter strength" control when trying an adapter). */
  strength = 1;

  private constructor(
    readonly ctx: GpuContext,
    readonly config: LoraConfig,
    readonly modules: Map<string, LoraModule>,
  ) {}

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
    const modules = new Map<string, LoraModule>();
    const state = new LoraState(ctx, lc, modules);
    try {
      for (const m of selectModules(cfg, lc.targets)) {
        const a = arrays.get(m.path);
        if (!a) throw new Error(`LoRA weights for module '${m.path}' are missing`);
        if (a.A.length !== lc.r * m.inFeatures)
          throw new Error(`LoRA A of '${m.path}' has ${a.A.length} values, expected [${lc.r}, ${m.inFeatures}]`);
        if (a.B.length !== m.outFeatures * lc.r)
          throw new Error(`LoRA B of '${m.path}' has ${a.B.length} values, expected [${m.outFeatures}, ${lc.r}]`);
        modules.set(m.path, {
          mod: m,
          A: Tensor.from(ctx, a.A, [lc.r, m.inFeatures], `${m.path}.lora_A`),
          B: Tensor.from(ctx, a.B, [m.outFeatures, lc.r], `${m.path}.lora_B`),
          gradA: Tensor.zeros(ctx, [lc.r, m.inFeatures], `${m.path}.lora_A.grad`),
          gradB: Tensor.zeros(ctx, [m.outFeatures, lc.r], `${m.path}.lora_B.grad`),
        });
      }
    } catch (e) {
      state.free();
      throw e;
    }
    return state;
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
    };
  }

  zeroGrads(): void {
    for (const m of this.modules.values()) {
      this.ctx.clear(m.gradA.buf);
      this.ctx.clear(m.gradB.buf);
    }
  }

  async read(): Promise<LoraArrays> {
    const out: LoraArrays = new Map();
    for (const [path, m] of this.modules) out.set(path, { A: await m.A.read(), B: await m.B.read() });
    return out;
  }

  async readGrads(): Promise<LoraArrays> {
    const out: LoraArrays = new Map();
    for (const [path, m] of this.modules) out.set(path, { A: await m.gradA.read(), B: await m.gradB.read() });
    return out;
  }

  free(): void {
    for (const m of this.modules.values()) for (const t of [m.A, m.B, m.gradA, m.gradB]) if (!t.freed) t.free();
    this.modules.clear();
  }
}
