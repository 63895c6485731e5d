// A tensor on the GPU: a buffer from the allocator, a shape (row-major) and an element type.
// Shapes are plain number arrays; comments in kernels give them as e.g. `x is (N, C)`.

import type { GpuBuffer } from './allocator';
import type { Binding, GpuContext } from './context';
import { fromF16, toF16 } from './f16';

export type DType = 'f32' | 'f16' | 'u32';

export const dtypeBytes = (d: DType) => (d === 'f16' ? 2 : 4);

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
    if (offset + numel(shape) * dtypeBytes(dtype) > base.size)
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
    return this.numel * dtypeBytes(this.dtype);
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
    if (this.dtype === 'f16')
      return fromF16(new Uint16Array(await this.ctx.readBytes(this.base, this.bytes, this.offset)));
    return new Float32Array(await this.ctx.readBytes(this.base, this.bytes, this.offset));
  }

  async readU32(): Promise<Uint32Array> {
    return new Uint32Array(await this.ctx.readBytes(this.base, this.bytes, this.offset));
  }

  static empty(ctx: GpuContext, shape: readonly number[], label = 'tensor', dtype: DType = 'f32'): Tensor {
    return new Tensor(ctx, ctx.buffer(Math.max(4, numel(shape) * dtypeBytes(dtype)), label), shape, dtype);
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

  static fromU32(ctx: GpuContext, data: ArrayLike<number>, shape: readonly number[], label = 'ids'): Tensor {
    const view = data instanceof Uint32Array ? data : Uint32Array.from(data);
    return new Tensor(ctx, ctx.upload(view, label), shape, 'u32');
  }
}
