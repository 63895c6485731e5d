// GELU with the tanh approximation (Hugging Face "gelu_new" / gelu_pytorch_tanh: GPT-2, Gemma's GeGLU) and its
// derivative, shared by shaders/gelu_{forward,backward}.wgsl and shaders/geglu_{forward,backward}.wgsl and
// mirrored by src/kernels/gelu.cpu.ts:
//   gelu(x)  = 0.5 · x · (1 + t),  t = tanh(u),  u = sqrt(2/π) · (x + 0.044715 · x³)
//   gelu'(x) = 0.5 · (1 + t) + 0.5 · x · (1 - t²) · sqrt(2/π) · (1 + 3 · 0.044715 · x²)
// 1 + t and 1 - t² are written with e = exp(-2|u|) ∈ (0, 1]: 1 + t = 2 / (1 + e) for u ≥ 0 and 2e / (1 + e) for
// u < 0, 1 - t² = 4e / (1 + e)². No overflow (WGSL's tanh may be sinh/cosh, inf/inf for large |u|) and no
// cancellation in 1 + t for x < 0 or in 1 - t².

const GELU_K0 = 0.7978845608028654; // sqrt(2/π)
const GELU_K1 = 0.044715;

fn gelu_tanh(v: f32) -> f32 {
  let u = GELU_K0 * (v + GELU_K1 * v * v * v);
  let e = exp(-2.0 * abs(u));
  let one_plus_t = select(2.0 * e, 2.0, u >= 0.0) / (1.0 + e);
  return 0.5 * v * one_plus_t;
}

fn gelu_tanh_grad(v: f32) -> f32 {
  let u = GELU_K0 * (v + GELU_K1 * v * v * v);
  let e = exp(-2.0 * abs(u));
  let d = 1.0 + e;
  let one_plus_t = select(2.0 * e, 2.0, u >= 0.0) / d;
  let sech2 = 4.0 * e / (d * d);
  let du = GELU_K0 * (1.0 + 3.0 * GELU_K1 * v * v);
  return 0.5 * one_plus_t + 0.5 * v * sech2 * du;
}
