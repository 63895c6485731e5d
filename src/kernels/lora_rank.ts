// The rank-r products of LoRA, u = drop(x)·Aᵀ (forward) and G = dy·B (backward): (N, r) outputs with a long
// K (IN or OUT) and r ≤ 64. The general matmul tiles these 16 rows per workgroup with a serial K loop;
// shaders/lora_rank.wgsl gives each workgroup 8 rows and splits K over KS threads (reduced in workgroup
// memory), so N = 4096 tokens make 512 workgroups at any r. CPU twin: lora_rank.cpu.ts.
//   out[n, j] = Σ_k drop(x)[n, k] · w[j, k]    x is (N, K), w is (r, K), or (K, r) with wKR; out is (N, r)
// lora_rank_segments: the U of up to 3 linears reading the same x (q, k, v; gate, up) in one dispatch, each with
// its own A (views of one buffer: the flat LoRA parameters) and dropout stream.
// Their input made in the same dispatch (a workgroup owns whole rows): lora_rank_norm, RMSNorm's y and rstd with
// the U's of the linears reading y (shaders/lora_rank_norm.wgsl); lora_rank_glu, SwiGLU's / GeGLU's h with the U of
// the linear reading h (shaders/lora_rank_glu.wgsl). The block's loop is shared: shaders/lib_lora_rank.wgsl.
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
  const t = tile ?? tileOf(x, K, r);
  checkTile('lora_rank', t, r);
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

/** The segments' A (1 to 3 (r, K) f32 views of one buffer) as one w binding: the span from the first A to the end
 * of the last, segment s's A at float a[s] of it; ostride the floats between the segments' (N, r) outputs. */
function segmentsOf(what: string, x: Tensor, As: Tensor[], seeds: number[], dropout: number) {
  const S = As.length;
  if (S < 1 || S > 3 || seeds.length !== S) throw new Error(`${what}: 1 to 3 segments, one seed each`);
  if (x.shape.length !== 2 || x.dtype !== 'f32') throw new Error(`${what}: x must be 2-D f32`);
  const [N, K] = x.shape;
  const r = As[0].shape[0];
  for (const A of As) {
    if (A.base !== As[0].base) throw new Error(`${what}: the segments' A must be views of one buffer`);
    if (A.shape.length !== 2 || A.shape[0] !== r || A.shape[1] !== K || A.dtype !== 'f32')
      throw new Error(`${what}: every A must be (${r}, ${K}) f32, got [${A.shape}]`);
  }
  if (r < 1 || r > 64) throw new Error(`${what}: rank ${r} is outside 1..64`);
  if (!(dropout >= 0 && dropout < 1)) throw new Error(`${what}: dropout must be in [0, 1), got ${dropout}`);
  const lo = Math.min(...As.map((A) => A.offset));
  const hi = Math.max(...As.map((A) => A.offset + A.bytes));
  const w = Tensor.view(x.ctx, As[0].base, lo, [(hi - lo) / 4]);
  const ostride = Math.ceil((N * r) / FLAT) * FLAT; // each u starts on a binding offset
  return { N, K, r, S, w, a: As.map((A) => (A.offset - lo) / 4), ostride };
}
const FLAT = VIEW_ALIGN / 4;

/** The (S, ostride) tensor of the segments' outputs and each one's (N, r) view. */
function segmentOutputs(x: Tensor, S: number, N: number, r: number, ostride: number): { all: Tensor; u: Tensor[] } {
  const all = Tensor.empty(x.ctx, [S, ostride], 'lora.u.group');
  return { all, u: Array.from({ length: S }, (_, s) => Tensor.view(x.ctx, all.base, 4 * s * ostride, [N, r])) };
}

const tileOf = (x: Tensor, K: number, r: number) =>
  rankTile(K, r, x.ctx.softwareAdapter ? 16 : 64 /* CPU adapters: fewer threads per workgroup win */);

/** x is (N, K) f32; As are 1 to 3 (r, K) f32 views of one buffer (the flat LoRA parameters), seeds their dropout
 * streams (p shared). Returns one tensor holding the (N, r) u = drop_s(x)·A_sᵀ of each, and their views. */
export function lora_rank_segments(
  x: Tensor,
  As: Tensor[],
  seeds: number[],
  dropout = 0,
  tile?: RankTile,
): { all: Tensor; u: Tensor[] } {
  const { N, K, r, S, w, a, ostride } = segmentsOf('lora_rank', x, As, seeds, dropout);
  const { all, u } = segmentOutputs(x, S, N, r, ostride);
  launch(x, w.binding, all, { r, wKR: false, p: dropout, a, seeds, ostride }, tile ?? tileOf(x, K, r));
  return { all, u };
}

/**
 * RMSNorm and the U's of the 1 to 3 linears that read its output, in one dispatch (shaders/lora_rank_norm.wgsl):
 * x is (N, K) f32 (the raw rows), g (K,) the norm's weight; returns y (N, K) = (x · rstd) · g and rstd (N,) as
 * rmsnorm_forward gives them (the sum of squares added in another order), and u_s (N, r) = drop_s(y)·A_sᵀ as
 * lora_rank_segments gives them for that y (As, seeds, dropout: as there). A workgroup owns 8 rows of one
 * segment: N / 8 x S workgroups.
 */
export function lora_rank_norm(
  x: Tensor,
  g: Tensor,
  eps: number,
  As: Tensor[],
  seeds: number[],
  dropout = 0,
  tile?: RankTile,
): { y: Tensor; rstd: Tensor; all: Tensor; u: Tensor[] } {
  const { N, K, r, S, w, a, ostride } = segmentsOf('lora_rank_norm', x, As, seeds, dropout);
  if (g.numel !== K || g.dtype !== 'f32') throw new Error(`lora_rank_norm: g must be (${K},) f32, got [${g.shape}]`);
  const t = tile ?? tileOf(x, K, r);
  checkTile('lora_rank_norm', t, r);
  const { all, u } = segmentOutputs(x, S, N, r, ostride);
  const y = Tensor.empty(x.ctx, [N, K], 'rmsnorm.y');
  const rstd = Tensor.empty(x.ctx, [N], 'rmsnorm.rstd');
  const T = t.KS * t.JQ; // threads per workgroup
  const at = (v: number[], i: number) => (v[i] ?? 0) >>> 0;
  x.ctx.dispatch('lora_rank_norm', {
    defines: { ...t, MASK: dropout > 0 },
    bindings: [x.binding, g.binding, w.binding, all.binding, y.binding, rstd.binding],
    u32: [N, K, r, ostride, at(a, 0), at(a, 1), at(a, 2), at(seeds, 0), at(seeds, 1), at(seeds, 2)],
    f32: [dropout, eps],
    workgroups: [...grid1d(Math.ceil(N / RANK_ROWS), 1), S],
    cost: {
      // per segment Σx², y made again as the product reads it (4 per element: rmsnorm_forward's count) and the
      // rank product; x read once (ideal caching)
      flops: S * (4 * N * K + 2 * N * K * r),
      bytesRead: 4 * (N * K + K + S * r * K),
      bytesWritten: 4 * (N * K + N + S * N * r),
      // the squares and their partials, y's 8 rows (segment 0), the product and its partials
      serialLoop: Math.ceil(K / T) + T + RANK_ROWS * Math.ceil(K / T) + Math.ceil(K / t.KS) + t.KS,
    },
  });
  return { y, rstd, all, u };
}

/**
 * A gated activation and the U of the linear that reads it, in one dispatch (shaders/lora_rank_glu.wgsl): gate
 * and up are (N, K) f32, A (r, K) f32; returns h (N, K) = act(gate) · up as swiglu_forward (act = silu) or
 * geglu_forward (GELU's tanh approximation) gives it, and u (N, r) = drop(h)·Aᵀ as lora_rank_product gives it.
 */
export function lora_rank_glu(
  kind: 'swiglu' | 'geglu',
  gate: Tensor,
  up: Tensor,
  A: Tensor,
  seed: number,
  dropout = 0,
  tile?: RankTile,
): { h: Tensor; u: Tensor } {
  if (gate.shape.length !== 2 || gate.dtype !== 'f32' || up.dtype !== 'f32' || up.numel !== gate.numel)
    throw new Error(`lora_rank_glu: gate [${gate.shape}] and up [${up.shape}] must be one (N, K) f32 shape`);
  const [N, K] = gate.shape;
  const r = A.shape[0];
  if (A.shape.length !== 2 || A.shape[1] !== K || A.dtype !== 'f32')
    throw new Error(`lora_rank_glu: A must be (r, ${K}) f32, got [${A.shape}]`);
  if (r < 1 || r > 64) throw new Error(`lora_rank_glu: rank ${r} is outside 1..64`);
  if (!(dropout >= 0 && dropout < 1)) throw new Error(`lora_rank_glu: dropout must be in [0, 1), got ${dropout}`);
  const t = tile ?? tileOf(gate, K, r);
  checkTile('lora_rank_glu', t, r);
  const h = Tensor.empty(gate.ctx, [N, K], `${kind}.h`);
  const u = Tensor.empty(gate.ctx, [N, r], 'lora.rank');
  const T = t.KS * t.JQ;
  gate.ctx.dispatch('lora_rank_glu', {
    defines: { ...t, MASK: dropout > 0, GELU: kind === 'geglu' },
    bindings: [gate.binding, up.binding, A.binding, u.binding, h.binding],
    u32: [N, K, r, 0, 0, seed >>> 0],
    f32: [dropout],
    workgroups: grid1d(Math.ceil(N / RANK_ROWS), 1),
    cost: {
      // the activation (swiglu_forward's and geglu_forward's counts), then the rank product over h
      flops: (kind === 'geglu' ? 10 : 5) * N * K + 2 * N * K * r,
      bytesRead: 4 * (2 * N * K + N * K /* h, read back by the product */ + r * K),
      bytesWritten: 4 * (N * K + N * r),
      serialLoop: RANK_ROWS * Math.ceil(K / T) + Math.ceil(K / t.KS) + t.KS,
    },
  });
  return { h, u };
}

function checkTile(what: string, t: RankTile, r: number): void {
  if (t.JQ !== Math.ceil(r / 4) || t.KS * t.JQ > 128) throw new Error(`${what}: bad tile ${JSON.stringify(t)}`);
}
