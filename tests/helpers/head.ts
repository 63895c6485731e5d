// Inputs and bounds shared by the tests of the chunked LM head (tests/kernels/head_*.test.ts).
import { IGNORE_INDEX } from '../../src/kernels/ignore_index';
import { softcap_cpu } from '../../src/kernels/head_lse.cpu';
import { rng } from './gpu';

const u = 2 ** -24;

/** Chunk widths that do not divide V. */
export const CHUNK: Record<number, number> = { 5: 2, 100: 37, 1000: 300, 4099: 2048 };

/** The columns [v0, v0 + vc) of each chunk of width cw. */
export function cut(V: number, cw: number): { v0: number; vc: number }[] {
  const out = [];
  for (let v0 = 0; v0 < V; v0 += cw) out.push({ v0, vc: Math.min(cw, V - v0) });
  return out;
}

/** (N, vc) block of columns v0 .. v0 + vc of the (N, V) logits. */
export function columns(logits: Float32Array, N: number, V: number, v0: number, vc: number): Float32Array {
  const out = new Float32Array(N * vc);
  for (let n = 0; n < N; n++) out.set(logits.subarray(n * V + v0, n * V + v0 + vc), n * vc);
  return out;
}

/** Bound on |z_GPU − z| for one logit y under soft cap c (0: none). */
export function capErr(y: number, c: number): number {
  if (!(c > 0)) return 0;
  const z = softcap_cpu(y, c);
  return c * (16 + 4 * Math.abs(y / c)) * u + 5 * u * Math.abs(y) + u * Math.abs(z);
}

/** Inputs: logits ~ N(0, 3²), random targets (first and last column included), every 4th row ignored. */
export function inputs(N: number, V: number, seed: number) {
  const r = rng(seed);
  const logits = r.normal(N * V, 3);
  const targets = r.int(N, V);
  if (N > 1) targets[1] = V - 1;
  targets[0] = 0;
  for (let n = 3; n < N; n += 4) targets[n] = IGNORE_INDEX;
  return { logits, targets };
}
