// Our side of the peer comparison: `matmul` (src/kernels/matmul.ts) and the fused `lora_forward` +
// `lora_backward` (src/kernels/lora.ts). Synchronised by ctx.sync(): flush the recorded batch, then
// device.queue.onSubmittedWorkDone() (and the error scopes it pushed), exactly as timeVariants does.
import type { GpuContext } from '../../src/gpu/context';
import { Tensor } from '../../src/gpu/tensor';
import { lora_backward, lora_forward, type LoraParams } from '../../src/kernels/lora';
import { matmul } from '../../src/kernels/matmul';
import type { LoraData, Peer, Workload } from './peer';

type Outs = Tensor[];

function workload(ctx: GpuContext, inputs: Tensor[], run: () => Outs): Workload<Outs> {
  return {
    run,
    wait: () => ctx.sync(),
    read: (outs) => Promise.all(outs.map((t) => t.read())),
    release: (outs) => outs.forEach((t) => t.free()),
    free: () => inputs.forEach((t) => t.free()),
  };
}

export function oursPeer(ctx: GpuContext): Peer {
  return {
    id: 'ours',
    name: 'ours',
    syncs: 'ctx.sync(): submit the recorded batch, await queue.onSubmittedWorkDone()',
    idle: () => ctx.sync(),
    matmul(a, b, n) {
      const ta = Tensor.from(ctx, a, [n, n]),
        tb = Tensor.from(ctx, b, [n, n]);
      return workload(ctx, [ta, tb], () => [matmul(ta, tb)]);
    },
    loraStep(L: LoraData, needDx: boolean) {
      const { N, d, r } = L;
      const x = Tensor.from(ctx, L.x, [N, d]),
        w0 = Tensor.from(ctx, L.w0, [d, d]),
        bias = Tensor.from(ctx, L.bias, [d]);
      const dy = Tensor.from(ctx, L.dy, [N, d]);
      const lora: LoraParams = { A: Tensor.from(ctx, L.A, [r, d]), B: Tensor.from(ctx, L.B, [d, r]), scale: L.scale };
      const step = () => {
        const { y, u } = lora_forward(x, w0, bias, lora);
        const g = lora_backward(dy, x, u, w0, lora, { needDx });
        u!.free(); // freed after recording: reused only by later-recorded work
        return [y, g.dA!, g.dB!, ...(needDx ? [g.dx!] : [])];
      };
      return { fused: workload(ctx, [x, w0, bias, dy, lora.A, lora.B], step) };
    },
  };
}
