import { describe, expect, it } from 'vitest';
import { lora_backward, lora_forward, type LoraParams } from '../../src/kernels/lora';
import { dropout_cpu, lora_backward_cpu, lora_forward_cpu, type LoraCpu } from '../../src/kernels/lora.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { GpuError } from '../../src/gpu/context';
import { fromF16, toF16 } from '../../src/gpu/f16';
import { expectSumBounded, finiteDiff, gpu, rng } from '../helpers/gpu';

const abs = (x: ArrayLike<number>) => Float64Array.from(x, Math.abs);

// The bound (expectSumBounded, terms = N + IN + OUT + r): |got - want| <= (N + IN + OUT + r + 4)·u·mag per
// element, mag being the same computation on absolute values:
// every output is at most two chained f32 dot products (e.g. dA: G = dy·B over OUT terms, then N terms), and
// K chained f32 roundings cost at most ≈K·u of Σ|terms| (Higham's γ_K). A wrong, missing or unmasked term is O(1).

interface Case {
  N: number;
  IN: number;
  OUT: number;
  r: number;
  bias: boolean;
  p: number;
  w0T: boolean;
  f16?: boolean;
  plain?: boolean;
}
const CASES: Case[] = [
  { N: 7, IN: 33, OUT: 100, r: 1, bias: true, p: 0, w0T: false },
  { N: 33, IN: 100, OUT: 7, r: 8, bias: false, p: 0.25, w0T: true },
  { N: 100, IN: 257, OUT: 33, r: 8, bias: true, p: 0.1, w0T: false },
  { N: 1, IN: 7, OUT: 257, r: 8, bias: true, p: 0.5, w0T: true },
  { N: 33, IN: 64, OUT: 100, r: 64, bias: true, p: 0.1, w0T: false },
  { N: 100, IN: 33, OUT: 7, r: 0, bias: true, p: 0, w0T: true, plain: true },
];

async function runCase(c: Case) {
  const ctx = await gpu();
  await ctx.sync(); // the open batch holds a uniform buffer; measure with none open
  const live = ctx.alloc.liveBytes;
  const { N, IN, OUT, r } = c;
  const R = rng(N * 7 + IN * 3 + OUT + r);
  const x = R.uniform(N * IN),
    dy = R.uniform(N * OUT),
    bias = c.bias ? R.uniform(OUT) : null;
  let w0: Float32Array = R.uniform(OUT * IN);
  if (c.f16) w0 = fromF16(toF16(w0)); // the twin sees exactly the weights the GPU widens from f16
  const A = R.uniform(r * IN),
    B = R.uniform(OUT * r);
  const d: LoraCpu = { N, IN, OUT, r, scale: 1.7, p: c.p, seed: 1234 + r, w0T: c.w0T };
  const tx = Tensor.from(ctx, x, [N, IN]),
    tdy = Tensor.from(ctx, dy, [N, OUT]);
  const tw0 = Tensor.from(ctx, w0, c.w0T ? [IN, OUT] : [OUT, IN], 'w0', c.f16 ? 'f16' : 'f32');
  const tb = bias ? Tensor.from(ctx, bias, [OUT]) : null;
  const tA = c.plain ? null : Tensor.from(ctx, A, [r, IN]),
    tB = c.plain ? null : Tensor.from(ctx, B, [OUT, r]);
  const lora: LoraParams | null = c.plain ? null : { A: tA!, B: tB!, scale: d.scale, dropout: c.p, seed: d.seed };
  const opts = { w0Transposed: c.w0T };

  const { y, u } = lora_forward(tx, tw0, tb, lora, opts);
  const Ac = c.plain ? null : A,
    Bc = c.plain ? null : B;
  const want = lora_forward_cpu(x, w0, bias, Ac, Bc, d);
  const mag = lora_forward_cpu(abs(x), abs(w0), bias && abs(bias), Ac && abs(Ac), Bc && abs(Bc), {
    ...d,
    scale: Math.abs(d.scale),
  });
  const terms = N + IN + OUT + r;
  expectSumBounded(await y.read(), want.y, mag.y, terms, 'y');
  if (c.plain) expect(u).toBeNull();
  else expectSumBounded(await u!.read(), want.u, mag.u, terms, 'u'); // with p > 0 this checks the GPU mask = the twin's

  const g = lora_backward(tdy, tx, u, tw0, lora, { ...opts, needDx: true });
  const gw = lora_backward_cpu(dy, x, w0, Ac, Bc, d);
  const gm = lora_backward_cpu(abs(dy), abs(x), abs(w0), Ac && abs(Ac), Bc && abs(Bc), {
    ...d,
    scale: Math.abs(d.scale),
  });
  expectSumBounded(await g.dx!.read(), gw.dx, gm.dx, terms, 'dx');
  if (c.plain) {
    expect(g.dA).toBeNull();
    expect(g.dB).toBeNull();
  } else {
    expectSumBounded(await g.dA!.read(), gw.dA, gm.dA, terms, 'dA');
    expectSumBounded(await g.dB!.read(), gw.dB, gm.dB, terms, 'dB');
  }
  const g2 = lora_backward(tdy, tx, u, tw0, lora, { ...opts, needDx: false });
  expect(g2.dx).toBeNull();

  for (const t of [tx, tdy, tw0, tb, tA, tB, y, u, g.dA, g.dB, g.dx, g2.dA, g2.dB]) t?.free();
  await ctx.sync();
  expect(ctx.alloc.liveBytes).toBe(live); // no buffer kept inside the ops
}

describe('lora', () => {
  it.each(CASES)('forward and backward match the twins: %o', runCase);

  it('f16 W0: computed on adapters with shader-f16 (lavapipe), refused clearly without (SwiftShader)', async () => {
    const ctx = await gpu();
    const driver = process.env.WEBLORA_DRIVER;
    if (driver === 'lavapipe') expect(ctx.hasF16).toBe(true);
    if (driver === 'swiftshader') expect(ctx.hasF16).toBe(false);
    if (ctx.hasF16) {
      await runCase({ N: 33, IN: 100, OUT: 257, r: 8, bias: true, p: 0.1, w0T: false, f16: true });
      await runCase({ N: 7, IN: 257, OUT: 33, r: 1, bias: false, p: 0, w0T: true, f16: true });
    } else {
      await ctx.sync();
      const live = ctx.alloc.liveBytes;
      const tx = Tensor.zeros(ctx, [3, 4]),
        tw0 = Tensor.from(ctx, new Float32Array(20), [5, 4], 'w0', 'f16');
      expect(() => lora_forward(tx, tw0, null, null)).toThrow(GpuError);
      expect(() => lora_forward(tx, tw0, null, null)).toThrow(/shader-f16/);
      tx.free();
      tw0.free();
      expect(ctx.alloc.liveBytes).toBe(live);
    }
  });

  it('backward twin = finite differences of sum(dy ⊙ y) in float64 (with dropout, both W0 layouts)', () => {
    for (const w0T of [false, true]) {
      const d: LoraCpu = { N: 3, IN: 5, OUT: 4, r: 2, scale: 0.8, p: 0.3, seed: 77, w0T };
      const R = rng(w0T ? 2 : 1);
      const x = Float64Array.from(R.uniform(d.N * d.IN)),
        w0 = R.uniform(d.OUT * d.IN),
        bias = R.uniform(d.OUT);
      const A = Float64Array.from(R.uniform(d.r * d.IN)),
        B = Float64Array.from(R.uniform(d.OUT * d.r)),
        dy = R.uniform(d.N * d.OUT);
      expect(dropout_cpu(x, d).some((v) => v === 0)).toBe(true); // the mask is really on
      const loss = (xx: ArrayLike<number>, AA: ArrayLike<number>, BB: ArrayLike<number>) =>
        lora_forward_cpu(xx, w0, bias, AA, BB, d).y.reduce((s, v, i) => s + v * dy[i], 0);
      const g = lora_backward_cpu(dy, x, w0, A, B, d);
      // the loss is bilinear in each argument, so central differences are exact up to float64 rounding (~1e-10)
      const close = (got: Float64Array, want: Float64Array) =>
        got.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThan(1e-8));
      close(
        g.dx,
        finiteDiff((v) => loss(v, A, B), x),
      );
      close(
        g.dA,
        finiteDiff((v) => loss(x, v, B), A),
      );
      close(
        g.dB,
        finiteDiff((v) => loss(x, A, v), B),
      );
    }
  });
});
