// The matmul autotuner: at model load, for the matmul shapes the model will run (its linears' x·W0ᵀ and
// dx = dy·W0, the LoRA rank-r products, the head), time the candidate variants (src/kernels/matmul.ts) on this
// device and pick one per shape class; the pick is cached under the adapter's identity and the class (IndexedDB
// in the browser, a JSON file under .cache/ in Node: src/engine/autotune-store.node.ts), so a later load only reads it.
//
// Bounded: timing stops when `budgetMs` is spent (default 500 ms: on lavapipe one pipeline compiles in ~0.2 s, so
// about one class per load there; on a real GPU many more); the classes left get the baseline, cached like a timed
// pick, so that the kernels of a device never change between loads and a resumed run stays bit-identical. A variant
// replaces the baseline only when it is at least `minGain` (20 %) faster in the minimum of 5 interleaved rounds, so
// noise on a busy software driver does not swap in a slower kernel. A forced policy (setMatmulPolicy or WEBLORA_MATMUL) skips all of it.
import type { GpuContext } from '../gpu/context';
import { QUANT_BLOCK } from '../gpu/quant';
import { isQuant, Tensor } from '../gpu/tensor';
import {
  MATMUL_VARIANTS,
  matmulPolicy,
  matmulRaw,
  matmulShapeClass,
  matmulVariantFor,
  setMatmulChoice,
  variantSupports,
  weightB,
  type BDtype,
  type MatmulRaw,
  type MatmulVariant,
} from './matmul';

/** One product a model runs: c (M, N) = op(a) · op(b), `what` naming it. */
export interface MatmulShape {
  what: string;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  /** the weight's type: the shape class keeps q8 / q4 products apart from f32 / f16 ones */
  bDtype: BDtype;
}

export interface TuneResult {
  shapeClass: string;
  /** the products of the model in this class */
  what: string[];
  variant: MatmulVariant;
  source: 'cached' | 'timed' | 'forced' | 'untimed (budget spent)' | 'not tuned (no cache)';
  /** ms per launch of each candidate timed (min over rounds), at the timed shape */
  ms?: Partial<Record<MatmulVariant, number>>;
  timedShape?: [number, number, number];
}

export interface TuneReport {
  adapter: string;
  policy: string;
  spentMs: number;
  results: TuneResult[];
}

/** Where picks are cached: any key-value store (src/storage/kv.ts's idbStore in the browser, a JSON file in Node). */
export interface TuneStore {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
}

export interface TuneOpts {
  /** the cache; without one nothing is timed (picks that could change at every load would break exact resume) */
  store?: TuneStore;
  budgetMs?: number;
  minGain?: number;
}

/** The cache key's device part: what identifies the adapter and the features the variants depend on. */
export function adapterKey(ctx: GpuContext): string {
  const i = ctx.adapterInfo;
  return [i.vendor, i.architecture, i.device, i.description, ctx.hasF16 ? 'f16' : '', ctx.hasSubgroups ? 'sg' : '']
    .filter(Boolean)
    .join('|');
}
const KEY_VERSION = 'matmul-autotune/1'; // bump when a variant's code changes enough to re-time

/** The variants worth timing for a shape: tiles where both sides of C fill one, split-K where C is small and K long. */
export function candidates(ctx: GpuContext, s: MatmulShape): MatmulVariant[] {
  return MATMUL_VARIANTS.filter((v) => {
    if (!variantSupports(ctx, v, s)) return false;
    if (v.startsWith('tile')) return Math.min(s.M, s.N) >= 32;
    if (v.startsWith('splitk')) return s.M * s.N <= 1 << 16 && s.K >= 256;
    return true;
  });
}

/** Picks a variant per shape class of `shapes` (see the header); records the picks on ctx for matmulRaw. */
export async function autotuneMatmul(ctx: GpuContext, shapes: MatmulShape[], o: TuneOpts): Promise<TuneReport> {
  const t0 = performance.now();
  const budget = o.budgetMs ?? 500,
    minGain = o.minGain ?? 0.2;
  const policy = matmulPolicy(ctx);
  const classes = new Map<string, MatmulShape[]>();
  for (const s of shapes) {
    const k = matmulShapeClass(s);
    classes.set(k, [...(classes.get(k) ?? []), s]);
  }
  const results: TuneResult[] = [];
  for (const [shapeClass, members] of classes) {
    const what = members.map((m) => m.what);
    if (policy !== 'auto') {
      const v = variantSupports(ctx, policy, members[0]) ? policy : 'baseline'; // as matmulRaw runs it
      results.push({ shapeClass, what, variant: v, source: 'forced' });
      continue;
    }
    if (!o.store) {
      results.push({
        shapeClass,
        what,
        variant: matmulVariantFor(ctx, { ...members[0], a: null!, b: null!, c: null!, lda: 0, ldb: 0, ldc: 0 }),
        source: 'not tuned (no cache)',
      });
      continue;
    }
    const key = `${KEY_VERSION}|${adapterKey(ctx)}|${shapeClass}`;
    const cached = await o.store.get<string>(key);
    if (
      cached &&
      (MATMUL_VARIANTS as readonly string[]).includes(cached) &&
      variantSupports(ctx, cached as MatmulVariant, members[0])
    ) {
      setMatmulChoice(ctx, shapeClass, cached as MatmulVariant);
      results.push({ shapeClass, what, variant: cached as MatmulVariant, source: 'cached' });
      continue;
    }
    if (performance.now() - t0 > budget) {
      // kept as the baseline for good, so that a later load (a resumed run) computes with the same kernels
      setMatmulChoice(ctx, shapeClass, 'baseline');
      await o.store.set(key, 'baseline');
      results.push({ shapeClass, what, variant: 'baseline', source: 'untimed (budget spent)' });
      continue;
    }
    // the class's largest product, scaled down so that no operand passes 4M elements (16 MiB)
    const big = members.reduce((a, b) => (a.M * a.N * a.K >= b.M * b.N * b.K ? a : b));
    const shape = fitShape(big, 1 << 22);
    const ms = await timeCandidates(ctx, shape, candidates(ctx, shape));
    let best: MatmulVariant = 'baseline';
    for (const [v, t] of Object.entries(ms) as [MatmulVariant, number][]) if (t < ms[best]!) best = v;
    if (ms[best]! > (1 - minGain) * ms.baseline!) best = 'baseline';
    setMatmulChoice(ctx, shapeClass, best);
    await o.store.set(key, best);
    results.push({ shapeClass, what, variant: best, source: 'timed', ms, timedShape: [shape.M, shape.N, shape.K] });
  }
  return { adapter: ctx.adapterName, policy, spentMs: performance.now() - t0, results };
}

/** `s` with its largest dimensions halved until each operand has at most `maxElems` elements (a q8 / q4 B keeps
 * its columns, K with transB else N, a multiple of the 32-value block). */
function fitShape(s: MatmulShape, maxElems: number): MatmulShape {
  const f = { ...s };
  const over = () => f.M * f.K > maxElems || f.K * f.N > maxElems || f.M * f.N > maxElems;
  while (over()) {
    const big = Math.max(f.M, f.N, f.K);
    if (f.M === big) f.M = Math.ceil(f.M / 2);
    else if (f.N === big) f.N = Math.ceil(f.N / 2);
    else f.K = Math.ceil(f.K / 2);
  }
  const block = (x: number) => Math.ceil(x / QUANT_BLOCK) * QUANT_BLOCK;
  if (isQuant(f.bDtype)) {
    if (f.transB) f.K = block(f.K);
    else f.N = block(f.N);
  }
  return f;
}

/** ms per launch of each variant on zero-filled operands of shape s: one warm launch (compiles the pipeline),
 * then 5 interleaved rounds of enough launches to last ~4 ms; the minimum of the rounds. */
async function timeCandidates(ctx: GpuContext, s: MatmulShape, vs: MatmulVariant[]) {
  const [ra, ca] = s.transA ? [s.K, s.M] : [s.M, s.K];
  const [rb, cb] = s.transB ? [s.N, s.K] : [s.K, s.N];
  const a = Tensor.zeros(ctx, [ra, ca], 'tune.a'),
    b = Tensor.zeros(ctx, [rb, cb], 'tune.b', s.bDtype),
    c = Tensor.empty(ctx, [s.M, s.N], 'tune.c');
  const m: MatmulRaw = {
    ...weightB(b),
    a: a.buf,
    c: c.buf,
    M: s.M,
    N: s.N,
    K: s.K,
    lda: ca,
    ldb: cb,
    ldc: s.N,
    transA: s.transA,
    transB: s.transB,
  };
  const launch = (v: MatmulVariant, n: number) => {
    for (let i = 0; i < n; i++) matmulRaw(ctx, m, undefined, undefined, undefined, v);
  };
  const inner: Partial<Record<MatmulVariant, number>> = {};
  const ms: Partial<Record<MatmulVariant, number>> = {};
  try {
    for (const v of vs) {
      launch(v, 1);
      await ctx.sync();
      const t = performance.now();
      launch(v, 1);
      await ctx.sync();
      inner[v] = Math.max(1, Math.min(16, Math.round(4 / Math.max(0.05, performance.now() - t))));
    }
    for (let round = 0; round < 5; round++) {
      for (const v of vs) {
        const t = performance.now();
        launch(v, inner[v]!);
        await ctx.sync();
        const dt = (performance.now() - t) / inner[v]!;
        ms[v] = Math.min(ms[v] ?? Infinity, dt);
      }
    }
  } finally {
    [a, b, c].forEach((x) => x.free());
  }
  return ms;
}

/** One line per class for a log: "NT f32 M512 N128 K128 -> tile64-bk16 (timed)". */
export function describeTune(r: TuneReport): string[] {
  return r.results.map((x) => `${x.shapeClass} -> ${x.variant} (${x.source}; ${x.what.join(', ')})`);
}
