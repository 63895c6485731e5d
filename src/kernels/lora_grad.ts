// LoRA's backward rank-r products in one dispatch and a half, deterministic (no atomics; a run is bit-identical to
// itself):
//   G (N, r)   = dy · B                returned: the dx matmul's LoRA epilogue needs it
//   dA (r, IN) [+]= scale · Gᵀ · drop(x)
//   dB (OUT, r) [+]= scale · dyᵀ · u
// Stage 1 (shaders/lora_grad.wgsl) gives each workgroup one chunk of CH = 8·SB token rows: it computes G for
// those rows (kept in workgroup memory) and the chunk's partial sums of dA and dB into a scratch (chunks, E),
// E = r·IN + OUT·r; stage 2 adds the chunks in order, scales, and stores into (or, with accumulate, adds into) dA
// and dB. Stage 2 is carried (GradCarry, horizontal fusion): it waits until the next lora_grad on the same carry,
// whose dispatch runs it in extra workgroups beside its own stage 1, or until the carry's flush runs it on its own
// (shaders/lora_grad_sum.wgsl). So a backward of k lora_grads is k + 1 dispatches, and the owner of the
// gradients (src/models/lora.ts LoraState) flushes before anything reads them. G costs no dispatch of its own.
// lora_grad_segments: the linears of one input (q, k, v; gate, up), their gradients side by side in one buffer (a
// GradGroup), in one stage 1 (each its own dy, B, u and dropout stream) and one stage 2 over their span.
// CPU twin: lora_grad.cpu.ts (a carried stage 2 is the same sums as one on its own).
import type { GpuBuffer } from '../gpu/allocator';
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
const padDown = (n: number) => Math.floor(n / (VIEW_ALIGN / 4)) * (VIEW_ALIGN / 4);
const threadsOf = (ctx: GpuContext) => (ctx.softwareAdapter ? 16 : 64); // as lora_rank: CPU adapters want fewer
/** Bytes one binding (and one buffer) may hold. */
const bindingBytes = (ctx: GpuContext) => Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
/** The partials' budget beside gFloats of G's in one binding (the workspace's): PART_BUDGET unless the binding is
 * smaller. */
const budgetOf = (binding: number, gFloats: number) => Math.min(PART_BUDGET, binding - 4 * gFloats);

/**
 * What one lora_grad holds in a carry's workspace, in floats: `g` for the G's of its linears (each padded to a
 * binding offset) and `room` for its chunk partials, `chunks` rows of E (one linear's r·(IN + OUT); with `span`, a
 * GradGroup's: each dA and dB padded). `binding`: the device's bytes per binding. For the calls and the memory
 * estimate (src/models/memory.ts).
 */
export function gradWorkspace(
  N: number,
  IN: number,
  OUTS: number[],
  r: number,
  binding: number,
  span = OUTS.length > 1,
): { g: number; E: number; SB: number; chunks: number; room: number } {
  const g = OUTS.length * pad(N * r);
  const E = span ? OUTS.reduce((e, OUT) => e + pad(r * IN) + pad(OUT * r), 0) : r * (IN + OUTS[0]);
  const { SB, chunks } = gradTile(N, IN, OUTS[0], r, 64, budgetOf(binding, g), E);
  return { g, E, SB, chunks, room: pad(chunks * E) };
}

/** A stage 2 recorded later: dst [+]= scale · the `chunks` rows of E partials at float `at` of the workspace,
 * summed in order; the first da.numel columns go to da, the rest to db (E = da.numel + db.numel). */
interface SumJob {
  at: number;
  room: number /* floats it holds in the workspace (a multiple of 64) */;
  chunks: number;
  E: number;
  da: Tensor;
  db: Tensor;
  scale: number;
  accumulate: boolean;
}

/** The one binding over da and db that a carried stage 2 writes, and db's float offset in it; null where they are
 * not in one buffer with db after da. */
function dstOf(j: SumJob): { binding: Binding; QD: number } | null {
  const { da, db } = j;
  if (da.base !== db.base || db.offset < da.offset + da.bytes) return null;
  const size = db.offset + db.bytes - da.offset;
  return { binding: { buf: da.base, offset: da.offset, size }, QD: (db.offset - da.offset) / 4 };
}

/**
 * Where lora_grad's stage 2 waits to be carried (horizontal fusion): each lora_grad (or lora_grad_segments) on
 * a carry writes its G's and chunk partials into the carry's workspace, and its stage 2 is not dispatched: it
 * becomes the carry's pending job, run by extra workgroups of the next lora_grad on the same carry (independent
 * work, one dispatch), or by `flush()` on its own. So k lora_grads cost k + 1 dispatches instead of 2k.
 * Until the flush, the pending gradients are not in their buffer: whoever owns them flushes before any read (the
 * flat LoRA gradients: src/models/lora.ts LoraState, whose `grads` getter flushes). A G returned by a call is a
 * view of the workspace, valid until the next call on the carry (the dx matmuls that read it come before).
 * The workspace, one binding: [G's | partials], the pending job's at one end of the partials and the next job's
 * at the other, so both fit while the two are no larger than the room; it grows (after summing the pending job on
 * its own) when they are, and stays until free(). A pending job is summed on its own first where it cannot be
 * carried: its dA and dB not in one buffer, or the two jobs over one binding. Sums and their order are the same
 * either way: gradients are bit for bit those of lora_grad_sum right after each stage 1.
 */
export class GradCarry {
  private ws: GpuBuffer | null = null;
  private gFloats = 0; /* room for G's at the start of ws (a multiple of 64) */
  private pFloats = 0; /* room for partials after them */
  private pending: SumJob | null = null;

  constructor(readonly ctx: GpuContext) {}

  /** Whether a stage 2 waits (its gradients are not complete until flush()). */
  get waiting(): boolean {
    return this.pending !== null;
  }

  /** Workspace bytes held (0 once freed). */
  get bytes(): number {
    return this.ws ? this.ws.size : 0;
  }

  /** Runs the pending stage 2 on its own (lora_grad_sum), if any: its gradients are then complete. */
  flush(): void {
    const j = this.pending;
    if (!j) return;
    this.pending = null;
    const part = Tensor.view(this.ctx, this.ws!, 4 * j.at, [j.chunks * j.E]);
    sumChunks(part, j.chunks, j.da, j.db, j.scale, j.accumulate);
  }

  /** Releases the workspace; a pending stage 2 is dropped (flush() first to keep it). */
  free(): void {
    this.pending = null;
    if (this.ws) this.ctx.free(this.ws); // after recording: the allocator reuses it only for later-recorded work
    this.ws = null;
    this.gFloats = this.pFloats = 0;
  }

  /** Room for one stage 1: gNeed floats of G's (at float 0) and `room` of partials (at float `at`), and the pending
   * job it carries (null: none, or summed on its own just now). For lora_grad and lora_grad_segments. */
  take(gNeed: number, room: number): { ws: GpuBuffer; at: number; carried: SumJob | null } {
    let carried = this.pending && dstOf(this.pending) ? this.pending : null;
    const held = carried?.room ?? 0;
    if (!this.ws || gNeed > this.gFloats || held + room > this.pFloats) {
      this.flush(); // before the workspace that holds its partials goes
      carried = null;
      const g = Math.max(this.gFloats, gNeed);
      // room for this pair next time, within one binding
      const pFloats = Math.max(
        room,
        Math.min(Math.max(this.pFloats, held + room), padDown(bindingBytes(this.ctx) / 4 - g)),
      );
      if (!this.ws || g > this.gFloats || pFloats > this.pFloats) {
        if (this.ws) this.ctx.free(this.ws);
        this.ws = this.ctx.buffer(4 * (g + pFloats), 'lora.grad.workspace');
        [this.gFloats, this.pFloats] = [g, pFloats];
      }
    } else if (this.pending && !carried) this.flush();
    // the other end from the carried job's
    const at = carried && carried.at === this.gFloats ? this.gFloats + this.pFloats - room : this.gFloats;
    return { ws: this.ws, at, carried };
  }

  /** The job whose stage 1 was just recorded waits for the next one (or flush()). */
  defer(job: SumJob): void {
    if (this.pending) throw new Error('internal: lora_grad deferred a stage 2 over one not yet carried');
    this.pending = job;
  }

  /** Hands the carried job over: it is in the dispatch being recorded. */
  carriedBy(job: SumJob | null): void {
    if (job && this.pending !== job) throw new Error('internal: lora_grad carried a stage 2 that was not pending');
    if (job) this.pending = null;
  }
}

/**
 * The linears whose gradients lie side by side in one buffer, each dA and dB padded to a binding offset (q, k, v
 * in the flat LoRA gradients): lora_grad_segments writes each linear's chunk partials into its columns of one
 * row laid out like that span (its padding as zeros), and one stage 2 adds the chunks into the whole span.
 * `of` returns null where the gradients do not lie so.
 */
export class GradGroup {
  private constructor(
    readonly start: number /* byte offset of the span in the gradients' buffer */,
    readonly E: number /* floats in the span */,
    readonly split: number /* floats: the first dB's column (a binding offset: stage 2 writes [0, split) and the rest) */,
    readonly SB: number,
    readonly chunks: number,
    readonly members: { dA: Tensor; dB: Tensor }[],
    readonly scale: number,
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
    const OUTS = members.map((m) => m.dB.shape[0]);
    const w = gradWorkspace(N, IN, OUTS, r, bindingBytes(first.ctx), true);
    if (w.E !== E) throw new Error('internal: a GradGroup span unlike gradWorkspace');
    const split = (members[0].dB.offset - first.offset) / 4;
    return new GradGroup(first.offset, E, split, w.SB, w.chunks, members, scale);
  }

  /** The stage 2 over the span: += (the gradients of micro-batches add up). */
  job(at: number): SumJob {
    const { ctx, base } = this.members[0].dA;
    const da = Tensor.view(ctx, base, this.start, [this.split]);
    const db = Tensor.view(ctx, base, this.start + 4 * this.split, [this.E - this.split]);
    const room = pad(this.chunks * this.E);
    return { at, room, chunks: this.chunks, E: this.E, da, db, scale: this.scale, accumulate: true };
  }
}

/** Stage 2 on its own: da, db [+]= scale · the chunks of part (chunks, da + db floats) summed in order. */
function sumChunks(part: Tensor, chunks: number, da: Tensor, db: Tensor, scale: number, accumulate: boolean): void {
  const [EA, EB] = [da.numel, db.numel];
  part.ctx.dispatch('lora_grad_sum', {
    defines: { ACCUM: accumulate },
    bindings: [part.binding, da.binding, db.binding],
    u32: [EA, EB, chunks],
    f32: [scale],
    workgroups: grid1d(EA + EB, 64),
    cost: sumCost(EA + EB, chunks, accumulate),
  });
}

/** What a stage 2 costs: E sums of `chunks` partials, scaled (and added). */
function sumCost(E: number, chunks: number, accumulate: boolean): DispatchCost {
  return {
    flops: E * (chunks + 1),
    bytesRead: 4 * (chunks * E + (accumulate ? E : 0)),
    bytesWritten: 4 * E,
    serialLoop: chunks,
  };
}

/** dy is (N, OUT), x (N, IN), u (N, r) (the forward's drop(x)·Aᵀ), B (OUT, r), all f32; out.dA is (r, IN) and out.dB
 * (OUT, r). Records stage 1 on `carry` (carrying its pending stage 2); this call's stage 2 waits there: dA and dB
 * are complete after carry.flush() (or the next lora_grad on it). Returns G = dy·B (N, r), a view of the carry's
 * workspace valid until its next call. `tile`: an override (tests, a tuner). */
export function lora_grad(
  dy: Tensor,
  x: Tensor,
  u: Tensor,
  B: Tensor,
  out: { dA: Tensor; dB: Tensor },
  o: GradOpts,
  carry: GradCarry,
  tile?: GradTile,
): Tensor {
  const [N, IN] = x.shape;
  const [OUT, r] = B.shape;
  if (out.dA.numel !== r * IN || out.dB.numel !== OUT * r)
    throw new Error(
      `lora_grad: dA must be (${r}, ${IN}) and dB (${OUT}, ${r}), got [${out.dA.shape}], [${out.dB.shape}]`,
    );
  check(x, [{ dy, u, B, seed: o.seed ?? 0 }], o.dropout ?? 0);
  const w = gradWorkspace(N, IN, [OUT], r, bindingBytes(x.ctx));
  const t = tile ?? { ...rankTile(OUT, r, threadsOf(x.ctx)), SB: w.SB, chunks: w.chunks };
  checkTile(t, N, r);
  const EA = r * IN;
  const E = EA + OUT * r; // the scratch row: this linear's dA then dB
  const room = pad(t.chunks * E);
  const { ws, at, carried } = carry.take(w.g, room);
  stage1(x, [{ dy, u, B, seed: o.seed ?? 0 }], ws, [0], at, [0], [EA], o.dropout ?? 0, t, carried, out.dA);
  carry.carriedBy(carried);
  const { dA: da, dB: db } = out;
  carry.defer({ at, room, chunks: t.chunks, E, da, db, scale: o.scale, accumulate: o.accumulate });
  return Tensor.view(x.ctx, ws, 0, [N, r]);
}

/** One linear of a lora_grad_segments call: dy (N, OUT_s), u (N, r), B (OUT_s, r) and the forward's dropout seed. */
export interface GradSegment {
  dy: Tensor;
  u: Tensor;
  B: Tensor;
  seed: number;
}

/** Stage 1 of the linears of one input x (N, IN) in one dispatch: 1 to 3 segments in `group`'s member order (their
 * us views of one buffer, their Bs of another), dropout p shared; their partials go to `carry`'s workspace, and the
 * group's stage 2 waits there (as lora_grad's). Returns each G_s = dy_s·B_s (N, r), views of the workspace valid
 * until the carry's next call. `tile`: an override (its SB and chunks are the group's). */
export function lora_grad_segments(
  x: Tensor,
  segs: GradSegment[],
  group: GradGroup,
  carry: GradCarry,
  dropout = 0,
  tile?: Partial<GradTile>,
): Tensor[] {
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
  const job = group.job(0);
  const { ws, at, carried } = carry.take(S * gstride, job.room);
  const G = segs.map((_, s) => Tensor.view(ctx, ws, 4 * s * gstride, [N, r]));
  const col = (t: Tensor) => (t.offset - group.start) / 4;
  const PA = group.members.map((m) => col(m.dA));
  const PB = group.members.map((m) => col(m.dB));
  const gAt = segs.map((_, s) => s * gstride);
  stage1(x, segs, ws, gAt, at, PA, PB, dropout, t, carried, group.members[0].dA, group.E);
  carry.carriedBy(carried);
  carry.defer({ ...job, at });
  return G;
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

/** Stage 1 (shaders/lora_grad.wgsl): segment s's G into ws at float gAt[s] and its chunk partials into the rows
 * at float `at` of ws, columns PA[s] (dA) and PB[s] (dB) of rows PE floats long (default: one linear's
 * r·IN + OUT·r), their padding zeroed; plus, by workgroups after those, the `carried` stage 2. `own`: this call's
 * dA, bound in the carried one's place when there is none. */
function stage1(
  x: Tensor,
  segs: GradSegment[],
  ws: GpuBuffer,
  gAt: number[],
  at: number,
  PA: number[],
  PB: number[],
  p: number,
  t: GradTile,
  carried: SumJob | null,
  own: Tensor,
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
  const [u, b] = [span(us, 'u'), span(Bs, 'B')];
  const each = (v: number[]) => [0, 1, 2].map((s) => (v[Math.min(s, S - 1)] ?? 0) >>> 0);
  const W1 = S * t.chunks;
  const W2 = carried ? Math.ceil(carried.E / T) : 0;
  const q = carried ? sumCost(carried.E, carried.chunks, carried.accumulate) : null;
  const cost: DispatchCost = {
    flops: OUTS.reduce((f, OUT) => f + 2 * N * r * (2 * OUT + IN), 0) + (q?.flops ?? 0),
    bytesRead:
      4 * (N * IN + OUTS.reduce((a, OUT) => a + N * (OUT + r) + OUT * r, 0) + (t.SB > 1 ? t.chunks * E : 0)) +
      (q?.bytesRead ?? 0),
    bytesWritten: 4 * (S * N * r + t.chunks * (E + S * ZA + ZB.reduce((a, z) => a + z, 0))) + (q?.bytesWritten ?? 0),
    serialLoop: Math.max(
      q?.serialLoop ?? 0,
      ...OUTS.map((OUT) => t.SB * (Math.ceil(OUT / t.KS) + (Math.ceil(OUT / T) + Math.ceil(IN / T)) * r)),
    ),
  };
  // the carried stage 2's gradients (none: a binding nothing else here uses, unread: this call's own dA)
  const dst = carried ? dstOf(carried)! : { binding: own.binding, QD: 0 };
  // ws bound from 0 to the end of what this dispatch touches
  const wsEnd = Math.max(
    at + t.chunks * (PE ?? E),
    ...gAt.map((g) => g + N * r),
    carried ? carried.at + carried.chunks * carried.E : 0,
  );
  x.ctx.dispatch('lora_grad', {
    defines: { KS: t.KS, JQ: t.JQ, MASK: p > 0, SEGS: S },
    bindings: [
      ...each([0, 1, 2]).map((s) => segs[s].dy.binding),
      x.binding,
      u.binding,
      b.binding,
      { buf: ws, offset: 0, size: 4 * wsEnd },
      dst.binding,
    ],
    u32: [
      ...[N, IN, r, t.SB, PE ?? EA + OUTS[0] * r, ZA],
      // per segment (3 slots each, the last repeated): OUT, seed, B's, u's and G's offsets, its columns of part
      ...[OUTS, segs.map((sg) => sg.seed), b.at, u.at, gAt, PA, PB, ZB].flatMap(each),
      ...[at, W1, carried?.at ?? 0, carried?.E ?? 0, carried?.da.numel ?? 0, dst.QD, carried?.chunks ?? 0],
      carried?.accumulate ? 1 : 0,
    ],
    f32: [p, carried?.scale ?? 0],
    workgroups: grid1d(W1 + W2, 1),
    cost,
  });
}
