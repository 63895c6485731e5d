// The skinny rank-r product of LoRA: out = drop(x) · wᵀ, 8 output rows per workgroup with the K sum split
// over threads (reduced in workgroup memory), so that N tokens give N / 8 workgroups.
//   out[n, j] = Σ_k drop(x)[n, k] · w[j, k]      x is (N, K), w is (R, K) (A), out is (N, R)   (u = drop(x)·Aᵀ)
//   with W_KR w is (K, R) instead:  w[k, j]                                   (G = dy·B, B is (OUT, r))
// MASK: drop(x)[n, k] = x[n, k] · dropout_mult(seed, n·K + k, p), the mask of the forward's x (lib_rng).
// The block's loop and its reduction: shaders/lib_lora_rank.wgsl.
// Segments (grid z = s, up to 3): the U of several linears that read the same x (q, k, v; gate, up) in one
// dispatch: segment s reads its w at float a_s of the w binding, masks x with its own seed_s, and writes its
// (N, R) result at float s·ostride of out.
//! defaults: KS=32 JQ=2 W_KR=false MASK=false
//#include lib_rng
//#include lib_lora_rank

struct Params {
  N: u32, K: u32, R: u32, ostride: u32,
  a0: u32, a1: u32, a2: u32, seed0: u32, seed1: u32, seed2: u32,
  p: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const KS = {{KS}}u; // threads that split one output's K sum
const JQ = {{JQ}}u; // column quads: ceil(R / 4)
const W_KR = {{W_KR}};
const MASK = {{MASK}};

fn x_at(seed: u32, i: u32, n: u32, k: u32) -> f32 {
  var v = x[n * p.K + k];
  if (MASK) { v *= dropout_mult(seed, n * p.K + k, p.p); }
  return v;
}

@compute @workgroup_size(KS, JQ)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let n0 = (wid.x + wid.y * nwg.x) * ROWS;
  let sg = wid.z; // the segment
  let aoff = select(select(p.a0, p.a1, sg == 1u), p.a2, sg == 2u); // its w
  let seed = select(select(p.seed0, p.seed1, sg == 1u), p.seed2, sg == 2u);
  rank_rows(n0, sg, aoff, seed, lid.x, lid.y, li);
}
