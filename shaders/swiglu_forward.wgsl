// SwiGLU (Llama MLP): h = silu(gate) · up, silu(g) = g · sigmoid(g).
// gate, up, h are (N, F), flattened to n = N·F.
// sigmoid from e = exp(-|g|) ∈ (0, 1]: 1/(1 + e) for g ≥ 0, e/(1 + e) for g < 0. Nothing overflows, so
// silu goes smoothly to 0 for very negative g (exp(-g) would reach inf and give inf · 0).

struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> h: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let g = gate[i];
  let e = exp(-abs(g));
  let s = select(e, 1.0, g >= 0.0) / (1.0 + e);
  h[i] = (g * s) * up[i];
}
