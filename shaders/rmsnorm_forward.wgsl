//! defaults: WG=256 RESID=false
// RMSNorm forward, as Hugging Face LlamaRMSNorm computes it in f32:
//   rstd = 1 / sqrt(mean(x²) + eps),  y = (x · rstd) · w       [RESID: y = res + (x · rstd) · w]
// x, y (and res) are (N, C); w is (C,); rstd is (N,), kept for the backward. RESID: a residual connection
// after the norm (Gemma 3's post-norms, h = x + norm(o_proj(a))) added as y is stored, costing no add kernel.
// One workgroup per row (row = wid.x + wid.y · nwg.x, see grid1d). Each invocation sums a strided slice of
// the row, then a tree reduction in workgroup memory adds the WG partial sums pairwise, so the rounding
// error of the sum grows like C/WG + log2(WG), not like C.

struct Params { N: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>; // read only with RESID

const WG = {{WG}}u;
const RESID = {{RESID}};
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.N) { return; } // the same for the whole workgroup, so the barriers below stay uniform
  let at = row * p.C;

  var ss = 0.0;
  for (var c = lid; c < p.C; c += WG) {
    let v = x[at + c];
    ss += v * v;
  }
  partial[lid] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let r = inverseSqrt(partial[0] / f32(p.C) + p.eps);

  for (var c = lid; c < p.C; c += WG) {
    var v = (x[at + c] * r) * w[c];
    if (RESID) { v = res[at + c] + v; }
    y[at + c] = v;
  }
  if (lid == 0u) { rstd[row] = r; }
}
