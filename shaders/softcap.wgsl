// Gemma's final-logit soft cap applied in place to the logits of generation and the no-grad forward:
// x[i] = c·tanh(x[i] / c) (lib_softcap.wgsl; training folds it into the chunked head's kernels instead).
// x is (n,).
//#include lib_softcap

struct Params { n: u32, cap: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  x[i] = softcap(x[i], p.cap);
}
