// shaders/rope.wgsl and shaders/rope_qk.wgsl (the rotation they share is shaders/lib_rope.wgsl) against their
// float64 twin, and the twin's backward against finite differences.
//
// Error bounds, per rotated pair (x1, x2) = (x_i, x_{i+D/2}), u = 2^-24:
//  - vs the twin with Hugging Face's f32 angles ('hf-f32'): the kernel's angle is the same f32 number
//    (same inv_freq table, one correctly rounded f32 product), so what remains is sincos() — reduction
//    ≤ 2 ulp of |r| ≤ π/4 plus ~1 ulp polynomials, ≤ EPS_SC = 4e-7 absolute — and the rotation's two
//    products and one sum (≤ 3u relative to |x1| + |x2|):  |Δout| ≤ (|x1| + |x2|)·(EPS_SC + 3u).
//  - vs the exact float64 maths ('f64'): add the error of the f32 angle itself, inv_freq (≤ 1.5u from
//    the f32 pow and division) and the product (0.5u):  Δangle ≤ angle·4u, which grows with the position
//    (this is Hugging Face's own f32 error, not the kernel's):  |Δout| ≤ (|x1| + |x2|)·(angle·4u + EPS_SC + 3u).
import { describe, expect, it } from 'vitest';
import {
  rope_backward,
  rope_forward,
  rope_inv_freq,
  rope_inv_freq_tensor,
  rope_qk_backward,
  rope_qk_forward,
  type RopeOpts,
} from '../../src/kernels/rope';
import { rope_backward_cpu, rope_forward_cpu, rope_inv_freq_f64 } from '../../src/kernels/rope.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { finiteDiff, gpu, rng, expectWithin } from '../helpers/gpu';

const u = 2 ** -24;
const EPS_SC = 4e-7;

/** The bounds above for every element; exactAngles adds the f32 angle's own error. */
function ropeBound(x: ArrayLike<number>, o: RopeOpts, exactAngles: boolean): Float64Array {
  const { heads: H, headDim: D, seqLen: T } = o,
    half = D / 2;
  const b = new Float64Array(x.length);
  for (let at = 0; at < x.length; at++) {
    const n = Math.floor(at / (H * D)),
      j = at % D,
      i = j % half;
    const base = at - j;
    const mag = Math.abs(x[base + i]) + Math.abs(x[base + i + half]);
    const angle = ((o.posOffset ?? 0) + (n % T)) * Math.pow(o.theta, (-2 * i) / D);
    b[at] = mag * ((exactAngles ? angle * 4 * u : 0) + EPS_SC + 3 * u);
  }
  return b;
}

// [B, T, H, D, posOffset, theta]: awkward T and H, head dims from 2 to 128, positions up to ~1e5.
const CASES: [number, number, number, number, number, number][] = [
  [1, 1, 1, 2, 0, 10000],
  [2, 7, 3, 8, 0, 10000],
  [1, 33, 5, 64, 5, 10000],
  [3, 100, 2, 6, 1000, 500000],
  [1, 257, 1, 128, 0, 1e6],
  [2, 17, 2, 64, 60000, 10000],
  [1, 9, 4, 32, 99000, 10000],
];

describe('rope', () => {
  it.each(CASES)(
    'forward and backward match the twin, B = %i, T = %i, H = %i, D = %i, posOffset = %i, theta = %d',
    async (B, T, H, D, off, theta) => {
      const ctx = await gpu();
      const live = ctx.alloc.liveBytes;
      const o: RopeOpts = { heads: H, headDim: D, theta, seqLen: T, posOffset: off };
      const r = rng(B * 7 + T * 13 + D + off);
      const x = r.normal(B * T * H * D),
        dy = r.normal(B * T * H * D);
      const tx = Tensor.from(ctx, x, [B * T, H * D]),
        tdy = Tensor.from(ctx, dy, [B, T, H, D]);
      const y = rope_forward(tx, o),
        dx = rope_backward(tdy, o);
      expect(y.shape).toEqual([B * T, H * D]);
      expect(dx.shape).toEqual([B, T, H, D]);
      const gy = await y.read(),
        gdx = await dx.read();
      expectWithin(gy, rope_forward_cpu(x, o, 'hf-f32'), ropeBound(x, o, false), 'y vs hf-f32 angles');
      expectWithin(gdx, rope_backward_cpu(dy, o, 'hf-f32'), ropeBound(dy, o, false), 'dx vs hf-f32 angles');
      expectWithin(gy, rope_forward_cpu(x, o), ropeBound(x, o, true), 'y vs float64');
      expectWithin(gdx, rope_backward_cpu(dy, o), ropeBound(dy, o, true), 'dx vs float64');
      [tx, tdy, y, dx].forEach((t) => t.free());
      expect(ctx.alloc.liveBytes).toBe(live);
    },
  );

  // rope_qk: q (Hq heads) and k (Hk heads) in one dispatch, each against the twin with its own head count
  it.each([
    [2, 7, 3, 1, 8, 0, 10000],
    [1, 33, 5, 2, 64, 5, 500000],
    [3, 17, 9, 3, 6, 1000, 10000],
  ])(
    'rope_qk: q and k forward and backward match the twin, B = %i, T = %i, Hq = %i, Hk = %i, D = %i, posOffset = %i',
    async (B, T, Hq, Hk, D, off, theta) => {
      const ctx = await gpu();
      const live = ctx.alloc.liveBytes;
      const oq: RopeOpts = { heads: Hq, headDim: D, theta, seqLen: T, posOffset: off };
      const ok: RopeOpts = { ...oq, heads: Hk };
      const r = rng(B * 5 + T * 3 + Hq * Hk + D);
      const [q, k, dq, dk] = [Hq, Hk, Hq, Hk].map((H) => r.normal(B * T * H * D));
      const t = [q, k, dq, dk].map((v, i) => Tensor.from(ctx, v, [B * T, [Hq, Hk][i % 2] * D]));
      const y = rope_qk_forward(t[0], t[1], oq, Hk),
        dx = rope_qk_backward(t[2], t[3], oq, Hk);
      expect([y.q.shape, y.k.shape]).toEqual([t[0].shape, t[1].shape]);
      const check = async (got: Tensor, want: Float64Array, x: ArrayLike<number>, o: RopeOpts, what: string) =>
        expectWithin(await got.read(), want, ropeBound(x, o, false), what);
      await check(y.q, rope_forward_cpu(q, oq, 'hf-f32'), q, oq, 'q');
      await check(y.k, rope_forward_cpu(k, ok, 'hf-f32'), k, ok, 'k');
      await check(dx.q, rope_backward_cpu(dq, oq, 'hf-f32'), dq, oq, 'dq');
      await check(dx.k, rope_backward_cpu(dk, ok, 'hf-f32'), dk, ok, 'dk');
      [...t, y.q, y.k, dx.q, dx.k].forEach((v) => v.free());
      expect(ctx.alloc.liveBytes).toBe(live);
    },
  );

  it('uses the rotate_half layout: pairs (i, i + D/2), inv_freq = [1, theta^-1/2] for D = 4', async () => {
    // Hand-checked: at position p, e_0 -> cos p·e_0 + sin p·e_2 and e_2 -> -sin p·e_0 + cos p·e_2;
    // pair (1, 3) turns by p·theta^-1/2 = p/100 for theta = 10000.
    const ctx = await gpu();
    const o: RopeOpts = { heads: 1, headDim: 4, theta: 10000, seqLen: 2, posOffset: 3 }; // positions 3, 4
    const x = [1, 0, 0, 0, 0, 1, 1, 0]; // row 0: e_0; row 1: e_1 + e_2
    const tx = Tensor.from(ctx, x, [2, 4]);
    const y = rope_forward(tx, o);
    const got = await y.read();
    const want = [Math.cos(3), 0, Math.sin(3), 0, -Math.sin(4), Math.cos(0.04), Math.cos(4), Math.sin(0.04)];
    want.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 6));
    tx.free();
    y.free();
  });

  it('backward undoes forward, and a kept invFreq tensor gives the same bits', async () => {
    const ctx = await gpu();
    const o: RopeOpts = { heads: 3, headDim: 16, theta: 10000, seqLen: 11, posOffset: 40 };
    const x = rng(3).normal(2 * 11 * 3 * 16);
    const tx = Tensor.from(ctx, x, [22, 48]);
    const invFreq = rope_inv_freq_tensor(ctx, 16, 10000);
    const y = rope_forward(tx, o),
      y2 = rope_forward(tx, { ...o, invFreq });
    const back = rope_backward(y, o);
    const gy = await y.read();
    expect(Array.from(await y2.read())).toEqual(Array.from(gy));
    // Two rotations: twice the per-pair bound, against the input itself.
    expectWithin(
      await back.read(),
      x,
      ropeBound(x, o, false).map((b) => 2 * b),
      'backward(forward(x))',
    );
    [tx, invFreq, y, y2, back].forEach((t) => t.free());
  });

  // Llama 3.x and linear scaling: the kernel is the same, only the CPU-computed inv_freq table differs.
  // Bounds as above with the scaled angle; vs the float64 maths the f32 table carries up to 8 ulp
  // (tests/models/families.test.ts), so the angle term is angle·(8 + 1)u instead of 4u.
  it.each<[string, RopeOpts['scaling']]>([
    ['llama3', { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 40 }],
    ['linear', { type: 'linear', factor: 4 }],
  ])(
    'forward and backward with rope_scaling %s match the twin (positions past the original context)',
    async (_, sc) => {
      const ctx = await gpu();
      const live = ctx.alloc.liveBytes;
      const [B, T, H, D] = [2, 67, 3, 18]; // D/2 = 9 frequencies spanning the three llama3 bands at theta 500000
      const o: RopeOpts = { heads: H, headDim: D, theta: 500000, scaling: sc, seqLen: T, posOffset: 5 };
      const r = rng(77);
      const x = r.normal(B * T * H * D),
        dy = r.normal(B * T * H * D);
      const tx = Tensor.from(ctx, x, [B * T, H * D]),
        tdy = Tensor.from(ctx, dy, [B * T, H * D]);
      const y = rope_forward(tx, o),
        dx = rope_backward(tdy, o);
      const gy = await y.read(),
        gdx = await dx.read();
      const inv = rope_inv_freq_f64(D, o.theta, sc);
      const bound = (v: ArrayLike<number>, exact: boolean) =>
        Float64Array.from({ length: v.length }, (_, at) => {
          const n = Math.floor(at / (H * D)),
            i = (at % D) % (D / 2),
            base = at - (at % D);
          const mag = Math.abs(v[base + i]) + Math.abs(v[base + i + D / 2]);
          const angle = (5 + (n % T)) * inv[i];
          return mag * ((exact ? angle * 9 * u : 0) + EPS_SC + 3 * u);
        });
      expectWithin(gy, rope_forward_cpu(x, o, 'hf-f32'), bound(x, false), 'y vs hf-f32 angles');
      expectWithin(gdx, rope_backward_cpu(dy, o, 'hf-f32'), bound(dy, false), 'dx vs hf-f32 angles');
      expectWithin(gy, rope_forward_cpu(x, o), bound(x, true), 'y vs float64');
      expectWithin(gdx, rope_backward_cpu(dy, o), bound(dy, true), 'dx vs float64');
      // the scaled table is not the plain one (the test would not see a kernel ignoring it otherwise)
      expect(Array.from(rope_inv_freq(D, 500000, sc))).not.toEqual(Array.from(rope_inv_freq(D, 500000)));
      [tx, tdy, y, dx].forEach((t) => t.free());
      expect(ctx.alloc.liveBytes).toBe(live);
    },
  );

  it("inv_freq is Hugging Face's float32 computation", () => {
    // torch: 1.0 / (10000 ** (torch.arange(0, 64, 2).float() / 64)), values read back from float32.
    const f = rope_inv_freq(64, 10000);
    expect(f.length).toBe(32);
    expect(f[0]).toBe(1);
    expect(f[1]).toBe(Math.fround(1 / Math.fround(10000 ** Math.fround(2 / 64))));
    for (let i = 0; i < 32; i++) expect(Math.abs(f[i] / 10000 ** ((-2 * i) / 64) - 1)).toBeLessThan(2 * u * 2);
  });

  it('rejects shapes that do not fit', async () => {
    const ctx = await gpu();
    const t = Tensor.zeros(ctx, [10, 12]);
    expect(() => rope_forward(t, { heads: 2, headDim: 6, theta: 1e4, seqLen: 3 })).toThrow(/whole number of sequences/);
    expect(() => rope_forward(t, { heads: 4, headDim: 3, theta: 1e4, seqLen: 5 })).toThrow(/even/);
    expect(() => rope_forward(t, { heads: 7, headDim: 4, theta: 1e4, seqLen: 1 })).toThrow(/N·heads·headDim/);
    t.free();
  });
});

describe('rope twin', () => {
  it.each([
    [2, 3, 2, 8, 5],
    [1, 4, 1, 2, 0],
  ])(
    'backward = finite differences of the forward (float64), B = %i, T = %i, H = %i, D = %i, posOffset = %i',
    (B, T, H, D, off) => {
      // RoPE is linear in x, so central differences are exact up to rounding: ~1e-16/1e-6 = 1e-10; bound 1e-8.
      const o: RopeOpts = { heads: H, headDim: D, theta: 10000, seqLen: T, posOffset: off };
      const r = rng(D + T);
      const x = Float64Array.from(r.normal(B * T * H * D)),
        dy = r.normal(B * T * H * D);
      const fd = finiteDiff((xv) => rope_forward_cpu(xv, o).reduce((s, v, i) => s + v * dy[i], 0), x);
      const dx = rope_backward_cpu(dy, o);
      for (let i = 0; i < dx.length; i++) expect(Math.abs(dx[i] - fd[i])).toBeLessThan(1e-8);
    },
  );
});
