// LoRA's backward rank-r products in two dispatches, deterministic (no atomics; a run is bit-identical to itself):
//   G (N, r)   = dy · B                returned: the dx matmul's LoRA epilogue needs it
//   dA (r, IN) [+]= scale · Gᵀ · drop(x)
//   dB (OUT, r) [+]= scale · dyᵀ · u
// Stage 1 (shaders/lora_grad.wgsl) gives each workgroup one chunk of CH = 8·SB token rows: it computes G for
// those rows (kept in workgroup memory) and the chunk's partial sums of dA and dB into a scratch (chunks, E),
// E = r·IN + OUT·r; stage 2 (shaders/lora_grad_sum.wgsl) adds the chunks in order, scales, and stores into (or,
// with accumulate, adds into) dA and dB. G costs no dispatch of its own, and dA and dB share both.
// lora_grad_segments: the linears of one input (q, k, v; gate, up), their gradients side by side in one buffer (a
// GradGroup), in one stage 1 (grid z = the linear, each its own dy, B, u and dropout stream) and one stage 2.
// CPU twin: lora_grad.cpu.ts.
import { grid1d, type Binding, type DispatchCost, type GpuContext } from '../gpu/context';
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
 * binding offset (q, k, v in the flat LoRA gradients): lora_grad_segments writes each linear's chunk partials
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
    readonly members: { dA: Tensor; dB: Tensor }[],
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
    return new GradGroup(part, first.offset, E, split, t.SB, t.chunks, members, scale);
  }

  /** Stage 2 over the span (+=, the gradients of micro-batches add up), and the scratch freed. */
  flush(): void {
    const { ctx, base } = this.members[0].dA;
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
 * (OUT, r). Returns G = dy·B (N, r), which the caller frees. `tile`: an override (tests, a tuner). */
export function lora_grad(
  dy: Tensor,
  x: Tensor,
  u: Tensor,
  B: Tensor,
  out: { dA: Tensor; dB: Tensor },
  o: GradOpts,
  tile?: GradTile,
): Tensor {
  const [N, IN] = x.shape;
  const [OUT, r] = B.shape;
  if (out.dA.numel !== r * IN || out.dB.numel !== OUT * r)
    throw new Error(
      `lora_grad: dA must be (${r}, ${IN}) and dB (${OUT}, ${r}), got [${out.dA.shape}], [${out.dB.shape}]`,
    );
  check(x, [{ dy, u, B, seed: o.seed ?? 0 }], o.dropout ?? 0);
  const t = tile ?? gradTile(N, IN, OUT, r, threadsOf(x.ctx), budgetOf(x.ctx));
  checkTile(t, N, r);
  const EA = r * IN;
  const G = Tensor.empty(x.ctx, [N, r], 'lora.G');
  const part = Tensor.empty(x.ctx, [t.chunks, EA + OUT * r], 'lora.grad.partials');
  // the scratch row: this linear's dA then dB
  stage1(x, [{ dy, u, B, seed: o.seed ?? 0 }], [G], part, [0], [EA], o.dropout ?? 0, t);
  sumChunks(part, t.chunks, out.dA, out.dB, o.scale, o.accumulate);
  part.free(); // freed after recording: the allocator reuses it only for later-recorded work
  return G;
}

/** One linear of a lora_grad_segments call: dy (N, OUT_s), u (N, r), B (OUT_s, r) and the forward's dropout seed. */
export interface GradSegment {
  dy: Tensor;
  u: Tensor;
  B: Tensor;
  seed: number;
}

/** Stage 1 of the linears of one input x (N, IN) in one dispatch: 1 to 3 segments in `group`'s member order (their
 * us views of one buffer, their Bs of another), dropout p shared; their partials go to the group's scratch and its
 * flush adds them. Returns each G_s = dy_s·B_s (N, r), views of `all`, which the caller frees. `tile`: an override
 * (its SB and chunks are the group's). */
export function lora_grad_segments(
  x: Tensor,
  segs: GradSegment[],
  group: GradGroup,
  dropout = 0,
  tile?: Partial<GradTile>,
): { all: Tensor; G: Tensor[] } {
  const ctx = x.ctx;
  const S = segs.length;
  if (S < 1 || S > 3 || group.members.length !== S)
    throw new Error(`lora_grad: 1 to 3 segments, one per member of the group, got ${S}`);
  check(x, segs, dropout);
  const [N, IN] = x.shape;
  const r = segs[0].B.shape[1];
  segs.forEach((sg, s) => {
    const { dA, dB } = group.members[s];
    if (dA.numel !== r * IN || dB.numel !== sg.B.shape[0] * r)
      throw new Error(`lora_grad: segment ${s}'s dA, dB are [${dA.shape}], [${dB.shape}], its B [${sg.B.shape}]`);
  });
  // one workgroup shape for all, the narrowest OUT's K split (given the same tile, each segment's sums run in the
  // order of its own lora_grad: bit for bit the same)
  const minOut = Math.min(...segs.map((sg) => sg.B.shape[0]));
  const t: GradTile = { ...rankTile(minOut, r, threadsOf(ctx)), ...tile, SB: group.SB, chunks: group.chunks };
  checkTile(t, N, r);
  const gstride = pad(N * r); // each G starts on a binding offset
  const all = Tensor.empty(ctx, [S, gstride], 'lora.G.group');
  const G = segs.map((_, s) => Tensor.view(ctx, all.base, 4 * s * gstride, [N, r]));
  const at = (t: Tensor) => (t.offset - group.start) / 4;
  const PA = group.members.map((m) => at(m.dA));
  const PB = group.members.map((m) => at(m.dB));
  stage1(x, segs, G, group.part, PA, PB, dropout, t, group.E);
  return { all, G };
}

function check(x: Tensor, segs: GradSegment[], p: number): void {
  const [N] = x.shape;
  if (x.shape.length !== 2 || x.dtype !== 'f32') throw new Error('lora_grad: x must be 2-D f32');
  const r = segs[0].B.shape[1];
  for (const { dy, u, B } of segs) {
    for (const t of [dy, u, B])
      if (t.shape.length !== 2 || t.dtype !== 'f32') throw new Error('lora_grad: inputs must be 2-D f32');
    const OUT = B.shape[0];
    if (dy.shape[0] !== N || dy.shape[1] !== OUT)
      throw new Error(`lora_grad: dy must be (${N}, ${OUT}), got [${dy.shape}]`);
    if (B.shape[1] !== r) throw new Error(`lora_grad: every B must be (OUT, ${r}), got [${B.shape}]`);
    if (u.shape[0] !== N || u.shape[1] !== r) throw new Error(`lora_grad: u must be (${N}, ${r}), got [${u.shape}]`);
  }
  if (r < 1 || r > 64) throw new Error(`lora_grad: rank ${r} is outside 1..64`);
  if (!(p >= 0 && p < 1)) throw new Error(`lora_grad: dropout must be in [0, 1), got ${p}`);
}

function checkTile(t: GradTile, N: number, r: number): void {
  if (t.JQ !== Math.ceil(r / 4) || t.KS * t.JQ > 128 || t.chunks !== Math.ceil(N / (GRAD_ROWS * t.SB)))
    throw new Error(`lora_grad: bad tile ${JSON.stringify(t)}`);
}

/** One binding over views of one buffer (x.ctx's), and each view's float offset in it. */
function span(ts: Tensor[], what: string): { binding: Binding; at: number[] } {
  if (ts.some((t) => t.base !== ts[0].base)) throw new Error(`lora_grad: the segments' ${what} must share a buffer`);
  const lo = Math.min(...ts.map((t) => t.offset));
  const hi = Math.max(...ts.map((t) => t.offset + t.bytes));
  const v = Tensor.view(ts[0].ctx, ts[0].base, lo, [(hi - lo) / 4]);
  return { binding: v.binding, at: ts.map((t) => (t.offset - lo) / 4) };
}

/** Stage 1 (shaders/lora_grad.wgsl): segment s's G into G[s] and its chunk partials into part's columns PA[s] (dA)
 * and PB[s] (dB) of rows PE floats long (default: one linear's r·IN + OUT·r), its padding zeroed. */
function stage1(
  x: Tensor,
  segs: GradSegment[],
  G: Tensor[],
  part: Tensor,
  PA: number[],
  PB: number[],
  p: number,
  t: GradTile,
  PE?: number,
): void {
  const [N, IN] = x.shape;
  const r = segs[0].B.shape[1];
  const S = segs.length;
  const OUTS = segs.map((sg) => sg.B.shape[0]);
  const EA = r * IN;
  const E = OUTS.reduce((e, OUT) => e + EA + OUT * r, 0);
  // the padding after each dA and dB in a shared row (none in a linear's own)
  const ZA = PE ? pad(EA) - EA : 0;
  const ZB = OUTS.map((OUT) => (PE ? pad(OUT * r) - OUT * r : 0));
  const T = t.KS * t.JQ;
  const [us, Bs] = [segs.map((sg) => sg.u), segs.map((sg) => sg.B)];
  const [u, b, g] = [span(us, 'u'), span(Bs, 'B'), span(G, 'G')];
  const each = (v: number[]) => [0, 1, 2].map((s) => (v[Math.min(s, S - 1)] ?? 0) >>> 0);
  const cost: DispatchCost = {
    flops: OUTS.reduce((f, OUT) => f + 2 * N * r * (2 * OUT + IN), 0),
    bytesRead: 4 * (N * IN + OUTS.reduce((q, OUT) => q + N * (OUT + r) + OUT * r, 0) + (t.SB > 1 ? t.chunks * E : 0)),
    bytesWritten: 4 * (S * N * r + t.chunks * (E + S * ZA + ZB.reduce((a, z) => a + z, 0))),
    serialLoop: Math.max(
      ...OUTS.map((OUT) => t.SB * (Math.ceil(OUT / t.KS) + (Math.ceil(OUT / T) + Math.ceil(IN / T)) * r)),
    ),
  };
  x.ctx.dispatch('lora_grad', {
    defines: { KS: t.KS, JQ: t.JQ, MASK: p > 0, SEGS: S },
    bindings: [
      ...each([0, 1, 2]).map((s) => segs[s].dy.binding),
      x.binding,
      u.binding,
      b.binding,
      g.binding,
      part.binding,
    ],
    u32: [
      ...[N, IN, r, t.SB, PE ?? EA + OUTS[0] * r, ZA],
      // per segment (3 slots each, the last repeated): OUT, seed, B's, u's and G's offsets, its columns of part
      ...[OUTS, segs.map((sg) => sg.seed), b.at, u.at, g.at, PA, PB, ZB].flatMap(each),
    ],
    f32: [p],
    workgroups: [...grid1d(t.chunks, 1), S],
    cost,
  });
}
