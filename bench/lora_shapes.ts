// Timing of lora_forward / lora_backward at the shapes of issue 10 §2 (IN = OUT = 576, r = 8, N = 512 and 4096),
// and of the rank-r products on their own kernels (U on lora_rank; G, dA and dB together on lora_grad) against the
// same products on the general matmul (what lora.ts ran before), interleaved in one process.
// Run: node tools/run.mjs bench/lora_shapes.ts [N ...]   (WEBLORA_DRIVER=lavapipe by default). Prints warm medians
// (and minima) of whole round trips; software-driver figures are for before/after ratios on one machine.
import type { GpuContext } from '../src/gpu/context';
import { calmDawnPolling, createNodeContext, nodeDriver } from '../src/gpu/node';
import { Tensor } from '../src/gpu/tensor';
import { lora_backward, lora_forward, type LoraParams } from '../src/kernels/lora';
import { GradCarry, lora_grad } from '../src/kernels/lora_grad';
import { lora_rank_product } from '../src/kernels/lora_rank';
import { matmulRaw } from '../src/kernels/matmul';
import { timeVariants, type Timing } from './harness';
import { benchRng } from './sections/data';

const [D, RANK, P_DROP, SEED, SCALE] = [576, 8, 0.1, 7, 2];

function print(N: number, ms: Record<string, Timing>, per = 1): void {
  for (const [k, t] of Object.entries(ms))
    console.log(
      `  N=${N} ${k.padEnd(26)} median ${(t.median / per).toFixed(2)} ms, min ${(t.min / per).toFixed(2)} ms`,
    );
}

/** lora_forward / lora_backward as a layer calls them. */
async function layerTimes(ctx: GpuContext, N: number): Promise<void> {
  const R = benchRng(N + D + RANK);
  const x = Tensor.from(ctx, R.uniform(N * D), [N, D]);
  const w0 = Tensor.from(ctx, R.uniform(D * D, -0.05, 0.05), [D, D]);
  const dy = Tensor.from(ctx, R.uniform(N * D), [N, D]);
  const lora: LoraParams = {
    A: Tensor.from(ctx, R.uniform(RANK * D, -0.05, 0.05), [RANK, D]),
    B: Tensor.from(ctx, R.uniform(D * RANK, -0.05, 0.05), [D, RANK]),
    scale: SCALE,
    dropout: P_DROP,
    seed: SEED,
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
  print(N, ms);
  for (const t of [x, w0, dy, lora.A, lora.B, u]) t?.free();
}

/** Each rank-r product, 8 launches per round trip: its own kernel vs the general matmul. */
async function productTimes(ctx: GpuContext, N: number): Promise<void> {
  const R = benchRng(1);
  const [x, dy] = [Tensor.from(ctx, R.uniform(N * D), [N, D]), Tensor.from(ctx, R.uniform(N * D), [N, D])];
  const A = Tensor.from(ctx, R.uniform(RANK * D), [RANK, D]);
  const B = Tensor.from(ctx, R.uniform(D * RANK), [D, RANK]);
  const [u, G, out] = [0, 1, 2].map(() => Tensor.from(ctx, R.uniform(N * RANK), [N, RANK]));
  const [dA, dB] = [Tensor.zeros(ctx, [RANK, D]), Tensor.zeros(ctx, [D, RANK])];
  const carry = new GradCarry(ctx); // each lora_grad's stage 2 flushed on its own: two dispatches
  const inner = 8;
  const rep = (f: () => Tensor | void) => () => {
    const ts: Tensor[] = [];
    for (let i = 0; i < inner; i++) {
      const t = f();
      if (t) ts.push(t);
    }
    return () => ts.forEach((t) => t.free());
  };
  const drop = { seed: SEED, p: P_DROP, dropLd: D };
  const mm = { lda: D, transA: false, transB: false };
  const ms = await timeVariants(
    ctx,
    {
      'U, matmul': rep(() =>
        matmulRaw(
          ctx,
          { ...mm, a: x.buf, b: A.buf, c: out.buf, M: N, N: RANK, K: D, ldb: D, ldc: RANK, transB: true },
          undefined,
          {
            ...drop,
            on: 'a',
          },
        ),
      ),
      'U, lora_rank': rep(() => lora_rank_product(x, A, { dropout: P_DROP, seed: SEED })),
      'G, matmul': rep(() =>
        matmulRaw(ctx, { ...mm, a: dy.buf, b: B.buf, c: out.buf, M: N, N: RANK, K: D, ldb: RANK, ldc: RANK }),
      ),
      'G, lora_rank': rep(() => lora_rank_product(dy, B, { wKR: true })),
      'dB, matmul': rep(() =>
        matmulRaw(ctx, {
          ...mm,
          a: dy.buf,
          b: u.buf,
          c: dB.buf,
          M: D,
          N: RANK,
          K: N,
          ldb: RANK,
          ldc: RANK,
          transA: true,
          alpha: SCALE,
        }),
      ),
      'dA, matmul': rep(() =>
        matmulRaw(
          ctx,
          {
            ...mm,
            a: G.buf,
            b: x.buf,
            c: dA.buf,
            M: RANK,
            N: D,
            K: N,
            lda: RANK,
            ldb: D,
            ldc: D,
            transA: true,
            alpha: SCALE,
          },
          undefined,
          { ...drop, on: 'b' },
        ),
      ),
      'G + dA + dB, lora_grad': rep(() => {
        const o = { scale: SCALE, accumulate: true, dropout: P_DROP, seed: SEED };
        lora_grad(dy, x, u, B, { dA, dB }, o, carry);
        carry.flush();
      }),
    },
    { reps: 7 },
  );
  print(N, ms, inner);
  for (const t of [x, dy, A, B, u, G, out, dA, dB]) t.free();
  carry.free();
}

export async function main(args: string[]): Promise<void> {
  calmDawnPolling();
  const ctx = await createNodeContext();
  const Ns = args.length ? args.map(Number) : [512, 4096];
  console.log(`lora shapes on ${ctx.adapterName} (${nodeDriver()}), IN = OUT = ${D}, r = ${RANK}, dropout ${P_DROP}`);
  for (const N of Ns) await layerTimes(ctx, N);
  console.log('each product alone (per launch):');
  for (const N of Ns) await productTimes(ctx, N);
  await ctx.sync();
  ctx.destroy();
}
