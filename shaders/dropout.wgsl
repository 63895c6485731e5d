// Inverted dropout, forward and backward alike: y[i] = x[i] · dropout_mult(seed, i, prob), which is 0 with
// probability prob and 1 / (1 - prob) otherwise. The mask is a hash of (seed, element index), so the backward
// (x = dy) regenerates the forward's mask instead of storing it.
// x, y are (n,). Linear index i = gid.x + gid.y · nwg.x · 256.
//#include lib_rng

struct Params { n: u32, seed: u32, prob: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  y[i] = x[i] * dropout_mult(p.seed, i, p.prob);
}
