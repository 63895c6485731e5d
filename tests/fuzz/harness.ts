// The fuzzing harness: a seeded generator, byte and JSON mutators, an in-memory model source, and the
// case runner that classifies each case and keeps the tally the fuzz tests print and assert on.
//
// A case passes when it succeeds, or throws an Error whose message names the file it is about (and so
// says what is wrong with it). It fails as
//   crash   anything thrown that is not an Error, an internal error (TypeError, RangeError, ...), or an
//           Error whose message does not name the file;
//   hang    it took longer than its time bound;
//   leak    the GPU allocator's live bytes are not back to the baseline afterwards.

import { expect } from 'vitest';
import { bytesSource } from '../../src/loaders/byte-source';
import type { ModelSource } from '../../src/loaders/sources';
import type { GpuContext } from '../../src/gpu/context';

/** mulberry32: a small seeded generator, so every run builds the same cases. */
export function prng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  return { next, int, pick };
}
export type Prng = ReturnType<typeof prng>;

// ---------------------------------------------------------------------------------------------
// byte mutations

const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x30, 0x39];

/** One random byte-level change: flip, overwrite, insert, delete, truncate, duplicate or zero a run. */
export function mutateBytes(r: Prng, src: Uint8Array, limit = src.byteLength): { bytes: Uint8Array; what: string } {
  const b = Uint8Array.from(src);
  const at = r.int(Math.max(1, Math.min(limit, b.byteLength)));
  switch (r.int(7)) {
    case 0: {
      b[at] ^= 1 << r.int(8);
      return { bytes: b, what: `flip a bit of byte ${at}` };
    }
    case 1: {
      const v = r.pick(INTERESTING_BYTES);
      b[at] = v;
      return { bytes: b, what: `byte ${at} = 0x${v.toString(16)}` };
    }
    case 2: {
      const n = 1 + r.int(16);
      const out = new Uint8Array(b.byteLength + n);
      out.set(b.subarray(0, at));
      for (let i = 0; i < n; i++) out[at + i] = r.pick(INTERESTING_BYTES);
      out.set(b.subarray(at), at + n);
      return { bytes: out, what: `insert ${n} bytes at ${at}` };
    }
    case 3: {
      const n = 1 + r.int(64);
      const head = b.subarray(0, at);
      const tail = b.subarray(Math.min(b.byteLength, at + n));
      const out = new Uint8Array(head.byteLength + tail.byteLength);
      out.set(head);
      out.set(tail, head.byteLength);
      return { bytes: out, what: `delete ${n} bytes at ${at}` };
    }
    case 4: {
      const n = r.int(b.byteLength);
      return { bytes: b.slice(0, n), what: `truncate to ${n} bytes` };
    }
    case 5: {
      const n = Math.min(1 + r.int(256), b.byteLength - at);
      const out = new Uint8Array(b.byteLength + n);
      out.set(b.subarray(0, at + n));
      out.set(b.subarray(at), at + n);
      return { bytes: out, what: `duplicate ${n} bytes at ${at}` };
    }
    default: {
      const n = Math.min(1 + r.int(64), b.byteLength - at);
      b.fill(0, at, at + n);
      return { bytes: b, what: `zero ${n} bytes at ${at}` };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// JSON mutations

/** Values that break naive readers: wrong types, edge numbers, absurd sizes, deep nesting. */
export const HOSTILE_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  -0.5,
  2 ** 31,
  2 ** 32 + 1,
  2 ** 53,
  1e15,
  1e308,
  '',
  '16',
  'x'.repeat(10_000),
  '<script>alert(1)</script>',
  [],
  [1, 2, 3],
  {},
  { __proto__: { polluted: true } },
  JSON.parse('{"constructor": {"prototype": {"polluted": 1}}}'),
];

type Json = Record<string, unknown>;

/** All paths to values inside `v` (objects and arrays), up to `maxDepth`. */
function paths(v: unknown, maxDepth = 4, prefix: (string | number)[] = []): (string | number)[][] {
  if (maxDepth === 0 || !v || typeof v !== 'object') return [];
  const out: (string | number)[][] = [];
  const entries: [string | number, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  for (const [k, x] of entries.slice(0, 64)) {
    out.push([...prefix, k]);
    out.push(...paths(x, maxDepth - 1, [...prefix, k]));
  }
  return out;
}

/** One structural change to a JSON value: replace a value with a hostile one, delete a key, add one. */
export function mutateJson(r: Prng, json: unknown, extraKeys: string[] = []): { json: unknown; what: string } {
  const copy = structuredClone(json) as Json;
  const all = paths(copy);
  const kind = r.int(4);
  if (kind === 3 || all.length === 0) {
    const key = extraKeys.length && r.next() < 0.7 ? r.pick(extraKeys) : `extra_${r.int(100)}`;
    const v = r.pick(HOSTILE_VALUES);
    copy[key] = v;
    return { json: copy, what: `set "${key}" = ${short(v)}` };
  }
  const path = r.pick(all);
  const parent = path.slice(0, -1).reduce<unknown>((o, k) => (o as Json)[k as string], copy) as Json;
  const key = path[path.length - 1];
  if (kind === 0 && !Array.isArray(parent)) {
    delete parent[key as string];
    return { json: copy, what: `delete ${path.join('.')}` };
  }
  const v = r.pick(HOSTILE_VALUES);
  (parent as Record<string | number, unknown>)[key] = v;
  return { json: copy, what: `${path.join('.')} = ${short(v)}` };
}

function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 24 ? s.slice(0, 21) + '...' : s;
}

export const enc = (x: unknown) => new TextEncoder().encode(typeof x === 'string' ? x : JSON.stringify(x));

// ---------------------------------------------------------------------------------------------
// sources

/** A model folder held in memory; files may be replaced per case. */
export function mapSource(files: Map<string, Uint8Array>, id = 'fuzz:folder'): ModelSource {
  return {
    id,
    async list() {
      return [...files.keys()];
    },
    async file(name) {
      const b = files.get(name);
      return b ? bytesSource(b) : null;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// the case runner

const INTERNAL = ['TypeError', 'RangeError', 'ReferenceError', 'SyntaxError', 'InternalError', 'EvalError'];

export interface Tally {
  suite: string;
  cases: number;
  ok: number;
  refused: number;
  crashes: number;
  hangs: number;
  leaks: number;
  /** One line per failed case: how to find it again (seed, case, mutation) and what happened. */
  failures: string[];
  slowestMs: number;
}

export function tally(suite: string): Tally {
  return { suite, cases: 0, ok: 0, refused: 0, crashes: 0, hangs: 0, leaks: 0, failures: [], slowestMs: 0 };
}

export interface CaseSpec {
  /** Seed, case number and mutation: enough to build the case again. */
  label: string;
  /** The file the case is about; an error must name it. A list: naming any one of them is enough. */
  file: string | string[];
  /** Time bound in milliseconds. */
  boundMs: number;
  /** The GPU context whose allocator must be back to its live bytes afterwards. */
  ctx?: GpuContext;
}

/** Runs one case and records it in `t`. Never throws (the tally carries the failure). */
export async function runCase(t: Tally, spec: CaseSpec, body: () => unknown): Promise<void> {
  t.cases++;
  if (process.env.FUZZ_TRACE) process.stderr.write(`[fuzz] case ${spec.label}\n`);
  const liveBefore = spec.ctx ? spec.ctx.alloc.liveBytes : 0;
  const t0 = performance.now();
  let error: unknown = null;
  let threw = false;
  try {
    await body();
  } catch (e) {
    threw = true;
    error = e;
  }
  const ms = performance.now() - t0;
  t.slowestMs = Math.max(t.slowestMs, ms);
  const files = Array.isArray(spec.file) ? spec.file : [spec.file];
  let failed = false;
  if (ms > spec.boundMs) {
    t.hangs++;
    failed = true;
    t.failures.push(`HANG ${spec.label}: ${ms.toFixed(0)} ms > ${spec.boundMs} ms`);
  }
  if (spec.ctx) {
    await spec.ctx.sync();
    const live = spec.ctx.alloc.liveBytes;
    if (live !== liveBefore) {
      t.leaks++;
      failed = true;
      t.failures.push(`LEAK ${spec.label}: ${live - liveBefore} bytes still live`);
    }
  }
  if (threw) {
    const isError = error instanceof Error;
    const msg = isError ? (error as Error).message : String(error);
    const internal = isError && INTERNAL.includes((error as Error).name);
    const named = files.some((f) => msg.includes(f));
    if (!isError || internal || !named) {
      t.crashes++;
      failed = true;
      const why = !isError ? 'non-Error thrown' : internal ? `internal ${(error as Error).name}` : 'file not named';
      t.failures.push(`CRASH ${spec.label}: ${why}: ${msg.slice(0, 300)}`);
    } else if (!failed) t.refused++;
  } else if (!failed) t.ok++;
}

/** Prints the tally and asserts no crash, hang or leak (the failures are in the assertion message). */
export function report(t: Tally): void {
  console.log(
    `[fuzz] ${t.suite}: ${t.cases} cases (${t.ok} loaded, ${t.refused} refused with a clear error); ` +
      `crashes ${t.crashes}, hangs ${t.hangs}, leaks ${t.leaks}; slowest case ${t.slowestMs.toFixed(0)} ms`,
  );
  expect(t.failures.slice(0, 20), t.failures.slice(0, 20).join('\n')).toEqual([]);
  expect({ crashes: t.crashes, hangs: t.hangs, leaks: t.leaks }).toEqual({ crashes: 0, hangs: 0, leaks: 0 });
}
