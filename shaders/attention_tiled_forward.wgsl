//! defaults: HEAD_DIM=64 BR=16 BC=16 ROPE=false
// Causal self-attention forward, FlashAttention-2 style. One workgroup owns BR query rows of one (b, h) and
// walks the keys they see in tiles of BC: each K, V tile is staged in workgroup memory once and shared by all
// BR rows. Per tile:
//   S = scale · Q·Kᵀ (BR, BC)                      one invocation per score, D-long dot from workgroup memory
//   m' = max(m, rowmax S),  P = exp(S - m')         online softmax: nothing grows with T, masked keys give 0
//   l = l·exp(m - m') + rowsum P,  O = O·exp(m - m') + P·V
// and at the end o = O / l, lse = m + log l (all the backward needs to recompute P = exp(S - lse)).
// Keys outside [first key of the first row, last row's position] are never visited, so fully masked tiles
// are skipped; tiles start at multiples of BC, so a row's arithmetic does not depend on which block it is in
// (a KV-cache pass over the last rows gives the same bits as the full pass).
//
// q is (B, Tq, Hq, D); k, v are (B, kvCap, Hkv, D), rows 0..kvLen-1 valid; o is (B, Tq, Hq, D); lse is (B, Hq, Tq).
// Query row i sits at position kvLen - Tq + i; query head h reads kv head h / (Hq / Hkv).
// Invocations: BR rows × P lanes; lane owns the dims d ≡ lane (mod P) of its row's accumulator.
// Workgroup memory: (BR + 2·BC)·(D + 1) + BR·BC floats (the launcher keeps it <= 16 KiB).
// Grid: x = ceil(Tq / BR) row blocks, y = B * Hq.
// ROPE: q and k arrive unrotated and are rotated as they are staged (attention.ts), query row i at position
// rope_pos + kvLen - Tq + i, key j at rope_pos + j, with inv_freq (D/2,) (without ROPE any buffer, never read).
//#include lib_attention
//#include lib_rope

struct Params { tq: u32, kv_len: u32, kv_cap: u32, hq: u32, hkv: u32, window: u32, rope_pos: u32, freq_at: u32, scale: f32, softcap: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<storage, read> inv_freq: array<f32>;

const D = {{HEAD_DIM}}u;
const BR = {{BR}}u; // query rows per workgroup
const BC = {{BC}}u; // keys per tile
const WG = 256u;
const P = WG / BR; // lanes per query row
const DP = (D + P - 1u) / P;
const SD = D + 1u; // row stride in workgroup memory: odd, so rows of one dot product fall in different banks // accumulator dims per lane
const ROPE = {{ROPE}};
const HALF = D / 2u; // RoPE pairs (d, d + HALF)
const NEG = -3.0e38; // running max before any visible key: finite, so exp(NEG - m) = 0 and never NaN

var<workgroup> qs: array<f32, BR * SD>; // scale · q rows of the block
var<workgroup> ks: array<f32, BC * SD>;
var<workgroup> vs: array<f32, BC * SD>;
var<workgroup> ss: array<f32, BR * BC>; // scores of the tile

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let bh = wid.y; // b * Hq + h
  let b = bh / p.hq;
  let h = bh % p.hq;
  let hk = h / (p.hq / p.hkv);
  let off = p.kv_len - p.tq; // position of query row 0
  let i0 = wid.x * BR;
  let rows = min(BR, p.tq - i0);
  let j_end = off + i0 + rows; // one past the last row's position
  let j_begin = (attn_first_key(off + i0, p.window) / BC) * BC;

  if (ROPE) {
    for (var e = t; e < BR * HALF; e += WG) {
      let r = e / HALF;
      let x = e % HALF;
      var y = vec2f(0.0);
      if (r < rows) {
        let at = ((b * p.tq + i0 + r) * p.hq + h) * D + x;
        y = rope_rotate(p.rope_pos + off + i0 + r, inv_freq[x], 1.0, q[at], q[at + HALF]) * p.scale;
      }
      qs[r * SD + x] = y.x;
      qs[r * SD + x + HALF] = y.y;
    }
  } else {
    for (var e = t; e < BR * D; e += WG) {
      let r = e / D;
      var x = 0.0;
      if (r < rows) { x = q[((b * p.tq + i0 + r) * p.hq + h) * D + e % D] * p.scale; }
      qs[(e / D) * SD + e % D] = x;
    }
  }

  let r = t / P; // this invocation's row in the block; rows past the end compute and write nothing
  let lane = t % P;
  let pos = off + i0 + min(r, rows - 1u);
  let kv_at = (b * p.kv_cap * p.hkv + hk) * D;
  let kv_row = p.hkv * D;
  var m = NEG;
  var l = 0.0;
  var acc: array<f32, DP>;

  for (var j0 = j_begin; j0 < j_end; j0 += BC) {
    let n = min(BC, j_end - j0);
    workgroupBarrier(); // qs is written; the previous tile's reads of ks, vs, ss are done
    if (ROPE) {
      for (var e = t; e < BC * HALF; e += WG) {
        let c = e / HALF;
        let x = e % HALF;
        var ky = vec2f(0.0);
        var vy = vec2f(0.0);
        if (c < n) { // keys >= kvLen are never read
          let at = kv_at + (j0 + c) * kv_row + x;
          ky = rope_rotate(p.rope_pos + j0 + c, inv_freq[x], 1.0, k[at], k[at + HALF]);
          vy = vec2f(v[at], v[at + HALF]);
        }
        ks[c * SD + x] = ky.x;
        ks[c * SD + x + HALF] = ky.y;
        vs[c * SD + x] = vy.x;
        vs[c * SD + x + HALF] = vy.y;
      }
    } else {
      for (var e = t; e < BC * D; e += WG) {
        let c = e / D;
        var kx = 0.0;
        var vx = 0.0;
        if (c < n) { // keys >= kvLen are never read
          let at = kv_at + (j0 + c) * kv_row + e % D;
          kx = k[at];
          vx = v[at];
        }
        ks[(e / D) * SD + e % D] = kx;
        vs[(e / D) * SD + e % D] = vx;
      }
    }
    workgroupBarrier();
    for (var e = t; e < BR * BC; e += WG) {
      let qa = (e / BC) * SD;
      let ka = (e % BC) * SD;
      var s = 0.0;
      for (var d = 0u; d < D; d++) { s += qs[qa + d] * ks[ka + d]; }
      ss[e] = softcap(s, p.softcap);
    }
    workgroupBarrier();
    var m_new = m;
    for (var c = 0u; c < n; c++) {
      if (attn_visible(pos, j0 + c, p.window)) { m_new = max(m_new, ss[r * BC + c]); }
    }
    let corr = exp(m - m_new); // <= 1: rescales what was summed under the old max (exactly 1 if unchanged)
    l *= corr;
    for (var u = 0u; u < DP; u++) { acc[u] *= corr; }
    for (var c = 0u; c < n; c++) {
      let vis = attn_visible(pos, j0 + c, p.window);
      let pc = select(0.0, exp(select(0.0, ss[r * BC + c] - m_new, vis)), vis);
      l += pc;
      for (var u = 0u; u < DP; u++) {
        let d = lane + u * P;
        if (d < D) { acc[u] += pc * vs[c * SD + d]; }
      }
    }
    m = m_new;
  }

  if (r >= rows) { return; }
  // l >= 1: the row's maximal key contributes exp(0).
  let inv_l = 1.0 / l;
  let o_at = ((b * p.tq + i0 + r) * p.hq + h) * D;
  for (var u = 0u; u < DP; u++) {
    let d = lane + u * P;
    if (d < D) { o[o_at + d] = acc[u] * inv_l; }
  }
  if (lane == 0u) { lse[bh * p.tq + i0 + r] = m + log(l); }
}
