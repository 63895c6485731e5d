// LoRA's backward rank-r products in two dispatches, deterministic (no atomics; a run is bit-identical to itself):
//   G (N, r)   = dy · B                returned: the dx matmul's LoRA epilogue needs it
//   dA (r, IN) [+]= scale · Gᵀ · drop(x)
//   dB (OUT, r) [+]= scale · dyᵀ · u
// Stage 1 (shaders/lora_grad.wgsl) gives each workgroup one chunk of CH = 8·SB token rows: it computes G for
// those rows (kept in workgroup memory) and the chunk's partial sums of dA and dB into a scratch (chunks, E),
// E = r·IN + OUT·r; stage 2 (shaders/lora_grad_sum.wgsl) adds the chunks in order, scales, and stores into (or,
// with accumulate, adds into) dA and dB. G costs no dispatch of its own, and dA and dB share both.
// CPU twin: lora_grad.cpu.ts.
import { grid1d, type DispatchCost } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
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
/** The scratch of chunk partials (chunks, r·(IN + OUT)) f32 stays within this (and one storage binding): fewer,
 * longer chunks where a linear is wide. 64 MiB keeps SmolLM2-135M's widest (576 -> 1536, r 8) at 512 chunks. */
export const PART_BUDGET = 64 * 1024 * 1024;

export function gradTile(N: number, IN: number, OUT: number, r: number, threads = 64, budget = PART_BUDGET): GradTile {
  const { KS, JQ } = rankTile(OUT, r, threads);
  const maxChunks = Math.max(1, Math.min(MAX_CHUNKS, Math.floor(budget / (4 * r * (IN + OUT)))));
  const SB = Math.max(1, Math.ceil(N / (GRAD_ROWS * maxChunks)));
  return { KS, JQ, SB, chunks: Math.ceil(N / (GRAD_ROWS * SB)) };
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
  const budget = Math.min(PART_BUDGET, ctx.limits.maxStorageBufferBindingSize);
  const threads = ctx.softwareAdapter ? 16 : 64; // as lora_rank: CPU adapters want fewer
  const t = tile ?? gradTile(N, IN, OUT, r, threads, budget);
  if (t.JQ !== Math.ceil(r / 4) || t.KS * t.JQ > 128 || t.chunks !== Math.ceil(N / (GRAD_ROWS * t.SB)))
    throw new Error(`lora_grad: bad tile ${JSON.stringify(t)}`);
  const T = t.KS * t.JQ;
  const [EA, EB] = [r * IN, OUT * r];
  const E = EA + EB;
  const G = Tensor.empty(ctx, [N, r], 'lora.G');
  const part = Tensor.empty(ctx, [t.chunks, E], 'lora.grad.partials');
  const cost1: DispatchCost = {
    flops: 2 * N * r * (2 * OUT + IN),
    bytesRead: 4 * (N * (OUT + IN + r) + OUT * r + (t.SB > 1 ? t.chunks * E : 0)),
    bytesWritten: 4 * (N * r + t.chunks * E),
    serialLoop: t.SB * (Math.ceil(OUT / t.KS) + (Math.ceil(OUT / T) + Math.ceil(IN / T)) * r),
  };
  ctx.dispatch('lora_grad', {
    defines: { KS: t.KS, JQ: t.JQ, MASK: p > 0 },
    bindings: [dy.binding, x.binding, u.binding, B.binding, G.binding, part.binding],
    u32: [N, IN, OUT, r, t.SB, (o.seed ?? 0) >>> 0],
    f32: [p],
    workgroups: grid1d(t.chunks, 1),
    cost: cost1,
  });
  const cost2: DispatchCost = {
    flops: E * (t.chunks + 1),
    bytesRead: 4 * (t.chunks * E + (o.accumulate ? E : 0)),
    bytesWritten: 4 * E,
    serialLoop: t.chunks,
  };
  ctx.dispatch('lora_grad_sum', {
    defines: { ACCUM: o.accumulate },
    bindings: [part.binding, out.dA.binding, out.dB.binding],
    u32: [EA, EB, t.chunks],
    f32: [o.scale],
    workgroups: grid1d(E, 256),
    cost: cost2,
  });
  part.free(); // freed after recording: the allocator reuses it only for later-recorded work
  return G;
}
