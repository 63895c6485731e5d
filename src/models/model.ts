// What every model family gives the forward passes: an embedding, a stack of blocks, a final norm, and the
// (V, C) table of the LM head. The no-grad forward (./forward.ts) and the training step
// (src/training/step.ts) decide the order.

import type { Tape, Var } from '../autograd/tape';
import { attention, type FrozenLinear } from '../autograd/ops';
import type { AttentionOpts } from '../kernels/attention';
import { copy2d } from '../kernels/copy2d';
import { rope_qk_forward } from '../kernels/rope';
import type { Tensor } from '../gpu/tensor';
import type { ModelConfig } from './config';
import type { LoraState } from './lora';
import type { GpuWeights } from './weights';

/** Keys and values of one layer for generation: (capacity, Hkv·D) each, batch 1. */
export interface KvLayer {
  k: Tensor;
  v: Tensor;
}

export interface RunInfo {
  B: number;
  T: number;
  /** Position of the first row (tokens already in the KV cache). */
  posOffset: number;
  /** Dropout stream of a training forward pass (recomputing a block reuses it); absent: no dropout.
   * Each LoRA module draws its own stream from it (moduleDropoutSeed in ./lora.ts). */
  dropoutSeed?: number;
  /** Present during cached generation: each block appends its keys/values and attends over the cache. */
  kv?: { layers: KvLayer[]; capacity: number };
}

export interface CausalLM {
  readonly cfg: ModelConfig;
  readonly weights: GpuWeights;
  /** ids is (B·T,) u32; returns the input of block 0, (B·T, C). Frozen: no gradient. */
  embed(ids: Tensor, run: RunInfo): Tensor;
  /** One Transformer block: x (B·T, C) -> (B·T, C). */
  block(i: number, tape: Tape, x: Var, lora: LoraState | null, run: RunInfo): Var;
  /** The norm before the LM head. */
  finalNorm(tape: Tape, x: Var): Var;
}

/** The frozen linear of module `path` (its weight, bias and layout). */
export function frozenLinear(w: GpuWeights, path: string, transposed: boolean): FrozenLinear {
  return { w0: w.get(`${path}.weight`), bias: w.has(`${path}.bias`) ? w.get(`${path}.bias`) : null, transposed };
}

/**
 * Causal self-attention of block `layer`. During cached generation the step's keys and values
 * (B·T, Hkv·D) are appended to the layer's cache at row posOffset and the queries attend over all of it. The
 * cache holds keys after RoPE: with o.rope the step's q and k are rotated here, once (rope_qk), and the kernels
 * run without it (they would turn every cached key again at every step). Generation only: no gradient.
 */
export function selfAttention(
  tape: Tape,
  q: Var,
  k: Var,
  v: Var,
  o: AttentionOpts,
  run: RunInfo,
  layer: number,
  name: string,
): Var {
  if (!run.kv) return attention(tape, q, k, v, o, name);
  if (tape.grad) throw new Error('selfAttention: the KV cache is for generation, which takes no gradient');
  if (o.rope) {
    const ro = { heads: o.heads, headDim: o.headDim, seqLen: run.T, posOffset: run.posOffset, invFreq: o.rope.invFreq };
    const r = rope_qk_forward(q.t, k.t, { ...ro, theta: 1 /* unused: the table is given */ }, o.kvHeads);
    [q, k] = [tape.output(r.q, `${name}.rope_q`, false), tape.output(r.k, `${name}.rope_k`, false)];
    o = { ...o, rope: undefined };
  }
  const cache = run.kv.layers[layer];
  const kvDim = o.kvHeads * o.headDim;
  const at = { rows: run.T, cols: kvDim, srcLd: kvDim, srcCol: 0, dstLd: kvDim, dstCol: run.posOffset * kvDim };
  copy2d(k.t, cache.k, at);
  copy2d(v.t, cache.v, at);
  const kc = tape.leaf(cache.k, `${name}.k_cache`);
  const vc = tape.leaf(cache.v, `${name}.v_cache`);
  return attention(tape, q, kc, vc, { ...o, kvLen: run.posOffset + run.T, kvCapacity: run.kv.capacity }, name);
}
