//! defaults: WG=256
// LayerNorm forward, as torch.nn.LayerNorm (biased variance):
//   mean = Σx / C,  var = Σ(x - mean)² / C,  rstd = 1 / sqrt(var + eps),  y = (x - mean) · rstd · w + b
// x, y are (N, C); w, b are (C,); mean, rstd are (N,), kept for the backward.
// One workgroup per row (row = wid.x + wid.y · nwg.x, see grid1d). Two passes over the row (the mean first,
// then the squared deviations from it) so a large common offset does not cancel away the variance, as it
// would in E[x²] - E[x]². Each pass: strided partial sums per invocation, then a tree in workgroup memory.

struct Params { N: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;

const WG = {{WG}}u;
var<workgroup> partial: array<f32, WG>;

// The sum of v over the workgroup, returned to every invocation. Call from uniform control flow.
fn workgroup_sum(v: f32, lid: u32) -> f32 {
  workgroupBarrier(); // everyone has read the previous result out of partial[0]
  partial[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  return partial[0];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.N) { return; } // the same for the whole workgroup, so the barriers stay uniform
  let at = row * p.C;

  var s = 0.0;
  for (var c = lid; c < p.C; c += WG) { s += x[at + c]; }
  let mu = workgroup_sum(s, lid) / f32(p.C);

  var ss = 0.0;
  for (var c = lid; c < p.C; c += WG) {
    let d = x[at + c] - mu;
    ss += d * d;
  }
  let r = inverseSqrt(workgroup_sum(ss, lid) / f32(p.C) + p.eps);

  for (var c = lid; c < p.C; c += WG) {
    y[at + c] = ((x[at + c] - mu) * r) * w[c] + b[c];
  }
  if (lid == 0u) {
    mean[row] = mu;
    rstd[row] = r;
  }
}
