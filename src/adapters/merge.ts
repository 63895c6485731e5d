// Merging a LoRA adapter into the base weights, for generation at the base model's speed:
//
//   W = W0 + s·B·A              W0 (OUT, IN), A (r, IN), B (OUT, r)      Llama, Qwen2
//   W = W0 + s·(B·A)ᵀ = W0 + s·Aᵀ·Bᵀ   W0 (IN, OUT)                       GPT-2 Conv1D
//
// s is the adapter's scale at merge time (alpha/r or alpha/√r, times its strength). Each merged weight is
// a NEW f32 tensor: a copy of W0 (f16 weights are widened exactly to f32, int8 / int4 blocks dequantized
// exactly, by the embedding kernel's row gather; so a merged weight is f32 whatever the base stores, and
// GpuWeights.swap takes it in place of the q4 one) plus s·B·A added by the matmul kernel (accumulate, alpha = s). The
// originals are never written: merging swaps the new tensors into GpuWeights, unmerging swaps the
// originals back and frees the copies, so the base model comes back bit for bit.
//
// exportMergedModel writes the merged model as a Hugging Face checkpoint (model.safetensors in F32 with
// the canonical tensor names, config.json unchanged) that the project's loaders (and transformers) read.

import type { GpuContext } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { writeSafetensors } from '../loaders/safetensors';
import type { ModelFiles } from '../loaders/model-files';
import { embedding_forward } from '../kernels/embedding';
import { matmulRaw } from '../kernels/matmul';
import type { LoraState } from '../models/lora';
import type { GpuWeights } from '../models/weights';

export interface MergedLora {
  weights: GpuWeights;
  /** Weight name -> the original W0, held while its merged copy is in the model. */
  originals: Map<string, Tensor>;
  /** Weight name -> the merged f32 tensor now in the model. */
  merged: Map<string, Tensor>;
  scale: number;
}

/** Every tensor a merge put into some GpuWeights (merging a merged weight again would lose W0). */
const mergedTensors = new WeakSet<Tensor>();

/** A new f32 copy of w (rows, cols), f32, f16, q8 or q4; widening f16 and dequantizing blocks are exact. */
function f32Copy(ctx: GpuContext, w: Tensor, label: string): Tensor {
  if (w.dtype === 'f32') {
    const c = Tensor.empty(ctx, w.shape, label);
    ctx.copy(w.buf, 0, c.buf, 0, w.bytes);
    return c;
  }
  // f16 or blocks: gather every row through the embedding kernel, which reads them and writes f32.
  const [rows, cols] = w.shape;
  const ids = Tensor.fromU32(
    ctx,
    Uint32Array.from({ length: rows }, (_, i) => i),
    [rows],
    'merge.rows',
  );
  const c = embedding_forward(ids, [{ table: w, rowStart: 0 }]).reshape([rows, cols]);
  ids.free();
  return c;
}

/** W += s·B·A (or s·Aᵀ·Bᵀ for a transposed (IN, OUT) weight); w is f32. */
function addLoraProduct(
  ctx: GpuContext,
  w: Tensor,
  A: Tensor,
  B: Tensor,
  r: number,
  IN: number,
  OUT: number,
  transposed: boolean,
  s: number,
): void {
  if (transposed) {
    // (IN, OUT) += s · op(A) (IN, r) · op(B) (r, OUT), with A stored (r, IN) and B stored (OUT, r)
    matmulRaw(ctx, {
      a: A.binding,
      b: B.binding,
      c: w.buf,
      M: IN,
      N: OUT,
      K: r,
      lda: IN,
      ldb: r,
      ldc: OUT,
      transA: true,
      transB: true,
      alpha: s,
      accumulate: true,
    });
  } else {
    // (OUT, IN) += s · B (OUT, r) · A (r, IN)
    matmulRaw(ctx, {
      a: B.binding,
      b: A.binding,
      c: w.buf,
      M: OUT,
      N: IN,
      K: r,
      lda: r,
      ldb: IN,
      ldc: IN,
      transA: false,
      transB: false,
      alpha: s,
      accumulate: true,
    });
  }
}

/**
 * Merges `lora` into `weights` at its current scale. Afterwards run the model with lora = null. The
 * adapter itself is left as it is (the caller may free it). Returns what unmergeLora needs.
 */
export function mergeLora(weights: GpuWeights, lora: LoraState): MergedLora {
  const ctx = weights.ctx;
  const r = lora.config.r;
  const s = lora.scale;
  const out: MergedLora = { weights, originals: new Map(), merged: new Map(), scale: s };
  try {
    for (const [path, m] of lora.modules) {
      const name = `${path}.weight`;
      const w0 = weights.get(name);
      if (mergedTensors.has(w0)) throw new Error(`'${name}' already holds a merged adapter; unmerge it first`);
      const w = f32Copy(ctx, w0, `${name}.merged`);
      addLoraProduct(ctx, w, m.A, m.B, r, m.mod.inFeatures, m.mod.outFeatures, m.mod.transposed, s);
      mergedTensors.add(w);
      out.originals.set(name, weights.swap(name, w));
      out.merged.set(name, w);
    }
  } catch (e) {
    unmergeLora(out);
    throw e;
  }
  return out;
}

/** Puts the original weights back (bit for bit: they were never written) and frees the merged copies. */
export function unmergeLora(m: MergedLora): void {
  for (const [name, w0] of m.originals) {
    const w = m.merged.get(name)!;
    const current = m.weights.swap(name, w0);
    if (current !== w) {
      m.weights.swap(name, current);
      throw new Error(`unmerge: '${name}' was replaced by something else after the merge`);
    }
    mergedTensors.delete(w);
    w.free();
  }
  m.originals.clear();
  m.merged.clear();
}

export interface MergedModelFiles {
  'model.safetensors': Uint8Array;
  'config.json': string;
}

/**
 * The merged model as a checkpoint: every tensor of the model's weight index (the tensors config.json
 * implies, by canonical HF name) as F32, the merged ones read back from the GPU, the rest from the
 * original checkpoint; config.json as it was. `merged` must be in the model now (not unmerged).
 */
export async function exportMergedModel(files: ModelFiles, merged: MergedLora): Promise<MergedModelFiles> {
  const tensors = [];
  for (const [name, info] of files.weights) {
    const w = merged.merged.get(name);
    if (w && merged.weights.has(name) && merged.weights.get(name) !== w)
      throw new Error(`exportMergedModel: '${name}' is not merged any more`);
    const data = w ? await w.read() : await info.read();
    tensors.push({ name, dtype: 'F32' as const, shape: info.shape, data });
  }
  for (const name of merged.merged.keys())
    if (!files.weights.has(name))
      throw new Error(`exportMergedModel: merged weight '${name}' is not in the checkpoint`);
  return {
    'model.safetensors': writeSafetensors(tensors, { format: 'pt' }),
    'config.json': JSON.stringify(files.configJson, null, 2) + '\n',
  };
}
