// Frozen base-model weights on the GPU. The weights choice says how the large linear weights and the
// embedding / LM-head tables are stored; norms and biases always stay f32:
//
//   f32   as float32
//   f16   as float16 (needs shader-f16); F16 checkpoint bytes go up as they are
//   int8  quantized at load into Q8_0 blocks (src/gpu/quant.ts), 1.0625 bytes per value
//   int4  quantized at load into Q4_0 blocks, 0.5625 bytes per value
//
// Under int8 / int4 a tensor whose rows do not split into 32-value blocks (cols % 32 != 0) stays float: f16
// where the device has shader-f16, else f32 (GpuWeights.notes says which). A GGUF tensor already in the chosen
// blocks (Q8_0 for int8, Q4_0 for int4) goes up as it is; one in the other kind is dequantized and quantized
// again, with a note. A table larger than one storage binding (GPT-2's wte is 154 MB in f32) is kept as row
// chunks, each a whole number of 64-row blocks so that chunk offsets into logits stay 256-byte aligned; a
// quantized table is quantized chunk by chunk.

import type { GpuContext } from '../gpu/context';
import { fromF16 } from '../gpu/f16';
import { quantLayout, quantize, quantizable, QUANT_BLOCK, type QuantBlocks, type QuantKind } from '../gpu/quant';
import { Tensor, dtypeBytes, isQuant, type DType } from '../gpu/tensor';
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

/** How the frozen base's linear weights and tables are stored (see the top of this file). */
export type WeightsChoice = 'f32' | 'f16' | 'int8' | 'int4';
export const WEIGHTS_CHOICES: readonly WeightsChoice[] = ['f32', 'f16', 'int8', 'int4'];

/** The block format of a quantized choice, or null for a float one. */
export const quantKindOf = (c: WeightsChoice): QuantKind | null => (c === 'int8' ? 'q8' : c === 'int4' ? 'q4' : null);

/** The DType a (rows, cols) linear weight or table gets under `choice` on a device with or without shader-f16. */
export function storedDtype(choice: WeightsChoice, cols: number, hasF16: boolean): DType {
  const kind = quantKindOf(choice);
  if (!kind) return choice as 'f32' | 'f16';
  return quantizable(cols) ? kind : hasF16 ? 'f16' : 'f32';
}

/** The GGUF block type that is already `kind`'s layout. */
const GGML_TYPE: Record<QuantKind, string> = { q8: 'Q8_0', q4: 'Q4_0' };

export interface WeightOptions {
  /** Storage of linear weights and the tables. 'f16' needs ctx.hasF16. */
  dtype: WeightsChoice;
  /** Tensors done (read, quantized when the choice says so, uploaded) of all the model uses. */
  onProgress?: (done: number, total: number) => void;
}

export class GpuWeights {
  private tensors = new Map<string, Tensor>();
  embedding: RowChunk[] = [];
  lmHead: RowChunk[] = [];
  /** What the load did differently from the choice, in words: tensors left float, blocks requantized. */
  readonly notes: string[] = [];

  private constructor(
    readonly ctx: GpuContext,
    readonly cfg: ModelConfig,
    /** The weights choice it was loaded with; each tensor's own dtype says how it is stored. */
    readonly dtype: WeightsChoice,
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
   * Only the shape must match: a merged f32 weight takes the place of a q4 one, and back.
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
    const kind = quantKindOf(opts.dtype);
    try {
      const names = weightNames(cfg);
      let done = 0;
      const total = names.large.length + names.small.length + names.tables.length;
      const tick = () => opts.onProgress?.(++done, total); // after each tensor is on the GPU
      const reader_ = (name: string): TensorReader => {
        const r = reader.get(name);
        if (!r) throw new Error(`checkpoint has no tensor '${name}'`);
        return r;
      };
      /** The tensor's values; as stored when it is F16 and goes to f16 (`dtype`), else float32. */
      const get = async (name: string, dtype: DType): Promise<Values> => {
        const r = reader_(name);
        if (dtype === 'f16' && r.dtype === 'F16' && r.readBytes) {
          const b = await r.readBytes();
          const aligned = b.byteOffset % 2 === 0 ? b : b.slice();
          return new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
        }
        if (r.quant && (r.dtype === 'Q8_0' || r.dtype === 'Q4_0'))
          w.notes.push(
            `${name}: stored ${r.dtype}, dequantized${isQuant(dtype) ? ` and quantized again as ${opts.dtype}` : ` to ${dtype}`}`,
          );
        return r.read();
      };
      /** A linear weight or table under the choice: float values, or blocks (as stored when they match). */
      const load = async (name: string): Promise<{ data: Values | QuantBlocks; shape: number[] }> => {
        const r = reader_(name);
        const cols = r.shape[r.shape.length - 1];
        const dtype = storedDtype(opts.dtype, cols, ctx.hasF16);
        const asStored = kind && r.quant && r.dtype === GGML_TYPE[kind];
        const data = asStored ? await r.quant!() : await get(name, dtype);
        return { data, shape: r.shape };
      };
      const spec = familySpec(cfg);
      for (const name of names.small) {
        const f32 = (await get(name, 'f32')) as Float32Array; // asked for f32: always decoded
        const stored = spec.storeSmall ? spec.storeSmall(name, f32) : f32;
        w.tensors.set(name, Tensor.from(ctx, stored, reader_(name).shape, name, 'f32'));
        tick();
      }
      const floatLeft: string[] = [];
      for (const name of names.large) {
        const { data, shape } = await load(name);
        const t = upload(ctx, data, shape, name, storedDtype(opts.dtype, shape[shape.length - 1], ctx.hasF16));
        if (kind && !isQuant(t.dtype)) floatLeft.push(`${name} [${shape}]`);
        w.tensors.set(name, t);
        tick();
      }
      const table = async (name: string): Promise<RowChunk[]> => {
        const { data, shape } = await load(name);
        const chunks = toRowChunks(ctx, data, shape, name, opts.dtype);
        if (kind && !isQuant(chunks[0].table.dtype)) floatLeft.push(`${name} [${shape}]`);
        tick();
        return chunks;
      };
      const [embName, headName] = names.tables;
      w.embedding = await table(embName);
      w.lmHead = headName ? await table(headName) : w.embedding;
      if (floatLeft.length)
        w.notes.unshift(
          `${floatLeft.length} of ${names.large.length + names.tables.length} weights stay ${ctx.hasF16 ? 'f16' : 'f32'} under ${opts.dtype}: their rows do not split into ${QUANT_BLOCK}-value blocks (${floatLeft.join(', ')})`,
        );
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

/**
 * Rows per chunk so that one chunk fits one storage binding (a multiple of 64 rows). For a quantized
 * table each of its two parts is bound on its own, and the quants (cols or cols / 2 bytes a row) are the
 * larger; the whole buffer (quants, padding to 256, scales) must also fit one buffer.
 */
export function rowsPerChunk(ctx: GpuContext, cols: number, dtype: DType): number {
  const { maxStorageBufferBindingSize: binding, maxBufferSize } = ctx.limits;
  const maxRows = isQuant(dtype)
    ? Math.min(
        Math.floor(binding / quantLayout(dtype, 1, cols).quantBytes),
        Math.floor((maxBufferSize - 256) / (quantLayout(dtype, 2, cols).bytes / 2)),
      )
    : Math.floor(binding / (cols * dtypeBytes(dtype)));
  const rows = Math.floor(maxRows / 64) * 64;
  if (rows < 64) throw new Error(`a row of ${cols} values does not fit a storage binding 64 times`);
  return rows;
}

/** A tensor on the GPU in `dtype`: float values as they are, or quantized here; blocks as they are. */
function upload(ctx: GpuContext, data: Values | QuantBlocks, shape: number[], name: string, dtype: DType): Tensor {
  if (!(data instanceof Float32Array || data instanceof Uint16Array)) {
    if (data.kind !== dtype) throw new Error(`${name}: ${data.kind} blocks for a ${dtype} weight`);
    return Tensor.fromQuant(ctx, data, name);
  }
  if (isQuant(dtype)) {
    const f32 = data instanceof Float32Array ? data : fromF16(data);
    const cols = shape[shape.length - 1];
    return Tensor.fromQuant(ctx, quantize(dtype, f32, f32.length / cols, cols), name);
  }
  return data instanceof Uint16Array
    ? Tensor.fromF16Bits(ctx, data, shape, name)
    : Tensor.from(ctx, data, shape, name, dtype);
}

/** A (rows, cols) table as row chunks under `choice`; blocks (rows of whole blocks) are cut chunk by chunk. */
function toRowChunks(
  ctx: GpuContext,
  data: Values | QuantBlocks,
  shape: number[],
  name: string,
  choice: WeightsChoice,
): RowChunk[] {
  const [rows, cols] = shape;
  const dtype = storedDtype(choice, cols, ctx.hasF16);
  const per = rowsPerChunk(ctx, cols, dtype);
  const chunks: RowChunk[] = [];
  try {
    for (let r = 0; r < rows; r += per) {
      const n = Math.min(per, rows - r);
      const label = `${name}[${r}:${r + n}]`;
      const part =
        data instanceof Float32Array || data instanceof Uint16Array
          ? data.subarray(r * cols, (r + n) * cols)
          : blockRows(data, r, n);
      chunks.push({ table: upload(ctx, part, [n, cols], label, dtype), rowStart: r });
    }
  } catch (e) {
    for (const c of chunks) c.table.free();
    throw e;
  }
  return chunks;
}

/** Rows r .. r + n of a quantized matrix (whole rows are whole blocks; an odd block count starts mid-word). */
function blockRows(qb: QuantBlocks, r: number, n: number): QuantBlocks {
  if (r === 0 && n === qb.rows) return qb;
  const perRow = qb.cols / QUANT_BLOCK;
  const words = quantLayout(qb.kind, 1, qb.cols).quantBytes / 4;
  const out: QuantBlocks = {
    kind: qb.kind,
    rows: n,
    cols: qb.cols,
    q: qb.q.slice(r * words, (r + n) * words),
    scales: new Uint32Array(Math.ceil((n * perRow) / 2)),
  };
  for (let b = 0; b < n * perRow; b++) {
    const src = r * perRow + b;
    const bits = (qb.scales[src >>> 1] >>> (src & 1 ? 16 : 0)) & 0xffff;
    out.scales[b >>> 1] |= b & 1 ? bits << 16 : bits;
  }
  return out;
}
