// Frozen base-model weights on the GPU. Large linear weights and the embedding table may be stored as
// f16 (where the device has shader-f16); norms and biases stay f32. A table larger than one storage
// binding (GPT-2's wte is 154 MB in f32) is kept as row chunks, each a whole number of 64-row blocks
// so that chunk offsets into logits stay 256-byte aligned.

import type { GpuContext } from '../gpu/context';
import type { QuantBlocks } from '../gpu/quant';
import { Tensor, dtypeBytes, type DType } from '../gpu/tensor';
import type { RowChunk } from '../kernels/embedding';
import { rope_inv_freq_tensor } from '../kernels/rope';
import { familySpec } from './families';
import type { ModelConfig, WeightNames } from './families/types';

/**
 * One tensor of a checkpoint, readable as float32 (the loaders convert F16/BF16). A loader that also gives
 * the stored dtype and raw bytes lets F16 tensors go to f16 weights as they are, with no float32 round trip
 * (which costs a conversion of every value both ways: seconds per GB).
 */
export interface TensorReader {
  shape: number[];
  read(): Promise<Float32Array>;
  dtype?: string;
  readBytes?(): Promise<Uint8Array>;
  /** A tensor stored in Q8_0 / Q4_0 blocks (dtype 'Q8_0' / 'Q4_0', e.g. from a GGUF file): its blocks as they
   * are, for a quantized weight with no dequantize-and-requantize (src/gpu/quant.ts). */
  quant?(): Promise<QuantBlocks>;
}

/** A tensor's values: float32, or f16 bit patterns straight from an F16 checkpoint. */
type Values = Float32Array | Uint16Array;

function uploadValues(ctx: GpuContext, data: Values, shape: number[], name: string, dtype: DType): Tensor {
  return data instanceof Uint16Array
    ? Tensor.fromF16Bits(ctx, data, shape, name)
    : Tensor.from(ctx, data, shape, name, dtype);
}

export interface WeightOptions {
  /** Storage type of linear weights and the embedding table. 'f16' needs ctx.hasF16. */
  dtype: DType;
  onProgress?: (done: number, total: number) => void;
}

export class GpuWeights {
  private tensors = new Map<string, Tensor>();
  embedding: RowChunk[] = [];
  lmHead: RowChunk[] = [];

  private constructor(
    readonly ctx: GpuContext,
    readonly cfg: ModelConfig,
    readonly dtype: DType,
  ) {}

  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`weight '${name}' is not loaded`);
    return t;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /**
   * Puts `t` in place of weight `name` and returns the tensor it replaces, which the caller now owns
   * (nothing is freed or written here). Used by src/adapters/merge.ts to swap merged weights in and out.
   */
  swap(name: string, t: Tensor): Tensor {
    const old = this.get(name);
    if (t.shape.length !== old.shape.length || t.shape.some((d, i) => d !== old.shape[i])) {
      throw new Error(`swap '${name}': new tensor is [${t.shape}], the weight is [${old.shape}]`);
    }
    this.tensors.set(name, t);
    return old;
  }

  get bytes(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += t.bytes;
    for (const c of [...this.embedding, ...(this.lmHead === this.embedding ? [] : this.lmHead)]) n += c.table.bytes;
    return n;
  }

  free(): void {
    for (const t of this.tensors.values()) if (!t.freed) t.free();
    this.tensors.clear();
    for (const c of this.embedding) if (!c.table.freed) c.table.free();
    for (const c of this.lmHead) if (!c.table.freed) c.table.free();
    this.embedding = [];
    this.lmHead = [];
  }

  /** Uploads every tensor the model uses. On any error, everything uploaded so far is freed. */
  static async load(
    ctx: GpuContext,
    cfg: ModelConfig,
    reader: Map<string, TensorReader>,
    opts: WeightOptions,
  ): Promise<GpuWeights> {
    if (opts.dtype === 'f16' && !ctx.hasF16)
      throw new Error('f16 weights need the shader-f16 feature, which this GPU adapter lacks; use f32');
    const w = new GpuWeights(ctx, cfg, opts.dtype);
    try {
      const names = weightNames(cfg);
      let done = 0;
      const total = names.large.length + names.small.length + names.tables.length;
      /** The tensor's values; as stored when it is F16 and goes to f16 (`dtype`), else float32. */
      const get = async (name: string, dtype: DType): Promise<{ data: Values; shape: number[] }> => {
        const r = reader.get(name);
        if (!r) throw new Error(`checkpoint has no tensor '${name}'`);
        let data: Values;
        if (dtype === 'f16' && r.dtype === 'F16' && r.readBytes) {
          const b = await r.readBytes();
          const aligned = b.byteOffset % 2 === 0 ? b : b.slice();
          data = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
        } else data = await r.read();
        opts.onProgress?.(++done, total);
        return { data, shape: r.shape };
      };
      const spec = familySpec(cfg);
      for (const name of names.small) {
        const { data, shape } = await get(name, 'f32');
        const f32 = data as Float32Array; // asked for f32: always decoded
        const stored = spec.storeSmall ? spec.storeSmall(name, f32) : f32;
        w.tensors.set(name, Tensor.from(ctx, stored, shape, name, 'f32'));
      }
      for (const name of names.large) {
        const { data, shape } = await get(name, opts.dtype);
        w.tensors.set(name, uploadValues(ctx, data, shape, name, opts.dtype));
      }
      const [embName, headName] = names.tables;
      const emb = await get(embName, opts.dtype);
      w.embedding = toRowChunks(ctx, emb.data, emb.shape, embName, opts.dtype);
      if (headName) {
        const head = await get(headName, opts.dtype);
        w.lmHead = toRowChunks(ctx, head.data, head.shape, headName, opts.dtype);
      } else w.lmHead = w.embedding;
      // RoPE's frequency table, once (HF computes it in f32 from rope_theta and rope_scaling).
      if (cfg.ropeTheta > 0)
        w.tensors.set('rope.inv_freq', rope_inv_freq_tensor(ctx, cfg.headDim, cfg.ropeTheta, cfg.ropeScaling ?? null));
      // Gemma 3's sliding layers: a second, unscaled table from rope_local_base_freq.
      if (cfg.ropeLocalTheta)
        w.tensors.set('rope_local.inv_freq', rope_inv_freq_tensor(ctx, cfg.headDim, cfg.ropeLocalTheta, null));
      return w;
    } catch (e) {
      w.free();
      throw e;
    }
  }
}

/** The names of the tensors the model code reads, by how they are stored (the family says which). */
export function weightNames(cfg: ModelConfig): WeightNames {
  return familySpec(cfg).weightNames(cfg);
}

/** Rows per chunk so that one chunk fits one storage binding (a multiple of 64 rows). */
export function rowsPerChunk(ctx: GpuContext, cols: number, dtype: DType): number {
  const maxRows = Math.floor(ctx.limits.maxStorageBufferBindingSize / (cols * dtypeBytes(dtype)));
  const rows = Math.floor(maxRows / 64) * 64;
  if (rows < 64) throw new Error(`a row of ${cols} values does not fit a storage binding 64 times`);
  return rows;
}

function toRowChunks(ctx: GpuContext, data: Values, shape: number[], name: string, dtype: DType): RowChunk[] {
  const [rows, cols] = shape;
  const per = rowsPerChunk(ctx, cols, dtype);
  const chunks: RowChunk[] = [];
  try {
    for (let r = 0; r < rows; r += per) {
      const n = Math.min(per, rows - r);
      chunks.push({
        table: uploadValues(ctx, data.subarray(r * cols, (r + n) * cols), [n, cols], `${name}[${r}:${r + n}]`, dtype),
        rowStart: r,
      });
    }
  } catch (e) {
    for (const c of chunks) c.table.free();
    throw e;
  }
  return chunks;
}
