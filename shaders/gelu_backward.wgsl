// GELU (tanh approximation) backward: dx = dy · gelu'(x), gelu' in lib_gelu.wgsl. dy, x, dx are (n,).
//#include lib_gelu

struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  dx[i] = dy[i] * gelu_tanh_grad(x[i]);
}
