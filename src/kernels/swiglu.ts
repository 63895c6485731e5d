// SwiGLU gating of the Llama MLP, h = silu(gate) · up, and its backward for both inputs.
// Shaders: shaders/swiglu_{forward,backward}.wgsl. CPU twin: swiglu.cpu.ts.
import { grid1d } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { elementwiseCost } from './cost';

function check(what: string, ...ts: Tensor[]): number {
  const n = ts[0].numel;
  for (const t of ts) {
    if (t.numel !== n) throw new Error(`${what}: shapes differ ([${ts.map((t) => `[${t.shape}]`).join(', ')}])`);
    if (t.dtype !== 'f32') throw new Error(`${what}: tensors must be f32, got ${t.dtype}`);
  }
  return n;
}

/** gate, up are (N, F); returns h = silu(gate) · up, (N, F). */
export function swiglu_forward(gate: Tensor, up: Tensor): Tensor {
  const n = check('swiglu_forward', gate, up);
  const h = Tensor.empty(gate.ctx, gate.shape, 'swiglu.h');
  gate.ctx.dispatch('swiglu_forward', {
    bindings: [gate.buf, up.buf, h.buf],
    u32: [n],
    workgroups: grid1d(n, 256),
    cost: elementwiseCost(n, 5, 2, 1),
  });
  return h;
}

/** dh, gate, up are (N, F); returns dgate = dh · up · silu'(gate) and dup = dh · silu(gate), (N, F) each. */
export function swiglu_backward(dh: Tensor, gate: Tensor, up: Tensor): { dgate: Tensor; dup: Tensor } {
  const n = check('swiglu_backward', dh, gate, up);
  const ctx = gate.ctx;
  const dgate = Tensor.empty(ctx, gate.shape, 'swiglu.dgate');
  const dup = Tensor.empty(ctx, up.shape, 'swiglu.dup');
  ctx.dispatch('swiglu_backward', {
    bindings: [dh.buf, gate.buf, up.buf, dgate.buf, dup.buf],
    u32: [n],
    workgroups: grid1d(n, 256),
    cost: elementwiseCost(n, 10, 3, 2), // dgate = dh·up·silu'(gate), dup = dh·silu(gate)
  });
  return { dgate, dup };
}
