// Two WebGPU devices that execute nothing, for the GPU shape report (bench/sections/shapes.ts):
//   stubContext()  a stub device in plain JS: it accepts every call the runtime makes (src/gpu/context.ts and
//                  the allocator are its only users), allocates no memory and runs nothing; a readback gives
//                  zeros. It holds a SmolLM2-135M step at B 8 x T 512 (several GB of buffers) on any machine.
//   nullContext()  Dawn's null backend: it parses and validates every shader, pipeline, bind group and command,
//                  but caps its buffers at 512 MiB in all, so it holds only small models. The report records the
//                  bundled model on both and checks that the recordings agree, which vouches for the stub.
// Both have WebGPU's default limits (the portable ones every adapter gives).
import { create, globals } from 'webgpu';
import { GpuContext } from '../src/gpu/context';

/** WebGPU's default limits (the spec's table), for the fields the runtime and the kernels read. */
const DEFAULT_LIMITS = {
  maxBufferSize: 268435456,
  maxStorageBufferBindingSize: 134217728,
  maxUniformBufferBindingSize: 65536,
  maxStorageBuffersPerShaderStage: 8,
  maxUniformBuffersPerShaderStage: 12,
  maxBindGroups: 4,
  maxBindingsPerBindGroup: 1000,
  minStorageBufferOffsetAlignment: 256,
  minUniformBufferOffsetAlignment: 256,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupSizeY: 256,
  maxComputeWorkgroupSizeZ: 64,
  maxComputeWorkgroupsPerDimension: 65535,
};

function stubDevice(features: Set<string>): GPUDevice {
  const pass = { setPipeline() {}, setBindGroup() {}, dispatchWorkgroups() {}, end() {} };
  const device = {
    limits: { ...DEFAULT_LIMITS },
    features,
    lost: new Promise(() => {}),
    queue: { writeBuffer() {}, submit() {}, onSubmittedWorkDone: async () => undefined },
    createBuffer: ({ size }: GPUBufferDescriptor) => ({
      size,
      mapAsync: () => new Promise<void>((done) => setTimeout(done, 1)), // data "arrives" a little later, as from a GPU
      getMappedRange: (_offset = 0, bytes = size) => new ArrayBuffer(bytes),
      unmap() {},
      destroy() {},
    }),
    createShaderModule: () => ({ getCompilationInfo: async () => ({ messages: [] }) }),
    createComputePipeline: () => ({ getBindGroupLayout: () => ({}) }),
    createBindGroupLayout: () => ({}),
    createPipelineLayout: () => ({}),
    createBindGroup: () => ({}),
    createCommandEncoder: () => ({
      beginComputePass: () => pass,
      copyBufferToBuffer() {},
      clearBuffer() {},
      finish: () => ({}),
    }),
    pushErrorScope() {},
    popErrorScope: async () => null,
    destroy() {},
  };
  return device as unknown as GPUDevice;
}

/** A GpuContext on the stub device (see the header); `f16` gives it shader-f16 (for f16 weights' bytes). */
export function stubContext(o: { f16?: boolean } = {}): Promise<GpuContext> {
  const features = new Set<string>(o.f16 ? ['shader-f16'] : []);
  const adapter = {
    limits: { ...DEFAULT_LIMITS },
    features,
    info: { vendor: 'stub', architecture: '', device: '', description: 'records only, executes nothing' },
    requestDevice: async () => stubDevice(features),
  };
  const gpu = { requestAdapter: async () => adapter } as unknown as GPU;
  return GpuContext.create(gpu, { f16: !!o.f16 });
}

// Kept at module level: if the object create() returns is garbage-collected, Dawn crashes the process.
let nullGpu: GPU | null = null;

/** A GpuContext on Dawn's null backend (see the header). Coexists with the Vulkan driver in one process. */
export function nullContext(): Promise<GpuContext> {
  Object.assign(globalThis, globals);
  nullGpu ??= create(['backend=null']) as GPU;
  return GpuContext.create(nullGpu, { f16: false });
}
