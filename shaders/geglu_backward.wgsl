// GeGLU backward:  dup = dh · gelu(gate),  dgate = dh · up · gelu'(gate)  (lib_gelu.wgsl).
// dh, gate, up, dgate, dup are (N, F), flattened to n = N·F.
//#include lib_gelu

struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dh: array<f32>;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read> up: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(5) var<storage, read_write> dup: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let g = gate[i];
  let d = dh[i];
  dup[i] = d * gelu_tanh(g);
  dgate[i] = (d * up[i]) * gelu_tanh_grad(g);
}
