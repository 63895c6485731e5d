// A library we compare against (jax-js, tfjs) or ours, seen through one small interface, so that the peers
// section can time the same workloads on every library on the same adapter, interleaved, each side waited
// for by its own library's completion mechanism.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, type Timing } from '../harness';

/** Host copies of a LoRA layer's inputs: y = x·W0ᵀ + bias + scale·(x·Aᵀ)·Bᵀ, upstream gradient dy. */
export interface LoraData {
  N: number;
  d: number;
  r: number;
  scale: number;
  x: Float32Array /* (N, d) */;
  w0: Float32Array /* (d, d), (OUT, IN) */;
  bias: Float32Array /* (d,) */;
  A: Float32Array /* (r, d) */;
  B: Float32Array /* (d, r) */;
  dy: Float32Array /* (N, d) */;
}

/** One workload uploaded once to one library. `run` records one call and returns its outputs (a handle
 * of the library's own kind); `wait` resolves when the library says those calls have finished on the GPU. */
export interface Workload<C = unknown> {
  run(): C;
  wait(calls: C[]): Promise<void>;
  /** the outputs, in a fixed order per workload: matmul [c]; LoRA [y, dA, dB] (+ dx) */
  read(call: C): Promise<Float32Array[]>;
  release(call: C): void;
  free(): void;
}

export interface Peer {
  id: 'ours' | 'jax-js' | 'tfjs';
  name: string; // library and version, e.g. 'jax-js 0.1.25'
  /** how this library's side is synchronised, said in the report */
  syncs: string;
  /** resolves when nothing this library recorded is still running (called before every timed call) */
  idle(): Promise<void>;
  /** c (n, n) = a (n, n) · b (n, n) */
  matmul(a: Float32Array, b: Float32Array, n: number): Workload;
  /** the LoRA forward + dA, dB (+ dx when needDx), in each way this library offers, keyed by a short label */
  loraStep(L: LoraData, needDx: boolean): Record<string, Workload>;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The installed version of an npm package (read from node_modules: some packages do not export package.json). */
export function installedVersion(pkg: string): string {
  return JSON.parse(readFileSync(resolve(root, 'node_modules', pkg, 'package.json'), 'utf8')).version;
}

/** Loads a package's CommonJS build with Node's own require. bench/run.mjs closes vite's module runner once
 * bench/main.ts is loaded, so a dynamic import() at run time fails; the peers must be loaded at run time,
 * after navigator.gpu exists. */
export const requirePackage: (pkg: string) => unknown = createRequire(import.meta.url);

/** jax-js and tfjs look for navigator.gpu (and jax-js reads navigator.userAgent) when they are imported or
 * initialised; Node 20 has no navigator. Point it at the same Dawn GPU object our context uses, so every
 * library gets its device from the same adapter. */
export function installNavigatorGpu(gpu: GPU): void {
  const g = globalThis as unknown as { navigator?: Record<string, unknown> };
  if (g.navigator === undefined)
    Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  const nav = g.navigator!;
  if (!nav.gpu) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  if (typeof nav.userAgent !== 'string')
    Object.defineProperty(nav, 'userAgent', { value: `Node.js/${process.version}`, configurable: true });
}

/** max |a - b| / max |b| over all outputs, b being ours: a normwise relative difference (elementwise ratios blow up near 0). */
export function maxRelDiff(a: Float32Array[], b: Float32Array[]): number {
  if (a.length !== b.length) throw new Error(`output count differs: ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let k = 0; k < a.length; k++) {
    if (a[k].length !== b[k].length) throw new Error(`output ${k}: ${a[k].length} vs ${b[k].length} elements`);
    let diff = 0,
      scale = 0;
    for (let i = 0; i < a[k].length; i++) {
      diff = Math.max(diff, Math.abs(a[k][i] - b[k][i]));
      scale = Math.max(scale, Math.abs(b[k][i]));
    }
    worst = Math.max(worst, Number.isNaN(diff) ? Infinity : diff / (scale || 1));
  }
  return worst;
}

export interface AcrossOpts {
  /** timed rounds: at least minReps, at most maxReps, as many as fit budgetMs (judged from the first round) */
  minReps: number;
  maxReps: number;
  budgetMs: number;
  /** calls per timed round trip, so that a round trip is long against the ~1 ms polling of Dawn */
  inner?: number;
  /** variants that may be settled: one whose best of the first two rounds is `settleFactor` (default 4) times
   * the fastest's is not timed again; ~25 % noise cannot change how it compares, and on SwiftShader it would
   * take most of the time. Two rounds, so that one spike of a busy machine settles nothing. */
  maySettle?: (name: string) => boolean;
  settleFactor?: number;
}

export interface AcrossResult {
  timings: Record<string, Timing>;
  /** timed rounds per variant */
  rounds: Record<string, number>;
  /** variants settled after two rounds (see AcrossOpts.maySettle) */
  settled: string[];
  /** the warm-up call's outputs, per variant, for the numerical check */
  outputs: Record<string, Float32Array[]>;
  /** variants that threw, with the message; they are left out of the timings */
  failed: Record<string, string>;
}

/** Milliseconds per call of each variant: one warm-up call each (compiles; its outputs are read back for the
 * check), then rounds in which every variant is timed once, interleaved and in an order rotated each round,
 * so drift of the machine hits all alike. Before each timed call every library is idle; the clock stops
 * when the variant's own library says its calls are done. */
export async function timeAcross(
  variants: Record<string, Workload>,
  idleAll: () => Promise<void>,
  o: AcrossOpts,
): Promise<AcrossResult> {
  const inner = o.inner ?? 1,
    settleFactor = o.settleFactor ?? 4;
  const names = Object.keys(variants);
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const outputs: Record<string, Float32Array[]> = {};
  const failed: Record<string, string> = {};
  const settled = new Set<string>();
  const live = () => names.filter((n) => !(n in failed));
  const once = async (n: string) => {
    const w = variants[n];
    await idleAll();
    const t0 = performance.now();
    const calls: unknown[] = [];
    for (let i = 0; i < inner; i++) calls.push(w.run());
    await w.wait(calls);
    const dt = (performance.now() - t0) / inner;
    return { dt, calls };
  };
  for (const n of names) {
    try {
      const { calls } = await once(n);
      outputs[n] = await variants[n].read(calls[calls.length - 1]);
      for (const c of calls) variants[n].release(c);
    } catch (e) {
      failed[n] = (e as Error).message ?? String(e);
    }
  }
  let reps = o.maxReps;
  for (let rep = 0; rep < reps; rep++) {
    const order = live().filter((n) => !settled.has(n));
    for (const n of [...order.slice(rep % order.length), ...order.slice(0, rep % order.length)]) {
      try {
        const { dt, calls } = await once(n);
        for (const c of calls) variants[n].release(c);
        times[n].push(dt);
      } catch (e) {
        failed[n] = (e as Error).message ?? String(e);
      }
    }
    if (rep === 1) {
      const timed = live(),
        best = (n: string) => Math.min(...times[n]);
      const fastest = Math.min(...timed.map(best));
      for (const n of timed) if (o.maySettle?.(n) && best(n) > settleFactor * fastest) settled.add(n);
      const round = timed.filter((n) => !settled.has(n)).reduce((sum, n) => sum + best(n) * inner, 0);
      reps = Math.max(o.minReps, Math.min(o.maxReps, 2 + Math.floor(o.budgetMs / Math.max(round, 1))));
    }
  }
  const ok = live();
  return {
    timings: Object.fromEntries(ok.map((n) => [n, { median: median(times[n]), min: Math.min(...times[n]) }])),
    rounds: Object.fromEntries(ok.map((n) => [n, times[n].length])),
    settled: ok.filter((n) => settled.has(n)),
    outputs,
    failed,
  };
}
