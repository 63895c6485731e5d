// Test helpers: one GpuContext per test file on the driver picked by the vitest project
// (WEBLORA_DRIVER), random data, and comparison with a stated error bound.
import { afterAll, expect } from 'vitest';
import type { GpuContext } from '../../src/gpu/context';
import { createNodeContext } from '../../src/gpu/node';

let ctxPromise: Promise<GpuContext> | null = null;

/** The test file's GPU context. No adapter is a failure with the reason, never a skip. */
export function gpu(): Promise<GpuContext> {
  if (!ctxPromise) {
    ctxPromise = createNodeContext();
    afterAll(async () => {
      const ctx = await ctxPromise!;
      await ctx.sync();
      ctx.destroy();
    });
  }
  return ctxPromise;
}

/** Deterministic pseudo-random numbers (mulberry32) in [lo, hi). */
export function rng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    uniform: (n: number, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * next()),
    normal: (n: number, std = 1) =>
      Float32Array.from(
        { length: n },
        () => std * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()),
      ),
    int: (n: number, hi: number) => Uint32Array.from({ length: n }, () => Math.floor(next() * hi)),
  };
}

/** |got - want| <= (terms + 4)·u·mag per element (u = 2^-24, f32's unit roundoff), `mag` being the same
 * computation on absolute values: the worst case of `terms` chained f32 roundings in any order (Higham's γ_n),
 * plus a few for scaling and accumulation. Each caller states why its `terms` covers its computation. Throws
 * naming the worst element. */
export function expectSumBounded(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  mag: ArrayLike<number>,
  terms: number,
  what: string,
): void {
  expect(got.length).toBe(want.length);
  let worst = 0,
    at = -1;
  for (let i = 0; i < got.length; i++) {
    const q = Math.abs(got[i] - want[i]) / ((terms + 4) * 2 ** -24 * mag[i] + 1e-30);
    if (!(q <= worst)) {
      worst = Number.isNaN(q) ? Infinity : q;
      at = i;
    }
  }
  if (worst > 1)
    throw new Error(`${what}: element ${at} is ${got[at]}, expected ${want[at]} (${worst.toFixed(2)}x the bound)`);
}

/** Largest |got - want| / (atol + rtol * |want|); <= 1 means within bounds. */
export function maxErrRatio(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol = 0): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} vs ${want.length}`);
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    const r = d === 0 ? 0 : d / (atol + rtol * Math.abs(want[i]));
    if (!(r <= worst)) worst = Number.isNaN(r) ? Infinity : r;
  }
  return worst;
}

/** Asserts every element is within atol + rtol*|want|, reporting the worst element. */
export function expectClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  atol: number,
  rtol = 0,
  what = 'values',
): void {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length}, expected ${want.length}`);
  let worst = -1;
  let worstR = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    const r = d === 0 ? 0 : d / (atol + rtol * Math.abs(want[i]));
    if (!(r <= worstR)) {
      worstR = Number.isNaN(r) ? Infinity : r;
      worst = i;
    }
  }
  if (worstR > 1) {
    throw new Error(
      `${what}: element ${worst} is ${got[worst]}, expected ${want[worst]} ` +
        `(|diff| ${Math.abs(got[worst] - want[worst]).toExponential(3)} > atol ${atol} + rtol ${rtol}·|want|)`,
    );
  }
}

/** Asserts |got − want| ≤ bound elementwise (a bound per element), naming the worst element; returns
 * the worst |got − want| / bound, so a test can report how tight its bound is. */
export function expectWithin(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  bound: ArrayLike<number>,
  what: string,
): number {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length}, expected ${want.length}`);
  let worst = 0,
    at = -1;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    const r = d === 0 ? 0 : d / bound[i];
    if (!(r <= worst)) {
      worst = Number.isNaN(r) ? Infinity : r;
      at = i;
    }
  }
  if (worst > 1)
    throw new Error(
      `${what}: element ${at} is ${got[at]}, expected ${want[at]} ± ${bound[at]} (${worst.toFixed(2)}x the bound)`,
    );
  return worst;
}

/** Central finite differences of scalar f at x (float64), for checking backward twins. */
export function finiteDiff(f: (x: Float64Array) => number, x: Float64Array, eps = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const old = x[i];
    x[i] = old + eps;
    const fp = f(x);
    x[i] = old - eps;
    const fm = f(x);
    x[i] = old;
    g[i] = (fp - fm) / (2 * eps);
  }
  return g;
}

/** Awkward sizes: not multiples of any tile. */
export const AWKWARD = [1, 7, 33, 100, 257];
