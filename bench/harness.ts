// Timing helpers for the benchmark: warm medians of whole GPU round trips (record, submit, ctx.sync()).
// Software drivers give ratios, not absolute speeds: compare variants measured in the same run, interleaved.
import type { GpuContext } from '../src/gpu/context';

export interface Row {
  name: string;
  value: number;
  unit: string;
  note?: string;
}

export interface Section {
  name: string;
  title: string;
  run(ctx: GpuContext): Promise<Row[]>;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

export interface TimeOpts {
  reps?: number;
  warmup?: number;
  /** launches per timed round trip, so that a round trip is long against the ~1 ms polling of Dawn */
  inner?: number;
}

/** Per variant: the warm median (the figure reported) and the minimum (a busy machine only ever adds time,
 * so the minimum is the better guide when other processes share the cores; printed alongside). */
export interface Timing {
  median: number;
  min: number;
}

/** Milliseconds per call of each variant: warm-up, then `reps` rounds in which every variant is timed once
 * (interleaved, so drift of the machine hits all alike); the median of each. `fn` records work and returns
 * anything to free afterwards. */
export async function timeVariants(
  ctx: GpuContext,
  variants: Record<string, () => (() => void) | void>,
  o: TimeOpts = {},
): Promise<Record<string, Timing>> {
  const reps = o.reps ?? 5,
    warmup = o.warmup ?? 1,
    inner = o.inner ?? 1;
  const names = Object.keys(variants);
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let rep = -warmup; rep < reps; rep++) {
    for (const n of names) {
      await ctx.sync();
      const t0 = performance.now();
      const cleanups: ((() => void) | void)[] = [];
      for (let i = 0; i < inner; i++) cleanups.push(variants[n]());
      await ctx.sync();
      const dt = (performance.now() - t0) / inner;
      for (const c of cleanups) c?.();
      if (rep >= 0) times[n].push(dt);
    }
  }
  return Object.fromEntries(names.map((n) => [n, { median: median(times[n]), min: Math.min(...times[n]) }]));
}
