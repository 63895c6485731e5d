// GELU, tanh approximation (Hugging Face "gelu_new" / gelu_pytorch_tanh, GPT-2):
//   y = 0.5 · x · (1 + tanh(u)),  u = sqrt(2/π) · (x + 0.044715 · x³)
// 1 + tanh(u) is written with e = exp(-2|u|) ∈ (0, 1]: 2 / (1 + e) for u ≥ 0 and 2e / (1 + e) for u < 0.
// No overflow (WGSL's tanh may be sinh/cosh, inf/inf for large |u|) and no cancellation in 1 + tanh for x < 0.
// x, y are (n,).

struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const K0 = 0.7978845608028654; // sqrt(2/π)
const K1 = 0.044715;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let v = x[i];
  let u = K0 * (v + K1 * v * v * v);
  let e = exp(-2.0 * abs(u));
  let one_plus_t = select(2.0 * e, 2.0, u >= 0.0) / (1.0 + e);
  y[i] = 0.5 * v * one_plus_t;
}
