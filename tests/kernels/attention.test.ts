// Both variants: shaders/attention_tiled_forward.wgsl, attention_tiled_backward_dq.wgsl,
// attention_tiled_backward_dkdv.wgsl and the rowwise shaders/attention_forward.wgsl, attention_backward_dq.wgsl,
// attention_backward_dkdv.wgsl (mask in lib_attention.wgsl), against the float64 twin
// (src/kernels/attention.cpu.ts), whose backward is itself checked by finite differences; and the launch plan
// (grids, per-thread loops, costs) at SmolLM2-135M's training shape.

import { describe, expect, it } from 'vitest';
import {
  attention_backward_cpu,
  attention_forward_cpu,
  visibleKeys,
  type AttentionRopeCpu,
} from '../../src/kernels/attention.cpu';
import { rope_inv_freq_tensor, rope_qk_backward, rope_qk_forward, type RopeScaling } from '../../src/kernels/rope';
import { rope_forward_cpu } from '../../src/kernels/rope.cpu';
import {
  attentionPlan,
  attentionTiles,
  attention_backward,
  attention_forward,
  geometryOf,
  visiblePairs,
  ATTENTION_VARIANTS,
  attentionVariant,
  type AttentionOpts,
  type AttentionVariant,
} from '../../src/kernels/attention';
import { Tensor } from '../../src/gpu/tensor';
import { expectClose, finiteDiff, gpu, rng } from '../helpers/gpu';

interface Case {
  B: number;
  Tq: number;
  Tk?: number; // kvLen (default Tq)
  cap?: number; // kvCapacity (default Tk)
  Hq: number;
  Hkv: number;
  D: number;
  amp?: number; // std of q and k (large: scores far past exp's f32 range)
  scale?: number;
  window?: number; // sliding window (0 / absent: plain causal)
  softcap?: number; // soft cap of the scores (0 / absent: none)
  variant?: AttentionVariant; // absent: the adapter's default
  rope?: { theta: number; scaling?: RopeScaling; posOffset?: number }; // RoPE inside the kernels
}

const LLAMA3: RopeScaling = {
  type: 'llama3',
  factor: 8,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositions: 64,
};

const CASES: Case[] = (
  [
    { B: 1, Tq: 1, Hq: 1, Hkv: 1, D: 8 },
    { B: 2, Tq: 7, Hq: 2, Hkv: 1, D: 16 }, // GQA, 2 query heads per kv head
    { B: 1, Tq: 33, Hq: 3, Hkv: 1, D: 24 }, // GQA 3, D not a power of two
    { B: 2, Tq: 100, Hq: 2, Hkv: 2, D: 64 },
    { B: 1, Tq: 257, Hq: 4, Hkv: 2, D: 16 },
    { B: 1, Tq: 7, Tk: 40, cap: 50, Hq: 6, Hkv: 2, D: 16 }, // KV cache: 7 new rows after 33 cached
    { B: 2, Tq: 1, Tk: 70, cap: 80, Hq: 2, Hkv: 1, D: 24 }, // one generation step
    { B: 1, Tq: 5, Hq: 2, Hkv: 1, D: 128 }, // largest head
    { B: 1, Tq: 33, Hq: 2, Hkv: 1, D: 16, amp: 4, scale: 1 }, // scores ~ ±100s: naive exp would overflow
    // head_dim 72 and 256 (Gemma 3), sliding windows 1, 5 and > T, with and without a KV-cache offset
    { B: 1, Tq: 1, Hq: 3, Hkv: 1, D: 256 },
    { B: 1, Tq: 257, Hq: 1, Hkv: 1, D: 256 },
    { B: 2, Tq: 33, Hq: 3, Hkv: 3, D: 72, window: 5 },
    { B: 2, Tq: 100, Hq: 3, Hkv: 1, D: 64, window: 1 }, // each row sees only itself: o = v
    { B: 1, Tq: 257, Hq: 2, Hkv: 2, D: 64, window: 300 }, // window > T: plain causal
    { B: 1, Tq: 257, Hq: 3, Hkv: 1, D: 8, window: 5 },
    { B: 1, Tq: 7, Tk: 40, cap: 50, Hq: 3, Hkv: 1, D: 256, window: 5 }, // KV cache + window
    { B: 2, Tq: 33, Tk: 100, cap: 101, Hq: 6, Hkv: 2, D: 72, window: 40 }, // KV cache, GQA 3, window > Tq
    { B: 1, Tq: 100, Hq: 2, Hkv: 1, D: 64, amp: 4, scale: 1, window: 33 }, // large scores, window
    // Gemma's attention soft cap: scores ~ ±3 against a cap of 1.5 (strongly bent), ±100s against 50 (Gemma 2's
    // value: saturated), and with a KV cache, a window and head_dim 256
    { B: 2, Tq: 33, Hq: 4, Hkv: 2, D: 16, amp: 2, softcap: 1.5 },
    { B: 1, Tq: 100, Hq: 2, Hkv: 1, D: 64, amp: 4, scale: 1, window: 33, softcap: 50 },
    { B: 1, Tq: 7, Tk: 40, cap: 50, Hq: 3, Hkv: 1, D: 256, window: 5, softcap: 2 },
    // RoPE inside the kernels: q and k unrotated, rotated as they are loaded; the smallest head, GQA, awkward D,
    // llama3 scaling, a KV cache (keys before the queries), a position offset, windows, soft caps, head_dim 256
    { B: 1, Tq: 9, Hq: 1, Hkv: 1, D: 2, rope: { theta: 10000 } },
    { B: 2, Tq: 7, Hq: 2, Hkv: 1, D: 16, rope: { theta: 10000 } },
    { B: 1, Tq: 33, Hq: 3, Hkv: 1, D: 24, rope: { theta: 100 } },
    { B: 1, Tq: 257, Hq: 4, Hkv: 2, D: 16, rope: { theta: 500000, scaling: LLAMA3 } },
    { B: 1, Tq: 7, Tk: 40, cap: 50, Hq: 6, Hkv: 2, D: 16, rope: { theta: 10000 } },
    { B: 2, Tq: 33, Hq: 3, Hkv: 3, D: 72, window: 5, rope: { theta: 10000, posOffset: 1000 } },
    { B: 1, Tq: 5, Hq: 2, Hkv: 1, D: 128, rope: { theta: 1000000 } },
    { B: 1, Tq: 7, Tk: 40, cap: 50, Hq: 3, Hkv: 1, D: 256, window: 5, softcap: 2, rope: { theta: 10000 } },
    { B: 2, Tq: 100, Hq: 2, Hkv: 1, D: 64, amp: 2, softcap: 1.5, window: 33, rope: { theta: 10000 } },
  ] as Case[]
)
  .map((c) => ({ amp: 1, window: 0, softcap: 0, ...c, Tk: c.Tk ?? c.Tq, cap: c.cap ?? c.Tk ?? c.Tq }))
  // every case on both variants, whichever the adapter would pick by default
  .flatMap((c) => ATTENTION_VARIANTS.map((variant) => ({ ...c, variant })));

const U = 2 ** -24; // f32 unit roundoff

/** The twin's RoPE for a case: the kernels' f32 angles (pos · inv_freq rounded to f32), so the comparison
 * measures the kernels' sin/cos and arithmetic rather than the angle's rounding, which both share. */
const twinRope = (c: Case): AttentionRopeCpu | undefined => c.rope && { ...c.rope, angles: 'hf-f32' };

/** opts for the kernels: the twin's RoPE as a table on the GPU (the caller frees it). */
function gpuOpts(ctx: Awaited<ReturnType<typeof gpu>>, c: Case, opts: AttentionOpts): AttentionOpts {
  if (!c.rope) return opts;
  const invFreq = rope_inv_freq_tensor(ctx, c.D, c.rope.theta, c.rope.scaling ?? null);
  return { ...opts, rope: { invFreq, posOffset: c.rope.posOffset } };
}
// The bounds below are worst-case (n·u per n-term sum). Measured errors on lavapipe sit at 0.1-4 % of them;
// a wrong mask, head or row shows up as errors of order 1e-2..1, far outside.

function setup(c: Case, seed: number) {
  const Tk = c.Tk ?? c.Tq;
  const cap = c.cap ?? Tk;
  const opts: AttentionOpts = {
    heads: c.Hq,
    kvHeads: c.Hkv,
    headDim: c.D,
    seqLen: c.Tq,
    kvLen: Tk,
    kvCapacity: cap,
    scale: c.scale,
    window: c.window,
    softcap: c.softcap,
    variant: c.variant,
  };
  const r = rng(seed);
  const amp = c.amp ?? 1;
  const q = r.normal(c.B * c.Tq * c.Hq * c.D, amp);
  const k = r.normal(c.B * cap * c.Hkv * c.D, amp);
  const v = r.normal(c.B * cap * c.Hkv * c.D);
  // Rows kvLen..kvCap-1 of the cache are not valid: NaN there proves the kernels never read them.
  for (let b = 0; b < c.B; b++) {
    const rows = k.subarray((b * cap + Tk) * c.Hkv * c.D, (b + 1) * cap * c.Hkv * c.D);
    rows.fill(NaN);
    v.subarray((b * cap + Tk) * c.Hkv * c.D, (b + 1) * cap * c.Hkv * c.D).fill(NaN);
  }
  const dout = r.normal(c.B * c.Tq * c.Hq * c.D);
  const scale = c.scale ?? 1 / Math.sqrt(c.D);
  // with RoPE the scores are those of the rotated q and k (the spare cache rows stay NaN)
  const rot = c.rope ? rotatedQK(c, opts, q, k) : { q, k };
  // S: the largest scale·Σ_d |q_d k_d| over visible pairs bounds every score and its f32 rounding
  // (|Δs| <= D·u·S); the exp in the softmax turns that into a relative error of 2|Δs| in each probability.
  let S = 0;
  const per = c.Hq / c.Hkv;
  for (let b = 0; b < c.B; b++)
    for (let h = 0; h < c.Hq; h++)
      for (let i = 0; i < c.Tq; i++)
        for (let j = visibleKeys(Tk - c.Tq + i, c.window ?? 0).lo; j <= Tk - c.Tq + i; j++) {
          let a = 0;
          const qa = ((b * c.Tq + i) * c.Hq + h) * c.D,
            ka = ((b * cap + j) * c.Hkv + Math.floor(h / per)) * c.D;
          for (let d = 0; d < c.D; d++) a += Math.abs(rot.q[qa + d] * rot.k[ka + d]);
          S = Math.max(S, a * scale);
        }
  // E: the error of a score in units of u. Unscaled: D·S. With a cap c the capped score adds lib_softcap's
  // c·(16 + 4|y/c|)u + 5u|y| + u|z| <= (17c + 9S)u (tests/helpers/head.ts capErr); its slope <= 1 passes the rest.
  const sc = c.softcap ?? 0;
  // RoPE: each rotated element is off by a few u of its pair (lib_rope's sin/cos ~1 ulp, two products and a sum),
  // within 16·u·S over a score.
  const E = c.D * S + (sc > 0 ? 17 * sc + 9 * S : 0) + (c.rope ? 16 * S : 0);
  return { opts, q, k, v, dout, Tk, cap, S, E, per };
}

/** q and k rotated by the twin's RoPE (k through its whole cache: the spare rows stay NaN). */
function rotatedQK(c: Case, opts: AttentionOpts, q: Float32Array, k: Float32Array) {
  const [Tk, cap] = [opts.kvLen!, opts.kvCapacity!];
  const qPos = c.rope!.posOffset ?? Tk - c.Tq;
  const base = { headDim: c.D, theta: c.rope!.theta, scaling: c.rope!.scaling ?? null };
  return {
    q: rope_forward_cpu(q, { ...base, heads: c.Hq, seqLen: c.Tq, posOffset: qPos }),
    k: rope_forward_cpu(k, { ...base, heads: c.Hkv, seqLen: cap, posOffset: qPos - (Tk - c.Tq) }),
  };
}

const maxAbs = (x: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
};

describe('attention forward', () => {
  it.each(CASES)(
    'matches the float64 twin: B=$B Tq=$Tq kvLen=$Tk cap=$cap Hq=$Hq Hkv=$Hkv D=$D amp=$amp window=$window softcap=$softcap rope=$rope.theta $variant',
    async (c) => {
      const ctx = await gpu();
      const { opts, q, k, v, E, Tk } = setup(c, c.Tq * 31 + c.D);
      const tq = Tensor.from(ctx, q, [c.B, c.Tq, c.Hq, c.D]);
      const tk = Tensor.from(ctx, k, [c.B, opts.kvCapacity!, c.Hkv, c.D]);
      const tv = Tensor.from(ctx, v, [c.B, opts.kvCapacity!, c.Hkv, c.D]);
      const gopts = gpuOpts(ctx, c, opts);
      const { o, lse } = attention_forward(tq, tk, tv, gopts);
      const want = attention_forward_cpu(q, k, v, c.B, opts, twinRope(c));
      // Bound: each o element is a convex combination of <= Tk values of v; every probability carries a
      // relative error of at most 2·E·u (score rounding through exp) plus (Tk + D + 8)·u from the running
      // sums and the rescaling, so |Δo| <= max|v|·(2·E + Tk + D + 8)·u; a factor 2 of headroom.
      const tolO = 2 * maxAbs(v.filter((x) => !Number.isNaN(x))) * (2 * E + Tk + c.D + 8) * U;
      // lse = m + log(l): score error E·u, log of a sum with relative error (Tk + 4)·u, and rounding of lse itself.
      const tolL = 2 * (E + Tk + 4) * U;
      expectClose(await o.read(), want.o, tolO, 0, 'o');
      expectClose(await lse.read(), want.lse, tolL, 2 * U, 'lse');
      [tq, tk, tv, o, lse].forEach((t) => t.free());
      gopts.rope?.invFreq.free();
      expect(ctx.alloc.liveBytes).toBe(0);
    },
  );

  it.each(
    [0, 5].flatMap((window) =>
      [false, true].flatMap((rope) => ATTENTION_VARIANTS.map((variant) => ({ window, rope, variant }))),
    ),
  )(
    'KV cache: the last rows of a full pass equal a pass over only those rows (bit for bit), window $window rope $rope $variant',
    async ({ window, rope: withRope, variant }) => {
      const ctx = await gpu();
      const B = 2,
        T = 70,
        Tq = 5,
        cap = 72,
        Hq = 4,
        Hkv = 2,
        D = 16;
      const r = rng(7);
      const q = r.normal(B * T * Hq * D),
        k = r.normal(B * cap * Hkv * D),
        v = r.normal(B * cap * Hkv * D);
      const tq = Tensor.from(ctx, q, [B, T, Hq, D]);
      const tk = Tensor.from(ctx, k, [B, cap, Hkv, D]);
      const tv = Tensor.from(ctx, v, [B, cap, Hkv, D]);
      // with RoPE, the cache holds unrotated keys and both passes rotate them at the same positions
      const invFreq = rope_inv_freq_tensor(ctx, D, 10000);
      const rope = withRope ? { invFreq } : undefined;
      const full = attention_forward(tq, tk, tv, {
        rope,
        heads: Hq,
        kvHeads: Hkv,
        headDim: D,
        seqLen: T,
        kvCapacity: cap,
        kvLen: T,
        window,
        variant,
      });
      const qLast = new Float32Array(B * Tq * Hq * D);
      for (let b = 0; b < B; b++)
        qLast.set(q.subarray((b * T + T - Tq) * Hq * D, (b + 1) * T * Hq * D), b * Tq * Hq * D);
      const tqLast = Tensor.from(ctx, qLast, [B, Tq, Hq, D]);
      const last = attention_forward(tqLast, tk, tv, {
        rope,
        heads: Hq,
        kvHeads: Hkv,
        headDim: D,
        seqLen: Tq,
        kvLen: T,
        kvCapacity: cap,
        window,
        variant,
      });
      const oFull = await full.o.read(),
        oLast = await last.o.read();
      const lseFull = await full.lse.read(),
        lseLast = await last.lse.read();
      for (let b = 0; b < B; b++) {
        // Masked keys add exact zeros and never move the running max, and key tiles start at multiples of the
        // tile in both passes, so the arithmetic is identical.
        expectClose(
          oLast.subarray(b * Tq * Hq * D, (b + 1) * Tq * Hq * D),
          oFull.subarray((b * T + T - Tq) * Hq * D, (b + 1) * T * Hq * D),
          0,
          0,
          'o',
        );
        for (let h = 0; h < Hq; h++) {
          expectClose(
            lseLast.subarray((b * Hq + h) * Tq, (b * Hq + h + 1) * Tq),
            lseFull.subarray((b * Hq + h) * T + T - Tq, (b * Hq + h + 1) * T),
            0,
            0,
            'lse',
          );
        }
      }
      [tq, tk, tv, tqLast, full.o, full.lse, last.o, last.lse, invFreq].forEach((t) => t.free());
      expect(ctx.alloc.liveBytes).toBe(0);
    },
  );

  it.each(ATTENTION_VARIANTS)(
    'T = 1024 (the longest sequence) matches the twin, forward and backward: %s',
    async (variant) => {
      await checkBackward({ B: 1, Tq: 1024, Hq: 2, Hkv: 1, D: 8, variant }, true);
    },
  );
});

async function checkBackward(c: Case, alsoForward = false) {
  const ctx = await gpu();
  const { opts, q, k, v, dout, E, Tk, per } = setup(c, c.Tq * 17 + c.D);
  const cap = opts.kvCapacity!;
  const tq = Tensor.from(ctx, q, [c.B, c.Tq, c.Hq, c.D]);
  const tk = Tensor.from(ctx, k, [c.B, cap, c.Hkv, c.D]);
  const tv = Tensor.from(ctx, v, [c.B, cap, c.Hkv, c.D]);
  const tdout = Tensor.from(ctx, dout, [c.B, c.Tq, c.Hq, c.D]);
  const gopts = gpuOpts(ctx, c, opts);
  const { o, lse } = attention_forward(tq, tk, tv, gopts);
  const { dq, dk, dv } = attention_backward(tdout, tq, tk, tv, o, lse, gopts);
  expect(dk.shape).toEqual([c.B, Tk, c.Hkv, c.D]);
  const want = attention_backward_cpu(dout, q, k, v, c.B, opts, twinRope(c));
  if (alsoForward) {
    const f = attention_forward_cpu(q, k, v, c.B, opts, twinRope(c));
    expectClose(await o.read(), f.o, 2 * maxAbs(v) * (2 * E + Tk + c.D + 8) * U, 0, 'o');
  }
  // Bound, normwise: every gradient element is a sum of n products (n = Tk for dq, (Hq/Hkv)·Tq for dk and
  // dv) whose probability factor carries a relative error <= 2·E·u (see the forward), whose dP and
  // delta = dO·O carry D·u relative to their absolute sums, and the sum itself (n + D)·u; a cap c multiplies
  // dS by 1 - (z/c)² <= 1, off by <= (2E/c + 3)·u. With random inputs the terms are of the size of the
  // result's largest element, so |Δ| <= (4·E + 2·D + n [+ 2E/c + 3])·u·max|g|; a factor 4 of headroom for the
  // cancellation inside dS = P ⊙ (dP - delta).
  const capTerm = c.softcap ? (2 * E) / c.softcap + 3 : 0;
  const tol = (g: Float64Array, n: number) => 4 * (4 * E + 2 * c.D + n + capTerm) * U * maxAbs(g);
  expectClose(await dq.read(), want.dq, tol(want.dq, Tk), 0, 'dq');
  expectClose(await dk.read(), want.dk, tol(want.dk, per * c.Tq), 0, 'dk');
  expectClose(await dv.read(), want.dv, tol(want.dv, per * c.Tq), 0, 'dv');
  [tq, tk, tv, tdout, o, lse, dq, dk, dv].forEach((t) => t.free());
  gopts.rope?.invFreq.free();
  expect(ctx.alloc.liveBytes).toBe(0);
}

describe('attention backward', () => {
  it.each(CASES)(
    'matches the float64 twin: B=$B Tq=$Tq kvLen=$Tk cap=$cap Hq=$Hq Hkv=$Hkv D=$D amp=$amp window=$window softcap=$softcap rope=$rope.theta $variant',
    async (c) => {
      await checkBackward(c);
    },
  );

  it('dk, dv keep the shape of k when kvLen = kvCapacity', async () => {
    const ctx = await gpu();
    const B = 2,
      T = 3,
      H = 2,
      D = 8;
    const r = rng(3);
    const mk = (n: number) => Tensor.from(ctx, r.normal(n), [B * T, H * D]);
    const [q, k, v, dout] = [mk(B * T * H * D), mk(B * T * H * D), mk(B * T * H * D), mk(B * T * H * D)];
    const opts = { heads: H, kvHeads: H, headDim: D, seqLen: T };
    const { o, lse } = attention_forward(q, k, v, opts);
    expect(o.shape).toEqual([B * T, H * D]);
    expect(lse.shape).toEqual([B, H, T]);
    const g = attention_backward(dout, q, k, v, o, lse, opts);
    expect(g.dq.shape).toEqual([B * T, H * D]);
    expect(g.dk.shape).toEqual([B * T, H * D]);
    expect(g.dv.shape).toEqual([B * T, H * D]);
    [q, k, v, dout, o, lse, g.dq, g.dk, g.dv].forEach((t) => t.free());
  });
});

describe('attention with RoPE inside', () => {
  // The old path, rope_qk around attention, against RoPE in the kernels: the same rotation (lib_rope's rope_rotate)
  // of the same values, so the same bits, forward and backward, with GQA, a window and a position offset.
  it.each(ATTENTION_VARIANTS)('equals rope_qk then attention, bit for bit: %s', async (variant) => {
    const ctx = await gpu();
    const [B, T, Hq, Hkv, D] = [2, 37, 6, 2, 40];
    const r = rng(21);
    const mk = (H: number) => Tensor.from(ctx, r.normal(B * T * H * D), [B * T, H * D]);
    const [q, k, v, dout] = [mk(Hq), mk(Hkv), mk(Hkv), mk(Hq)];
    const invFreq = rope_inv_freq_tensor(ctx, D, 10000, LLAMA3);
    const ro = { heads: Hq, headDim: D, theta: 10000, seqLen: T, posOffset: 3, invFreq };
    const opts: AttentionOpts = { heads: Hq, kvHeads: Hkv, headDim: D, seqLen: T, window: 9, variant };
    const rot = rope_qk_forward(q, k, ro, Hkv);
    const old = attention_forward(rot.q, rot.k, v, opts);
    const og = attention_backward(dout, rot.q, rot.k, v, old.o, old.lse, opts);
    const back = rope_qk_backward(og.dq, og.dk, ro, Hkv);
    const fused = { ...opts, rope: { invFreq, posOffset: 3 } };
    const neu = attention_forward(q, k, v, fused);
    const ng = attention_backward(dout, q, k, v, neu.o, neu.lse, fused);
    expectClose(await neu.o.read(), await old.o.read(), 0, 0, 'o');
    expectClose(await neu.lse.read(), await old.lse.read(), 0, 0, 'lse');
    expectClose(await ng.dq.read(), await back.q.read(), 0, 0, 'dq');
    expectClose(await ng.dk.read(), await back.k.read(), 0, 0, 'dk');
    expectClose(await ng.dv.read(), await og.dv.read(), 0, 0, 'dv');
    for (const t of [q, k, v, dout, invFreq, rot.q, rot.k, old.o, old.lse, neu.o, neu.lse, back.q, back.k]) t.free();
    for (const g of [og, ng]) [g.dq, g.dk, g.dv].forEach((t) => t.free());
    expect(ctx.alloc.liveBytes).toBe(0);
  });

  it('refuses an odd head_dim, a table of the wrong size and positions before 0', async () => {
    const ctx = await gpu();
    const t = (n: number) => Tensor.from(ctx, new Float32Array(n), [n]);
    const [q3, q6, k6, f2, f3] = [t(5 * 2 * 3), t(5 * 2 * 6), t(8 * 2 * 6), t(2), t(3)];
    const o3 = { heads: 2, kvHeads: 2, headDim: 3, seqLen: 5 };
    expect(() => attention_forward(q3, q3, q3, { ...o3, rope: { invFreq: f2 } })).toThrow(/even headDim/);
    const o6 = { ...o3, headDim: 6, kvLen: 8 }; // 5 queries after 3 cached keys: query row 0 at position >= 3
    expect(() => attention_forward(q6, k6, k6, { ...o6, rope: { invFreq: f2 } })).toThrow(/invFreq/);
    expect(() => attention_forward(q6, k6, k6, { ...o6, rope: { invFreq: f3, posOffset: 2 } })).toThrow(/posOffset/);
    [q3, q6, k6, f2, f3].forEach((x) => x.free());
  });
});

describe('attention CPU twin', () => {
  // Finite differences of L = Σ dout ⊙ o(q, k, v) in float64 check the backward twin (which the GPU is
  // checked against). Central differences with eps 1e-6 have error ~eps² + 1e-16/eps, so 1e-7 relative.
  it.each([
    { B: 2, Tq: 4, Hq: 2, Hkv: 2, D: 3 },
    { B: 1, Tq: 5, Hq: 3, Hkv: 1, D: 4 }, // GQA 3
    { B: 2, Tq: 2, Tk: 5, cap: 7, Hq: 4, Hkv: 2, D: 3 }, // KV cache, GQA 2
    { B: 1, Tq: 7, Hq: 3, Hkv: 1, D: 3, window: 3 }, // sliding window, GQA 3
    { B: 2, Tq: 3, Tk: 8, cap: 9, Hq: 2, Hkv: 1, D: 2, window: 4 }, // KV cache + window
    { B: 1, Tq: 4, Hq: 1, Hkv: 1, D: 3, window: 1 }, // window 1: o = v, no gradient reaches q or k
    { B: 2, Tq: 5, Hq: 2, Hkv: 1, D: 3, window: 3, softcap: 0.7 }, // soft cap below the scores, window, GQA
    { B: 1, Tq: 2, Tk: 6, cap: 6, Hq: 2, Hkv: 2, D: 4, softcap: 1.3 }, // soft cap, KV cache
    // RoPE: q and k rotated inside, their gradients rotated back
    { B: 2, Tq: 4, Hq: 2, Hkv: 1, D: 4, rope: { theta: 10 } },
    { B: 1, Tq: 3, Tk: 7, cap: 8, Hq: 3, Hkv: 1, D: 6, window: 4, rope: { theta: 100, posOffset: 9 } }, // KV cache
    { B: 1, Tq: 5, Hq: 2, Hkv: 2, D: 2, softcap: 0.9, rope: { theta: 3, scaling: { type: 'linear', factor: 2 } } },
  ] as Case[])(
    'backward twin = finite differences of the forward twin: B=$B Tq=$Tq kvLen=$Tk cap=$cap Hq=$Hq Hkv=$Hkv D=$D window=$window softcap=$softcap rope=$rope.theta',
    (c) => {
      const Tk = c.Tk ?? c.Tq,
        cap = c.cap ?? Tk;
      const opts: AttentionOpts = {
        heads: c.Hq,
        kvHeads: c.Hkv,
        headDim: c.D,
        seqLen: c.Tq,
        kvLen: Tk,
        kvCapacity: cap,
        window: c.window,
        softcap: c.softcap,
      };
      const r = rng(11);
      const q = Float64Array.from(r.normal(c.B * c.Tq * c.Hq * c.D));
      const k = Float64Array.from(r.normal(c.B * cap * c.Hkv * c.D));
      const v = Float64Array.from(r.normal(c.B * cap * c.Hkv * c.D));
      const dout = r.normal(c.B * c.Tq * c.Hq * c.D);
      const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array) => {
        const { o } = attention_forward_cpu(qq, kk, vv, c.B, opts, c.rope);
        let L = 0;
        for (let i = 0; i < o.length; i++) L += o[i] * dout[i];
        return L;
      };
      const g = attention_backward_cpu(dout, q, k, v, c.B, opts, c.rope);
      // dk, dv cover the kvLen valid rows; the spare cache rows have zero gradient.
      const padded = (x: Float64Array) => {
        const out = new Float64Array(c.B * cap * c.Hkv * c.D);
        for (let b = 0; b < c.B; b++)
          out.set(x.subarray(b * Tk * c.Hkv * c.D, (b + 1) * Tk * c.Hkv * c.D), b * cap * c.Hkv * c.D);
        return out;
      };
      expectClose(
        g.dq,
        finiteDiff((x) => loss(x, k, v), q),
        1e-7,
        1e-6,
        'dq',
      );
      expectClose(
        padded(g.dk),
        finiteDiff((x) => loss(q, x, v), k),
        1e-7,
        1e-6,
        'dk',
      );
      expectClose(
        padded(g.dv),
        finiteDiff((x) => loss(q, k, x), v),
        1e-7,
        1e-6,
        'dv',
      );
    },
  );

  it('forward twin: one key gives o = v and lse = its score; scores are scaled', () => {
    const q = [1, 2],
      k = [3, -1],
      v = [5, 7];
    const { o, lse } = attention_forward_cpu(q, k, v, 1, { heads: 1, kvHeads: 1, headDim: 2, seqLen: 1 });
    expect(Array.from(o)).toEqual([5, 7]);
    expect(lse[0]).toBeCloseTo(1 / Math.sqrt(2), 14);
  });

  it('forward twin: a soft cap c bends the scores to c·tanh(s / c) (one key: lse = that), and a huge c is none', () => {
    const o1 = { heads: 1, kvHeads: 1, headDim: 2, seqLen: 1, softcap: 0.5 };
    expect(attention_forward_cpu([1, 2], [3, -1], [5, 7], 1, o1).lse[0]).toBeCloseTo(0.5 * Math.tanh(Math.SQRT2), 14);
    const r = rng(8);
    const q = r.normal(2 * 5 * 3),
      k = r.normal(2 * 5 * 3),
      v = r.normal(2 * 5 * 3);
    const base = { heads: 1, kvHeads: 1, headDim: 3, seqLen: 5 };
    const none = attention_forward_cpu(q, k, v, 2, base);
    expectClose(attention_forward_cpu(q, k, v, 2, { ...base, softcap: 1e7 }).o, none.o, 1e-12, 0, 'o (cap 1e7)');
    const bent = attention_forward_cpu(q, k, v, 2, { ...base, softcap: 0.3 });
    expect(maxAbs(bent.lse.map((x, i) => x - none.lse[i]))).toBeGreaterThan(0.1);
  });
});

describe('attention twin: sliding window', () => {
  it('window 1 gives o = v; a window past every position equals none (exactly)', () => {
    const r = rng(5);
    const B = 2,
      T = 6,
      H = 2,
      D = 3;
    const q = r.normal(B * T * H * D),
      k = r.normal(B * T * H * D),
      v = r.normal(B * T * H * D);
    const base = { heads: H, kvHeads: H, headDim: D, seqLen: T };
    expectClose(attention_forward_cpu(q, k, v, B, { ...base, window: 1 }).o, v, 1e-15, 0, 'o (window 1)');
    const none = attention_forward_cpu(q, k, v, B, base);
    const wide = attention_forward_cpu(q, k, v, B, { ...base, window: T });
    expectClose(wide.o, none.o, 0, 0, 'o (window T)');
    expectClose(wide.lse, none.lse, 0, 0, 'lse (window T)');
  });
});

describe('attention launch plan', () => {
  it('the default variant is rowwise on the software drivers; opts.variant and WEBLORA_ATTENTION force one', async () => {
    const ctx = await gpu();
    const saved = process.env.WEBLORA_ATTENTION;
    try {
      delete process.env.WEBLORA_ATTENTION;
      expect(ctx.adapterName).toMatch(/llvmpipe|swiftshader/i);
      expect(attentionVariant(ctx)).toBe('rowwise');
      expect(attentionVariant(ctx, 'tiled')).toBe('tiled');
      process.env.WEBLORA_ATTENTION = 'tiled';
      expect(attentionVariant(ctx)).toBe('tiled');
      process.env.WEBLORA_ATTENTION = 'fast';
      expect(() => attentionVariant(ctx)).toThrow(/not one of tiled, rowwise/);
    } finally {
      if (saved === undefined) delete process.env.WEBLORA_ATTENTION;
      else process.env.WEBLORA_ATTENTION = saved;
    }
  });

  const plan = (B: number, T: number, Hq: number, Hkv: number, D: number, window = 0) => {
    const opts: AttentionOpts = { heads: Hq, kvHeads: Hkv, headDim: D, seqLen: T, window };
    const g = geometryOf(B * T * Hq * D, opts, (why) => {
      throw new Error(why);
    });
    return { g, dispatches: [...attentionPlan(g, 'forward'), ...attentionPlan(g, 'backward')] };
  };

  // Issue 10's targets for a real GPU at SmolLM2-135M's training shape (B 8, T 512, 9/3 heads, D 64): every
  // kernel on >= 264 workgroups, and no per-thread loop over 2,048 unless the grid has >= 1,024 workgroups.
  it.each([
    [8, 512],
    [8, 2048],
    [1, 4096],
  ])('B %i, T %i, 9/3 heads, head_dim 64: wide grids, short loops', (B, T) => {
    for (const d of plan(B, T, 9, 3, 64).dispatches) {
      const wg = d.workgroups[0] * d.workgroups[1];
      expect(wg, d.kernel).toBeGreaterThanOrEqual(264);
      if (wg < 1024) expect(d.cost.serialLoop, d.kernel).toBeLessThanOrEqual(2048);
    }
  });

  it('every head_dim up to 256 fits 16 KiB of workgroup memory and 256 invocations', () => {
    // The var<workgroup> arrays each shader declares (rows D + 1 floats apart), in floats:
    const declared = {
      attention_forward: (br: number, bc: number, D: number) => br * (D + 1) + 2 * bc * (D + 1) + br * bc, // qs ks vs ss
      attention_backward_dq: (br: number, bc: number, D: number) =>
        2 * br * (D + 1) + 2 * bc * (D + 1) + br * bc + 2 * br, // qs dos ks vs dss lse_s dl_s
      attention_backward_dkdv: (br: number, bc: number, D: number) =>
        2 * bc * (D + 1) + 2 * br * (D + 1) + 2 * bc * br + 2 * br, // ks vs qs dos pt dst lse_s dl_s
    };
    for (let D = 1; D <= 256; D++)
      for (const k of ['attention_forward', 'attention_backward_dq', 'attention_backward_dkdv'] as const) {
        const { own, tile } = attentionTiles(k, D);
        const [br, bc] = k === 'attention_backward_dkdv' ? [tile, own] : [own, tile];
        expect(declared[k](br, bc, D) * 4, `${k} D=${D}`).toBeLessThanOrEqual(16384);
        expect(256 % own, `${k} D=${D}`).toBe(0);
      }
  });

  it('costs: flops count the visible pairs; a window skips the tiles it hides', () => {
    const full = plan(2, 512, 9, 3, 64);
    const slid = plan(2, 512, 9, 3, 64, 64);
    expect(visiblePairs(full.g)).toBe((512 * 513) / 2);
    expect(visiblePairs(slid.g)).toBe((64 * 65) / 2 + (512 - 64) * 64);
    for (const p of [full, slid]) {
      const pairs = 2 * 9 * visiblePairs(p.g);
      const [fwd, dq, dkdv] = p.dispatches;
      expect(fwd.cost.flops).toBe(pairs * (4 * 64 + 4));
      expect(dq.cost.flops).toBe(pairs * (6 * 64 + 4) + 2 * 2 * 512 * 9 * 64);
      expect(dkdv.cost.flops).toBe(pairs * (8 * 64 + 4));
    }
    // the loops: a full row walks all 512 keys; with the window, 64 keys and the block's rows and tile slack
    expect(full.dispatches.map((d) => d.cost.serialLoop)).toEqual([512, 512, 3 * 512]);
    for (const d of slid.dispatches) expect(d.cost.serialLoop).toBeLessThan(3 * (64 + 32));
  });

  it('costs with RoPE: the tiled kernels count each row they rotate; the rowwise ones leave it to rope_qk', () => {
    const [B, T, Hq, Hkv, D] = [2, 512, 9, 3, 64];
    const opts: AttentionOpts = { heads: Hq, kvHeads: Hkv, headDim: D, seqLen: T };
    const fail = (why: string): never => {
      throw new Error(why);
    };
    const plain = geometryOf(B * T * Hq * D, opts, fail);
    const roped = { ...plain, rope: true };
    const flops = (g: typeof plain, v: AttentionVariant) =>
      [...attentionPlan(g, 'forward', v), ...attentionPlan(g, 'backward', v)].map((d) => d.cost.flops);
    expect(flops(roped, 'rowwise')).toEqual(flops(plain, 'rowwise'));
    const [f0, q0, kv0] = flops(plain, 'tiled');
    const [f1, q1, kv1] = flops(roped, 'tiled');
    const pair = 36 * (D / 2); // one row's rotation
    // forward: every query row once, and per row block the keys it stages (0 up to its last row)
    const { own } = attentionTiles('attention_forward', D);
    let staged = 0;
    for (let i0 = 0; i0 < T; i0 += own) staged += i0 + own;
    expect(f1 - f0).toBe(pair * B * Hq * (T + staged));
    expect(q1).toBeGreaterThan(q0 + pair * 2 * B * Hq * T); // q in, dq out, and the keys staged
    expect(kv1).toBeGreaterThan(kv0 + pair * 2 * B * Hkv * T); // k in, dk out, and the query rows staged
    // every variant's defines say whether the kernel rotates
    expect(attentionPlan(roped, 'forward', 'tiled')[0].defines.ROPE).toBe(true);
    expect(attentionPlan(plain, 'forward', 'tiled')[0].defines.ROPE).toBe(false);
  });
});
