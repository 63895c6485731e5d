//! defaults: WG=256 ACCUM=false
// RMSNorm backward for x (w is frozen: no dw). With g = dy · w and r = rstd from the forward,
//   y_j = x_j · r · w_j,  ∂r/∂x_j = -r³ · x_j / C,  so
//   dx_j = r · (g_j - x_j · r² · mean(g · x))
// dy, x, dx are (N, C); w is (C,); rstd is (N,). One workgroup per row, as in the forward. ACCUM: dx += instead
// of dx = (the gradient of x adds up over its uses: the residual stream's).

struct Params { N: u32, C: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

const WG = {{WG}}u;
const ACCUM = {{ACCUM}};
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.N) { return; } // uniform per workgroup
  let at = row * p.C;

  var gx = 0.0;
  for (var c = lid; c < p.C; c += WG) {
    gx += dy[at + c] * w[c] * x[at + c];
  }
  partial[lid] = gx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let r = rstd[row];
  let k = r * r * (partial[0] / f32(p.C));

  for (var c = lid; c < p.C; c += WG) {
    var v = r * (dy[at + c] * w[c] - x[at + c] * k);
    if (ACCUM) { v = dx[at + c] + v; }
    dx[at + c] = v;
  }
}
