// SwiGLU gating of the Llama MLP, h = silu(gate) · up, and its backward for both inputs.
// Shaders: shaders/swiglu_{forward,backward}.wgsl. CPU twin: swiglu.cpu.ts. Launchers: gated.ts.
import { gatedKernels } from './gated';

// forward: silu (4) and the product; backward: dgate = dh·up·silu'(gate), dup = dh·silu(gate)
const k = gatedKernels('swiglu', { forward: 5, backward: 10 });

/** gate, up are (N, F); returns h = silu(gate) · up, (N, F). */
export const swiglu_forward = k.forward;
/** dh, gate, up are (N, F); returns dgate = dh · up · silu'(gate) and dup = dh · silu(gate), (N, F) each. */
export const swiglu_backward = k.backward;
