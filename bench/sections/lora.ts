// Fused LoRA vs the plain frozen linear and vs the same maths as separate matmuls, at realistic shapes:
// N = 256 tokens through a d x d projection (GPT-2 small d = 768, SmolLM-135M d = 576), r = 8 and 64.
import type { GpuContext } from '../../src/gpu/context';
import { Tensor } from '../../src/gpu/tensor';
import { add_forward } from '../../src/kernels/add';
import { lora_backward, lora_forward, type LoraParams } from '../../src/kernels/lora';
import { matmul, matmulRaw } from '../../src/kernels/matmul';
import { timeVariants, type Row, type Section } from '../harness';
import { benchRng } from './data';

const SHAPES = [{ N: 256, d: 768 }, { N: 256, d: 576 }];
const RANKS = [8, 64];

interface Layer { x: Tensor; w0: Tensor; bias: Tensor; dy: Tensor; lora: LoraParams; u: Tensor; free(): void }

function layer(ctx: GpuContext, N: number, d: number, r: number): Layer {
  const R = benchRng(N + d + r);
  const x = Tensor.from(ctx, R.uniform(N * d), [N, d]);
  const w0 = Tensor.from(ctx, R.uniform(d * d, -0.05, 0.05), [d, d]);
  const bias = Tensor.from(ctx, R.uniform(d), [d]);
  const dy = Tensor.from(ctx, R.uniform(N * d), [N, d]);
  const lora: LoraParams = { A: Tensor.from(ctx, R.uniform(r * d, -0.05, 0.05), [r, d]), B: Tensor.from(ctx, R.uniform(d * r, -0.05, 0.05), [d, r]), scale: 2 };
  const { y, u } = lora_forward(x, w0, bias, lora);
  y.free();
  return { x, w0, bias, dy, lora, u: u!, free: () => [x, w0, bias, dy, lora.A, lora.B, u!].forEach((t) => t.free()) };
}

const frees = (...ts: (Tensor | null)[]) => () => ts.forEach((t) => t?.free());

export const loraForwardSection: Section = {
  name: 'lora-forward',
  title: 'Fused LoRA forward y = x·W0ᵀ + b + s·(x·Aᵀ)·Bᵀ vs the plain x·W0ᵀ + b (time ratio, lower is better; aim ≤ 1.1 at r = 8)',
  async run(ctx) {
    const rows: Row[] = [];
    for (const { N, d } of SHAPES) for (const r of RANKS) {
      const L = layer(ctx, N, d, r);
      const ms = await timeVariants(ctx, {
        plain: () => frees(lora_forward(L.x, L.w0, L.bias, null).y),
        fused: () => {
          const { y, u } = lora_forward(L.x, L.w0, L.bias, L.lora);
          return frees(y, u);
        },
        unfused: () => {
          // y = x·W0ᵀ + b; u = x·Aᵀ; y += s·u·Bᵀ: three launches, y written twice
          const y = Tensor.empty(ctx, [N, d]);
          matmulRaw(ctx, { a: L.x.buf, b: L.w0.buf, c: y.buf, bias: L.bias.buf, M: N, N: d, K: d, lda: d, ldb: d, ldc: d, transA: false, transB: true });
          const u = matmul(L.x, L.lora.A, { transB: true });
          matmul(u, L.lora.B, { transB: true, alpha: L.lora.scale, accumulate: true, out: y });
          return frees(y, u);
        },
      }, { reps: 7 });
      const tag = `N=${N} ${d}x${d} r=${r}`;
      rows.push({ name: `fused / plain, ${tag}`, value: ms.fused / ms.plain, unit: 'x', note: `plain ${ms.plain.toFixed(1)} ms, fused ${ms.fused.toFixed(1)} ms` });
      rows.push({ name: `unfused / plain, ${tag}`, value: ms.unfused / ms.plain, unit: 'x', note: `unfused ${ms.unfused.toFixed(1)} ms` });
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
    for (const { N, d } of SHAPES) for (const r of RANKS) {
      const L = layer(ctx, N, d, r);
      const s = L.lora.scale;
      const ms = await timeVariants(ctx, {
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
      }, { reps: 7 });
      const tag = `N=${N} ${d}x${d} r=${r}`;
      rows.push({ name: `fused / unfused, ${tag}`, value: ms.fused / ms.unfused, unit: 'x', note: `fused ${ms.fused.toFixed(1)} ms, unfused ${ms.unfused.toFixed(1)} ms` });
      rows.push({ name: `fused / (dy·W0 alone), ${tag}`, value: ms.fused / ms['dx only'], unit: 'x', note: `dy·W0 ${ms['dx only'].toFixed(1)} ms` });
      L.free();
    }
    return rows;
  },
};
