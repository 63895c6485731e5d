// Attention forward + backward time at SmolLM2-135M's head shapes (9 query heads, 3 kv heads, head_dim 64),
// B 1-2 x T 128/512, both variants (tiled, rowwise) interleaved in one run, on the driver WEBLORA_DRIVER
// picks. Standalone: node tools/run.mjs bench/attention.ts [reps] [B:T ...]
// Prints warm medians (and minima) of whole round trips.
import { createNodeContext } from '../src/gpu/node';
import { Tensor } from '../src/gpu/tensor';
import {
  ATTENTION_VARIANTS,
  attention_backward,
  attention_forward,
  type AttentionOpts,
} from '../src/kernels/attention';
import { timeVariants } from './harness';
import { benchRng } from './sections/data';

const SHAPES = [
  { B: 1, T: 128 },
  { B: 2, T: 128 },
  { B: 1, T: 512 },
  { B: 2, T: 512 },
];

export async function main(args: string[]) {
  const reps = Number(args[0] ?? 5);
  const ctx = await createNodeContext();
  const Hq = 9,
    Hkv = 3,
    D = 64;
  console.log(`attention fwd+bwd, Hq ${Hq}, Hkv ${Hkv}, D ${D}, adapter ${ctx.adapterName}, ${reps} reps`);
  const shapes = args.length > 1 ? args.slice(1).map((a) => ({ B: +a.split(':')[0], T: +a.split(':')[1] })) : SHAPES;
  for (const { B, T } of shapes) {
    const R = benchRng(B * T);
    const opts: AttentionOpts = { heads: Hq, kvHeads: Hkv, headDim: D, seqLen: T };
    const q = Tensor.from(ctx, R.uniform(B * T * Hq * D), [B * T, Hq * D]);
    const k = Tensor.from(ctx, R.uniform(B * T * Hkv * D), [B * T, Hkv * D]);
    const v = Tensor.from(ctx, R.uniform(B * T * Hkv * D), [B * T, Hkv * D]);
    const dout = Tensor.from(ctx, R.uniform(B * T * Hq * D), [B * T, Hq * D]);
    const t = await timeVariants(
      ctx,
      Object.fromEntries(
        ATTENTION_VARIANTS.flatMap((variant) => {
          const o = { ...opts, variant };
          return [
            [
              `${variant} forward`,
              () => {
                const r = attention_forward(q, k, v, o);
                return () => [r.o, r.lse].forEach((x) => x.free());
              },
            ],
            [
              `${variant} forward+backward`,
              () => {
                const r = attention_forward(q, k, v, o);
                const g = attention_backward(dout, q, k, v, r.o, r.lse, o);
                return () => [r.o, r.lse, g.dq, g.dk, g.dv].forEach((x) => x.free());
              },
            ],
          ];
        }),
      ),
      { reps, warmup: 1 },
    );
    for (const [n, x] of Object.entries(t))
      console.log(
        `B ${B} T ${String(T).padStart(3)}  ${n.padEnd(25)} ${x.median.toFixed(1)} ms (min ${x.min.toFixed(1)})`,
      );
    [q, k, v, dout].forEach((x) => x.free());
  }
  ctx.destroy();
}
