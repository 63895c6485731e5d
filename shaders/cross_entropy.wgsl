// Softmax cross-entropy of each row, fused with its backward:
//   loss[n]      = logsumexp(logits[n, :]) - logits[n, t],   t = targets[n]
//   dlogits[n,:] = (softmax(logits[n, :]) - onehot(t)) · gradScale          (only when wantGrad = 1)
// Rows whose target is IGNORE (0xFFFFFFFF) get loss 0 and a zero gradient row. A target >= V (a bug upstream)
// gets a NaN loss so that it cannot pass unnoticed.
// logits, dlogits are (N, V); targets, losses are (N,). One workgroup per row (row = wid.x + wid.y · nwg.x).
// Numerically stable: each invocation keeps a running max m and sum s = Σ exp(x - m) over its strided slice
// (rescaling s when m grows), so the logits are read once for the loss; a tree reduction merges the
// (m, s) pairs, and a second strided pass writes the gradient.
//! defaults: WG=256

struct Params { N: u32, V: u32, wantGrad: u32, gradScale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> losses: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;

const WG = {{WG}}u;
const IGNORE = 0xFFFFFFFFu;
const LOWEST = -3.4028234e38; // finite stand-in for -inf: exp(LOWEST - x) underflows to 0
var<workgroup> wmax: array<f32, WG>;
var<workgroup> wsum: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.N) { return; } // the same for the whole workgroup, so the barriers below stay uniform
  let at = row * p.V;
  let t = targets[row];

  var m = LOWEST;
  var s = 0.0;
  for (var c = lid; c < p.V; c += WG) {
    let x = logits[at + c];
    if (x > m) {
      s = s * exp(m - x) + 1.0;
      m = x;
    } else {
      s += exp(x - m);
    }
  }
  wmax[lid] = m;
  wsum[lid] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) {
      let m1 = wmax[lid];
      let m2 = wmax[lid + k];
      let mm = max(m1, m2);
      wsum[lid] = wsum[lid] * exp(m1 - mm) + wsum[lid + k] * exp(m2 - mm);
      wmax[lid] = mm;
    }
    workgroupBarrier();
  }
  let mx = wmax[0];
  let sum = wsum[0]; // >= 1: the largest logit contributes exp(0)

  if (lid == 0u) {
    if (t == IGNORE) {
      losses[row] = 0.0;
    } else if (t >= p.V) {
      losses[row] = bitcast<f32>(0x7FC00000u | p.V); // a quiet NaN (a constant NaN is not valid WGSL)
    } else {
      losses[row] = (mx + log(sum)) - logits[at + t];
    }
  }

  if (p.wantGrad == 1u) {
    let ignored = t == IGNORE;
    let scale = select(p.gradScale / sum, 0.0, ignored);
    for (var c = lid; c < p.V; c += WG) {
      var g = exp(logits[at + c] - mx) * scale;
      if (c == t) { g -= p.gradScale; }
      dlogits[at + c] = g;
    }
  }
}
