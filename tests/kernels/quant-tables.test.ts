// Quantized tables (q8 / q4 blocks, src/gpu/quant.ts) where a model reads its embedding table or LM head: the
// embedding gather (shaders/embedding.wgsl with shaders/lib_quant.wgsl) against its twin on dequantize(blocks),
// exactly (a gather copies values, and each dequantized value is exact in f32); the chunked LM head
// (src/models/head.ts: headLoss, headLogits, whose matmuls read the blocks of each vocabulary chunk, row ranges
// of a chunk bound at 256-byte aligned offsets of its quants and scales) against the same head on f32 tables
// holding dequantize(blocks): bit-identical losses, dx and logits (tests/kernels/head.test.ts checks that head
// against its float64 reference with error bounds), and against the reference itself with a plain tolerance.
import { describe, expect, it } from 'vitest';
import { embedding_forward, type RowChunk } from '../../src/kernels/embedding';
import { embedding_forward_cpu } from '../../src/kernels/embedding.cpu';
import { IGNORE_INDEX } from '../../src/kernels/ignore_index';
import { dequantize, quantize, type QuantKind } from '../../src/gpu/quant';
import { Tensor } from '../../src/gpu/tensor';
import { headLogits, headLoss } from '../../src/models/head';
import { head_loss_cpu } from '../../src/models/head.cpu';
import { expectClose, gpu, rng } from '../helpers/gpu';

/** The (V, C) table cut into row chunks of the given sizes, each its own `kind` tensor (and the same chunks as f32
 * tensors of dequantize(blocks)); `seen` is the whole dequantized table. */
async function tables(kind: QuantKind, w: Float32Array, C: number, split: number[]) {
  const ctx = await gpu();
  const q: RowChunk[] = [],
    f: RowChunk[] = [];
  const seen = new Float32Array(w.length);
  let r0 = 0;
  for (const rows of split) {
    const qb = quantize(kind, w.subarray(r0 * C, (r0 + rows) * C), rows, C);
    const deq = dequantize(qb);
    seen.set(deq, r0 * C);
    q.push({ table: Tensor.fromQuant(ctx, qb, `table[${r0}]`), rowStart: r0 });
    f.push({ table: Tensor.from(ctx, deq, [rows, C], `table.f32[${r0}]`), rowStart: r0 });
    r0 += rows;
  }
  return { q: q.reverse(), f: f.reverse(), seen };
}

const free = (chunks: RowChunk[]) => chunks.forEach((c) => c.table.free());

describe.each(['q8', 'q4'] as const)('%s tables', (kind) => {
  it('embedding: the gather matches the twin on dequantize(blocks) exactly, 3 chunks, scaled', async () => {
    const ctx = await gpu();
    const [V, C, N] = [77, 96, 41];
    const r = rng(kind === 'q8' ? 11 : 12);
    const { q, seen } = await tables(kind, r.normal(V * C), C, [30, 33, 14]);
    const ids = r.int(N, V);
    ids[0] = V - 1;
    ids[1] = 30; // the first row of the middle chunk
    const tids = Tensor.fromU32(ctx, ids, [N]);
    const scale = Math.fround(Math.sqrt(C));
    const out = embedding_forward(tids, q, undefined, ids, scale);
    expect(Array.from(await out.read())).toEqual(
      Array.from(embedding_forward_cpu(ids, seen, V, C, scale), Math.fround),
    );
    [tids, out].forEach((t) => t.free());
    free(q);
  });

  it('LM head: losses, dx and logits bit-identical to f32 tables of dequantize(blocks), near the reference', async () => {
    const ctx = await gpu();
    // V 300 in chunks of 192 and 108 rows, vocabulary chunks of 128 columns: the first table chunk is read as rows
    // 0..128 and 128..192 (an offset into its quants and scales), the second whole
    const [N, V, C] = [7, 300, 64];
    const r = rng(kind === 'q8' ? 21 : 22);
    const { q, f, seen } = await tables(kind, r.normal(V * C, 0.3), C, [192, 108]);
    const xv = r.uniform(N * C);
    const targets = r.int(N, V);
    targets[0] = V - 1;
    targets[1] = 129;
    targets[3] = IGNORE_INDEX;
    const x = Tensor.from(ctx, xv, [N, C]);
    const opts = { softcap: 0, chunkCols: 128 };
    const gq = headLoss(x, q, V, targets, 0.5, true, opts);
    const gf = headLoss(x, f, V, targets, 0.5, true, opts);
    const [lq, lf, dq, df] = await Promise.all([gq.losses.read(), gf.losses.read(), gq.dx!.read(), gf.dx!.read()]);
    expect(Array.from(lq)).toEqual(Array.from(lf));
    expect(Array.from(dq)).toEqual(Array.from(df));
    const want = head_loss_cpu(xv, seen, targets, N, C, V, 0.5, 0);
    expectClose(lq, want.losses, 1e-5, 1e-5, 'loss');
    expectClose(dq, want.dx, 1e-6, 1e-4, 'dx');

    const zq = headLogits(x, q, V, 30),
      zf = headLogits(x, f, V, 30);
    expect(Array.from(await zq.read())).toEqual(Array.from(await zf.read()));
    [x, gq.losses, gf.losses, gq.dx!, gf.dx!, zq, zf].forEach((t) => t.free());
    free(q);
    free(f);
  });
});
