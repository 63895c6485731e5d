// The GPU runtime itself: the allocator's reuse and byte counts, the pipeline cache, errors that name
// the kernel, limits the adapter cannot give, a lost device, and a model whose loading fails halfway
// leaving nothing on the GPU.

import { describe, expect, it } from 'vitest';
import { sizeClass, OutOfMemoryError } from '../../src/gpu/allocator';
import { DeviceLostError, GpuContext, GpuError } from '../../src/gpu/context';
import { createNodeContext, nodeGpu } from '../../src/gpu/node';
import { Tensor } from '../../src/gpu/tensor';
import { add_forward } from '../../src/kernels/add';
import { parseConfig } from '../../src/models/config';
import { GpuWeights } from '../../src/models/weights';
import { expectedTensors } from '../../src/models/config';
import { gpu } from '../helpers/gpu';

describe('buffer allocator', () => {
  it('reuses freed buffers of the same size class and keeps live, pooled and peak bytes', async () => {
    const ctx = await gpu();
    await ctx.sync();
    const a0 = ctx.alloc.stats();
    const t = Tensor.empty(ctx, [1000]);
    const cap = sizeClass(4000);
    expect(ctx.alloc.liveBytes - a0.liveBytes).toBe(cap);
    const buf = t.buf.buffer;
    t.free();
    expect(ctx.alloc.liveBytes).toBe(a0.liveBytes);
    expect(ctx.alloc.pooledBytes).toBeGreaterThanOrEqual(cap);
    const u = Tensor.empty(ctx, [990]); // same size class: the same GPU buffer comes back
    expect(u.buf.buffer).toBe(buf);
    expect(ctx.alloc.peakBytes).toBeGreaterThanOrEqual(ctx.alloc.allocatedBytes);
    u.free();
    expect(() => u.free()).toThrow(/double free/);
  });

  it('size classes waste at most 1/8 and are exact for small buffers', () => {
    for (const n of [1, 255, 256, 257, 4096, 65536, 65537, 1e6, 123456789]) {
      const c = sizeClass(n);
      expect(c).toBeGreaterThanOrEqual(n);
      if (n > 65536) expect(c / n).toBeLessThanOrEqual(1.125 + 1e-9);
      else expect(c % 256).toBe(0);
    }
  });

  it('a buffer larger than the adapter allows is a clear OutOfMemoryError', async () => {
    const ctx = await gpu();
    expect(() => ctx.buffer(ctx.limits.maxBufferSize + 4, 'huge')).toThrow(OutOfMemoryError);
    expect(() => ctx.buffer(ctx.limits.maxBufferSize + 4, 'huge')).toThrow(/huge.*maxBufferSize/);
  });
});

describe('kernels and errors', () => {
  it('caches pipelines by kernel and specialisation', async () => {
    const ctx = await gpu();
    expect(ctx.pipeline('add')).toBe(ctx.pipeline('add'));
    expect(ctx.pipeline('axpy')).not.toBe(ctx.pipeline('add'));
  });

  it('a validation error is thrown on the next read and names the kernel', async () => {
    const ctx = await gpu();
    const a = Tensor.from(ctx, [1, 2, 3], [3]);
    // A uniform buffer where the kernel wants storage: WebGPU rejects the bind group.
    const wrong = ctx.alloc.alloc(256, 0x40 | 0x8, 'not-storage');
    ctx.dispatch('add', { bindings: [a.buf, a.buf, wrong], u32: [3], workgroups: [1] });
    await expect(a.read()).rejects.toThrow(/validation error in kernel 'add'/);
    ctx.alloc.free(wrong);
    a.free();
  });

  it('a binding over the storage-binding limit is refused before it reaches the GPU', async () => {
    const ctx = await gpu();
    const small = ctx.buffer(256, 'big');
    const over = { buf: small, offset: 0, size: ctx.limits.maxStorageBufferBindingSize + 4 }; // checked before any GPU call
    expect(() => ctx.dispatch('add', { bindings: [small, small, over], u32: [1], workgroups: [1] })).toThrow(
      /'big'\) is .* over this adapter's storage binding limit/,
    );
    ctx.flush();
    ctx.free(small);
  });

  it('using a freed tensor is refused with its name', async () => {
    const ctx = await gpu();
    const a = Tensor.from(ctx, [1], [1], 'gone');
    const b = Tensor.from(ctx, [1], [1]);
    a.free();
    expect(() => add_forward(a, b)).toThrow(/'gone'\) was already freed/);
    b.free();
  });
});

describe('device', () => {
  it('limits the adapter cannot give are a clear error', async () => {
    await expect(GpuContext.create(nodeGpu(), { storageBindingBytes: 2 ** 40 })).rejects.toThrow(
      /cannot give the limits needed: maxStorageBufferBindingSize/,
    );
    await expect(GpuContext.create(undefined)).rejects.toThrow(/WebGPU is not available/);
  });

  it('a lost device becomes an event, and later work a DeviceLostError that says what to do', async () => {
    const ctx = await createNodeContext();
    const lost = new Promise<GPUDeviceLostInfo>((r) => ctx.onLost(r));
    ctx.device.destroy();
    const info = await lost;
    expect(info.reason).toBe('destroyed');
    expect(() => Tensor.empty(ctx, [4])).toThrow(DeviceLostError);
    expect(() => Tensor.empty(ctx, [4])).toThrow(/Saved work is kept/);
    expect(DeviceLostError.prototype).toBeInstanceOf(GpuError);
  });
});

describe('loading a model', () => {
  it('a failure halfway through leaves nothing on the GPU', async () => {
    const ctx = await gpu();
    await ctx.sync();
    const live0 = ctx.alloc.liveBytes;
    const cfg = parseConfig({
      architectures: ['LlamaForCausalLM'],
      vocab_size: 64,
      hidden_size: 16,
      intermediate_size: 24,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      tie_word_embeddings: true,
    });
    let n = 0;
    const readers = new Map(
      [...expectedTensors(cfg)].map(([name, shape]) => [
        name,
        {
          shape,
          async read() {
            if (++n === 7) throw new Error('network dropped while reading model.safetensors');
            return new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01);
          },
        },
      ]),
    );
    await expect(GpuWeights.load(ctx, cfg, readers, { dtype: 'f32' })).rejects.toThrow(/network dropped/);
    expect(n).toBe(7);
    ctx.flush();
    expect(ctx.alloc.liveBytes).toBe(live0);
  });
});

describe('command stream', () => {
  it('reuses a bind group for the same kernel and buffer ranges; uniforms still differ per dispatch', async () => {
    const ctx = await gpu();
    const x = Tensor.from(ctx, [1, 2, 3], [3]);
    const y = Tensor.from(ctx, [10, 20, 30], [3]);
    const axpy = (alpha: number, size = 12) =>
      ctx.dispatch('axpy', {
        bindings: [x.buf, { buf: y.buf, offset: 0, size }],
        u32: [size / 4],
        f32: [alpha],
        workgroups: [1],
      });
    const g0 = ctx.bindGroupCount;
    axpy(1);
    axpy(2); // same buffers and ranges: the cached bind group, with this dispatch's own alpha
    expect(ctx.bindGroupCount - g0).toBe(1);
    expect(Array.from(await y.read())).toEqual([13, 26, 39]);
    axpy(-3); // cached across submits too
    expect(ctx.bindGroupCount - g0).toBe(1);
    axpy(1, 8); // another range: another bind group
    expect(ctx.bindGroupCount - g0).toBe(2);
    expect(Array.from(await y.read())).toEqual([11, 22, 30]); // -3 then +1 on the first two
    await ctx.sync();
    ctx.alloc.trim(); // destroyed pooled buffers: the cache starts over
    axpy(0);
    expect(ctx.bindGroupCount - g0).toBe(3);
    x.free();
    y.free();
  });

  it('steps read back with readLater only (no sync) do not pile up the error checks of their batches', async () => {
    // A training run with no evaluation, sample or checkpoint reads each step's figures with readLater
    // alone; each passed batch's error check must leave once it has passed, or they grow by a few a step.
    const ctx = await gpu();
    const x = Tensor.from(ctx, [1], [1]);
    const y = Tensor.zeros(ctx, [1]);
    await ctx.sync();
    for (let i = 0; i < 100; i++) {
      ctx.dispatch('axpy', { bindings: [x.buf, y.buf], u32: [1], f32: [1], workgroups: [1] });
      ctx.flush();
      ctx.dispatch('axpy', { bindings: [x.buf, y.buf], u32: [1], f32: [1], workgroups: [1] });
      expect(new Float32Array(await ctx.readLater(y.buf, 4))[0]).toBe(2 * (i + 1));
    }
    expect(ctx.pendingErrorChecks).toBe(0);
    // a failing batch's check stays until it is reported
    const wrong = ctx.alloc.alloc(256, 0x40 | 0x8, 'not-storage'); // a uniform buffer where storage is wanted
    ctx.dispatch('add', { bindings: [x.buf, x.buf, wrong], u32: [1], workgroups: [1] });
    ctx.flush();
    await ctx.device.queue.onSubmittedWorkDone();
    expect(ctx.pendingErrorChecks).toBe(1);
    await expect(ctx.sync()).rejects.toThrow(/validation error in kernel 'add'/);
    expect(ctx.pendingErrorChecks).toBe(0);
    ctx.alloc.free(wrong);
    x.free();
    y.free();
  });

  it('kernels record without a submit until a read, a write or a full uniform ring', async () => {
    const ctx = await gpu();
    const x = Tensor.from(ctx, [1], [1]);
    const y = Tensor.zeros(ctx, [1]);
    ctx.flush();
    const s0 = ctx.submitCount;
    for (let i = 0; i < 300; i++)
      ctx.dispatch('axpy', { bindings: [x.buf, y.buf], u32: [1], f32: [1], workgroups: [1] });
    expect(ctx.submitCount).toBe(s0); // 300 dispatches, one open batch
    expect(Array.from(await y.read())).toEqual([300]);
    expect(ctx.submitCount).toBe(s0 + 1);
    x.free();
    y.free();
  });
});
