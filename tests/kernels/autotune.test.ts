// The matmul autotuner (src/kernels/autotune.ts) and the dispatch in matmulRaw: a pick is timed, cached under the
// adapter and the shape class, and reused; a setting and WEBLORA_MATMUL force a variant, whose results match the
// twin (src/kernels/matmul.cpu.ts; the variants' kernels: shaders/matmul.wgsl, shaders/matmul_tiled.wgsl,
// shaders/matmul_splitk.wgsl); the budget bounds the timing.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { adapterKey, autotuneMatmul, type MatmulShape } from '../../src/kernels/autotune';
import { modelMatmulShapes } from '../../src/models/matmul-shapes';
import {
  MATMUL_VARIANTS,
  matmul,
  matmulChoices,
  matmulPolicy,
  matmulShapeClass,
  matmulVariantFor,
  setMatmulPolicy,
  variantAvailable,
} from '../../src/kernels/matmul';
import { matmul_cpu } from '../../src/kernels/matmul.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { memoryStore } from '../../src/storage/kv';
import { parseConfig } from '../../src/models/config';
import { gpu, rng } from '../helpers/gpu';
import { readFileSync } from 'node:fs';

const U32 = 2 ** -24;
const SHAPES: MatmulShape[] = [
  { what: 'x·W0ᵀ', M: 100, N: 48, K: 40, transA: false, transB: true, bDtype: 'f32' },
  { what: 'dA', M: 8, N: 40, K: 300, transA: true, transB: false, bDtype: 'f32' },
];

afterEach(async () => {
  const ctx = await gpu();
  setMatmulPolicy(ctx, undefined);
  delete process.env.WEBLORA_MATMUL;
});

describe('matmul autotuner', () => {
  it('times each class once, caches the pick under the adapter and class, and reuses it', async () => {
    const ctx = await gpu();
    const store = memoryStore();
    const first = await autotuneMatmul(ctx, SHAPES, { store, budgetMs: 60_000 });
    expect(first.policy).toBe('auto');
    expect(first.results.map((r) => r.source)).toEqual(['timed', 'timed']);
    for (const r of first.results) {
      expect(r.ms?.baseline).toBeGreaterThan(0); // the baseline is always a candidate
      expect(Object.keys(r.ms!).length).toBeGreaterThan(1);
      expect(r.ms![r.variant]).toBeLessThanOrEqual(r.ms!.baseline!); // never a variant slower than the baseline
    }
    const keys = await store.keys();
    expect(keys).toHaveLength(2);
    for (const k of keys) expect(k).toContain(adapterKey(ctx));
    // the dispatch follows the pick for the class
    for (const [s, r] of SHAPES.map((s, i) => [s, first.results[i]] as const)) {
      expect(matmulChoices(ctx).get(matmulShapeClass(s))).toBe(r.variant);
      expect(matmulVariantFor(ctx, { ...s, a: null!, b: null!, c: null!, lda: 0, ldb: 0, ldc: 0 })).toBe(r.variant);
    }
    // a stored pick is read, not timed again (a planted one proves it is the store's value that is used)
    await store.set(keys[0], 'tile64-bk32');
    const again = await autotuneMatmul(ctx, SHAPES, { store, budgetMs: 60_000 });
    expect(again.results.map((r) => r.source)).toEqual(['cached', 'cached']);
    expect(again.results.find((r) => keys[0].endsWith(r.shapeClass))!.variant).toBe('tile64-bk32');
    expect(again.spentMs).toBeLessThan(first.spentMs);
  });

  it('stops timing when the budget is spent: the rest keep the baseline, cached so later loads agree', async () => {
    const ctx = await gpu();
    const store = memoryStore();
    const r = await autotuneMatmul(ctx, SHAPES, { store, budgetMs: -1 });
    expect(r.results.map((x) => [x.source, x.variant])).toEqual([
      ['untimed (budget spent)', 'baseline'],
      ['untimed (budget spent)', 'baseline'],
    ]);
    expect([...store.map.values()]).toEqual(['baseline', 'baseline']);
    // without a cache nothing is timed and nothing is picked
    const none = await autotuneMatmul(ctx, [{ ...SHAPES[0], M: 3000 }], {});
    expect(none.results.map((x) => [x.source, x.variant])).toEqual([['not tuned (no cache)', 'baseline']]);
  });

  it('the setting and WEBLORA_MATMUL force a variant; the tuner then times nothing', async () => {
    const ctx = await gpu();
    process.env.WEBLORA_MATMUL = 'tile128-bk16';
    expect(matmulPolicy(ctx)).toBe('tile128-bk16');
    setMatmulPolicy(ctx, 'baseline'); // the setting wins over the environment
    expect(matmulPolicy(ctx)).toBe('baseline');
    setMatmulPolicy(ctx, undefined);
    const store = memoryStore();
    const r = await autotuneMatmul(ctx, SHAPES, { store });
    expect(r.results.map((x) => [x.source, x.variant])).toEqual([
      ['forced', 'tile128-bk16'],
      ['forced', 'tile128-bk16'],
    ]);
    expect(await store.keys()).toEqual([]);
    process.env.WEBLORA_MATMUL = 'fastest';
    expect(() => matmulPolicy(ctx)).toThrow(/WEBLORA_MATMUL='fastest'/);
  });

  it.each(MATMUL_VARIANTS)('a forced %s runs its kernel and matches the twin', async (v) => {
    const ctx = await gpu();
    setMatmulPolicy(ctx, v);
    const [M, N, K] = [33, 100, 257];
    const r = rng(7);
    const a = r.uniform(M * K),
      b = r.uniform(N * K);
    const ta = Tensor.from(ctx, a, [M, K]),
      tb = Tensor.from(ctx, b, [N, K]);
    const spy = vi.spyOn(ctx, 'dispatch');
    const c = matmul(ta, tb, { transB: true });
    const want = v === 'baseline' ? 'matmul' : v.startsWith('tile') ? 'matmul_tiled' : 'matmul_splitk';
    expect(spy.mock.calls.map((x) => x[0])).toEqual([variantAvailable(ctx, v) ? want : 'matmul']);
    const cost = spy.mock.calls[0][1].cost!;
    expect(cost.flops).toBe(2 * M * N * K);
    expect(cost.bytesWritten).toBe(4 * M * N);
    spy.mockRestore();
    const got = await c.read();
    const exp = matmul_cpu(a, b, M, N, K, { transB: true });
    const mag = matmul_cpu(Float64Array.from(a, Math.abs), Float64Array.from(b, Math.abs), M, N, K, { transB: true });
    // the worst case of a K-term f32 sum in any order (see matmul_variants.test.ts)
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - exp[i])).toBeLessThanOrEqual((K + 4) * U32 * mag[i]);
    [ta, tb, c].forEach((t) => t.free());
  });

  it("derives a model's products from its config and batch", () => {
    const cfg = parseConfig(JSON.parse(readFileSync('public/models/weblora-llama-1m/config.json', 'utf8')));
    const s = modelMatmulShapes(cfg, { tokens: 512, weights: 'f32', hasF16: true, headCols: 1024 });
    // 7 linears x (y, dx) + the head's 2 (LoRA's rank-r products run on their own kernels)
    expect(s).toHaveLength(7 * 2 + 2);
    const f = { transA: false, bDtype: 'f32' };
    expect(s).toContainEqual({ what: 'q_proj y = x·W0ᵀ', M: 512, N: 128, K: 128, transB: true, ...f });
    expect(s).toContainEqual({ what: 'down_proj dx = dy·W0', M: 512, N: 344, K: 128, transB: false, ...f });
    expect(s).toContainEqual({ what: 'head dx += dlogits·E (a chunk)', M: 512, N: 128, K: 1024, transB: false, ...f });
    // under int4 the products run on the blocks, except down_proj's: its 344-value rows are no whole blocks
    const q = modelMatmulShapes(cfg, { tokens: 512, weights: 'int4', hasF16: true, headCols: 1024 });
    expect(q.find((x) => x.what === 'q_proj dx = dy·W0')?.bDtype).toBe('q4');
    expect(q.find((x) => x.what === 'head logits = x·Eᵀ (a chunk)')?.bDtype).toBe('q4');
    expect(q.find((x) => x.what === 'down_proj y = x·W0ᵀ')?.bDtype).toBe('f16');
    expect(modelMatmulShapes(cfg, { tokens: 512, weights: 'int8', hasF16: false }).map((x) => x.bDtype)).toContain(
      'f32',
    );
  });
});
