// One stage of a two-stage sum (WGSL has no float atomics, so a global sum goes through a partials buffer):
//   square = 1: each workgroup sums x[i]² over a grid-strided slice of x and writes out[wid] (stage 1);
//   square = 0, accumulate = 1, one workgroup: out[0] += Σ x[i] (stage 2, x = the partial sums).
// With accumulate = 1 and square = 1 (small x, one workgroup) a single dispatch does both.
// x is (n,); out is (workgroups,) or (1,). Each invocation sums about n / (workgroups · WG) values, then a tree
// reduction of log2(WG) levels: all terms are non-negative, so the sum's relative error stays near
// (n / (workgroups · WG) + log2(WG)) · 2^-24.
//! defaults: WG=256

struct Params { n: u32, square: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WG = {{WG}}u;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = wid.x * WG + lid; i < p.n; i += nwg.x * WG) {
    let v = x[i];
    s += select(v, v * v, p.square == 1u);
  }
  partial[lid] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) { partial[lid] += partial[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    if (p.accumulate == 1u) {
      out[0] += partial[0];
    } else {
      out[wid.x] = partial[0];
    }
  }
}
