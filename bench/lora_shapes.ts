// Timing of lora_forward / lora_backward at the shapes of issue 10 §2 (IN = OUT = 576, r = 8, N = 512 and 4096).
// Run: node tools/run.mjs bench/lora_shapes.ts [N ...]   (WEBLORA_DRIVER=lavapipe by default). Prints warm medians
// (and minima) of whole round trips; software-driver figures are for before/after ratios on one machine.
import { calmDawnPolling, createNodeContext, nodeDriver } from '../src/gpu/node';
import { Tensor } from '../src/gpu/tensor';
import { lora_backward, lora_forward, type LoraParams } from '../src/kernels/lora';
import { timeVariants } from './harness';
import { benchRng } from './sections/data';

export async function main(args: string[]): Promise<void> {
  calmDawnPolling();
  const ctx = await createNodeContext();
  const Ns = args.length ? args.map(Number) : [512, 4096];
  const [d, r] = [576, 8];
  console.log(`lora shapes on ${ctx.adapterName} (${nodeDriver()}), IN = OUT = ${d}, r = ${r}, dropout 0.1`);
  for (const N of Ns) {
    const R = benchRng(N + d + r);
    const x = Tensor.from(ctx, R.uniform(N * d), [N, d]);
    const w0 = Tensor.from(ctx, R.uniform(d * d, -0.05, 0.05), [d, d]);
    const dy = Tensor.from(ctx, R.uniform(N * d), [N, d]);
    const lora: LoraParams = {
      A: Tensor.from(ctx, R.uniform(r * d, -0.05, 0.05), [r, d]),
      B: Tensor.from(ctx, R.uniform(d * r, -0.05, 0.05), [d, r]),
      scale: 2,
      dropout: 0.1,
      seed: 7,
    };
    const { y, u } = lora_forward(x, w0, null, lora);
    y.free();
    const free =
      (...ts: (Tensor | null)[]) =>
      () =>
        ts.forEach((t) => t?.free());
    const ms = await timeVariants(
      ctx,
      {
        'forward, plain x·W0ᵀ': () => free(lora_forward(x, w0, null, null).y),
        'forward, lora': () => {
          const f = lora_forward(x, w0, null, lora);
          return free(f.y, f.u);
        },
        'backward, dA dB only': () => {
          const g = lora_backward(dy, x, u, w0, lora, { needDx: false });
          return free(g.dA, g.dB, g.dx);
        },
        'backward, dA dB dx': () => {
          const g = lora_backward(dy, x, u, w0, lora, { needDx: true });
          return free(g.dA, g.dB, g.dx);
        },
      },
      { reps: N > 1024 ? 3 : 7 },
    );
    for (const [k, t] of Object.entries(ms))
      console.log(`  N=${N} ${k.padEnd(24)} median ${t.median.toFixed(1)} ms, min ${t.min.toFixed(1)} ms`);
    for (const t of [x, w0, dy, lora.A, lora.B, u]) t?.free();
  }
  await ctx.sync();
  ctx.destroy();
}
