// One vocabulary chunk of the LM head (src/models/head.ts) merged into its row's running log-sum-exp, an online
// softmax over chunks; shared by head_lse.wgsl (the loss only) and head_lse_grad.wgsl (the loss and the gradient):
//   z[n, j] = softcap(logits[n, j])               logits is (N, VC): columns v0 .. v0 + VC of the (N, V) logits
//   m'[n]   = max(m[n], max_j z[n, j])
//   l'[n]   = l[n]·exp(m[n] − m'[n]) + Σ_j exp(z[n, j] − m'[n])
//   zt[n]   = z[n, t − v0]  when v0 ≤ t < v0 + VC,   t = targets[n]
// stats is (N, 3) = (m, l, zt) per row; targets, losses are (N,). first = 1: no previous (m, l), and zt starts
// at 0. last = 1: also losses[n] = (m + log l) − zt, 0 for IGNORE (0xFFFFFFFF) rows, NaN for t >= V.
// One workgroup per row: each invocation keeps a running (m, s) over its strided columns (rescaling s when m
// grows), a tree merges the WG pairs, then invocation 0 merges into stats. The including kernel declares WG,
// p (Params: N, VC, V, v0, first, last, ..., softcap), logits, targets, stats and losses.
//#include lib_softcap

const IGNORE = 0xFFFFFFFFu;
const LOWEST = -3.4028234e38; // finite stand-in for -inf: exp(LOWEST - x) underflows to 0
var<workgroup> wmax: array<f32, WG>;
var<workgroup> wsum: array<f32, WG>;

// Merges this chunk's row `row` into stats (and writes its loss on the last chunk). Returns (m, m') to every
// invocation of the workgroup: the row's running max before and after this chunk (equal on the first chunk).
fn lse_update(row: u32, lid: u32) -> vec2f {
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

  if (lid == 0u) {
    var mx = wmax[0];
    var mold = mx;
    var l = wsum[0];
    var zt = 0.0;
    if (p.first == 0u) {
      mold = stats[3u * row];
      let mm = max(mold, mx);
      l = stats[3u * row + 1u] * exp(mold - mm) + l * exp(mx - mm);
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
    wmax[0] = mold;
    wsum[0] = mx;
  }
  workgroupBarrier();
  return vec2f(wmax[0], wsum[0]);
}
