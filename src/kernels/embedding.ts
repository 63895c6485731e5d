// Token (and position) embedding lookup: out[n, :] = table[ids[n], :] · scale (scale 1, or Gemma's
// normalizer √hidden_size, multiplied in f32 as Gemma3TextScaledWordEmbedding does for f32 weights). The table is frozen under LoRA, so
// there is no backward kernel: nothing upstream of the lookup needs a gradient (the ids are integers).
// The (V, C) table may exceed one storage binding (GPT-2's wte in f32 on some adapters), so it arrives as
// row chunks and the gather runs once per chunk. A chunk may be q8 / q4 blocks of a frozen table (src/gpu/quant.ts,
// C % 32 == 0): the gather reads the blocks and dequantizes in registers. Shader: shaders/embedding.wgsl.
// CPU twin: embedding.cpu.ts (on dequantize(blocks) for a quantized table).
import { grid1d } from '../gpu/context';
import { isQuant, Tensor } from '../gpu/tensor';
import { bBytesPerValue, type BDtype } from './matmul';

/** Rows rowStart .. rowStart + rows_i of the full (V, C) table, as a (rows_i, C) f32, f16, q8 or q4 tensor. */
export interface RowChunk {
  table: Tensor;
  rowStart: number;
}

/** Checks the chunks: each (rows, C) f32/f16/q8/q4 with the same C, integer row starts, no two overlapping. Returns C. */
export function checkChunks(what: string, chunks: RowChunk[]): number {
  if (chunks.length === 0) throw new Error(`${what}: no table chunks`);
  const C = chunks[0].table.shape[1];
  const spans = chunks.map((ch, i) => {
    const t = ch.table;
    if (t.shape.length !== 2 || t.shape[1] !== C)
      throw new Error(`${what}: chunk ${i} is [${t.shape}], expected (rows, ${C})`);
    if (t.dtype !== 'f32' && t.dtype !== 'f16' && !isQuant(t.dtype))
      throw new Error(`${what}: chunk ${i} is ${t.dtype}, expected f32, f16, q8 or q4`);
    if (t.dtype === 'f16' && !t.ctx.hasF16)
      throw new Error(`${what}: chunk ${i} is f16 but this adapter has no shader-f16`);
    if (!Number.isInteger(ch.rowStart) || ch.rowStart < 0)
      throw new Error(`${what}: chunk ${i} has rowStart ${ch.rowStart}`);
    return [ch.rowStart, ch.rowStart + t.shape[0]];
  });
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1])
      throw new Error(`${what}: chunks overlap at rows ${spans[i][0]}..${spans[i - 1][1]}`);
  }
  return C;
}

/**
 * ids is (N,) u32; chunks hold the (V, C) table by rows; out (if given) is (N, C) f32. Returns out (N, C).
 * A row whose id falls in no chunk is left zero; pass `hostIds` (the same ids, known on the CPU) to have that
 * caught here as an error instead. Every value is multiplied by `scale` (rounded to f32).
 */
export function embedding_forward(
  ids: Tensor,
  chunks: RowChunk[],
  out?: Tensor,
  hostIds?: ArrayLike<number>,
  scale = 1,
): Tensor {
  const C = checkChunks('embedding_forward', chunks);
  if (ids.dtype !== 'u32') throw new Error(`embedding_forward: ids must be u32 (Tensor.fromU32), got ${ids.dtype}`);
  const N = ids.numel;
  const ctx = ids.ctx;
  if (out && (out.dtype !== 'f32' || out.numel !== N * C)) {
    throw new Error(`embedding_forward: out is [${out.shape}] ${out.dtype}, expected (${N}, ${C}) f32`);
  }
  if (hostIds) {
    if (hostIds.length !== N) throw new Error(`embedding_forward: ${hostIds.length} host ids for ${N} ids`);
    for (let n = 0; n < N; n++) {
      const id = hostIds[n];
      if (!chunks.some((ch) => id >= ch.rowStart && id < ch.rowStart + ch.table.shape[0])) {
        throw new Error(`embedding_forward: id ${id} (position ${n}) is in no row of the table`);
      }
    }
  }
  const o = out ?? Tensor.empty(ctx, [N, C], 'embedding.out');
  ctx.clear(o.buf, 0, N * C * 4); // rows whose id is in no chunk stay zero
  for (const ch of chunks) {
    const d = ch.table.dtype as BDtype; // checked above
    const f16 = d === 'f16';
    // a q8 / q4 table: its quants as u32 words, value i dequantized from its word and its block's scale
    const q = isQuant(d) ? ch.table.quantParts : null;
    const defines = q
      ? { ENABLE_F16: '', T: 'u32', TABLE_AT: `${d}_at(table[${d}_word(i)], ts[i >> 6u], i)` }
      : { ENABLE_F16: f16 ? 'enable f16;' : '', T: d, TABLE_AT: 'f32(table[i])' };
    ctx.dispatch('embedding', {
      defines,
      // unquantized: the scales binding is an alias of the table, unread
      bindings: [ids.buf, q?.q ?? ch.table.binding, o.buf, q?.scales ?? ch.table.binding],
      u32: [N, C, ch.rowStart, ch.table.shape[0]],
      f32: [scale],
      workgroups: grid1d(N * C, 256),
      // at most every output row comes from this chunk: N ids, N·C table values, N·C outputs
      cost: {
        flops: scale === 1 ? 0 : N * C,
        bytesRead: 4 * N + N * C * bBytesPerValue(d),
        bytesWritten: 4 * N * C,
        serialLoop: 1,
      },
    });
  }
  return o;
}
