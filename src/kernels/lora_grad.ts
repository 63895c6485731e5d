// LoRA's backward rank-r products in two dispatches, deterministic (no atomics; a run is bit-identical to itself):
//   G (N, r)   = dy · B                returned: the dx matmul's LoRA epilogue needs it
//   dA (r, IN) [+]= scale · Gᵀ · drop(x)
//   dB (OUT, r) [+]= scale · dyᵀ · u
// Stage 1 (shaders/lora_grad.wgsl) gives each workgroup one chunk of CH = 8·SB token rows: it computes G for
// those rows (kept in workgroup memory) and the chunk's partial sums of dA and dB into a scratch (chunks, E),
// E = r·IN + OUT·r; stage 2 (shaders/lora_grad_sum.wgsl) adds the chunks in order, scales, and stores into (or,
// with accumulate, adds into) dA and dB. G costs no dispatch of its own, and dA and dB share both.
// CPU twin: lora_grad.cpu.ts.
import { grid1d, type DispatchCost, type GpuContext } from '../gpu/context';
import { Tensor, VIEW_ALIGN } from '../gpu/tensor';
import { rankTile } from './lora_rank';

export interface GradOpts {
  scale: number;
  accumulate: boolean /* dA, dB += (gradients summed over micro-batches), else = */;
  dropout?: number /* p of the mask on x, from lib_rng's (seed, n·IN + i) */;
  seed?: number;
}

/** A KS x JQ workgroup (JQ = ceil(r / 4), as lora_rank's) and SB blocks of 8 token rows per chunk. */
export interface GradTile {
  KS: number;
  JQ: number;
  SB: number;
  chunks: number;
}
export const GRAD_ROWS = 8; // token rows per block (shaders/lora_grad.wgsl's ROWS)
/** At most this many chunks: stage 2 then loops ≤ 512 times; at N = 4096 every chunk is one block of 8 rows,
 * 512 workgroups (≥ 264, the shape report's floor for a dispatch above 10 MFLOP). */
export const MAX_CHUNKS = 512;
/** The scratch of chunk partials (chunks, r·(IN + OUT), or a GradGroup's span) f32 stays within this (and one
 * storage binding): fewer, longer chunks where linears are wide. 96 MiB keeps SmolLM2-135M's widest group (gate
 * and up, 576 -> 1536 each, r 8: 66 MiB) at 512 chunks. */
export const PART_BUDGET = 96 * 1024 * 1024;

/** `partFloats`: the scratch's row (default this linear's r·(IN + OUT); a GradGroup's span when shared). */
export function gradTile(
  N: number,
  IN: number,
  OUT: number,
  r: number,
  threads = 64,
  budget = PART_BUDGET,
  partFloats = r * (IN + OUT),
): GradTile {
  const { KS, JQ } = rankTile(OUT, r, threads);
  const maxChunks = Math.max(1, Math.min(MAX_CHUNKS, Math.floor(budget / (4 * partFloats))));
  const SB = Math.max(1, Math.ceil(N / (GRAD_ROWS * maxChunks)));
  return { KS, JQ, SB, chunks: Math.ceil(N / (GRAD_ROWS * SB)) };
}

const pad = (n: number) => Math.ceil(n / (VIEW_ALIGN / 4)) * (VIEW_ALIGN / 4);
const threadsOf = (ctx: GpuContext) => (ctx.softwareAdapter ? 16 : 64); // as lora_rank: CPU adapters want fewer
const budgetOf = (ctx: GpuContext) => Math.min(PART_BUDGET, ctx.limits.maxStorageBufferBindingSize);

/**
 * One stage 2 for several linears whose gradients lie side by side in one buffer, each dA and dB padded to a
 * binding offset (q, k, v in the flat LoRA gradients): each lora_grad given the group writes its chunk partials
 * into its columns of one scratch laid out like that span (its padding as zeros), and `flush` adds the chunks
 * into the whole span with one lora_grad_sum. `of` returns null where the gradients do not lie so.
 */
export class GradGroup {
  private constructor(
    readonly part: Tensor /* (chunks, E) */,
    readonly start: number /* byte offset of the span in the gradients' buffer */,
    readonly E: number /* floats in the span */,
    readonly split: number /* floats: the first dB's column (a binding offset: stage 2 binds [0, split) and the rest) */,
    readonly SB: number,
    readonly chunks: number,
    private readonly grads: Tensor /* the first dA, for its buffer */,
    private readonly scale: number,
  ) {}

  /** members: the linears' (r, IN) dA and (OUT, r) dB views, in buffer order; N the tokens; scale as GradOpts'. */
  static of(members: { dA: Tensor; dB: Tensor }[], N: number, scale: number): GradGroup | null {
    const first = members[0].dA;
    let at = first.offset;
    for (const { dA, dB } of members) {
      if (!dA.view || !dB.view || dA.base !== first.base || dB.base !== first.base || dA.offset !== at) return null;
      if (dB.offset !== at + 4 * pad(dA.numel)) return null;
      at = dB.offset + 4 * pad(dB.numel);
    }
    const E = (at - first.offset) / 4;
    const [r, IN] = first.shape;
    const t = gradTile(N, IN, members[0].dB.shape[0], r, 64, budgetOf(first.ctx), E);
    const part = Tensor.empty(first.ctx, [t.chunks, E], 'lora.grad.partials');
    const split = (members[0].dB.offset - first.offset) / 4;
    return new GradGroup(part, first.offset, E, split, t.SB, t.chunks, first, scale);
  }

  /** Stage 2 over the span (+=, the gradients of micro-batches add up), and the scratch freed. */
  flush(): void {
    const ctx = this.grads.ctx;
    const base = this.grads.base;
    const da = Tensor.view(ctx, base, this.start, [this.split]);
    const db = Tensor.view(ctx, base, this.start + 4 * this.split, [this.E - this.split]);
    sumChunks(this.part, this.chunks, da, db, this.scale, true);
    this.part.free();
  }
}

/** Stage 2: da, db [+]= scale · the chunks of part (chunks, da + db floats) summed in order. */
function sumChunks(part: Tensor, chunks: number, da: Tensor, db: Tensor, scale: number, accumulate: boolean): void {
  const [EA, EB] = [da.numel, db.numel];
  const E = EA + EB;
  const cost: DispatchCost = {
    flops: E * (chunks + 1),
    bytesRead: 4 * (chunks * E + (accumulate ? E : 0)),
    bytesWritten: 4 * E,
    serialLoop: chunks,
  };
  part.ctx.dispatch('lora_grad_sum', {
    defines: { ACCUM: accumulate },
    bindings: [part.binding, da.binding, db.binding],
    u32: [EA, EB, chunks],
    f32: [scale],
    workgroups: grid1d(E, 64),
    cost,
  });
}

/** dy is (N, OUT), x (N, IN), u (N, r) (the forward's drop(x)·Aᵀ), B (OUT, r), all f32; out.dA is (r, IN) and out.dB
 * (OUT, r). Returns G = dy·B (N, r), which the caller frees. `tile`: an override (tests, a tuner). With `group`
 * (made from out.dA, out.dB and the others of the group) the partials go to the group's scratch and its flush
 * adds them: this call leaves dA and dB unchanged. */
export function lora_grad(
  dy: Tensor,
  x: Tensor,
  u: Tensor,
  B: Tensor,
  out: { dA: Tensor; dB: Tensor },
  o: GradOpts,
  tile?: GradTile,
  group?: GradGroup,
): Tensor {
  const ctx = x.ctx;
  for (const t of [dy, x, u, B])
    if (t.shape.length !== 2 || t.dtype !== 'f32') throw new Error('lora_grad: inputs must be 2-D f32');
  const [N, IN] = x.shape;
  const [OUT, r] = B.shape;
  if (dy.shape[0] !== N || dy.shape[1] !== OUT)
    throw new Error(`lora_grad: dy must be (${N}, ${OUT}), got [${dy.shape}]`);
  if (u.shape[0] !== N || u.shape[1] !== r) throw new Error(`lora_grad: u must be (${N}, ${r}), got [${u.shape}]`);
  if (r < 1 || r > 64) throw new Error(`lora_grad: rank ${r} is outside 1..64`);
  if (out.dA.numel !== r * IN || out.dB.numel !== OUT * r)
    throw new Error(
      `lora_grad: dA must be (${r}, ${IN}) and dB (${OUT}, ${r}), got [${out.dA.shape}], [${out.dB.shape}]`,
    );
  const p = o.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw new Error(`lora_grad: dropout must be in [0, 1), got ${p}`);
  let t = tile ?? gradTile(N, IN, OUT, r, threadsOf(ctx), budgetOf(ctx));
  if (group) t = { ...t, SB: group.SB, chunks: group.chunks };
  if (t.JQ !== Math.ceil(r / 4) || t.KS * t.JQ > 128 || t.chunks !== Math.ceil(N / (GRAD_ROWS * t.SB)))
    throw new Error(`lora_grad: bad tile ${JSON.stringify(t)}`);
  const T = t.KS * t.JQ;
  const [EA, EB] = [r * IN, OUT * r];
  const E = EA + EB;
  const G = Tensor.empty(ctx, [N, r], 'lora.G');
  // the scratch row: this linear's dA then dB, or its columns of the group's span (padding zeroed)
  const part = group?.part ?? Tensor.empty(ctx, [t.chunks, E], 'lora.grad.partials');
  const PE = group ? group.E : E;
  const PA = group ? (out.dA.offset - group.start) / 4 : 0;
  const PB = group ? (out.dB.offset - group.start) / 4 : EA;
  const [ZA, ZB] = group ? [pad(EA) - EA, pad(EB) - EB] : [0, 0];
  const cost1: DispatchCost = {
    flops: 2 * N * r * (2 * OUT + IN),
    bytesRead: 4 * (N * (OUT + IN + r) + OUT * r + (t.SB > 1 ? t.chunks * E : 0)),
    bytesWritten: 4 * (N * r + t.chunks * (E + ZA + ZB)),
    serialLoop: t.SB * (Math.ceil(OUT / t.KS) + (Math.ceil(OUT / T) + Math.ceil(IN / T)) * r),
  };
  ctx.dispatch('lora_grad', {
    defines: { KS: t.KS, JQ: t.JQ, MASK: p > 0 },
    bindings: [dy.binding, x.binding, u.binding, B.binding, G.binding, part.binding],
    u32: [N, IN, OUT, r, t.SB, (o.seed ?? 0) >>> 0, PE, PA, PB, ZA, ZB],
    f32: [p],
    workgroups: grid1d(t.chunks, 1),
    cost: cost1,
  });
  if (group) return G;
  sumChunks(part, t.chunks, out.dA, out.dB, o.scale, o.accumulate);
  part.free(); // freed after recording: the allocator reuses it only for later-recorded work
  return G;
}
