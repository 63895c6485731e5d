// The skinny rank-r product of LoRA: out = drop(x) · wᵀ, 8 output rows per workgroup with the K sum split
// over threads (reduced in workgroup memory), so that N tokens give N / 8 workgroups.
//   out[n, j] = Σ_k drop(x)[n, k] · w[j, k]      x is (N, K), w is (R, K) (A), out is (N, R)   (u = drop(x)·Aᵀ)
//   with W_KR w is (K, R) instead:  w[k, j]                                   (G = dy·B, B is (OUT, r))
// MASK: drop(x)[n, k] = x[n, k] · dropout_mult(seed, n·K + k, p), the mask of the forward's x (lib_rng).
// A workgroup is KS x JQ threads (JQ = ceil(R / 4)); thread (kt, jq) computes all 8 rows of the block for
// columns j0..j0+3 (j0 = 4·jq, clamped at R), register-blocked like matmul.wgsl (one w load serves 8 rows),
// over k = kt, kt + KS, ... (consecutive threads read consecutive k). Then each of the 8·JQ outputs sums its
// KS partials in a fixed order (kt = 0, 1, ...): no atomics, so a run is bit-identical to itself.
// Segments (grid z = s, up to 3): the U of several linears that read the same x (q, k, v; gate, up) in one
// dispatch: segment s reads its w at float a_s of the w binding, masks x with its own seed_s, and writes its
// (N, R) result at float s·ostride of out.
//! defaults: KS=32 JQ=2 W_KR=false MASK=false
//#include lib_rng

struct Params {
  N: u32, K: u32, R: u32, ostride: u32,
  a0: u32, a1: u32, a2: u32, seed0: u32, seed1: u32, seed2: u32,
  p: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const ROWS = 8u; // output rows per workgroup (and per thread)
const KS = {{KS}}u; // threads that split one output's K sum
const JQ = {{JQ}}u; // column quads: ceil(R / 4)
const W_KR = {{W_KR}};
const MASK = {{MASK}};
const NOUT = ROWS * JQ; // vec4 outputs per workgroup

var<workgroup> part: array<vec4f, KS * NOUT>; // part[kt·NOUT + row·JQ + jq], KS·JQ ≤ 128: at most 16 KiB

fn w_at(a: u32, j: u32, k: u32) -> f32 {
  if (W_KR) { return w[a + k * p.R + j]; }
  return w[a + j * p.K + k];
}

fn x_at(seed: u32, n: u32, k: u32) -> f32 {
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
  let kt = lid.x;
  let jq = lid.y;
  // loads read clamped rows and columns (in bounds without branches); only the stores are guarded.
  // The 8 rows are spelled out (not a private array): SwiftShader keeps private arrays in memory.
  let last = p.N - 1u;
  let r0 = min(n0, last); let r1 = min(n0 + 1u, last); let r2 = min(n0 + 2u, last); let r3 = min(n0 + 3u, last);
  let r4 = min(n0 + 4u, last); let r5 = min(n0 + 5u, last); let r6 = min(n0 + 6u, last); let r7 = min(n0 + 7u, last);
  let j0 = jq * 4u;
  let js = min(vec4u(j0, j0 + 1u, j0 + 2u, j0 + 3u), vec4u(p.R - 1u));
  var a0 = vec4f(0.0); var a1 = vec4f(0.0); var a2 = vec4f(0.0); var a3 = vec4f(0.0);
  var a4 = vec4f(0.0); var a5 = vec4f(0.0); var a6 = vec4f(0.0); var a7 = vec4f(0.0);
  for (var k = kt; k < p.K; k += KS) {
    let wv = vec4f(w_at(aoff, js.x, k), w_at(aoff, js.y, k), w_at(aoff, js.z, k), w_at(aoff, js.w, k));
    a0 += x_at(seed, r0, k) * wv; a1 += x_at(seed, r1, k) * wv; a2 += x_at(seed, r2, k) * wv;
    a3 += x_at(seed, r3, k) * wv; a4 += x_at(seed, r4, k) * wv; a5 += x_at(seed, r5, k) * wv;
    a6 += x_at(seed, r6, k) * wv; a7 += x_at(seed, r7, k) * wv;
  }
  let b = kt * NOUT + jq;
  part[b] = a0; part[b + JQ] = a1; part[b + 2u * JQ] = a2; part[b + 3u * JQ] = a3;
  part[b + 4u * JQ] = a4; part[b + 5u * JQ] = a5; part[b + 6u * JQ] = a6; part[b + 7u * JQ] = a7;
  workgroupBarrier();
  // output o = row·JQ + jq of the block: the sum of its KS partials in order
  for (var o = li; o < NOUT; o += KS * JQ) {
    var s = vec4f(0.0);
    for (var t = 0u; t < KS; t++) { s += part[t * NOUT + o]; }
    let row = n0 + o / JQ;
    let c0 = (o % JQ) * 4u; // < R: JQ = ceil(R / 4)
    if (row < p.N) {
      let base = sg * p.ostride + row * p.R + c0;
      out[base] = s.x;
      if (c0 + 1u < p.R) { out[base + 1u] = s.y; }
      if (c0 + 2u < p.R) { out[base + 2u] = s.z; }
      if (c0 + 3u < p.R) { out[base + 3u] = s.w; }
    }
  }
}
