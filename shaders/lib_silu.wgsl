// SiLU, silu(g) = g · sigmoid(g), shared by shaders/swiglu_forward.wgsl and shaders/lora_rank_glu.wgsl and
// mirrored by src/kernels/swiglu.cpu.ts. sigmoid from e = exp(-|g|) ∈ (0, 1]: 1/(1 + e) for g ≥ 0, e/(1 + e) for
// g < 0. Nothing overflows, so silu goes smoothly to 0 for very negative g (exp(-g) would reach inf and give inf · 0).

fn silu(g: f32) -> f32 {
  let e = exp(-abs(g));
  let s = select(e, 1.0, g >= 0.0) / (1.0 + e);
  return g * s;
}
