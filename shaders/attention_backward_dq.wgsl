//! defaults: HEAD_DIM=64 WG=64
// Causal self-attention backward, row-wise variant (see attention_forward.wgsl), pass 1 of 2: dq, and
// delta = rowsum(dO ⊙ O) for pass 2.
// One invocation per query row; the probabilities are recomputed from lse (P = exp(S - lse)), then
//   dP = dO·Vᵀ,  dS = P ⊙ (dP - delta),  dq = scale · dS·K.
// No workgroup memory, no barriers (see attention_forward.wgsl).
//
// q, dout, o, dq are (B, Tq, Hq, D); k, v are (B, kvCap, Hkv, D); lse, delta are (B, Hq, Tq).
// Grid: x = ceil(Tq / WG) row blocks, y = B * Hq. Mask: lib_attention.wgsl.
//#include lib_attention

// rope_pos, freq_at: the tiled kernels' RoPE; here unused (attention.ts rotates around this kernel)
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
const WG = {{WG}}u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let bh = wid.y; // b * Hq + h
  let b = bh / p.hq;
  let h = bh % p.hq;
  let hk = h / (p.hq / p.hkv);
  let off = p.kv_len - p.tq;
  let i = wid.x * WG + lid.x;
  let live = i < p.tq;
  let row = min(i, p.tq - 1u);
  let pos = off + row;
  let j_end = off + min(wid.x * WG + WG, p.tq); // uniform key loop, masked per lane
  let j_begin = attn_first_key(off + wid.x * WG, p.window);

  let q_at = ((b * p.tq + row) * p.hq + h) * D;
  var qs: array<f32, D>;
  var dos: array<f32, D>;
  var dl = 0.0; // delta_i = dO_i · O_i = Σ_j P_ij dP_ij
  for (var d = 0u; d < D; d++) {
    qs[d] = q[q_at + d] * p.scale;
    dos[d] = dout[q_at + d];
    dl += dos[d] * o[q_at + d];
  }
  let lse_i = lse[bh * p.tq + row];

  let kv_row = p.hkv * D;
  let kv_at = (b * p.kv_cap * p.hkv + hk) * D;
  var acc: array<f32, D>;
  for (var j = j_begin; j < j_end; j++) {
    let at = kv_at + j * kv_row;
    var s = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < D; d++) {
      s += qs[d] * k[at + d];
      dp += dos[d] * v[at + d];
    }
    s = softcap(s, p.softcap);
    let valid = attn_visible(pos, j, p.window);
    let pij = select(0.0, exp(select(0.0, s - lse_i, valid)), valid); // masked: exactly 0, exp never sees it
    let ds = pij * (dp - dl) * softcap_grad(s, p.softcap);
    for (var d = 0u; d < D; d++) { acc[d] += ds * k[at + d]; }
  }

  if (!live) { return; }
  let dq_at = ((b * p.tq + i) * p.hq + h) * D;
  for (var d = 0u; d < D; d++) { dq[dq_at + d] = acc[d] * p.scale; }
  delta[bh * p.tq + i] = dl;
}
