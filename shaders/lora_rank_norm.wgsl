// RMSNorm and the LoRA U's of the linears that read its output (q, k, v of n1; gate, up of n2), one dispatch:
//   rstd[n] = 1 / sqrt(mean_k(x[n, k]²) + eps),  y[n, k] = (x[n, k] · rstd[n]) · g[k]      (rmsnorm_forward.wgsl's y)
//   out_s[n, j] = Σ_k drop_s(y)[n, k] · A_s[j, k]                                           (lora_rank.wgsl's u)
// x and y are (N, K), g is (K,), rstd is (N,), each A_s is (R, K) at float a_s of w, out_s (N, R) at s·ostride.
// A workgroup owns 8 whole rows of one segment (grid z = s, up to 3): it sums their squares (every thread a
// strided slice of all 8, the partials added in a fixed order, so every segment gets the same rstd), segment 0
// stores their y and rstd, and every segment runs the rank product of shaders/lib_lora_rank.wgsl over y made
// again from x as it reads it (the same f32 operations as the stored y).
//! defaults: KS=32 JQ=2 MASK=false
//#include lib_rng
//#include lib_lora_rank

struct Params {
  N: u32, K: u32, R: u32, ostride: u32,
  a0: u32, a1: u32, a2: u32, seed0: u32, seed1: u32, seed2: u32,
  p: f32, eps: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;

const KS = {{KS}}u;
const JQ = {{JQ}}u;
const W_KR = false;
const MASK = {{MASK}};
const THREADS = KS * JQ;

var<private> rlo: vec4f; // rstd of the block's rows 0..3
var<private> rhi: vec4f; // and 4..7

fn rstd_of(i: u32) -> f32 {
  return select(rhi[i % 4u], rlo[i % 4u], i < 4u);
}

fn y_at(i: u32, n: u32, k: u32) -> f32 {
  return (x[n * p.K + k] * rstd_of(i)) * g[k];
}

fn x_at(seed: u32, i: u32, n: u32, k: u32) -> f32 {
  var v = y_at(i, n, k);
  if (MASK) { v *= dropout_mult(seed, n * p.K + k, p.p); }
  return v;
}

@compute @workgroup_size(KS, JQ)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let n0 = (wid.x + wid.y * nwg.x) * ROWS;
  let sg = wid.z; // the segment
  let last = p.N - 1u;
  // sums of squares of the 8 rows (rows past N read the last one and are never stored)
  var lo = vec4f(0.0);
  var hi = vec4f(0.0);
  for (var k = li; k < p.K; k += THREADS) {
    let v0 = x[min(n0, last) * p.K + k]; let v1 = x[min(n0 + 1u, last) * p.K + k];
    let v2 = x[min(n0 + 2u, last) * p.K + k]; let v3 = x[min(n0 + 3u, last) * p.K + k];
    let v4 = x[min(n0 + 4u, last) * p.K + k]; let v5 = x[min(n0 + 5u, last) * p.K + k];
    let v6 = x[min(n0 + 6u, last) * p.K + k]; let v7 = x[min(n0 + 7u, last) * p.K + k];
    lo += vec4f(v0 * v0, v1 * v1, v2 * v2, v3 * v3);
    hi += vec4f(v4 * v4, v5 * v5, v6 * v6, v7 * v7);
  }
  part[2u * li] = lo;
  part[2u * li + 1u] = hi; // 2·THREADS ≤ KS·NOUT vec4s
  workgroupBarrier();
  var slo = vec4f(0.0);
  var shi = vec4f(0.0);
  for (var t = 0u; t < THREADS; t++) {
    slo += part[2u * t];
    shi += part[2u * t + 1u];
  }
  rlo = inverseSqrt(slo / f32(p.K) + p.eps);
  rhi = inverseSqrt(shi / f32(p.K) + p.eps);
  workgroupBarrier(); // every partial read before the product writes part again
  if (sg == 0u && n0 < p.N) {
    let rows = min(ROWS, p.N - n0);
    if (li < rows) { rstd[n0 + li] = rstd_of(li); }
    for (var i = 0u; i < rows; i++) {
      for (var k = li; k < p.K; k += THREADS) { y[(n0 + i) * p.K + k] = y_at(i, n0 + i, k); }
    }
  }
  let aoff = select(select(p.a0, p.a1, sg == 1u), p.a2, sg == 2u);
  let seed = select(select(p.seed0, p.seed1, sg == 1u), p.seed2, sg == 2u);
  rank_rows(n0, sg, aoff, seed, lid.x, lid.y, li);
}
