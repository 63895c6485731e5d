// GeGLU gating of Gemma's MLP, h = gelu(gate) · up with GELU's tanh approximation (gelu_pytorch_tanh), and its
// backward for both inputs. Shaders: shaders/geglu_{forward,backward}.wgsl (GELU itself: shaders/lib_gelu.wgsl).
// CPU twin: geglu.cpu.ts. Launchers: gated.ts.
import { gatedKernels } from './gated';

// forward: gelu (9) and the product; backward: gelu (9) and gelu' (16) of gate, two products each
const k = gatedKernels('geglu', { forward: 10, backward: 27 });

/** gate, up are (N, F); returns h = gelu(gate) · up, (N, F). */
export const geglu_forward = k.forward;
/** dh, gate, up are (N, F); returns dgate = dh · up · gelu'(gate) and dup = dh · gelu(gate), (N, F) each. */
export const geglu_backward = k.backward;
