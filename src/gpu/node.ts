// WebGPU in Node through Dawn (npm `webgpu`), on a software Vulkan driver where there is no GPU.
// Node only: the browser uses navigator.gpu. The driver is picked by WEBLORA_DRIVER:
//   lavapipe     Mesa's llvmpipe Vulkan (bookworm-backports build, unpacked by tools/setup.sh); has shader-f16
//   swiftshader  Google's SwiftShader (ships in Debian's chromium); no shader-f16
//   (unset)      whatever Vulkan driver the system offers (a real GPU, if any)

import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { create, globals } from 'webgpu';
import { GpuContext, GpuError, type GpuRequirements } from './context';

export type NodeDriver = 'lavapipe' | 'swiftshader' | 'system';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ICD: Record<Exclude<NodeDriver, 'system'>, string> = {
  lavapipe: resolve(repoRoot, '.cache/lavapipe_icd.json'),
  swiftshader: '/usr/lib/chromium/vk_swiftshader_icd.json',
};

// Kept at module level: if the object create() returns is garbage-collected, Dawn crashes the process.
let gpu: GPU | null = null;
let gpuDriver: NodeDriver | null = null;

export function nodeDriver(): NodeDriver {
  const d = (process.env.WEBLORA_DRIVER ?? 'system') as NodeDriver;
  if (!['lavapipe', 'swiftshader', 'system'].includes(d)) {
    throw new GpuError(`WEBLORA_DRIVER='${d}' is not one of lavapipe, swiftshader, system`);
  }
  return d;
}

/** The process-wide Dawn GPU object for `driver` (one driver per process). */
export function nodeGpu(driver: NodeDriver = nodeDriver()): GPU {
  if (gpu) {
    if (driver !== gpuDriver) throw new GpuError(`Dawn is already set up for ${gpuDriver}; one driver per process`);
    return gpu;
  }
  if (driver !== 'system') {
    const icd = ICD[driver];
    if (!existsSync(icd)) {
      throw new GpuError(`The ${driver} Vulkan driver is missing (${icd}). Run: bash tools/setup.sh test`);
    }
    process.env.VK_ICD_FILENAMES = icd;
    process.env.VK_DRIVER_FILES = icd;
  }
  // Mesa wants a private runtime dir and a shader cache; keep both in the project's ignored .cache.
  const xdg = resolve(repoRoot, '.cache/xdg');
  const cache = resolve(repoRoot, '.cache/mesa-shader-cache');
  mkdirSync(xdg, { recursive: true, mode: 0o700 });
  mkdirSync(cache, { recursive: true });
  process.env.XDG_RUNTIME_DIR ??= xdg;
  process.env.MESA_SHADER_CACHE_DIR ??= cache;
  Object.assign(globalThis, globals);
  gpu = create([]) as GPU;
  gpuDriver = driver;
  return gpu;
}

/** dawn.node polls pending promises with setImmediate, spinning a core the software driver needs.
 * Routing setImmediate through a 1 ms timer gave 1.3-2.7x throughput on 2 cores. Apply it equally
 * to every side of a comparison. */
export function calmDawnPolling(): void {
  const g = globalThis as unknown as { __weblora_calm?: boolean; setImmediate: unknown };
  if (g.__weblora_calm) return;
  g.__weblora_calm = true;
  g.setImmediate = ((fn: (...a: unknown[]) => void, ...args: unknown[]) => setTimeout(fn, 1, ...args)) as unknown;
}

/** A GpuContext on the Node driver chosen by WEBLORA_DRIVER. Fails loudly (never skips) without an adapter. */
export async function createNodeContext(req: GpuRequirements = {}): Promise<GpuContext> {
  const driver = nodeDriver();
  calmDawnPolling();
  const ctx = await GpuContext.create(nodeGpu(driver), req);
  const name = ctx.adapterName.toLowerCase();
  if (driver === 'lavapipe' && !name.includes('llvmpipe'))
    throw new GpuError(`asked for lavapipe, got '${ctx.adapterName}'`);
  if (driver === 'swiftshader' && !name.includes('swiftshader'))
    throw new GpuError(`asked for SwiftShader, got '${ctx.adapterName}'`);
  return ctx;
}
