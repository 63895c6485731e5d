//! defaults: WG=256
// RMSNorm forward, as Hugging Face LlamaRMSNorm computes it in f32:
//   rstd = 1 / sqrt(mean(x²) + eps),  y = (x · rstd) · w
// x, y are (N, C); w is (C,); rstd is (N,), kept for the backward.
// One workgroup per row (row = wid.x + wid.y · nwg.x, see grid1d). Each invocation sums a strided slice of
// the row, then a tree reduction in workgroup memory adds the WG partial sums pairwise, so the rounding
// error of the sum grows like C/WG + log2(WG), not like C.

struct Params { N: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;

const WG = {{WG}}u;
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
    y[at + c] = (x[at + c] * r) * w[c];
  }
  if (lid == 0u) { rstd[row] = r; }
}
