// GELU, tanh approximation (Hugging Face "gelu_new" / gelu_pytorch_tanh, GPT-2): y = gelu(x), the maths and its
// numerics in lib_gelu.wgsl. x, y are (n,).
//#include lib_gelu

struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  y[i] = gelu_tanh(x[i]);
}
