// The launchers of the gated MLP activations, h = act(gate) · up, and their backward for both inputs: one
// elementwise pair of shaders per activation (shaders/<kind>_{forward,backward}.wgsl). swiglu.ts and geglu.ts
// name theirs; this file is the code they share.
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

/** The forward and backward of one activation `kind`; flops per element of each for the dispatch cost. */
export function gatedKernels(kind: 'swiglu' | 'geglu', flops: { forward: number; backward: number }) {
  /** gate, up are (N, F); returns h = act(gate) · up, (N, F). */
  function forward(gate: Tensor, up: Tensor): Tensor {
    const n = check(`${kind}_forward`, gate, up);
    const h = Tensor.empty(gate.ctx, gate.shape, `${kind}.h`);
    gate.ctx.dispatch(`${kind}_forward`, {
      bindings: [gate.buf, up.buf, h.buf],
      u32: [n],
      workgroups: grid1d(n, 256),
      cost: elementwiseCost(n, flops.forward, 2, 1),
    });
    return h;
  }
  /** dh, gate, up are (N, F); returns dgate = dh · up · act'(gate) and dup = dh · act(gate), (N, F) each. */
  function backward(dh: Tensor, gate: Tensor, up: Tensor): { dgate: Tensor; dup: Tensor } {
    const n = check(`${kind}_backward`, dh, gate, up);
    const ctx = gate.ctx;
    const dgate = Tensor.empty(ctx, gate.shape, `${kind}.dgate`);
    const dup = Tensor.empty(ctx, up.shape, `${kind}.dup`);
    ctx.dispatch(`${kind}_backward`, {
      bindings: [dh.buf, gate.buf, up.buf, dgate.buf, dup.buf],
      u32: [n],
      workgroups: grid1d(n, 256),
      cost: elementwiseCost(n, flops.backward, 3, 2),
    });
    return { dgate, dup };
  }
  return { forward, backward };
}
