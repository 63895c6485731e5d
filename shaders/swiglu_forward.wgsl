// SwiGLU (Llama MLP): h = silu(gate) · up, silu(g) = g · sigmoid(g) (shaders/lib_silu.wgsl).
// gate, up, h are (N, F), flattened to n = N·F.
//#include lib_silu

struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> h: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  h[i] = silu(gate[i]) * up[i];
}
