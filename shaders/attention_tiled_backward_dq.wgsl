//! defaults: HEAD_DIM=64 BR=16 BC=8 ROPE=false
// Causal self-attention backward, pass 1 of 2: dq, and delta = rowsum(dO ⊙ O) for pass 2. FlashAttention-2
// style: one workgroup owns BR query rows of one (b, h) and walks the keys they see in tiles of BC staged in
// workgroup memory. The probabilities are recomputed from the forward's lse; per tile:
//   S = scale · Q·Kᵀ,  P = exp(S - lse),  dP = dO·Vᵀ,  dS = P ⊙ (dP - delta)     (BR, BC), one invocation each
//   dQ += dS·K                                                                   lane owns dims d ≡ lane (mod P)
// and at the end dq = scale · dQ. Fully masked tiles are never visited (see attention_tiled_forward.wgsl).
//
// q, dout, o, dq are (B, Tq, Hq, D); k, v are (B, kvCap, Hkv, D); lse, delta are (B, Hq, Tq).
// Workgroup memory: 2·(BR + BC)·(D + 1) + BR·BC + 2·BR floats. Grid: x = ceil(Tq / BR) row blocks, y = B * Hq.
// ROPE: q and k are rotated as they are staged (see attention_tiled_forward.wgsl) and dq is rotated back (Rᵀ) at
// the end; inv_freq (D/2,) sits in delta from delta[freq_at] on (attention.ts).
//#include lib_attention
//#include lib_rope

struct Params { tq: u32, kv_len: u32, kv_cap: u32, hq: u32, hkv: u32, window: u32, rope_pos: u32, freq_at: u32, scale: f32, softcap: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read> o: array<f32>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;
@group(0) @binding(8) var<storage, read_write> delta: array<f32>;

const D = {{HEAD_DIM}}u;
const BR = {{BR}}u; // query rows per workgroup
const BC = {{BC}}u; // keys per tile
const WG = 256u;
const P = WG / BR; // lanes per query row
const DP = (D + P - 1u) / P;
const SD = D + 1u; // row stride in workgroup memory: odd, so rows of one dot product fall in different banks
const ROPE = {{ROPE}};
const HALF = D / 2u; // RoPE pairs (d, d + HALF)

var<workgroup> qs: array<f32, BR * SD>; // scale · q
var<workgroup> dos: array<f32, BR * SD>;
var<workgroup> ks: array<f32, BC * SD>;
var<workgroup> vs: array<f32, BC * SD>;
var<workgroup> dss: array<f32, BR * BC>; // dS of the tile
var<workgroup> lse_s: array<f32, BR>;
var<workgroup> dl_s: array<f32, BR>; // delta of the block's rows

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let bh = wid.y; // b * Hq + h
  let b = bh / p.hq;
  let h = bh % p.hq;
  let hk = h / (p.hq / p.hkv);
  let off = p.kv_len - p.tq;
  let i0 = wid.x * BR;
  let rows = min(BR, p.tq - i0);
  let j_end = off + i0 + rows;
  let j_begin = attn_first_key(off + i0, p.window);
  let q_at = ((b * p.tq + i0) * p.hq + h) * D; // row r of the block at q_at + r * hq * D
  let q_row = p.hq * D;

  for (var e = t; e < BR * D; e += WG) {
    let r = e / D;
    var qx = 0.0;
    var dx = 0.0;
    if (r < rows) {
      if (!ROPE) { qx = q[q_at + r * q_row + e % D] * p.scale; }
      dx = dout[q_at + r * q_row + e % D];
    }
    if (!ROPE) { qs[(e / D) * SD + e % D] = qx; }
    dos[(e / D) * SD + e % D] = dx;
  }
  if (ROPE) {
    for (var e = t; e < BR * HALF; e += WG) {
      let r = e / HALF;
      let x = e % HALF;
      var y = vec2f(0.0);
      if (r < rows) {
        let at = q_at + r * q_row + x;
        y = rope_rotate(p.rope_pos + off + i0 + r, delta[p.freq_at + x], 1.0, q[at], q[at + HALF]) * p.scale;
      }
      qs[r * SD + x] = y.x;
      qs[r * SD + x + HALF] = y.y;
    }
  }
  workgroupBarrier();
  if (t < BR) { // delta_r = dO_r · O_r (= Σ_j P_rj dP_rj)
    var dl = 0.0;
    var ls = 0.0;
    if (t < rows) {
      for (var d = 0u; d < D; d++) { dl += dos[t * SD + d] * o[q_at + t * q_row + d]; }
      ls = lse[bh * p.tq + i0 + t];
    }
    dl_s[t] = dl;
    lse_s[t] = ls;
  }

  let r = t / P;
  let lane = t % P;
  let kv_at = (b * p.kv_cap * p.hkv + hk) * D;
  let kv_row = p.hkv * D;
  var acc: array<f32, DP>;

  for (var j0 = j_begin; j0 < j_end; j0 += BC) {
    let n = min(BC, j_end - j0);
    workgroupBarrier(); // dl_s, lse_s are written; the previous tile's reads are done
    if (ROPE) {
      for (var e = t; e < BC * HALF; e += WG) {
        let c = e / HALF;
        let x = e % HALF;
        var ky = vec2f(0.0);
        var vy = vec2f(0.0);
        if (c < n) {
          let at = kv_at + (j0 + c) * kv_row + x;
          ky = rope_rotate(p.rope_pos + j0 + c, delta[p.freq_at + x], 1.0, k[at], k[at + HALF]);
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
        if (c < n) {
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
      let rr = e / BC;
      let c = e % BC;
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < D; d++) {
        s += qs[rr * SD + d] * ks[c * SD + d];
        dp += dos[rr * SD + d] * vs[c * SD + d];
      }
      s = softcap(s, p.softcap);
      let vis = rr < rows && c < n && attn_visible(off + i0 + rr, j0 + c, p.window);
      let pc = select(0.0, exp(select(0.0, s - lse_s[rr], vis)), vis); // masked: exactly 0
      dss[e] = pc * (dp - dl_s[rr]) * softcap_grad(s, p.softcap);
    }
    workgroupBarrier();
    for (var c = 0u; c < n; c++) {
      let ds = dss[r * BC + c];
      for (var u = 0u; u < DP; u++) {
        let d = lane + u * P;
        if (d < D) { acc[u] += ds * ks[c * SD + d]; }
      }
    }
  }

  if (ROPE) { // the dims of a pair (d, d + HALF) sit on different lanes: they meet in qs, done with
    workgroupBarrier();
    for (var u = 0u; u < DP; u++) {
      let d = lane + u * P;
      if (d < D) { qs[r * SD + d] = acc[u] * p.scale; }
    }
    workgroupBarrier();
    for (var e = t; e < BR * HALF; e += WG) {
      let rr = e / HALF;
      let x = e % HALF;
      if (rr < rows) { // dq = Rᵀ · d(rotated q)
        let y = rope_rotate(p.rope_pos + off + i0 + rr, delta[p.freq_at + x], -1.0, qs[rr * SD + x], qs[rr * SD + x + HALF]);
        dq[q_at + rr * q_row + x] = y.x;
        dq[q_at + rr * q_row + x + HALF] = y.y;
      }
    }
  }
  if (r >= rows) { return; }
  for (var u = 0u; u < DP; u++) {
    let d = lane + u * P;
    if (d < D && !ROPE) { dq[q_at + r * q_row + d] = acc[u] * p.scale; }
  }
  if (lane == 0u) { delta[bh * p.tq + i0 + r] = dl_s[r]; }
}
