// GeGLU gating of Gemma's MLP, h = gelu(gate) · up with GELU's tanh approximation (gelu_pytorch_tanh), and its
// backward for both inputs. Shaders: shaders/geglu_{forward,backward}.wgsl (GELU itself: shaders/lib_gelu.wgsl).
// CPU twin: geglu.cpu.ts.
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

/** gate, up are (N, F); returns h = gelu(gate) · up, (N, F). */
export function geglu_forward(gate: Tensor, up: Tensor): Tensor {
  const n = check('geglu_forward', gate, up);
  const h = Tensor.empty(gate.ctx, gate.shape, 'geglu.h');
  gate.ctx.dispatch('geglu_forward', {
    bindings: [gate.buf, up.buf, h.buf],
    u32: [n],
    workgroups: grid1d(n, 256),
    cost: elementwiseCost(n, 10, 2, 1),
  });
  return h;
}

/** dh, gate, up are (N, F); returns dgate = dh · up · gelu'(gate) and dup = dh · gelu(gate), (N, F) each. */
export function geglu_backward(dh: Tensor, gate: Tensor, up: Tensor): { dgate: Tensor; dup: Tensor } {
  const n = check('geglu_backward', dh, gate, up);
  const ctx = gate.ctx;
  const dgate = Tensor.empty(ctx, gate.shape, 'geglu.dgate');
  const dup = Tensor.empty(ctx, up.shape, 'geglu.dup');
  ctx.dispatch('geglu_backward', {
    bindings: [dh.buf, gate.buf, up.buf, dgate.buf, dup.buf],
    u32: [n],
    workgroups: grid1d(n, 256),
    cost: elementwiseCost(n, 27, 3, 2), // gelu (9) and gelu' (16) of gate, two products each
  });
  return { dgate, dup };
}
