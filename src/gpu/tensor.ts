// A tensor on the GPU: a buffer from the allocator, a shape (row-major) and an element type.
// Shapes are plain number arrays; comments in kernels give them as e.g. `x is (N, C)`.

import type { GpuBuffer } from './allocator';
import type { GpuContext } from './context';
import { fromF16, toF16 } from './f16';

export type DType = 'f32' | 'f16' | 'u32';

export const dtypeBytes = (d: DType) => (d === 'f16' ? 2 : 4);

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export class Tensor {
  constructor(
    readonly ctx: GpuContext,
    readonly buf: GpuBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType = 'f32',
  ) {}

  get numel(): number {
    return numel(this.shape);
  }

  get bytes(): number {
    return this.numel * dtypeBytes(this.dtype);
  }

  get freed(): boolean {
    return this.buf.freed;
  }

  /** The same buffer seen with another shape of the same size (free only one of the two). */
  reshape(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.numel) throw new Error(`reshape [${this.shape}] -> [${shape}]: sizes differ`);
    return new Tensor(this.ctx, this.buf, shape, this.dtype);
  }

  free(): void {
    this.ctx.free(this.buf);
  }

  /** Reads the tensor back as float32 (converting from f16 if needed). */
  async read(): Promise<Float32Array> {
    if (this.dtype === 'u32') throw new Error('Tensor.read(): a u32 tensor; use readU32()');
    if (this.dtype === 'f16') return fromF16(new Uint16Array(await this.ctx.readBytes(this.buf, this.bytes)));
    return this.ctx.readF32(this.buf, this.numel);
  }

  async readU32(): Promise<Uint32Array> {
    return this.ctx.readU32(this.buf, this.numel);
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

  static fromU32(ctx: GpuContext, data: ArrayLike<number>, shape: readonly number[], label = 'ids'): Tensor {
    const view = data instanceof Uint32Array ? data : Uint32Array.from(data);
    return new Tensor(ctx, ctx.upload(view, label), shape, 'u32');
  }
}
