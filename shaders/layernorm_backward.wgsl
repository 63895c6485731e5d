//! defaults: WG=256
// LayerNorm backward for x (w and b are frozen: no dw, db). With xhat = (x - mean) · rstd and g = dy · w,
//   dx = rstd · (g - mean(g) - xhat · mean(g · xhat))
// dy, x, dx are (N, C); w is (C,); mean, rstd are (N,) from the forward.
// One workgroup per row; both row means come out of one tree reduction over vec2 partial sums.

struct Params { N: u32, C: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

const WG = {{WG}}u;
var<workgroup> partial: array<vec2f, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.N) { return; } // uniform per workgroup
  let at = row * p.C;
  let mu = mean[row];
  let r = rstd[row];

  var acc = vec2f(0.0);
  for (var c = lid; c < p.C; c += WG) {
    let g = dy[at + c] * w[c];
    acc += vec2f(g, g * ((x[at + c] - mu) * r));
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let g_mean = partial[0].x / f32(p.C);
  let gx_mean = partial[0].y / f32(p.C);

  for (var c = lid; c < p.C; c += WG) {
    let xhat = (x[at + c] - mu) * r;
    dx[at + c] = r * ((dy[at + c] * w[c] - g_mean) - xhat * gx_mean);
  }
}
