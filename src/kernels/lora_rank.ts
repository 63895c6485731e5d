// The rank-r products of LoRA, u = drop(x)·Aᵀ (forward) and G = dy·B (backward): (N, r) outputs with a long
// K (IN or OUT) and r ≤ 64. The general matmul tiles these 16 rows per workgroup with a serial K loop;
// shaders/lora_rank.wgsl gives each workgroup 8 rows and splits K over KS threads (reduced in workgroup
// memory), so N = 4096 tokens make 512 workgroups at any r. CPU twin: lora_rank.cpu.ts.
//   out[n, j] = Σ_k drop(x)[n, k] · w[j, k]    x is (N, K), w is (r, K), or (K, r) with wKR; out is (N, r)
// lora_rank_segments: the U of up to 3 linears reading the same x (q, k, v; gate, up) in one dispatch, each with
// its own A (views of one buffer: the flat LoRA parameters) and dropout stream.
import { grid1d, type Binding, type DispatchCost } from '../gpu/context';
import { Tensor, VIEW_ALIGN } from '../gpu/tensor';

export interface RankOpts {
  wKR?: boolean /* w is (K, r) (B in G = dy·B) instead of (r, K) (A in u = drop(x)·Aᵀ) */;
  dropout?: number /* p of the mask on x, from lib_rng's (seed, n·K + k) */;
  seed?: number;
}

/** 8 output rows per workgroup (and per thread), KS threads per K sum, JQ = ceil(r / 4) column quads, KS·JQ ≤
 * `threads` (workgroup memory KS·8·JQ vec4 ≤ 16 KiB at 128). Measured on lavapipe (N = 4096, K = 576, r = 8, min of
 * 9 on a busy 2-core machine): one row per thread with 256 threads per workgroup was 3x slower than the
 * register-blocked matmul it replaces (5 loads per 4 multiply-adds); 8 rows per thread with 64 threads 1.5-2x
 * slower; with 8-16 threads as fast as it. So software drivers get 16 threads, other adapters 64 (more
 * threads per sum, shorter loops); a tuner can pass its own tile. */
export interface RankTile {
  KS: number;
  JQ: number;
}
export const RANK_ROWS = 8;
export function rankTile(K: number, r: number, threads = 64): RankTile {
  const JQ = Math.ceil(r / 4);
  // the threads split K, but not below ~4 terms each (a power of two, at least 1)
  let KS = 2 ** Math.floor(Math.log2(Math.max(1, Math.floor(threads / JQ))));
  while (KS > 1 && KS * 4 > K) KS /= 2;
  return { KS, JQ };
}

/** x is (N, K) f32; w is (r, K), or (K, r) with wKR, f32. Returns out (N, r) = drop(x)·op(w). `tile`: an override
 * (benchmarks, a tuner). */
export function lora_rank_product(x: Tensor, w: Tensor, o: RankOpts = {}, tile?: RankTile): Tensor {
  if (x.shape.length !== 2 || w.shape.length !== 2) throw new Error('lora_rank: x and w must be 2-D');
  if (x.dtype !== 'f32' || w.dtype !== 'f32') throw new Error('lora_rank: x and w must be f32');
  const [N, K] = x.shape;
  const [r, Kw] = o.wKR ? [w.shape[1], w.shape[0]] : [w.shape[0], w.shape[1]];
  if (Kw !== K) throw new Error(`lora_rank: x is [${x.shape}] but w is [${w.shape}]${o.wKR ? ' (K, r)' : ' (r, K)'}`);
  if (r < 1 || r > 64) throw new Error(`lora_rank: rank ${r} is outside 1..64`);
  const p = o.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw new Error(`lora_rank: dropout must be in [0, 1), got ${p}`);
  const t = tile ?? rankTile(K, r, x.ctx.softwareAdapter ? 16 : 64 /* CPU adapters: fewer threads per workgroup win */);
  if (t.JQ !== Math.ceil(r / 4) || t.KS * t.JQ > 128) throw new Error(`lora_rank: bad tile ${JSON.stringify(t)}`);
  const out = Tensor.empty(x.ctx, [N, r], 'lora.rank');
  launch(x, w.binding, out, { r, wKR: !!o.wKR, p, a: [0], seeds: [o.seed ?? 0], ostride: 0 }, t);
  return out;
}

function launch(
  x: Tensor,
  w: Binding,
  out: Tensor,
  s: { r: number; wKR: boolean; p: number; a: number[]; seeds: number[]; ostride: number },
  t: RankTile,
): void {
  const [N, K] = x.shape;
  const S = s.a.length;
  const cost: DispatchCost = {
    flops: 2 * S * N * K * s.r,
    bytesRead: 4 * (N * K + S * s.r * K),
    bytesWritten: 4 * S * N * s.r,
    serialLoop: Math.max(Math.ceil(K / t.KS), t.KS),
  };
  const at = (v: number[], i: number) => (v[i] ?? 0) >>> 0;
  x.ctx.dispatch('lora_rank', {
    defines: { ...t, W_KR: s.wKR, MASK: s.p > 0 },
    bindings: [x.binding, w, out.binding],
    u32: [N, K, s.r, s.ostride, at(s.a, 0), at(s.a, 1), at(s.a, 2), at(s.seeds, 0), at(s.seeds, 1), at(s.seeds, 2)],
    f32: [s.p],
    workgroups: [...grid1d(Math.ceil(N / RANK_ROWS), 1), S],
    cost,
  });
}

/** x is (N, K) f32; As are 1 to 3 (r, K) f32 views of one buffer (the flat LoRA parameters), seeds their dropout
 * streams (p shared). Returns one tensor holding the (N, r) u = drop_s(x)·A_sᵀ of each, and their views. */
export function lora_rank_segments(
  x: Tensor,
  As: Tensor[],
  seeds: number[],
  dropout = 0,
  tile?: RankTile,
): { all: Tensor; u: Tensor[] } {
  const S = As.length;
  if (S < 1 || S > 3 || seeds.length !== S) throw new Error('lora_rank: 1 to 3 segments, one seed each');
  const [N, K] = x.shape;
  const r = As[0].shape[0];
  for (const A of As) {
    if (A.base !== As[0].base) throw new Error("lora_rank: the segments' A must be views of one buffer");
    if (A.shape.length !== 2 || A.shape[0] !== r || A.shape[1] !== K || A.dtype !== 'f32')
      throw new Error(`lora_rank: every A must be (${r}, ${K}) f32, got [${A.shape}]`);
  }
  if (x.shape.length !== 2 || x.dtype !== 'f32') throw new Error('lora_rank: x must be 2-D f32');
  if (r < 1 || r > 64) throw new Error(`lora_rank: rank ${r} is outside 1..64`);
  if (!(dropout >= 0 && dropout < 1)) throw new Error(`lora_rank: dropout must be in [0, 1), got ${dropout}`);
  const t = tile ?? rankTile(K, r, x.ctx.softwareAdapter ? 16 : 64);
  // w: the span of the buffer from the first A to the end of the last; segment s's A at float a[s] of it
  const lo = Math.min(...As.map((A) => A.offset));
  const hi = Math.max(...As.map((A) => A.offset + A.bytes));
  const w = Tensor.view(x.ctx, As[0].base, lo, [(hi - lo) / 4]);
  const ostride = Math.ceil((N * r) / FLAT) * FLAT; // each u starts on a binding offset
  const all = Tensor.empty(x.ctx, [S, ostride], 'lora.u.group');
  const a = As.map((A) => (A.offset - lo) / 4);
  launch(x, w.binding, all, { r, wKR: false, p: dropout, a, seeds, ostride }, t);
  return { all, u: As.map((_, s) => Tensor.view(x.ctx, all.base, 4 * s * ostride, [N, r])) };
}
const FLAT = VIEW_ALIGN / 4;
