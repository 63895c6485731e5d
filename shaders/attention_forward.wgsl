//! defaults: HEAD_DIM=64 TILE=16 WG=64
// Causal self-attention forward, row-wise variant (the fast one on software drivers; the tiled
// attention_tiled_forward.wgsl is the one for real GPUs). Flash style: one invocation per query row keeps its output row and an
// online softmax (running max m, running sum l) in registers while it walks the keys in tiles of TILE,
// so nothing grows with T² and only lse = m + log(l) is stored for the backward.
// No workgroup memory and no barriers: on the software drivers barriers cost more than re-reading k/v
// from (cached) memory, and every lane of a workgroup reads the same key row at the same time anyway.
// Measured (B=1, T=256, Hq=4, D=32, loaded 2-core machine): staging 16-key k/v tiles in workgroup memory
// (2 barriers per tile) was ~30 % slower on lavapipe and ~10-30 % faster on SwiftShader; on a real GPU
// that staging is the next step.
//
// q is (B, Tq, Hq, D); k, v are (B, kvCap, Hkv, D), rows 0..kvLen-1 valid; o is (B, Tq, Hq, D); lse is (B, Hq, Tq).
// Query row i sits at position kvLen - Tq + i and sees the keys lib_attention.wgsl's mask lets through (causal,
// optionally a sliding window); query head h reads kv head h / (Hq / Hkv). Grid: x = ceil(Tq / WG) row blocks,
// y = B * Hq. Key tiles start at multiples of TILE, so a row's arithmetic does not depend on its block.
//#include lib_attention

// rope_pos, freq_at: the tiled kernels' RoPE; here unused (attention.ts rotates around this kernel)
struct Params { tq: u32, kv_len: u32, kv_cap: u32, hq: u32, hkv: u32, window: u32, rope_pos: u32, freq_at: u32, scale: f32, softcap: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

const D = {{HEAD_DIM}}u;
const TILE = {{TILE}}u;
const WG = {{WG}}u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let bh = wid.y; // b * Hq + h
  let b = bh / p.hq;
  let h = bh % p.hq;
  let hk = h / (p.hq / p.hkv);
  let off = p.kv_len - p.tq; // position of query row 0
  let i = wid.x * WG + lid.x;
  let live = i < p.tq;
  let row = min(i, p.tq - 1u); // lanes past the end shadow the last row and write nothing
  let pos = off + row;
  // Every lane runs from the workgroup's first row's first key up to its last row, masking per lane, so key
  // loads stay uniform.
  let j_end = off + min(wid.x * WG + WG, p.tq);
  let j_begin = (attn_first_key(off + wid.x * WG, p.window) / TILE) * TILE;

  let q_at = ((b * p.tq + row) * p.hq + h) * D;
  var qs: array<f32, D>;
  for (var d = 0u; d < D; d++) { qs[d] = q[q_at + d] * p.scale; }

  let kv_row = p.hkv * D; // stride between key rows
  let kv_at = (b * p.kv_cap * p.hkv + hk) * D;

  var m = -3.0e38; // before any visible key: finite, so exp(m - m_new) is 0 (or 1), never NaN
  var l = 0.0;
  var acc: array<f32, D>;
  var s: array<f32, TILE>;

  for (var j0 = j_begin; j0 < j_end; j0 += TILE) {
    let n = min(TILE, j_end - j0);
    var m_new = m;
    for (var t = 0u; t < n; t++) {
      let at = kv_at + (j0 + t) * kv_row;
      var sc = 0.0;
      for (var d = 0u; d < D; d++) { sc += qs[d] * k[at + d]; }
      sc = softcap(sc, p.softcap);
      s[t] = select(m, sc, attn_visible(pos, j0 + t, p.window)); // masked: a harmless placeholder, zeroed below
      m_new = max(m_new, s[t]);
    }
    let c = exp(m - m_new); // <= 1: rescales what was summed under the old max
    l *= c;
    for (var d = 0u; d < D; d++) { acc[d] *= c; }
    for (var t = 0u; t < n; t++) {
      let vis = attn_visible(pos, j0 + t, p.window);
      let pt = select(0.0, exp(select(0.0, s[t] - m_new, vis)), vis);
      l += pt;
      let at = kv_at + (j0 + t) * kv_row;
      for (var d = 0u; d < D; d++) { acc[d] += pt * v[at + d]; }
    }
    m = m_new;
  }

  if (!live) { return; }
  // l >= 1: the maximal key contributes exp(0).
  let inv_l = 1.0 / l;
  let o_at = ((b * p.tq + i) * p.hq + h) * D;
  for (var d = 0u; d < D; d++) { o[o_at + d] = acc[d] * inv_l; }
  lse[bh * p.tq + i] = m + log(l);
}
