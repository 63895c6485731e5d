// shaders/embedding.wgsl against its twin. A gather copies values, so GPU and twin agree exactly (f16 tables:
// the twin gets the same f16-rounded values, and f16 -> f32 is exact).
import { describe, expect, it } from 'vitest';
import { embedding_forward, type RowChunk } from '../../src/kernels/embedding';
import { embedding_forward_cpu } from '../../src/kernels/embedding.cpu';
import { fromF16, toF16 } from '../../src/gpu/f16';
import { Tensor } from '../../src/gpu/tensor';
import { AWKWARD, expectClose, gpu, rng } from '../helpers/gpu';

/** The (V, C) table split at the given row boundaries, chunks listed in a shuffled order. */
function chunked(
  ctx: Awaited<ReturnType<typeof gpu>>,
  table: Float32Array,
  C: number,
  cuts: number[],
  dtype: 'f32' | 'f16' = 'f32',
): RowChunk[] {
  const chunks: RowChunk[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const [a, b] = [cuts[i], cuts[i + 1]];
    chunks.push({
      table: Tensor.from(ctx, table.subarray(a * C, b * C), [b - a, C], `table[${a}:${b}]`, dtype),
      rowStart: a,
    });
  }
  return chunks.reverse();
}

describe('embedding', () => {
  it.each(AWKWARD.map((C, i) => [[3, 100, 7, 257, 33][i], C]))(
    'one chunk matches the twin exactly, N = %i, C = %i',
    async (N, C) => {
      const ctx = await gpu();
      const live = ctx.alloc.liveBytes;
      const V = 50;
      const r = rng(N * 31 + C);
      const table = r.normal(V * C),
        ids = r.int(N, V);
      const tids = Tensor.fromU32(ctx, ids, [N]);
      const chunks = chunked(ctx, table, C, [0, V]);
      const out = embedding_forward(tids, chunks);
      expect(out.shape).toEqual([N, C]);
      expectClose(await out.read(), Float32Array.from(embedding_forward_cpu(ids, table, V, C)), 0);
      [tids, out, ...chunks.map((c) => c.table)].forEach((t) => t.free());
      expect(ctx.alloc.liveBytes).toBe(live);
    },
  );

  it("scale (Gemma's √hidden_size): each value times scale, one f32 rounding (WGSL multiplies correctly rounded)", async () => {
    const ctx = await gpu();
    const V = 70,
      C = 33,
      N = 29;
    const scale = Math.fround(Math.sqrt(640)); // gemma-3-270m's normalizer in f32
    const r = rng(640);
    const table = r.normal(V * C),
      ids = r.int(N, V);
    const tids = Tensor.fromU32(ctx, ids, [N]);
    const chunks = chunked(ctx, table, C, [0, 64, V]);
    const out = embedding_forward(tids, chunks, undefined, ids, scale);
    const want = Float32Array.from(embedding_forward_cpu(ids, table, V, C, scale)); // f64 product, rounded once
    expectClose(await out.read(), want, 0);
    expect(want.some((v, i) => v !== Math.fround(table[ids[Math.floor(i / C)] * C + (i % C)]))).toBe(true);
    [tids, out, ...chunks.map((c) => c.table)].forEach((t) => t.free());
  });

  it('row chunks of uneven sizes, given out of order, gather every id including each chunk edge', async () => {
    const ctx = await gpu();
    const V = 257,
      C = 33;
    const cuts = [0, 64, 65, 200, 257];
    const r = rng(257);
    const table = r.normal(V * C);
    const edges = cuts.flatMap((c) => [c - 1, c]).filter((c) => c >= 0 && c < V);
    const ids = Uint32Array.from([...edges, ...r.int(40, V)]);
    const N = ids.length;
    const tids = Tensor.fromU32(ctx, ids, [N]);
    const chunks = chunked(ctx, table, C, cuts);
    const out = embedding_forward(tids, chunks, undefined, ids);
    expectClose(await out.read(), Float32Array.from(embedding_forward_cpu(ids, table, V, C)), 0);
    [tids, out, ...chunks.map((c) => c.table)].forEach((t) => t.free());
  });

  it('f16 tables where the adapter has shader-f16 (exact), a clear error where it has not', async () => {
    const ctx = await gpu();
    const V = 100,
      C = 7,
      N = 33;
    const r = rng(16);
    const table = r.normal(V * C);
    const ids = r.int(N, V);
    const tids = Tensor.fromU32(ctx, ids, [N]);
    if (ctx.hasF16) {
      const chunks = chunked(ctx, table, C, [0, 37, 100], 'f16');
      const out = embedding_forward(tids, chunks);
      const rounded = fromF16(toF16(table));
      expectClose(await out.read(), Float32Array.from(embedding_forward_cpu(ids, rounded, V, C)), 0);
      [out, ...chunks.map((c) => c.table)].forEach((t) => t.free());
    } else {
      // Tensor.from converts to f16 on the CPU; only the kernel needs shader-f16.
      const chunks = chunked(ctx, table, C, [0, 100], 'f16');
      expect(() => embedding_forward(tids, chunks)).toThrow(/f16 but this adapter has no shader-f16/);
      chunks.forEach((c) => c.table.free());
    }
    tids.free();
  });

  it('ids in no chunk leave zero rows (also over a reused, dirty out), and hostIds turns them into an error', async () => {
    const ctx = await gpu();
    const C = 5;
    const r = rng(5);
    const table = r.normal(30 * C);
    // Rows 10..19 are missing from the chunks; 1000 is beyond the table.
    const chunks = chunked(ctx, table, C, [0, 10]).concat(chunked(ctx, table, C, [20, 30]));
    const ids = Uint32Array.from([3, 15, 25, 1000, 0, 29]);
    const tids = Tensor.fromU32(ctx, ids, [ids.length]);
    const out = Tensor.from(ctx, new Float32Array(ids.length * C).fill(7), [ids.length, C]);
    expect(embedding_forward(tids, chunks, out)).toBe(out);
    const want = embedding_forward_cpu(ids, table, 30, C);
    want.fill(0, 1 * C, 2 * C); // id 15 is in no chunk
    expectClose(await out.read(), Float32Array.from(want), 0);
    expect(() => embedding_forward(tids, chunks, undefined, ids)).toThrow(/id 15 \(position 1\) is in no row/);
    [tids, out, ...chunks.map((c) => c.table)].forEach((t) => t.free());
  });

  it('more than 65535 · 256 output elements (grid split over y)', async () => {
    const ctx = await gpu();
    const N = 4100,
      C = 4100,
      V = 3; // 16,810,000 > 16,776,960 elements
    const r = rng(4100);
    const table = r.normal(V * C),
      ids = r.int(N, V);
    const tids = Tensor.fromU32(ctx, ids, [N]);
    const chunks = chunked(ctx, table, C, [0, V]);
    const out = embedding_forward(tids, chunks);
    const got = await out.read();
    let bad = -1;
    for (let i = 0; i < N * C && bad < 0; i++) if (got[i] !== table[ids[Math.floor(i / C)] * C + (i % C)]) bad = i;
    expect(bad).toBe(-1);
    [tids, out, ...chunks.map((c) => c.table)].forEach((t) => t.free());
  });

  it('rejects overlapping chunks, mismatched widths, non-u32 ids and a wrong out', async () => {
    const ctx = await gpu();
    const a = Tensor.zeros(ctx, [10, 4]),
      b = Tensor.zeros(ctx, [10, 4]),
      c = Tensor.zeros(ctx, [10, 3]);
    const ids = Tensor.fromU32(ctx, [1, 2], [2]),
      fids = Tensor.zeros(ctx, [2]),
      out = Tensor.zeros(ctx, [2, 5]);
    expect(() =>
      embedding_forward(ids, [
        { table: a, rowStart: 0 },
        { table: b, rowStart: 5 },
      ]),
    ).toThrow(/overlap/);
    expect(() =>
      embedding_forward(ids, [
        { table: a, rowStart: 0 },
        { table: c, rowStart: 10 },
      ]),
    ).toThrow(/expected \(rows, 4\)/);
    expect(() => embedding_forward(fids, [{ table: a, rowStart: 0 }])).toThrow(/ids must be u32/);
    expect(() => embedding_forward(ids, [{ table: a, rowStart: 0 }], out)).toThrow(/expected \(2, 4\) f32/);
    expect(() => embedding_forward(ids, [])).toThrow(/no table chunks/);
    [a, b, c, ids, fids, out].forEach((t) => t.free());
  });
});
