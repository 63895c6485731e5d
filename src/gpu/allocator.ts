// One allocator for every GPU buffer. It pools freed buffers by (size class, usage) for reuse and
// keeps the byte counts that tests and benchmarks read:
//   liveBytes   bytes held by callers right now (what a leak test checks is zero)
//   pooledBytes bytes kept for reuse (allocated on the GPU, not in use)
//   peakBytes   the most bytes ever allocated on the GPU at once (live + pooled + runtime)
//   peakLiveBytes the most bytes ever held by callers at once
//   runtimeBytes bytes the runtime itself holds for good (the uniform ring), never freed, not "live"

import { fmtBytes } from '../util/format';

export interface GpuBuffer {
  readonly buffer: GPUBuffer;
  readonly size: number; // bytes the caller asked for
  readonly capacity: number; // bytes allocated (size class)
  readonly usage: GPUBufferUsageFlags;
  readonly label: string;
  freed: boolean;
}

export class OutOfMemoryError extends Error {}

// Which pooled buffer an allocation gets depends only on the set of pooled buffers (the newest of its class),
// never on the order they were freed in: a training step then gets the very same buffers every time, and the
// runtime's bind group cache (keyed by buffer) hits on every dispatch after the first steps.
//
// Size classes: multiples of 256 B up to 64 KiB, then steps of 1/8 of a power of two, so reuse wastes
// at most ~12 % while a training step (same shapes every time) reuses every buffer exactly.
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  if (b <= 65536) return b;
  const step = 2 ** (Math.floor(Math.log2(b)) - 3);
  return Math.ceil(b / step) * step;
}

export class BufferAllocator {
  liveBytes = 0;
  pooledBytes = 0;
  peakBytes = 0;
  peakLiveBytes = 0;
  runtimeBytes = 0;
  liveCount = 0;
  /** Increments on every trim(): buffers were destroyed, so anything that cached them starts over. */
  trimCount = 0;
  /** Per (size class, usage): pooled buffers sorted by creation order, newest last. */
  private pool = new Map<string, GPUBuffer[]>();
  private ids = new WeakMap<GPUBuffer, number>();
  private nextId = 0;

  constructor(
    private device: GPUDevice,
    private maxBufferSize: number,
  ) {}

  get allocatedBytes(): number {
    return this.liveBytes + this.pooledBytes + this.runtimeBytes;
  }

  /** A buffer the runtime keeps for the context's lifetime (not counted as live; destroyed with the device). */
  reserve(bytes: number, usage: GPUBufferUsageFlags, label: string): GpuBuffer {
    const buffer = this.device.createBuffer({ size: bytes, usage, label });
    this.runtimeBytes += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.allocatedBytes);
    return { buffer, size: bytes, capacity: bytes, usage, label, freed: false };
  }

  alloc(bytes: number, usage: GPUBufferUsageFlags, label = 'buffer'): GpuBuffer {
    if (!(bytes > 0)) throw new Error(`alloc(${label}): size must be positive, got ${bytes}`);
    if (bytes > this.maxBufferSize) {
      throw new OutOfMemoryError(
        `alloc(${label}): ${fmtBytes(bytes)} is larger than this adapter's maxBufferSize ` +
          `(${fmtBytes(this.maxBufferSize)}); split the tensor or use a smaller model`,
      );
    }
    const capacity = Math.min(sizeClass(bytes), this.maxBufferSize);
    const key = `${capacity}:${usage}`;
    const pooled = this.pool.get(key)?.pop();
    let buffer: GPUBuffer;
    if (pooled) {
      this.pooledBytes -= capacity;
      buffer = pooled;
    } else {
      buffer = this.device.createBuffer({ size: capacity, usage, label });
      this.ids.set(buffer, this.nextId++);
    }
    this.liveBytes += capacity;
    this.liveCount++;
    this.peakBytes = Math.max(this.peakBytes, this.allocatedBytes);
    this.peakLiveBytes = Math.max(this.peakLiveBytes, this.liveBytes);
    return { buffer, size: bytes, capacity, usage, label, freed: false };
  }

  free(buf: GpuBuffer): void {
    if (buf.freed) throw new Error(`double free of GPU buffer '${buf.label}'`);
    buf.freed = true;
    this.liveBytes -= buf.capacity;
    this.liveCount--;
    const key = `${buf.capacity}:${buf.usage}`;
    let list = this.pool.get(key);
    if (!list) this.pool.set(key, (list = []));
    // insert keeping creation order (binary search on the ids)
    const id = this.ids.get(buf.buffer)!;
    let lo = 0,
      hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ids.get(list[mid])! < id) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, buf.buffer);
    this.pooledBytes += buf.capacity;
  }

  /** Destroys every pooled buffer. Call only when no submitted work still uses them. */
  trim(): void {
    for (const list of this.pool.values()) for (const b of list) b.destroy();
    this.pool.clear();
    this.pooledBytes = 0;
    this.trimCount++;
  }

  resetPeak(): void {
    this.peakBytes = this.allocatedBytes;
    this.peakLiveBytes = this.liveBytes;
  }

  stats() {
    return {
      liveBytes: this.liveBytes,
      pooledBytes: this.pooledBytes,
      peakBytes: this.peakBytes,
      peakLiveBytes: this.peakLiveBytes,
      liveCount: this.liveCount,
    };
  }
}
