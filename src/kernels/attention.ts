// Causal self-attention with grouped-query heads, an optional sliding window and an optional soft cap,
// FlashAttention-2 style:
//   S = scale · Q·Kᵀ, or c·tanh(scale · Q·Kᵀ / c) with a soft cap c (Gemma's attn_logit_softcapping)
//       (masked: key j is seen from position i when j <= i and, with a window W, i - W < j),
//   P = softmax(S) row-wise,  O = P·V,  lse = log Σ_j exp(S_ij)  (saved for the backward).
// Backward, with P = exp(S - lse) recomputed and delta_i = dO_i · O_i:
//   dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP - delta) [⊙ (1 - (S/c)²)],  dQ = scale · dS·K,  dK = scale · dSᵀ·Q.
// Three kernels (forward, dq, dk/dv), in two variants with one maths:
//   tiled    for real GPUs: each workgroup stages tiles in workgroup memory. The forward and dq own a block of
//            query rows and stream key tiles; dk/dv own a block of keys and stream the query tiles of every
//            query head sharing the kv head (deterministic, no atomics). Wide grids, short private arrays.
//            shaders/attention_tiled_forward.wgsl, attention_tiled_backward_dq.wgsl, attention_tiled_backward_dkdv.wgsl
//   rowwise  for software drivers: one invocation per query (or key) row, its row in private memory, every
//            lane reading the same key (or query) row at once from global memory: no barriers, uniform loads,
//            which lavapipe and SwiftShader vectorise well (bench/attention.ts measures both).
//            shaders/attention_forward.wgsl, attention_backward_dq.wgsl, attention_backward_dkdv.wgsl
// Both skip the key (query) ranges the mask hides entirely; the mask is shaders/lib_attention.wgsl.
// With opts.rope, q and k arrive unrotated (RoPE, Hugging Face's rotate_half as src/kernels/rope.ts computes it:
// query row i at position rope.posOffset + i, key j at rope.posOffset - (kvLen - Tq) + j) and the gradients
// leave for the unrotated q and k:
//   tiled    the kernels rotate q and k as they stage them (lib_rope.wgsl's rope_rotate: the same bits as
//            rope_qk's) and rotate dq, dk back (Rᵀ) before they write them: no RoPE dispatch around attention.
//            The backward kernels already bind 8 storage buffers (WebGPU's default limit), so inv_freq rides in
//            the tail of their delta buffer (a copy, not a dispatch).
//   rowwise  rope_qk rotates q and k around the kernels (forward; again in the backward, which then rotates dq
//            and dk back). A rowwise lane walks every key (query) row by itself, so rotating there costs a sin/cos
//            per pair per lane per row walked: measured slower on lavapipe than the rope_qk dispatches.
// CPU twin: attention.cpu.ts.
import type { DispatchCost, GpuContext } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { rope_backward, rope_forward, rope_qk_backward, rope_qk_forward, type RopeOpts } from './rope';

export interface AttentionOpts {
  heads: number; // Hq, query heads
  kvHeads: number; // Hkv, divides Hq; query head h reads kv head floor(h / (Hq / Hkv))
  headDim: number; // D
  seqLen: number; // Tq, query rows per batch element
  kvLen?: number; // Tk keys per batch element actually used (default: Tq)
  kvCapacity?: number; // rows per batch element in the k/v buffers (default: kvLen)
  scale?: number; // default 1/sqrt(D)
  window?: number; // sliding window W: position i sees keys i - W < j <= i; 0 (default) = plain causal
  softcap?: number; // soft cap c of the scores, S = c·tanh(S / c); 0 (default) = none
  variant?: AttentionVariant; // default: attentionVariant(ctx)
  rope?: AttentionRope; // RoPE q and k inside the kernels (absent: q and k are used as they are)
}

/** RoPE applied by the attention kernels themselves (see the header). */
export interface AttentionRope {
  invFreq: Tensor; // (D/2,) f32, rope_inv_freq_tensor's table (theta and rope_scaling already in it)
  /** RoPE position of query row 0 (default kvLen - seqLen, its attention position): query row i sits at posOffset
   * + i and key j at posOffset - (kvLen - seqLen) + j, as RopeOpts.posOffset with keys before the queries. */
  posOffset?: number;
}

export type AttentionVariant = 'tiled' | 'rowwise';
export const ATTENTION_VARIANTS: AttentionVariant[] = ['tiled', 'rowwise'];

/** The variant to run on ctx: `forced`, else WEBLORA_ATTENTION=tiled|rowwise (Node), else rowwise on the
 * software drivers (llvmpipe, SwiftShader), where it measured several times faster, and tiled elsewhere. */
export function attentionVariant(ctx: GpuContext, forced?: AttentionVariant): AttentionVariant {
  const env = typeof process !== 'undefined' ? process.env?.WEBLORA_ATTENTION : undefined;
  const v = forced ?? (env || undefined);
  if (v !== undefined) {
    if (!ATTENTION_VARIANTS.includes(v as AttentionVariant))
      throw new Error(`attention variant '${v}' is not one of ${ATTENTION_VARIANTS.join(', ')}`);
    return v as AttentionVariant;
  }
  return ctx.softwareAdapter ? 'rowwise' : 'tiled';
}

export const ATTENTION_MAX_HEAD_DIM = 256;
const WG_FLOATS = 4096; // 16 KiB of workgroup memory
const MAX_WINDOW = 1 << 30; // keeps j + window inside u32 in the shaders

export interface Geometry {
  B: number;
  Tq: number;
  Tk: number;
  cap: number;
  Hq: number;
  Hkv: number;
  D: number;
  scale: number;
  window: number;
  softcap: number;
  rope: boolean;
  ropePos: number; // RoPE position of key row 0
}

/** Checks shapes and fills defaults. q is (B, Tq, Hq, D) in any row-major shape, k/v (B, kvCap, Hkv, D). */
export function attentionGeometry(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOpts): Geometry {
  const fail = (why: string) => {
    const shown = { ...opts, rope: opts.rope && { posOffset: opts.rope.posOffset ?? 0 } }; // not the tensor
    throw new Error(
      `attention: ${why} (q [${q.shape}], k [${k.shape}], v [${v.shape}], opts ${JSON.stringify(shown)})`,
    );
  };
  const g = geometryOf(q.numel, opts, fail);
  if (k.numel !== g.B * g.cap * g.Hkv * g.D || v.numel !== k.numel)
    fail(`k and v must hold B·kvCapacity·kvHeads·headDim = ${g.B * g.cap * g.Hkv * g.D} values`);
  if (q.dtype !== 'f32' || k.dtype !== 'f32' || v.dtype !== 'f32') fail('q, k, v must be f32');
  const f = opts.rope?.invFreq;
  if (f && (f.numel !== g.D / 2 || f.dtype !== 'f32')) fail('rope.invFreq must be (headDim/2,) f32');
  if (g.B * Math.max(g.Hq, g.Hkv) > q.ctx.limits.maxComputeWorkgroupsPerDimension)
    fail('B·heads over the workgroups per dimension');
  return g;
}

/** The geometry of a q of `qNumel` values under `opts` (no tensors needed: the shape report uses it too). */
export function geometryOf(qNumel: number, opts: AttentionOpts, fail: (why: string) => never): Geometry {
  const { heads: Hq, kvHeads: Hkv, headDim: D, seqLen: Tq } = opts;
  const Tk = opts.kvLen ?? Tq;
  const cap = opts.kvCapacity ?? Tk;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const window = opts.window ?? 0;
  const softcap = opts.softcap ?? 0;
  for (const [name, n] of Object.entries({
    heads: Hq,
    kvHeads: Hkv,
    headDim: D,
    seqLen: Tq,
    kvLen: Tk,
    kvCapacity: cap,
  })) {
    if (!Number.isInteger(n) || n < 1) fail(`${name} must be a positive integer`);
  }
  if (!Number.isInteger(window) || window < 0 || window > MAX_WINDOW)
    fail(`window must be an integer in 0..${MAX_WINDOW} (0 = none)`);
  if (!(softcap >= 0) || !Number.isFinite(softcap)) fail('softcap must be a finite number >= 0 (0 = none)');
  if (Hq % Hkv !== 0) fail('kvHeads must divide heads');
  if (D > ATTENTION_MAX_HEAD_DIM) fail(`headDim over ${ATTENTION_MAX_HEAD_DIM}`);
  if (Tk < Tq) fail('kvLen must be at least seqLen (the query rows are the last kvLen positions)');
  if (cap < Tk) fail('kvCapacity must be at least kvLen');
  const rope = opts.rope !== undefined;
  const ropePos = (opts.rope?.posOffset ?? Tk - Tq) - (Tk - Tq); // the position of key row 0
  if (rope && D % 2 !== 0) fail('RoPE needs an even headDim');
  if (rope && (!Number.isInteger(ropePos) || ropePos < 0 || ropePos + Tk > 2 ** 24))
    fail('rope.posOffset must be an integer >= kvLen - seqLen, and positions below 2^24 (exact in f32)');
  const B = qNumel / (Tq * Hq * D);
  if (!Number.isInteger(B) || B < 1) fail('q does not hold B·seqLen·heads·headDim values');
  return { B, Tq, Tk, cap, Hq, Hkv, D, scale, window, softcap, rope, ropePos };
}

// ---------------------------------------------------------------------------------------------------------
// Tiles. Each kernel owns `own` rows per workgroup (query rows, or keys for dk/dv), each row served by
// 256 / own lanes (256 invocations in every kernel) that split its D accumulator dims, and streams `tile`
// rows of the other side at a time. Both are the largest powers of two (<= 32) whose workgroup memory fits
// 16 KiB; on a tie, the larger tile (fewer barriers per row walked). Rows are stored D + 1 floats apart (no
// bank conflicts in the dot products): the forward needs (own + 2·tile)·(D + 1) + own·tile floats; dq needs
// 2·(own + tile)·(D + 1) + own·tile + 2·own; dk/dv 2·(own + tile)·(D + 1) + 2·own·tile + 2·tile.

export type AttentionKernel = 'attention_forward' | 'attention_backward_dq' | 'attention_backward_dkdv';
const ROWWISE_WG = 32; // rows per workgroup of the rowwise kernels: see attention_forward.wgsl
const ROWWISE_TILE = 16; // keys per online-softmax step of the rowwise forward

export interface Tiles {
  own: number;
  tile: number;
}

export function workgroupFloats(kernel: AttentionKernel, D: number, own: number, tile: number): number {
  const SD = D + 1;
  if (kernel === 'attention_forward') return (own + 2 * tile) * SD + own * tile;
  if (kernel === 'attention_backward_dq') return 2 * (own + tile) * SD + own * tile + 2 * own;
  return 2 * (own + tile) * SD + 2 * own * tile + 2 * tile;
}

export function attentionTiles(kernel: AttentionKernel, D: number): Tiles {
  let best: Tiles | null = null;
  for (const own of [32, 16, 8, 4, 2, 1])
    for (const tile of [32, 16, 8, 4, 2, 1]) {
      if (workgroupFloats(kernel, D, own, tile) > WG_FLOATS) continue;
      const better =
        !best || own * tile > best.own * best.tile || (own * tile === best.own * best.tile && tile > best.tile);
      if (better) best = { own, tile };
    }
  return best!; // own = tile = 1 fits every D <= 256
}

/** How `kernel` of `variant` runs: rows owned per workgroup, rows of the other side per step, whether key
 * steps start at multiples of `tile` (the forwards, for KV-cache bit-identity), the shader and its defines
 * (`rope`: RoPE inside the kernel, tiled only). */
function layout(
  variant: AttentionVariant,
  kernel: AttentionKernel,
  D: number,
  rope: boolean,
): { own: number; tile: number; aligned: boolean; shader: string; defines: Record<string, number | boolean> } {
  if (variant === 'rowwise') {
    const fwd = kernel === 'attention_forward';
    return {
      own: ROWWISE_WG,
      tile: fwd ? ROWWISE_TILE : 1,
      aligned: fwd,
      shader: kernel as string,
      defines: fwd ? { HEAD_DIM: D, TILE: ROWWISE_TILE, WG: ROWWISE_WG } : { HEAD_DIM: D, WG: ROWWISE_WG },
    };
  }
  const { own, tile } = attentionTiles(kernel, D);
  return {
    own,
    tile,
    aligned: kernel === 'attention_forward',
    shader: kernel.replace('attention_', 'attention_tiled_'),
    // BR query rows, BC keys: dk/dv own the keys
    defines:
      kernel === 'attention_backward_dkdv'
        ? { HEAD_DIM: D, BR: tile, BC: own, ROPE: rope }
        : { HEAD_DIM: D, BR: own, BC: tile, ROPE: rope },
  };
}

// ---------------------------------------------------------------------------------------------------------
// The paper cost. Flops count the useful work, the (row, key) pairs inside the mask (the masked lanes of the
// tiles the kernels walk are not counted); per pair the forward does s = q·k and o += p·v (4D) plus the
// online softmax; dq s, dp = dO·v, dq += ds·k (6D); dk/dv s, dp, dv += p·dO, dk += ds·q (8D). Bytes count each
// tensor once. The longest loop mirrors the shaders' loop bounds (keys a query row walks; query rows, over
// all heads sharing the kv head, a key row walks).

/** First key position `pos` sees (lib_attention.wgsl attn_first_key). */
const firstKey = (pos: number, window: number) => (window > 0 ? Math.max(0, pos + 1 - window) : 0);

/** Keys one query row block [i0, i0 + rows) walks in the forward (aligned to its tile) or dq. */
function keySpan(g: Geometry, i0: number, rows: number, tile: number, aligned: boolean): number {
  const off = g.Tk - g.Tq;
  const first = firstKey(off + i0, g.window);
  const begin = aligned ? Math.floor(first / tile) * tile : first;
  return off + i0 + rows - begin;
}

/** Query rows one key block [j0, j0 + keys) walks in dk/dv (per query head). */
function rowSpan(g: Geometry, j0: number, keys: number): number {
  const off = g.Tk - g.Tq;
  const begin = Math.max(0, j0 - off);
  const last = j0 + keys - 1;
  const end = g.window === 0 ? g.Tq : Math.min(g.Tq, Math.max(0, last + g.window - off));
  return Math.max(0, end - begin);
}

/** Visible (row, key) pairs of one (b, head). */
export function visiblePairs(g: Geometry): number {
  const off = g.Tk - g.Tq;
  let n = 0;
  for (let i = 0; i < g.Tq; i++) n += off + i + 1 - firstKey(off + i, g.window);
  return n;
}

/** Flops of one RoPE pair rotation (lib_rope.wgsl rope_rotate): the angle, sincos's range reduction and its two
 * polynomials, the 2-D rotation. */
const ROPE_PAIR_FLOPS = 36;

export interface AttentionDispatch {
  kernel: string; // the shader
  defines: Record<string, number | boolean>;
  workgroups: [number, number];
  cost: DispatchCost;
}

/** The dispatches of the forward (1) or the backward (2) at geometry g, with their paper cost. */
export function attentionPlan(
  g: Geometry,
  pass: 'forward' | 'backward',
  variant: AttentionVariant = 'tiled',
): AttentionDispatch[] {
  const { B, Tq, Tk, Hq, Hkv, D } = g;
  const f = 4; // bytes per f32
  const qBytes = B * Tq * Hq * D * f;
  const kvBytes = B * Tk * Hkv * D * f; // the valid rows of k (or v)
  const rowBytes = B * Hq * Tq * f; // lse or delta
  const blocks = (n: number, b: number) =>
    Array.from({ length: Math.ceil(n / b) }, (_, x) => [x * b, Math.min(b, n - x * b)]);
  const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);
  // With RoPE in the kernels, rows rotated (each D/2 pairs): the owned rows once (and their gradient back), the
  // streamed rows once per workgroup that stages them.
  const rope = g.rope && variant === 'tiled'; // rowwise: rope_qk dispatches of their own (see the header)
  const rot = (rows: number) => (rope ? (rows * D * ROPE_PAIR_FLOPS) / 2 : 0);
  const queryWalk = (kernel: AttentionKernel) => {
    const { own, tile, aligned } = layout(variant, kernel, D, rope);
    const spans = blocks(Tq, own).map(([i0, rows]) => keySpan(g, i0, rows, tile, aligned));
    return { own, longest: Math.max(...spans), streamed: B * Hq * sum(spans) };
  };
  const pairs = B * Hq * visiblePairs(g);
  const cap = g.softcap > 0 ? 6 : 0; // the soft cap per score (lib_softcap.wgsl); the backward adds its derivative
  if (pass === 'forward') {
    const w = queryWalk('attention_forward');
    const l = layout(variant, 'attention_forward', D, rope);
    return [
      {
        kernel: l.shader,
        defines: l.defines,
        workgroups: [Math.ceil(Tq / w.own), B * Hq],
        cost: {
          flops: pairs * (4 * D + 4 + cap) + rot(B * Tq * Hq + w.streamed),
          bytesRead: qBytes + 2 * kvBytes,
          bytesWritten: qBytes + rowBytes,
          serialLoop: w.longest, // keys one lane walks
        },
      },
    ];
  }
  const wq = queryWalk('attention_backward_dq');
  const lq = layout(variant, 'attention_backward_dq', D, rope);
  const kv = layout(variant, 'attention_backward_dkdv', D, rope);
  const kvSpans = blocks(Tk, kv.own).map(([j0, keys]) => rowSpan(g, j0, keys));
  const per = Hq / Hkv;
  return [
    {
      kernel: lq.shader,
      defines: lq.defines,
      workgroups: [Math.ceil(Tq / wq.own), B * Hq],
      cost: {
        // and delta = dO·O; with RoPE q rotated, dq rotated back
        flops: pairs * (6 * D + 4 + 1.5 * cap) + 2 * B * Tq * Hq * D + rot(2 * B * Tq * Hq + wq.streamed),
        bytesRead: 3 * qBytes + 2 * kvBytes + rowBytes, // q, dout, o, k, v, lse
        bytesWritten: qBytes + rowBytes, // dq, delta
        serialLoop: wq.longest,
      },
    },
    {
      kernel: kv.shader,
      defines: kv.defines,
      workgroups: [Math.ceil(Tk / kv.own), B * Hkv],
      cost: {
        // with RoPE k rotated, dk rotated back, and the query rows walked
        flops: pairs * (8 * D + 4 + 1.5 * cap) + rot(2 * B * Tk * Hkv + B * Hkv * per * sum(kvSpans)),
        bytesRead: 2 * qBytes + 2 * kvBytes + 2 * rowBytes, // q, dout, k, v, lse, delta
        bytesWritten: 2 * kvBytes,
        serialLoop: per * Math.max(...kvSpans),
      },
    },
  ];
}

/** The uniform of every attention kernel; freqAt: where inv_freq starts in the backward's delta buffer. */
const params = (g: Geometry, freqAt = 0) => ({
  u32: [g.Tq, g.Tk, g.cap, g.Hq, g.Hkv, g.window, g.ropePos, freqAt],
  f32: [g.scale, g.softcap],
});

/** RoPE around the rowwise kernels (see the header): sign 1 rotates q-shaped `a` and k-shaped `b` (the forward's
 * q and k), -1 rotates them back (dq, and dk of kvLen rows). One rope_qk dispatch when both have the same rows
 * at the same positions (training: Tq = kvLen = kvCapacity), else one rope dispatch each (a KV cache). */
function ropeAround(g: Geometry, rope: AttentionRope, a: Tensor, b: Tensor, sign: 1 | -1) {
  const kRows = b.numel / (g.B * g.Hkv * g.D);
  // theta is unused: the table is given
  const base = { headDim: g.D, theta: 1, invFreq: rope.invFreq };
  const qo: RopeOpts = { ...base, heads: g.Hq, seqLen: g.Tq, posOffset: g.ropePos + g.Tk - g.Tq };
  const ko: RopeOpts = { ...base, heads: g.Hkv, seqLen: kRows, posOffset: g.ropePos };
  if (kRows === g.Tq && g.Tk === g.Tq) {
    const r = (sign > 0 ? rope_qk_forward : rope_qk_backward)(a, b, qo, g.Hkv);
    return { a: r.q, b: r.k };
  }
  const one = sign > 0 ? rope_forward : rope_backward;
  return { a: one(a, qo), b: one(b, ko) };
}

/** q is (B, Tq, Hq, D); k, v are (B, kvCap, Hkv, D) (with opts.rope: before RoPE, applied here).
 * Returns o, shaped like q, and lse (B, Hq, Tq), the log-sum-exp of each row's scaled scores. */
export function attention_forward(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOpts): { o: Tensor; lse: Tensor } {
  const g = attentionGeometry(q, k, v, opts);
  const ctx = q.ctx;
  const variant = attentionVariant(ctx, opts.variant);
  if (opts.rope && variant === 'rowwise') {
    const r = ropeAround(g, opts.rope, q, k, 1);
    const out = attention_forward(r.a, r.b, v, { ...opts, rope: undefined, variant });
    r.a.free(); // a later kernel that reuses the buffers runs after this one in the same queue
    r.b.free();
    return out;
  }
  const o = Tensor.empty(ctx, q.shape, 'attention.o');
  const lse = Tensor.empty(ctx, [g.B, g.Hq, g.Tq], 'attention.lse');
  const [fwd] = attentionPlan(g, 'forward', variant);
  const bindings = [q.binding, k.binding, v.binding, o.buf, lse.buf];
  // the tiled forward declares inv_freq; without RoPE it never reads it, and q stands in (read-only may alias)
  if (variant === 'tiled') bindings.push((opts.rope?.invFreq ?? q).binding);
  ctx.dispatch(fwd.kernel, {
    defines: fwd.defines,
    bindings,
    ...params(g),
    workgroups: fwd.workgroups,
    cost: fwd.cost,
  });
  return { o, lse };
}

/** dout, q, o are (B, Tq, Hq, D); k, v are (B, kvCap, Hkv, D); lse is (B, Hq, Tq) from the forward (q and k as
 * the forward took them, opts alike). Returns dq shaped like q, and dk, dv for the kvLen valid rows: shaped like k
 * when kvLen = kvCapacity, else (B, kvLen, Hkv, D); with opts.rope, dq and dk are gradients of the unrotated q, k.
 * dk, dv sum over the query heads that share each kv head. */
export function attention_backward(
  dout: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: Tensor,
  lse: Tensor,
  opts: AttentionOpts,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const g = attentionGeometry(q, k, v, opts);
  if (dout.numel !== q.numel || o.numel !== q.numel)
    throw new Error('attention_backward: dout and o must be shaped like q');
  if (lse.numel !== g.B * g.Hq * g.Tq) throw new Error('attention_backward: lse must be (B, Hq, Tq)');
  const ctx = q.ctx;
  const variant = attentionVariant(ctx, opts.variant);
  if (opts.rope && variant === 'rowwise') {
    const r = ropeAround(g, opts.rope, q, k, 1);
    const gr = attention_backward(dout, r.a, r.b, v, o, lse, { ...opts, rope: undefined, variant });
    r.a.free();
    r.b.free();
    const back = ropeAround(g, opts.rope, gr.dq, gr.dk, -1);
    gr.dq.free();
    gr.dk.free();
    return { dq: back.a, dk: back.b, dv: gr.dv };
  }
  const dq = Tensor.empty(ctx, q.shape, 'attention.dq');
  const kvShape = g.Tk === g.cap ? k.shape : [g.B, g.Tk, g.Hkv, g.D];
  const dk = Tensor.empty(ctx, kvShape, 'attention.dk');
  const dv = Tensor.empty(ctx, kvShape, 'attention.dv');
  // delta = rowsum(dO ⊙ O) (B, Hq, Tq), then with RoPE inv_freq (D/2): both kernels already bind 8 storage buffers
  const rows = g.B * g.Hq * g.Tq;
  const delta = Tensor.empty(ctx, [rows + (g.rope ? g.D / 2 : 0)], 'attention.delta');
  const invFreq = opts.rope?.invFreq;
  if (invFreq) ctx.copy(invFreq.base, invFreq.offset, delta.buf, rows * 4, (g.D / 2) * 4);
  const [dqPlan, dkdvPlan] = attentionPlan(g, 'backward', variant);
  ctx.dispatch(dqPlan.kernel, {
    defines: dqPlan.defines,
    bindings: [q.binding, k.binding, v.binding, dout.binding, o.binding, lse.binding, dq.buf, delta.buf],
    ...params(g, rows),
    workgroups: dqPlan.workgroups,
    cost: dqPlan.cost,
  });
  ctx.dispatch(dkdvPlan.kernel, {
    defines: dkdvPlan.defines,
    bindings: [q.binding, k.binding, v.binding, dout.binding, lse.binding, delta.buf, dk.buf, dv.buf],
    ...params(g, rows),
    workgroups: dkdvPlan.workgroups,
    cost: dkdvPlan.cost,
  });
  delta.free(); // a later kernel that reuses the buffer runs after this one in the same queue
  return { dq, dk, dv };
}
