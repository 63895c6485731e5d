// normLinears and gatedLinear make a row op's output inside the U dispatch of the linears reading it
// (src/kernels/lora_rank.ts lora_rank_norm / lora_rank_glu) and record the same tape ops as the two calls they
// replace. Here each against those two calls, with dropout on and two micro-batches adding into persistent
// gradients: gatedLinear's h and U are the unfused kernels' bit for bit (the same lib functions, the same rank
// loop and tile), so its outputs and every gradient are equal; normLinears' rstd sums its squares in another
// order, so its outputs and gradients agree to f32 rounding (1e-5 of the largest value: a missing mask, a wrong
// rstd or a dropped term is O(1)).
import { describe, expect, it } from 'vitest';
import { add, gatedLinear, geglu, linear, linears, normLinears, rmsnorm, swiglu } from '../../src/autograd/ops';
import type { LinearSpec } from '../../src/autograd/ops';
import { Tape } from '../../src/autograd/tape';
import type { GpuContext } from '../../src/gpu/context';
import { Tensor } from '../../src/gpu/tensor';
import { expectClose, gpu, rng } from '../helpers/gpu';

const N = 37,
  C = 100,
  OUT = 40,
  r = 4,
  p = 0.2;

/** A's of `count` linears as views of one buffer at 256-byte offsets (the flat LoRA layout), B's alike, each with
 * its own persistent gradients. */
function adapters(ctx: GpuContext, count: number, IN: number, OUTs: number, seed: number) {
  const R = rng(seed);
  const slot = (n: number) => Math.ceil(n / 64) * 64;
  const [sa, sb] = [slot(r * IN), slot(OUTs * r)];
  const A = Tensor.from(ctx, R.uniform(count * sa, -0.3, 0.3), [count * sa]);
  const B = Tensor.from(ctx, R.uniform(count * sb, -0.3, 0.3), [count * sb]);
  const gA = Tensor.zeros(ctx, [count * sa]);
  const gB = Tensor.zeros(ctx, [count * sb]);
  const views = (t: Tensor, s: number, i: number, shape: number[]) => Tensor.view(ctx, t.base, 4 * s * i, shape);
  const w0s = Array.from({ length: count }, () => Tensor.from(ctx, R.uniform(OUTs * IN, -0.2, 0.2), [OUTs, IN]));
  const specs = (tape: Tape): LinearSpec[] =>
    w0s.map((w0, i) => ({
      w: { w0, bias: null, transposed: false },
      lora: {
        A: tape.param(views(A, sa, i, [r, IN]), views(gA, sa, i, [r, IN]), `A${i}`),
        B: tape.param(views(B, sb, i, [OUTs, r]), views(gB, sb, i, [OUTs, r]), `B${i}`),
        scale: 1.5,
        dropout: p,
        seed: 1000 + 7 * i,
      },
      name: `lin${i}`,
    }));
  return { specs, grads: [gA, gB], free: () => [A, B, gA, gB, ...w0s].forEach((t) => t.free()) };
}

/** Two micro-batches through `block` (input Vars from `inputs`, out (N, OUT)), backward from a random dOut each;
 * returns the outputs, the inputs' gradients and the persistent gradients after both, and the kernels it ran. */
async function run(
  ctx: GpuContext,
  inputs: Float32Array[][],
  block: (tape: Tape, xs: ReturnType<Tape['leaf']>[]) => ReturnType<Tape['leaf']>,
  persistent: Tensor[],
) {
  const got: Float32Array[] = [];
  const rec = await ctx.record(() => steps(ctx, inputs, block, persistent, got));
  return { got, kernels: new Set(rec.dispatches.map((d) => d.name)) };
}

async function steps(
  ctx: GpuContext,
  inputs: Float32Array[][],
  block: (tape: Tape, xs: ReturnType<Tape['leaf']>[]) => ReturnType<Tape['leaf']>,
  persistent: Tensor[],
  got: Float32Array[],
): Promise<void> {
  for (const t of persistent) t.write(new Float32Array(t.numel));
  for (const [mb, arrays] of inputs.entries()) {
    const tape = new Tape();
    const ts = arrays.map((a) => Tensor.from(ctx, a, [N, a.length / N]));
    const xs = ts.map((t, i) => tape.leaf(t, `in${i}`, true));
    const out = block(tape, xs);
    got.push(await out.t.read());
    const [o] = tape.endForward([out]);
    const dOut = Tensor.from(ctx, rng(77 + mb).uniform(o.numel), o.shape);
    const gs = tape.backward(out, dOut, xs);
    for (const g of gs) {
      got.push(await g!.read());
      g!.free();
    }
    o.free();
    ts.forEach((t) => t.free());
  }
  for (const t of persistent) got.push(await t.read());
}

describe('fused row ops (normLinears, gatedLinear) against the two ops they replace', () => {
  it('normLinears: q, k, v of rmsnorm(x), dropout on, two micro-batches', async () => {
    const ctx = await gpu();
    await ctx.sync();
    const live = ctx.alloc.liveBytes;
    const ad = adapters(ctx, 3, C, OUT, 5);
    const g = Tensor.from(ctx, rng(9).uniform(C, 0.5, 1.5), [C]);
    const norm = { w: g, eps: 1e-5, name: 'n1' };
    const inputs = [[rng(1).normal(N * C, 2)], [rng(2).normal(N * C, 2)]];
    const sum = (tape: Tape, [q, k, v]: ReturnType<Tape['leaf']>[]) => add(tape, add(tape, q, k, 'qk'), v, 'qkv');
    const { got: fused, kernels } = await run(
      ctx,
      inputs,
      (tape, [x]) => sum(tape, normLinears(tape, x, norm, ad.specs(tape))),
      ad.grads,
    );
    expect(kernels.has('lora_rank_norm') && !kernels.has('rmsnorm_forward') && !kernels.has('lora_rank')).toBe(true);
    const { got: plain } = await run(
      ctx,
      inputs,
      (tape, [x]) => sum(tape, linears(tape, rmsnorm(tape, x, g, 1e-5, 'n1'), ad.specs(tape))),
      ad.grads,
    );
    expect(fused.length).toBe(plain.length);
    fused.forEach((f, i) => {
      const m = Math.max(...plain[i].map(Math.abs));
      expect(m).toBeGreaterThan(0);
      expectClose(f, plain[i], 1e-5 * m, 0, `tensor ${i}`);
    });
    ad.free();
    g.free();
    await ctx.sync();
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it.each(['swiglu', 'geglu'] as const)(
    'gatedLinear: down(%s(gate, up)) + residual, dropout on, two micro-batches: bit for bit',
    async (kind) => {
      const ctx = await gpu();
      await ctx.sync();
      const live = ctx.alloc.liveBytes;
      const F = 77;
      const ad = adapters(ctx, 1, F, OUT, 6);
      const R = rng(3);
      const inputs = [0, 1].map(() => [R.uniform(N * F, -2, 2), R.uniform(N * F, -2, 2), R.uniform(N * OUT)]);
      const act = kind === 'swiglu' ? swiglu : geglu;
      const { got: fused, kernels } = await run(
        ctx,
        inputs,
        (tape, [gate, up, res]) => gatedLinear(tape, kind, gate, up, 'act', ad.specs(tape)[0], res),
        ad.grads,
      );
      expect(kernels.has('lora_rank_glu') && !kernels.has(`${kind}_forward`) && !kernels.has('lora_rank')).toBe(true);
      const { got: plain } = await run(
        ctx,
        inputs,
        (tape, [gate, up, res]) => {
          const s = ad.specs(tape)[0];
          return linear(tape, act(tape, gate, up, 'act'), s.w, s.lora, s.name, res);
        },
        ad.grads,
      );
      expect(fused.length).toBe(plain.length);
      fused.forEach((f, i) => expect(f, `tensor ${i}`).toEqual(plain[i]));
      expect(Math.max(...fused[fused.length - 2].map(Math.abs))).toBeGreaterThan(0); // dA arrived
      ad.free();
      await ctx.sync();
      expect(ctx.alloc.liveBytes).toBe(live);
    },
  );
});
