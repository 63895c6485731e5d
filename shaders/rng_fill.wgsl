// Fills bits[i] = pcg_hash(i ^ pcg_hash(seed)) and unif[i] = rng_uniform(seed, i) from shaders/lib_rng.wgsl,
// so tests can compare the GPU hash with its CPU twin (src/kernels/rng.cpu.ts) bit for bit.
// bits, unif are (n,). Linear index i = gid.x + gid.y · nwg.x · 256.
//#include lib_rng

struct Params { n: u32, seed: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> bits: array<u32>;
@group(0) @binding(2) var<storage, read_write> unif: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  bits[i] = pcg_hash(i ^ pcg_hash(p.seed));
  unif[i] = rng_uniform(p.seed, i);
}
