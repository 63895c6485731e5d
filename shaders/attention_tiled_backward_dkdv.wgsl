//! defaults: HEAD_DIM=64 BR=8 BC=16 ROPE=false
// Causal self-attention backward, pass 2 of 2: dk and dv. FlashAttention-2 style: one workgroup owns BC key
// rows of one (b, kv head), staged once in workgroup memory, and walks the query rows that see them, of
// every query head sharing the kv head, in tiles of BR (so the sum over the group needs no float atomics
// and every run gives the same bits). Per tile, with P recomputed from the forward's lse:
//   Sᵀ = scale · K·Qᵀ,  Pᵀ = exp(Sᵀ - lse),  dPᵀ = V·dOᵀ,  dSᵀ = Pᵀ ⊙ (dPᵀ - delta)   (BC, BR), one invocation each
//   dV += Pᵀ·dO,  dK += dSᵀ·Q                                                      lane owns dims d ≡ lane (mod P)
// and at the end dk = scale · dK. Query tiles that see none of the block's keys are never visited.
//
// q, dout are (B, Tq, Hq, D); k, v are (B, kvCap, Hkv, D); lse, delta are (B, Hq, Tq);
// dk, dv are (B, kvLen, Hkv, D). Workgroup memory: 2·(BC + BR)·(D + 1) + 2·BC·BR + 2·BR floats.
// Grid: x = ceil(kvLen / BC) key blocks, y = B * Hkv.
// ROPE: k and q are rotated as they are staged (see attention_tiled_forward.wgsl) and dk is rotated back (Rᵀ) at
// the end; inv_freq (D/2,) sits in delta from delta[freq_at] on (attention.ts).
//#include lib_attention
//#include lib_rope

struct Params { tq: u32, kv_len: u32, kv_cap: u32, hq: u32, hkv: u32, window: u32, rope_pos: u32, freq_at: u32, scale: f32, softcap: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> delta: array<f32>;
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;

const D = {{HEAD_DIM}}u;
const BR = {{BR}}u; // query rows per tile
const BC = {{BC}}u; // key rows per workgroup
const WG = 256u;
const P = WG / BC; // lanes per key row
const DP = (D + P - 1u) / P;
const SD = D + 1u; // row stride in workgroup memory: odd, so rows of one dot product fall in different banks
const ROPE = {{ROPE}};
const HALF = D / 2u; // RoPE pairs (d, d + HALF)

var<workgroup> ks: array<f32, BC * SD>; // scale · k
var<workgroup> vs: array<f32, BC * SD>;
var<workgroup> qs: array<f32, BR * SD>;
var<workgroup> dos: array<f32, BR * SD>;
var<workgroup> pt: array<f32, BC * BR>; // Pᵀ of the tile
var<workgroup> dst: array<f32, BC * BR>; // dSᵀ of the tile
var<workgroup> lse_s: array<f32, BR>;
var<workgroup> dl_s: array<f32, BR>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let bhk = wid.y; // b * Hkv + hk
  let b = bhk / p.hkv;
  let hk = bhk % p.hkv;
  let per_kv = p.hq / p.hkv; // query heads per kv head
  let off = p.kv_len - p.tq; // position of query row 0
  let j0 = wid.x * BC; // the block's first key
  let keys = min(BC, p.kv_len - j0);
  // Query rows that see some key of the block: from the first key's (causal) to the last key's (window).
  let i_begin = select(0u, j0 - off, j0 > off);
  let i_end = attn_rows_end(j0 + keys - 1u, off, p.tq, p.window);
  let kv_at = ((b * p.kv_cap + j0) * p.hkv + hk) * D; // key c of the block at kv_at + c * hkv * D
  let kv_row = p.hkv * D;

  if (ROPE) {
    for (var e = t; e < BC * HALF; e += WG) {
      let c = e / HALF;
      let x = e % HALF;
      var ky = vec2f(0.0);
      var vy = vec2f(0.0);
      if (c < keys) {
        let at = kv_at + c * kv_row + x;
        ky = rope_rotate(p.rope_pos + j0 + c, delta[p.freq_at + x], 1.0, k[at], k[at + HALF]) * p.scale;
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
      if (c < keys) {
        kx = k[kv_at + c * kv_row + e % D] * p.scale;
        vx = v[kv_at + c * kv_row + e % D];
      }
      ks[(e / D) * SD + e % D] = kx;
      vs[(e / D) * SD + e % D] = vx;
    }
  }

  let c = t / P; // this invocation's key in the block
  let lane = t % P;
  let q_row = p.hq * D;
  var dk_acc: array<f32, DP>;
  var dv_acc: array<f32, DP>;

  for (var h = hk * per_kv; h < hk * per_kv + per_kv; h++) {
    let bh = b * p.hq + h;
    for (var i0 = i_begin; i0 < i_end; i0 += BR) {
      let n = min(BR, i_end - i0);
      let q_at = ((b * p.tq + i0) * p.hq + h) * D;
      workgroupBarrier(); // ks, vs are written; the previous tile's reads are done
      for (var e = t; e < BR * D; e += WG) {
        let r = e / D;
        var qx = 0.0;
        var dx = 0.0;
        if (r < n) {
          if (!ROPE) { qx = q[q_at + r * q_row + e % D]; }
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
          if (r < n) {
            let at = q_at + r * q_row + x;
            y = rope_rotate(p.rope_pos + off + i0 + r, delta[p.freq_at + x], 1.0, q[at], q[at + HALF]);
          }
          qs[r * SD + x] = y.x;
          qs[r * SD + x + HALF] = y.y;
        }
      }
      if (t < BR) {
        lse_s[t] = select(0.0, lse[bh * p.tq + i0 + min(t, n - 1u)], t < n);
        dl_s[t] = select(0.0, delta[bh * p.tq + i0 + min(t, n - 1u)], t < n);
      }
      workgroupBarrier();
      for (var e = t; e < BC * BR; e += WG) {
        let cc = e / BR;
        let rr = e % BR;
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < D; d++) {
          s += ks[cc * SD + d] * qs[rr * SD + d];
          dp += vs[cc * SD + d] * dos[rr * SD + d];
        }
        s = softcap(s, p.softcap);
        let vis = cc < keys && rr < n && attn_visible(off + i0 + rr, j0 + cc, p.window);
        let pc = select(0.0, exp(select(0.0, s - lse_s[rr], vis)), vis);
        pt[e] = pc;
        dst[e] = pc * (dp - dl_s[rr]) * softcap_grad(s, p.softcap);
      }
      workgroupBarrier();
      for (var rr = 0u; rr < n; rr++) {
        let pc = pt[c * BR + rr];
        let ds = dst[c * BR + rr];
        for (var u = 0u; u < DP; u++) {
          let d = lane + u * P;
          if (d < D) {
            dv_acc[u] += pc * dos[rr * SD + d];
            dk_acc[u] += ds * qs[rr * SD + d];
          }
        }
      }
    }
  }

  let out_at = ((b * p.kv_len + j0) * p.hkv + hk) * D; // key c of the block at out_at + c * hkv * D
  if (ROPE) { // the dims of a pair (d, d + HALF) sit on different lanes: they meet in ks, done with
    workgroupBarrier();
    for (var u = 0u; u < DP; u++) {
      let d = lane + u * P;
      if (d < D) { ks[c * SD + d] = dk_acc[u] * p.scale; }
    }
    workgroupBarrier();
    for (var e = t; e < BC * HALF; e += WG) {
      let cc = e / HALF;
      let x = e % HALF;
      if (cc < keys) { // dk = Rᵀ · d(rotated k)
        let y = rope_rotate(p.rope_pos + j0 + cc, delta[p.freq_at + x], -1.0, ks[cc * SD + x], ks[cc * SD + x + HALF]);
        dk[out_at + cc * kv_row + x] = y.x;
        dk[out_at + cc * kv_row + x + HALF] = y.y;
      }
    }
  }
  if (c >= keys) { return; }
  for (var u = 0u; u < DP; u++) {
    let d = lane + u * P;
    if (d < D) {
      if (!ROPE) { dk[out_at + c * kv_row + d] = dk_acc[u] * p.scale; }
      dv[out_at + c * kv_row + d] = dv_acc[u];
    }
  }
}
