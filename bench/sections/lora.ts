// Fused LoRA vs the plain frozen linear and vs the same maths as separate matmuls, at realistic shapes:
// N = 256 tokens through a d x d projection (GPT-2 small d = 768, SmolLM-135M d = 576), r = 8 and 64.
import type { GpuContext } from '../../src/gpu/context';
import { Tensor } from '../../src/gpu/tensor';
import { add_forward } from '../../src/kernels/add';
import { lora_backward, lora_forward, type LoraParams } from '../../src/kernels/lora';
import { matmul, matmulRaw } from '../../src/kernels/matmul';
import { timeVariants, type Row, type Section, type Timing } from '../harness';
import { benchRng } from './data';

const SHAPES = [
  { N: 256, d: 768 },
  { N: 256, d: 576 },
];
const RANKS = [8, 64];

interface Layer {
  x: Tensor;
  w0: Tensor;
  bias: Tensor;
  dy: Tensor;
  lora: LoraParams;
  u: Tensor;
  free(): void;
}

function layer(ctx: GpuContext, N: number, d: number, r: number): Layer {
  const R = benchRng(N + d + r);
  const x = Tensor.from(ctx, R.uniform(N * d), [N, d]);
  const w0 = Tensor.from(ctx, R.uniform(d * d, -0.05, 0.05), [d, d]);
  const bias = Tensor.from(ctx, R.uniform(d), [d]);
  const dy = Tensor.from(ctx, R.uniform(N * d), [N, d]);
  const lora: LoraParams = {
    A: Tensor.from(ctx, R.uniform(r * d, -0.05, 0.05), [r, d]),
    B: Tensor.from(ctx, R.uniform(d * r, -0.05, 0.05), [d, r]),
    scale: 2,
  };
  const { y, u } = lora_forward(x, w0, bias, lora);
  y.free();
  return { x, w0, bias, dy, lora, u: u!, free: () => [x, w0, bias, dy, lora.A, lora.B, u!].forEach((t) => t.free()) };
}

/** Row of a time ratio a / b: the ratio of medians, with the ratio of minima and the times in the note. */
function ratio(name: string, a: Timing, b: Timing, what: [string, string]): Row {
  return {
    name,
    value: a.median / b.median,
    unit: 'x',
    note: `${what[0]} ${a.median.toFixed(1)} ms, ${what[1]} ${b.median.toFixed(1)} ms; ratio of minima ${(a.min / b.min).toFixed(2)}`,
  };
}

const frees =
  (...ts: (Tensor | null)[]) =>
  () =>
    ts.forEach((t) => t?.free());

export const loraForwardSection: Section = {
  name: 'lora-forward',
  title:
    'Fused LoRA forward y = x·W0ᵀ + b + s·(x·Aᵀ)·Bᵀ vs the plain x·W0ᵀ + b (time ratio, lower is better; aim ≤ 1.1 at r = 8)',
  async run(ctx) {
    const rows: Row[] = [];
    for (const { N, d } of SHAPES)
      for (const r of RANKS) {
        const L = layer(ctx, N, d, r);
        const ms = await timeVariants(
          ctx,
          {
            plain: () => frees(lora_forward(L.x, L.w0, L.bias, null).y),
            fused: () => {
              const { y, u } = lora_forward(L.x, L.w0, L.bias, L.lora);
              return frees(y, u);
            },
            unfused: () => {
              // y = x·W0ᵀ + b; u = x·Aᵀ; y += s·u·Bᵀ: three launches, y written twice
              const y = Tensor.empty(ctx, [N, d]);
              matmulRaw(ctx, {
                a: L.x.buf,
                b: L.w0.buf,
                c: y.buf,
                bias: L.bias.buf,
                M: N,
                N: d,
                K: d,
                lda: d,
                ldb: d,
                ldc: d,
                transA: false,
                transB: true,
              });
              const u = matmul(L.x, L.lora.A, { transB: true });
              matmul(u, L.lora.B, { transB: true, alpha: L.lora.scale, accumulate: true, out: y });
              return frees(y, u);
            },
          },
          { reps: 11 },
        );
        const tag = `N=${N} ${d}x${d} r=${r}`;
        rows.push(ratio(`fused / plain, ${tag}`, ms.fused, ms.plain, ['fused', 'plain']));
        rows.push(ratio(`unfused / plain, ${tag}`, ms.unfused, ms.plain, ['unfused', 'plain']));
        L.free();
      }
    if (ctx.hasF16) {
      // the same with f16 W0 (r = 8, d = 768), fused vs the plain f16 linear
      const [N, d, r] = [256, 768, 8];
      const L = layer(ctx, N, d, r);
      const w16 = Tensor.from(ctx, benchRng(16).uniform(d * d, -0.05, 0.05), [d, d], 'w0.f16', 'f16');
      const ms = await timeVariants(
        ctx,
        {
          plain: () => frees(lora_forward(L.x, w16, L.bias, null).y),
          fused: () => {
            const { y, u } = lora_forward(L.x, w16, L.bias, L.lora);
            return frees(y, u);
          },
        },
        { reps: 11 },
      );
      rows.push(ratio(`fused / plain, f16 W0, N=${N} ${d}x${d} r=${r}`, ms.fused, ms.plain, ['fused', 'plain']));
      w16.free();
      L.free();
    }
    return rows;
  },
};

export const loraBackwardSection: Section = {
  name: 'lora-backward',
  title: 'Fused LoRA backward (dA, dB, dx) vs the same maths as separate matmuls + add (time ratio, lower is better)',
  async run(ctx) {
    const rows: Row[] = [];
    for (const { N, d } of SHAPES)
      for (const r of RANKS) {
        const L = layer(ctx, N, d, r);
        const s = L.lora.scale;
        const ms = await timeVariants(
          ctx,
          {
            'dx only': () => frees(matmul(L.dy, L.w0)),
            fused: () => {
              const g = lora_backward(L.dy, L.x, L.u, L.w0, L.lora, { needDx: true });
              return frees(g.dA, g.dB, g.dx);
            },
            unfused: () => {
              const G = matmul(L.dy, L.lora.B); // (N, r)
              const dB = matmul(L.dy, L.u, { transA: true, alpha: s });
              const dA = matmul(G, L.x, { transA: true, alpha: s });
              const dx0 = matmul(L.dy, L.w0);
              const T = matmul(G, L.lora.A, { alpha: s }); // (N, IN), materialised
              const dx = add_forward(dx0, T);
              return frees(G, dB, dA, dx0, T, dx);
            },
          },
          { reps: 11 },
        );
        const tag = `N=${N} ${d}x${d} r=${r}`;
        rows.push(ratio(`fused / unfused, ${tag}`, ms.fused, ms.unfused, ['fused', 'unfused']));
        rows.push(ratio(`fused / (dy·W0 alone), ${tag}`, ms.fused, ms['dx only'], ['fused', 'dy·W0']));
        L.free();
      }
    return rows;
  },
};
