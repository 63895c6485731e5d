// A tensor on the GPU: a buffer from the allocator, a shape (row-major) and an element type.
// Shapes are plain number arrays; comments in kernels give them as e.g. `x is (N, C)`.

import type { GpuBuffer } from './allocator';
import type { Binding, GpuContext } from './context';
import { fromF16, toF16 } from './f16';
import { dequantize, quantLayout, type QuantBlocks, type QuantKind } from './quant';

/** Element types. 'q8' and 'q4' are quantized frozen weights in blocks (./quant.ts), 2-D (rows, cols) only. */
export type DType = 'f32' | 'f16' | 'u32' | QuantKind;

export const isQuant = (d: DType): d is QuantKind => d === 'q8' || d === 'q4';

/** Bytes per element of the plain types (a quantized tensor's size comes from quantLayout). */
export const dtypeBytes = (d: DType) => {
  if (isQuant(d)) throw new Error(`dtypeBytes: ${d} is stored in blocks; use quantLayout`);
  return d === 'f16' ? 2 : 4;
};

/** Bytes of a (shape) tensor of type d. */
export function tensorBytes(shape: readonly number[], d: DType): number {
  if (!isQuant(d)) return numel(shape) * dtypeBytes(d);
  const cols = shape[shape.length - 1];
  return quantLayout(d, numel(shape) / cols, cols).bytes;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Views start at multiples of this many bytes (every adapter's minStorageBufferOffsetAlignment is <= 256). */
export const VIEW_ALIGN = 256;

export class Tensor {
  /**
   * A tensor owns its buffer (offset 0, `view` false) or is a view at byte `offset` of a buffer someone
   * else owns (the flat LoRA buffers). A view has no `buf`: kernels bind it with `binding`, and it is never
   * freed on its own.
   */
  constructor(
    readonly ctx: GpuContext,
    readonly base: GpuBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType = 'f32',
    readonly offset = 0,
    readonly view = false,
  ) {
    if (offset % VIEW_ALIGN)
      throw new Error(`Tensor: a view's offset must be a multiple of ${VIEW_ALIGN}, got ${offset}`);
  }

  /** A (shape) view at byte `offset` of `base` (which the caller keeps and frees). */
  static view(
    ctx: GpuContext,
    base: GpuBuffer,
    offset: number,
    shape: readonly number[],
    dtype: DType = 'f32',
  ): Tensor {
    if (offset + tensorBytes(shape, dtype) > base.size)
      throw new Error(`Tensor.view: [${shape}] at byte ${offset} runs past '${base.label}' (${base.size} bytes)`);
    return new Tensor(ctx, base, shape, dtype, offset, true);
  }

  /** The whole buffer of a tensor that owns one. A view throws: bind it with `binding` instead. */
  get buf(): GpuBuffer {
    if (this.view)
      throw new Error(
        `tensor [${this.shape}] is a view at byte ${this.offset} of '${this.base.label}': use t.binding, not t.buf`,
      );
    return this.base;
  }

  /** What a kernel binds: the whole buffer, or a view's byte range. */
  get binding(): Binding {
    return this.view ? { buf: this.base, offset: this.offset, size: this.bytes } : this.base;
  }

  get numel(): number {
    return numel(this.shape);
  }

  get bytes(): number {
    return tensorBytes(this.shape, this.dtype);
  }

  /** A quantized tensor's two parts as bindings: the blocks' quants and their f16 scales (./quant.ts). */
  get quantParts(): { q: Binding; scales: Binding; rows: number; cols: number } {
    if (!isQuant(this.dtype)) throw new Error(`tensor [${this.shape}] is ${this.dtype}, not quantized`);
    const cols = this.shape[this.shape.length - 1];
    const rows = this.numel / cols;
    const l = quantLayout(this.dtype, rows, cols);
    return {
      q: { buf: this.base, offset: this.offset, size: l.quantBytes },
      scales: { buf: this.base, offset: this.offset + l.scalesOffset, size: l.scalesBytes },
      rows,
      cols,
    };
  }

  get freed(): boolean {
    return this.base.freed;
  }

  /** The same buffer seen with another shape of the same size (free only one of the two). */
  reshape(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.numel) throw new Error(`reshape [${this.shape}] -> [${shape}]: sizes differ`);
    return new Tensor(this.ctx, this.base, shape, this.dtype, this.offset, this.view);
  }

  free(): void {
    if (this.view) throw new Error(`tensor [${this.shape}] is a view of '${this.base.label}': free its owner`);
    this.ctx.free(this.base);
  }

  /** Writes `data` (this tensor's dtype, as raw values) into it. */
  write(data: ArrayBufferView): void {
    if (data.byteLength !== this.bytes)
      throw new Error(`Tensor.write: ${data.byteLength} bytes for [${this.shape}] ${this.dtype} (${this.bytes} bytes)`);
    this.ctx.write(this.base, data, this.offset);
  }

  /** Reads the tensor back as float32 (converting from f16 if needed). */
  async read(): Promise<Float32Array> {
    if (this.dtype === 'u32') throw new Error('Tensor.read(): a u32 tensor; use readU32()');
    if (isQuant(this.dtype)) return dequantize(await this.readQuant());
    if (this.dtype === 'f16')
      return fromF16(new Uint16Array(await this.ctx.readBytes(this.base, this.bytes, this.offset)));
    return new Float32Array(await this.ctx.readBytes(this.base, this.bytes, this.offset));
  }

  /** A quantized tensor's blocks, as uploaded. */
  async readQuant(): Promise<QuantBlocks> {
    const { rows, cols } = this.quantParts;
    const kind = this.dtype as QuantKind;
    const l = quantLayout(kind, rows, cols);
    const bytes = await this.ctx.readBytes(this.base, this.bytes, this.offset);
    return {
      kind,
      rows,
      cols,
      q: new Uint32Array(bytes.slice(0, l.quantBytes)),
      scales: new Uint32Array(bytes.slice(l.scalesOffset, l.scalesOffset + l.scalesBytes)),
    };
  }

  async readU32(): Promise<Uint32Array> {
    return new Uint32Array(await this.ctx.readBytes(this.base, this.bytes, this.offset));
  }

  static empty(ctx: GpuContext, shape: readonly number[], label = 'tensor', dtype: DType = 'f32'): Tensor {
    return new Tensor(ctx, ctx.buffer(Math.max(4, tensorBytes(shape, dtype)), label), shape, dtype);
  }

  static zeros(ctx: GpuContext, shape: readonly number[], label = 'zeros', dtype: DType = 'f32'): Tensor {
    const t = Tensor.empty(ctx, shape, label, dtype);
    ctx.clear(t.buf);
    return t;
  }

  static from(
    ctx: GpuContext,
    data: ArrayLike<number>,
    shape: readonly number[],
    label = 'tensor',
    dtype: DType = 'f32',
  ): Tensor {
    if (data.length !== numel(shape))
      throw new Error(`Tensor.from(${label}): ${data.length} values for shape [${shape}]`);
    const view = dtype === 'f16' ? toF16(data) : data instanceof Float32Array ? data : Float32Array.from(data);
    return new Tensor(ctx, ctx.upload(view, label), shape, dtype);
  }

  /** An f16 tensor from f16 bit patterns as they are (e.g. an F16 checkpoint's bytes): no conversion. */
  static fromF16Bits(ctx: GpuContext, bits: Uint16Array, shape: readonly number[], label = 'tensor'): Tensor {
    if (bits.length !== numel(shape))
      throw new Error(`Tensor.fromF16Bits(${label}): ${bits.length} values for shape [${shape}]`);
    return new Tensor(ctx, ctx.upload(bits, label), shape, 'f16');
  }

  /** A quantized (rows, cols) weight from its blocks: one buffer, quants then scales (./quant.ts). */
  static fromQuant(ctx: GpuContext, qb: QuantBlocks, label = 'weight'): Tensor {
    const l = quantLayout(qb.kind, qb.rows, qb.cols);
    if (qb.q.byteLength !== l.quantBytes || qb.scales.byteLength !== l.scalesBytes)
      throw new Error(`Tensor.fromQuant(${label}): block arrays do not match ${qb.rows} × ${qb.cols} ${qb.kind}`);
    const bytes = new Uint8Array(l.bytes);
    bytes.set(new Uint8Array(qb.q.buffer, qb.q.byteOffset, l.quantBytes), 0);
    bytes.set(new Uint8Array(qb.scales.buffer, qb.scales.byteOffset, l.scalesBytes), l.scalesOffset);
    return new Tensor(ctx, ctx.upload(bytes, label), [qb.rows, qb.cols], qb.kind);
  }

  static fromU32(ctx: GpuContext, data: ArrayLike<number>, shape: readonly number[], label = 'ids'): Tensor {
    const view = data instanceof Uint32Array ? data : Uint32Array.from(data);
    return new Tensor(ctx, ctx.upload(view, label), shape, 'u32');
  }
}
