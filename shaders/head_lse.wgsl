// Pass 1 of the LM head (src/models/head.ts): one vocabulary chunk of logits merged into the per-row
// running log-sum-exp, an online softmax over chunks:
//   z[n, j] = softcap(logits[n, j])               logits is (N, VC): columns v0 .. v0 + VC of the (N, V) logits
//   m'[n]   = max(m[n], max_j z[n, j])
//   l'[n]   = l[n]·exp(m[n] − m'[n]) + Σ_j exp(z[n, j] − m'[n])
//   zt[n]   = z[n, t − v0]  when v0 ≤ t < v0 + VC,   t = targets[n]
// stats is (N, 3) = (m, l, zt) per row; targets, losses are (N,). first = 1: no previous (m, l), and zt starts
// at 0. last = 1: also losses[n] = (m + log l) − zt, 0 for IGNORE (0xFFFFFFFF) rows, NaN for t >= V.
// One workgroup per row (row = wid.x + wid.y · nwg.x): each invocation keeps a running (m, s) over its strided
// columns (rescaling s when m grows), a tree merges the WG pairs, then invocation 0 merges into stats.
//! defaults: WG=64
//#include lib_softcap

struct Params { N: u32, VC: u32, V: u32, v0: u32, first: u32, last: u32, softcap: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;

const WG = {{WG}}u;
const IGNORE = 0xFFFFFFFFu;
const LOWEST = -3.4028234e38; // finite stand-in for -inf: exp(LOWEST - x) underflows to 0
var<workgroup> wmax: array<f32, WG>;
var<workgroup> wsum: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.N) { return; } // the same for the whole workgroup, so the barriers below stay uniform
  let at = row * p.VC;

  var m = LOWEST;
  var s = 0.0;
  for (var j = lid; j < p.VC; j += WG) {
    let z = softcap(logits[at + j], p.softcap);
    if (z > m) {
      s = s * exp(m - z) + 1.0;
      m = z;
    } else {
      s += exp(z - m);
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
  if (lid != 0u) { return; }

  var mx = wmax[0];
  var l = wsum[0];
  var zt = 0.0;
  if (p.first == 0u) {
    let m0 = stats[3u * row];
    let mm = max(m0, mx);
    l = stats[3u * row + 1u] * exp(m0 - mm) + l * exp(mx - mm);
    mx = mm;
    zt = stats[3u * row + 2u];
  }
  let t = targets[row];
  if (t != IGNORE && t >= p.v0 && t - p.v0 < p.VC) {
    zt = softcap(logits[at + (t - p.v0)], p.softcap);
  }
  stats[3u * row] = mx;
  stats[3u * row + 1u] = l;
  stats[3u * row + 2u] = zt;
  if (p.last == 1u) {
    if (t == IGNORE) {
      losses[row] = 0.0;
    } else if (t >= p.V) {
      losses[row] = bitcast<f32>(0x7FC00000u | p.V); // a quiet NaN (a constant NaN is not valid WGSL)
    } else {
      losses[row] = (mx + log(l)) - zt;
    }
  }
}
