// The skinny rank-r product of LoRA: out = drop(x) · wᵀ, with few output rows per workgroup and the K sum
// split over threads (reduced in workgroup memory), so that N tokens give ≈ N / ROWS workgroups.
//   out[n, j] = Σ_k drop(x)[n, k] · w[j, k]      x is (N, K), w is (R, K) (A), out is (N, R)   (u = drop(x)·Aᵀ)
//   with W_KR w is (K, R) instead:  w[k, j]                                   (G = dy·B, B is (OUT, r))
// MASK: drop(x)[n, k] = x[n, k] · dropout_mult(seed, n·K + k, p), the mask of the forward's x (lib_rng).
// A workgroup is KS x (ROWS·JQ) threads: thread (kt, o) owns output row o / JQ of the block and columns
// j0..j0+3 (j0 = 4·(o % JQ), clamped at R); it sums k = kt, kt + KS, ... (consecutive threads read
// consecutive k). Then the KS partial vec4s of each output are summed in a fixed order (kt = 0, 1, ...)
// by one thread: no atomics, so a run is bit-identical to itself.
//! defaults: ROWS=8 KS=16 JQ=2 W_KR=false MASK=false
//#include lib_rng

struct Params {
  N: u32, K: u32, R: u32, seed: u32,
  p: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const ROWS = {{ROWS}}u; // output rows per workgroup
const KS = {{KS}}u; // threads that split one output's K sum
const JQ = {{JQ}}u; // column quads: ceil(R / 4)
const W_KR = {{W_KR}};
const MASK = {{MASK}};
const NOUT = ROWS * JQ; // vec4 outputs per workgroup

var<workgroup> part: array<vec4f, KS * NOUT>; // part[o·KS + kt], at most 256 vec4 = 4 KiB

fn w_at(j: u32, k: u32) -> f32 {
  if (W_KR) { return w[k * p.R + j]; }
  return w[j * p.K + k];
}

@compute @workgroup_size(KS, NOUT)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let wg = wid.x + wid.y * nwg.x;
  let kt = lid.x;
  let o = lid.y;
  // loads read clamped rows and columns (in bounds without branches); only the stores are guarded
  let n = min(wg * ROWS + o / JQ, p.N - 1u);
  let j0 = (o % JQ) * 4u;
  let js = min(vec4u(j0, j0 + 1u, j0 + 2u, j0 + 3u), vec4u(p.R - 1u));
  var acc = vec4f(0.0);
  for (var k = kt; k < p.K; k += KS) {
    var xv = x[n * p.K + k];
    if (MASK) { xv *= dropout_mult(p.seed, n * p.K + k, p.p); }
    acc += xv * vec4f(w_at(js.x, k), w_at(js.y, k), w_at(js.z, k), w_at(js.w, k));
  }
  part[o * KS + kt] = acc;
  workgroupBarrier();
  if (li >= NOUT) { return; }
  // thread li sums the KS partials of output li in order
  var s = vec4f(0.0);
  for (var t = 0u; t < KS; t++) { s += part[li * KS + t]; }
  let row = wg * ROWS + li / JQ;
  if (row >= p.N) { return; }
  let c0 = (li % JQ) * 4u;
  let base = row * p.R;
  out[base + c0] = s.x; // c0 < R always: JQ = ceil(R / 4)
  if (c0 + 1u < p.R) { out[base + c0 + 1u] = s.y; }
  if (c0 + 2u < p.R) { out[base + c0 + 2u] = s.z; }
  if (c0 + 3u < p.R) { out[base + c0 + 3u] = s.w; }
}
