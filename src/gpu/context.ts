// The GPU runtime: one device, one allocator, one pipeline cache, one command stream.
//
// Kernels are recorded into a shared command encoder and submitted in batches (flush). Each kernel's
// uniforms go to one slot of a persistent uniform ring, bound with a dynamic offset, so the bind group
// depends only on the storage bindings and is cached: a training step reuses the same bind groups every
// time (its buffers come back from the allocator's pool). Every kernel follows one binding convention:
//   @group(0) @binding(0) var<uniform> p: Params;   // u32 fields first, then f32 fields, 4 bytes each
//   @group(0) @binding(1..n) storage buffers, in the order the caller passes them.
// Validation and out-of-memory errors are caught per batch with error scopes and rethrown on the next
// read/sync naming the kernels of that batch (set `debug` to flush after every kernel and name the exact one).

import { fmtBytes } from '../util/format';
import { BufferAllocator, OutOfMemoryError, type GpuBuffer } from './allocator';
import { definesKey, specialize, type Defines } from './shaders';

export interface GpuRequirements {
  /** Largest single storage binding the caller will use (bytes). */
  storageBindingBytes?: number;
  /** Largest single buffer (bytes). */
  bufferBytes?: number;
  storageBuffersPerStage?: number;
  workgroupStorageBytes?: number;
  /** Ask for shader-f16 where the adapter has it (never required). */
  f16?: boolean;
}

export class GpuError extends Error {}
/** The device is gone (driver reset, GPU removed, destroyed); nothing on it can be used again. A new GpuContext
 * can be made, and a run resumed there from its last checkpoint (Engine.recoverDevice). */
export class DeviceLostError extends GpuError {}

/** "reason: message" of a device loss, for messages ("destroyed: Device was destroyed"). */
export function lostWhy(info: GPUDeviceLostInfo): string {
  return `${info.reason || 'unknown'}: ${(info.message || 'no details').replace(/\.\s*$/, '')}`;
}

function lostError(info: GPUDeviceLostInfo): DeviceLostError {
  return new DeviceLostError(
    `The GPU device was lost (${lostWhy(info)}). Saved work is kept: a new device is made to continue, and a run resumes from its last checkpoint.`,
  );
}

export type Binding = GpuBuffer | { buf: GpuBuffer; offset: number; size: number };

/** What one dispatch costs on paper, as its launcher computes it from the shapes (read by the GPU shape
 * report in `npm run bench`; never used to run anything). */
export interface DispatchCost {
  /** Floating-point operations, 2 per multiply-add. */
  flops: number;
  /** Bytes of global memory read, each element counted once (ideal caching). */
  bytesRead: number;
  /** Bytes of global memory written. */
  bytesWritten: number;
  /** Iterations of the longest loop one thread runs (its serial reduction length). */
  serialLoop: number;
}

export interface DispatchArgs {
  defines?: Defines;
  bindings: Binding[];
  u32?: number[];
  f32?: number[];
  workgroups: [number, number?, number?];
  /** Paper cost for the shape report; every launcher should fill it in. */
  cost?: DispatchCost;
}

/** One recorded launch: kernel, grid, threads per workgroup (from the specialised shader's @workgroup_size)
 * and the paper cost its launcher passed (absent: the launcher gave none). */
export interface DispatchRecord {
  name: string;
  workgroups: [number, number, number];
  threads: number;
  cost?: DispatchCost;
}

/** What a region of work did (see GpuContext.record): every dispatch, the queue submits, and the waits on
 * the GPU: readbacks (readBytes) and syncs. A readback counts as `settled` when its data had arrived before
 * the region ended, i.e. the region waited for it. */
export interface Recording {
  dispatches: DispatchRecord[];
  /** Buffer-to-buffer copies and clears recorded in the stream (not dispatches; readbacks' staging copies are
   * counted as readbacks): bytes each. */
  transfers: { kind: 'copy' | 'clear'; bytes: number }[];
  submits: number;
  readbacks: { bytes: number; settled: boolean }[];
  syncs: number;
}

const UNIFORM_SLOT = 256; // >= minUniformBufferOffsetAlignment on every adapter
const UNIFORM_SLOTS = 1024; // dispatches per batch before an automatic flush (a 256 KiB ring)
const BIND_GROUP_CACHE = 8192; // cached bind groups before the cache starts over

/** The storage bindings a kernel declares, in binding order: whether each is read-write. */
function storageAccess(code: string): Map<number, boolean> {
  const out = new Map<number, boolean>();
  const re = /@binding\((\d+)\)\s*var<storage(?:\s*,\s*(read_write|read))?\s*>/g;
  for (let m = re.exec(code); m; m = re.exec(code)) out.set(Number(m[1]), m[2] === 'read_write');
  return out;
}

export class GpuContext {
  readonly alloc: BufferAllocator;
  readonly hasF16: boolean;
  /** The device has WGSL `subgroups` (requested wherever the adapter offers it; the matmul's splitk-subgroups). */
  readonly hasSubgroups: boolean;
  readonly adapterName: string;
  /** A CPU implementation of Vulkan (lavapipe/llvmpipe, SwiftShader): kernels pick the shapes tuned for it. */
  readonly softwareAdapter: boolean;
  readonly limits: GPUSupportedLimits;
  debug = false;
  lost: GPUDeviceLostInfo | null = null;
  private lostListeners: ((info: GPUDeviceLostInfo) => void)[] = [];

  private pipelines = new Map<string, GPUComputePipeline>();
  /** Per pipeline key: the storage bindings its shader declares (binding -> read-write). */
  private access = new Map<string, Map<number, boolean>>();
  /** Explicit layouts (the uniform with a dynamic offset), by pipeline key and binding count. */
  private layouts = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>();
  private bindGroups = new Map<string, GPUBindGroup>();
  private bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private trimEpoch = 0;
  private compileErrors = new Map<string, string>();
  private encoder: GPUCommandEncoder | null = null;
  /** The open compute pass: consecutive kernels share one (each dispatch is still its own usage scope). */
  private pass: GPUComputePassEncoder | null = null;
  private batchKernels: string[] = [];
  private uniformData = new ArrayBuffer(UNIFORM_SLOT * UNIFORM_SLOTS);
  /** The uniform ring: written once per batch before its submit (queue order keeps batches apart). */
  private uniformBuf: GpuBuffer | null = null;
  private uniformSlot = 0;
  /** The error checks of submitted batches not yet reported: a check leaves once it has passed (so a long run
   * of steps with no sync or blocking readback between them holds only those in flight); a failed one stays
   * until sync() or a readback reports it. */
  private pendingErrors = new Set<Promise<void>>();
  /** Counters for the shape report and tests: kernels recorded, command buffers submitted, bind groups
   * created (the rest came from the cache), blocking readbacks (readBytes) and non-blocking ones (readLater). */
  dispatchCount = 0;
  submitCount = 0;
  bindGroupCount = 0;
  readbackCount = 0;
  laterCount = 0;
  /** Error checks of submitted batches still held (in flight, or failed and not yet reported). */
  get pendingErrorChecks(): number {
    return this.pendingErrors.size;
  }
  /** Open while a region is recorded (record()); null otherwise, so recording costs nothing by default. */
  private recording: Recording | null = null;
  private threadsByKey = new Map<string, number>();

  private constructor(
    readonly device: GPUDevice,
    readonly adapterInfo: GPUAdapterInfo,
  ) {
    this.limits = device.limits;
    this.hasF16 = device.features.has('shader-f16');
    this.hasSubgroups = device.features.has('subgroups' as GPUFeatureName);
    this.adapterName = [adapterInfo.vendor, adapterInfo.architecture, adapterInfo.description || adapterInfo.device]
      .filter(Boolean)
      .join(' ');
    this.softwareAdapter = /llvmpipe|lavapipe|swiftshader/i.test(this.adapterName);
    this.alloc = new BufferAllocator(device, device.limits.maxBufferSize);
    device.lost.then((info) => {
      this.lost = info;
      for (const f of this.lostListeners) f(info);
    });
  }

  /** Requests an adapter and a device with the limits `req` needs; throws a clear error when it cannot. */
  static async create(gpu: GPU | undefined, req: GpuRequirements = {}): Promise<GpuContext> {
    if (!gpu) {
      throw new GpuError(
        'WebGPU is not available here (navigator.gpu is undefined). Use a browser with WebGPU enabled ' +
          '(Chrome/Edge 113+, or Chromium with --enable-unsafe-webgpu).',
      );
    }
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) {
      throw new GpuError('No WebGPU adapter was found. Check that the GPU (or a software Vulkan driver) is available.');
    }
    const a = adapter.limits;
    const want: Record<string, number> = {
      // Always ask for the adapter's maxima for what bounds tensor sizes; callers state what they need.
      maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
      maxBufferSize: a.maxBufferSize,
      maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: a.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupsPerDimension: a.maxComputeWorkgroupsPerDimension,
    };
    const short: string[] = [];
    const check = (what: string, need: number | undefined, have: number) => {
      if (need !== undefined && need > have)
        short.push(`${what}: need ${fmtLimit(need)}, adapter has ${fmtLimit(have)}`);
    };
    check('maxStorageBufferBindingSize', req.storageBindingBytes, a.maxStorageBufferBindingSize);
    check('maxBufferSize', req.bufferBytes, a.maxBufferSize);
    check('maxStorageBuffersPerShaderStage', req.storageBuffersPerStage, a.maxStorageBuffersPerShaderStage);
    check('maxComputeWorkgroupStorageSize', req.workgroupStorageBytes, a.maxComputeWorkgroupStorageSize);
    if (short.length) {
      throw new GpuError(
        `This GPU adapter cannot give the limits needed: ${short.join('; ')}. ` +
          'Pick a smaller model or a shorter sequence length, or use a GPU with larger limits.',
      );
    }
    const features: GPUFeatureName[] = [];
    if (req.f16 !== false && adapter.features.has('shader-f16')) features.push('shader-f16');
    if (adapter.features.has('timestamp-query')) features.push('timestamp-query');
    if (adapter.features.has('subgroups')) features.push('subgroups' as GPUFeatureName);
    const device = await adapter.requestDevice({ requiredLimits: want, requiredFeatures: features });
    return new GpuContext(device, adapter.info);
  }

  onLost(f: (info: GPUDeviceLostInfo) => void): void {
    this.lostListeners.push(f);
  }

  // ---- buffers ---------------------------------------------------------------------------------

  static readonly STORAGE = 0x80 | 0x4 | 0x8; // STORAGE | COPY_SRC | COPY_DST

  /** A storage buffer of `bytes` bytes, contents undefined. */
  buffer(bytes: number, label = 'tensor'): GpuBuffer {
    this.assertAlive();
    return this.alloc.alloc(bytes, GpuContext.STORAGE, label);
  }

  free(buf: GpuBuffer): void {
    this.alloc.free(buf);
  }

  /** Uploads `data` into a new storage buffer. */
  upload(data: ArrayBufferView, label = 'upload'): GpuBuffer {
    const buf = this.buffer(Math.max(4, data.byteLength), label);
    this.write(buf, data);
    return buf;
  }

  /** Writes `data` at `offset` bytes into `buf`. Pending kernels are submitted first so they see the old contents. */
  write(buf: GpuBuffer, data: ArrayBufferView, offset = 0): void {
    this.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const rem = bytes.byteLength % 4;
    if (rem === 0) {
      this.device.queue.writeBuffer(buf.buffer, offset, bytes as Uint8Array<ArrayBuffer>);
    } else {
      const padded = new Uint8Array(bytes.byteLength + 4 - rem);
      padded.set(bytes);
      this.device.queue.writeBuffer(buf.buffer, offset, padded);
    }
  }

  /** Reads `bytes` bytes (default: the buffer's size) from `offset`. Submits pending work and reports its errors. */
  async readBytes(buf: GpuBuffer, bytes = buf.size, offset = 0): Promise<ArrayBuffer> {
    this.readbackCount++;
    const size = Math.ceil(bytes / 4) * 4;
    const rec = this.recording && { bytes, settled: false };
    if (rec) this.recording!.readbacks.push(rec);
    const staging = this.alloc.alloc(size, 0x1 | 0x8 /* MAP_READ | COPY_DST */, 'readback');
    try {
      this.copyEnc().copyBufferToBuffer(buf.buffer, offset, staging.buffer, 0, size);
      this.flush();
      await this.checkErrors();
      await staging.buffer.mapAsync(0x1 /* GPUMapMode.READ */, 0, size);
      const out = staging.buffer.getMappedRange(0, size).slice(0, bytes);
      staging.buffer.unmap();
      if (rec) rec.settled = true;
      return out;
    } catch (e) {
      throw await this.explain(e);
    } finally {
      this.alloc.free(staging);
    }
  }

  /**
   * Copies `bytes` bytes of `buf` from `offset` into a staging buffer now (in the command stream), submits,
   * and maps it without waiting: the promise resolves once the GPU has done the work recorded so far (and
   * reports that work's errors), while later work is recorded and submitted meanwhile. Not a blocking readback.
   */
  readLater(buf: GpuBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.alloc.alloc(size, 0x1 | 0x8 /* MAP_READ | COPY_DST */, 'readback.later');
    this.copyEnc().copyBufferToBuffer(buf.buffer, offset, staging.buffer, 0, size);
    this.flush();
    const errors = Promise.all(this.pendingErrors); // this batch's and earlier ones; sync() still sees them
    this.laterCount++;
    // In a recorded region it counts as a readback, settled only if the region ended after its data came.
    const rec = this.recording && { bytes, settled: false };
    if (rec) this.recording!.readbacks.push(rec);
    return (async () => {
      try {
        await staging.buffer.mapAsync(0x1 /* GPUMapMode.READ */, 0, size);
        const out = staging.buffer.getMappedRange(0, size).slice(0, bytes);
        staging.buffer.unmap();
        await errors;
        if (rec) rec.settled = true;
        return out;
      } catch (e) {
        throw await this.explain(e);
      } finally {
        this.alloc.free(staging);
      }
    })();
  }

  async readF32(buf: GpuBuffer, count = buf.size / 4, offsetElems = 0): Promise<Float32Array> {
    return new Float32Array(await this.readBytes(buf, count * 4, offsetElems * 4));
  }

  async readU32(buf: GpuBuffer, count = buf.size / 4): Promise<Uint32Array> {
    return new Uint32Array(await this.readBytes(buf, count * 4));
  }

  /** Fills `buf` with zeros (recorded in the command stream). */
  clear(buf: GpuBuffer, offset = 0, bytes = Math.ceil(buf.size / 4) * 4): void {
    this.copyEnc().clearBuffer(buf.buffer, offset, bytes);
    this.recording?.transfers.push({ kind: 'clear', bytes });
  }

  /** Copies `bytes` bytes between buffers (recorded in the command stream). */
  copy(src: GpuBuffer, srcOffset: number, dst: GpuBuffer, dstOffset: number, bytes: number): void {
    this.copyEnc().copyBufferToBuffer(src.buffer, srcOffset, dst.buffer, dstOffset, bytes);
    this.recording?.transfers.push({ kind: 'copy', bytes });
  }

  // ---- kernels ---------------------------------------------------------------------------------

  /** The compute pipeline of kernel `name` specialised by `defines`, with its 'auto' layout (cached). */
  pipeline(name: string, defines: Defines = {}): GPUComputePipeline {
    const key = `${name}|${definesKey(defines)}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.shaderModule(name, defines);
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key });
      this.pipelines.set(key, p);
    }
    return p;
  }

  private modules = new Map<string, GPUShaderModule>();

  /** The shader module of kernel `name` specialised by `defines` (cached); compile errors are kept for reports. */
  private shaderModule(name: string, defines: Defines): GPUShaderModule {
    const key = `${name}|${definesKey(defines)}`;
    let module = this.modules.get(key);
    if (!module) {
      const code = specialize(name, defines);
      module = this.device.createShaderModule({ code, label: key });
      module.getCompilationInfo().then((info) => {
        const errs = info.messages.filter((m) => m.type === 'error');
        if (errs.length) {
          this.compileErrors.set(
            key,
            errs.map((m) => `shaders/${name}.wgsl:${m.lineNum}:${m.linePos}: ${m.message}`).join('\n'),
          );
        }
      });
      this.modules.set(key, module);
    }
    return module;
  }

  /** The pipeline of kernel `name` with an explicit layout for `nbind` storage bindings, whose uniform
   * (binding 0) takes a dynamic offset into the ring (cached). */
  private layoutPipeline(name: string, defines: Defines, nbind: number) {
    const pkey = `${name}|${definesKey(defines)}`;
    const key = `${pkey}|${nbind}`;
    let lp = this.layouts.get(key);
    if (!lp) {
      let access = this.access.get(pkey);
      if (!access) this.access.set(pkey, (access = storageAccess(specialize(name, defines))));
      const entries: GPUBindGroupLayoutEntry[] = [
        { binding: 0, visibility: 4 /* COMPUTE */, buffer: { type: 'uniform', hasDynamicOffset: true } },
      ];
      for (let i = 1; i <= nbind; i++) {
        const rw = access.get(i);
        if (rw === undefined) throw new GpuError(`kernel '${name}': it declares no storage binding ${i}`);
        entries.push({ binding: i, visibility: 4, buffer: { type: rw ? 'storage' : 'read-only-storage' } });
      }
      const layout = this.device.createBindGroupLayout({ entries, label: key });
      const module = this.shaderModule(name, defines);
      const pipeline = this.device.createComputePipeline({
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout], label: key }),
        compute: { module, entryPoint: 'main' },
        label: key,
      });
      this.layouts.set(key, (lp = { pipeline, layout }));
    }
    return { ...lp, key };
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  /** Records one kernel launch. */
  dispatch(name: string, args: DispatchArgs): void {
    this.assertAlive();
    const defines = args.defines ?? {};
    const { pipeline, layout, key } = this.layoutPipeline(name, defines, args.bindings.length);
    if (this.uniformSlot === UNIFORM_SLOTS) this.flush();
    const enc = this.enc();
    const slot = this.uniformSlot++;
    const u = new Uint32Array(this.uniformData, slot * UNIFORM_SLOT, UNIFORM_SLOT / 4);
    const f = new Float32Array(this.uniformData, slot * UNIFORM_SLOT, UNIFORM_SLOT / 4);
    const nu = args.u32?.length ?? 0;
    args.u32?.forEach((v, i) => (u[i] = v));
    args.f32?.forEach((v, i) => (f[nu + i] = v));
    // The bind group: the ring's first slot (moved by the dynamic offset) and the storage ranges.
    if (this.alloc.trimCount !== this.trimEpoch) {
      this.bindGroups.clear(); // destroyed buffers: their bind groups can never be used again
      this.trimEpoch = this.alloc.trimCount;
    }
    let gkey = key;
    const ranges = args.bindings.map((b, i) => {
      const r = 'buf' in b ? b : { buf: b, offset: 0, size: b.size };
      if (r.buf.freed) throw new GpuError(`kernel '${name}': binding ${i + 1} ('${r.buf.label}') was already freed`);
      const size = Math.ceil(r.size / 4) * 4;
      if (size > this.limits.maxStorageBufferBindingSize) {
        throw new GpuError(
          `kernel '${name}': binding ${i + 1} ('${r.buf.label}') is ${fmtBytes(size)}, over this adapter's ` +
            `storage binding limit of ${fmtBytes(this.limits.maxStorageBufferBindingSize)}; split it into chunks`,
        );
      }
      gkey += `|${this.bufferId(r.buf.buffer)}:${r.offset}:${size}`;
      return { buffer: r.buf.buffer, offset: r.offset, size };
    });
    let bindGroup = this.bindGroups.get(gkey);
    if (!bindGroup) {
      const entries: GPUBindGroupEntry[] = [
        { binding: 0, resource: { buffer: this.uniformBuf!.buffer, offset: 0, size: UNIFORM_SLOT } },
        ...ranges.map((resource, i) => ({ binding: i + 1, resource })),
      ];
      if (this.bindGroups.size >= BIND_GROUP_CACHE) this.bindGroups.clear();
      bindGroup = this.device.createBindGroup({ layout, entries, label: name });
      this.bindGroups.set(gkey, bindGroup);
      this.bindGroupCount++;
    }
    const pass = (this.pass ??= enc.beginComputePass());
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup, [slot * UNIFORM_SLOT]);
    const [x, y = 1, z = 1] = args.workgroups;
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new GpuError(`kernel '${name}': grid ${x}x${y}x${z} exceeds ${maxWg} workgroups per dimension`);
    }
    if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
    this.recording?.dispatches.push({
      name,
      workgroups: [x, y, z],
      threads: this.threadsOf(name, defines),
      cost: args.cost,
    });
    this.batchKernels.push(name);
    this.dispatchCount++;
    if (this.debug) this.flush();
  }

  /** Records every dispatch, copy, clear, submit, readback and sync of `region` (for the GPU shape report). A readback
   * still in flight when `region` resolves is recorded with settled = false (the region did not wait for it). */
  async record(region: () => Promise<void>): Promise<Recording> {
    if (this.recording) throw new Error('record(): a region is already being recorded');
    const rec: Recording = { dispatches: [], transfers: [], submits: 0, readbacks: [], syncs: 0 };
    this.recording = rec;
    try {
      await region();
      this.flush();
    } finally {
      this.recording = null;
    }
    rec.readbacks = rec.readbacks.map((r) => ({ ...r })); // frozen at the end of the region
    return rec;
  }

  /** Threads per workgroup of a specialised kernel: the product of its @workgroup_size (cached). */
  private threadsOf(name: string, defines: Defines): number {
    const key = `${name}|${definesKey(defines)}`;
    let n = this.threadsByKey.get(key);
    if (n === undefined) this.threadsByKey.set(key, (n = workgroupThreads(specialize(name, defines))));
    return n;
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    this.device.queue.writeBuffer(
      this.uniformBuf!.buffer,
      0,
      this.uniformData,
      0,
      this.uniformSlot * UNIFORM_SLOT || 4,
    );
    this.device.queue.submit([this.encoder.finish()]);
    this.submitCount++;
    if (this.recording) this.recording.submits++;
    const kernels = [...new Set(this.batchKernels)];
    const oom = this.device.popErrorScope();
    const val = this.device.popErrorScope();
    const check = Promise.all([val, oom]).then(([v, o]) => {
      const e = v ?? o;
      if (!e) return;
      const compile = [...this.compileErrors.values()].join('\n');
      const where = kernels.length === 1 ? `kernel '${kernels[0]}'` : `one of the kernels [${kernels.join(', ')}]`;
      const Cls = o && !v ? OutOfMemoryError : GpuError;
      throw new Cls(
        `GPU ${o && !v ? 'out of memory' : 'validation error'} in ${where}: ${e.message}${compile ? '\n' + compile : ''}`,
      );
    });
    this.pendingErrors.add(check);
    check.then(
      () => this.pendingErrors.delete(check),
      () => {}, // kept for sync() or the next readback to throw
    );
    this.encoder = null;
    this.batchKernels = [];
    this.uniformSlot = 0; // the ring is rewritten by the next batch, whose writeBuffer is queued after this submit
  }

  /** Waits for all submitted work and throws the first GPU error it produced. */
  async sync(): Promise<void> {
    if (this.recording) this.recording.syncs++;
    this.flush();
    await this.checkErrors();
    await this.device.queue.onSubmittedWorkDone();
    this.assertAlive();
  }

  private async checkErrors(): Promise<void> {
    const pending = [...this.pendingErrors];
    this.pendingErrors.clear();
    await Promise.all(pending);
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** The encoder for a copy or clear, which cannot be recorded inside a compute pass. */
  private copyEnc(): GPUCommandEncoder {
    this.endPass();
    return this.enc();
  }

  private enc(): GPUCommandEncoder {
    if (!this.encoder) {
      this.device.pushErrorScope('validation');
      this.device.pushErrorScope('out-of-memory');
      this.encoder = this.device.createCommandEncoder();
      this.uniformBuf ??= this.alloc.reserve(
        UNIFORM_SLOT * UNIFORM_SLOTS,
        0x40 | 0x8 /* UNIFORM | COPY_DST */,
        'uniforms',
      );
      this.uniformSlot = 0;
    }
    return this.encoder;
  }

  private assertAlive(): void {
    if (this.lost) throw lostError(this.lost);
  }

  /** `cause` (an error from GPU work) as a DeviceLostError when the device is lost, else as it is. A readback on
   * a lost device fails (Dawn: a bare AbortError; Chromium: "Buffer was unmapped before mapping was resolved"),
   * often before device.lost settles: wait for that a while (only failed readbacks pay it). */
  async explain(cause: unknown): Promise<unknown> {
    if (cause instanceof DeviceLostError) return cause;
    const info =
      this.lost ?? (await Promise.race([this.device.lost, new Promise<null>((r) => setTimeout(r, 2000, null))]));
    return info ? lostError(info) : cause;
  }

  destroy(): void {
    this.flush();
    this.alloc.trim();
    this.device.destroy();
  }
}

function fmtLimit(n: number): string {
  return n >= 1024 * 1024 ? fmtBytes(n) : String(n);
}

/** Workgroup grid for `n` threads of `wgSize` each, split over y when x would pass the per-dimension limit.
 * Kernels compute their linear index as `gid.x + gid.y * (nwg.x * WG)` (nwg = num_workgroups). */
export function grid1d(n: number, wgSize: number, maxPerDim = 65535): [number, number] {
  const groups = Math.max(1, Math.ceil(n / wgSize));
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}

/** The product of a WGSL kernel's `@workgroup_size(x, y, z)`, each a literal or a module-scope `const`. */
export function workgroupThreads(code: string): number {
  const m = /@workgroup_size\s*\(([^)]*)\)/.exec(code);
  if (!m) throw new Error('workgroupThreads: no @workgroup_size in the shader');
  const value = (e: string): number => {
    const lit = /^(\d+)[ui]?$/.exec(e);
    if (lit) return Number(lit[1]);
    const c = new RegExp(`^\\s*const\\s+${e}\\s*(?::\\s*\\w+\\s*)?=\\s*(\\d+)[ui]?\\s*;`, 'm').exec(code);
    if (!c) throw new Error(`workgroupThreads: cannot evaluate workgroup size '${e}'`);
    return Number(c[1]);
  };
  return m[1]
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)
    .reduce((n, e) => n * value(e), 1);
}
