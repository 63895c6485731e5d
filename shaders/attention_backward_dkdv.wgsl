//! defaults: HEAD_DIM=64 WG=64
// Causal self-attention backward, row-wise variant (see attention_forward.wgsl), pass 2 of 2: dk and dv. One invocation per key row of one kv head; it
// walks every query row of every query head that shares this kv head, so the sum over the group needs
// no float atomics:
//   P = exp(S - lse),  dv_j = Σ_i P_ij dO_i,  dk_j = scale · Σ_i P_ij (dO_i·v_j - delta_i) q_i.
// No workgroup memory, no barriers (see attention_forward.wgsl).
//
// q, dout are (B, Tq, Hq, D); k, v are (B, kvCap, Hkv, D); lse, delta are (B, Hq, Tq);
// dk, dv are (B, kvLen, Hkv, D). Grid: x = ceil(kvLen / WG) key blocks, y = B * Hkv. Mask: lib_attention.wgsl.
//#include lib_attention

// rope_pos, freq_at: the tiled kernels' RoPE; here unused (attention.ts rotates around this kernel)
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
const WG = {{WG}}u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let bhk = wid.y; // b * Hkv + hk
  let b = bhk / p.hkv;
  let hk = bhk % p.hkv;
  let per_kv = p.hq / p.hkv; // query heads per kv head
  let off = p.kv_len - p.tq; // position of query row 0
  let j0 = wid.x * WG; // the workgroup's first key
  let j = j0 + lid.x;
  let live = j < p.kv_len;
  let key = min(j, p.kv_len - 1u);
  // Rows before i_start see none of this workgroup's keys; from there on the loop is uniform, masked per lane.
  let i_start = select(0u, j0 - off, j0 > off);
  let i_end = attn_rows_end(min(j0 + WG, p.kv_len) - 1u, off, p.tq, p.window); // the last key's window

  let kv_at = ((b * p.kv_cap + key) * p.hkv + hk) * D;
  var ks: array<f32, D>;
  var vs: array<f32, D>;
  for (var d = 0u; d < D; d++) {
    ks[d] = k[kv_at + d] * p.scale;
    vs[d] = v[kv_at + d];
  }

  var dk_acc: array<f32, D>;
  var dv_acc: array<f32, D>;
  for (var h = hk * per_kv; h < hk * per_kv + per_kv; h++) {
    let bh = b * p.hq + h;
    for (var i = i_start; i < i_end; i++) {
      let at = ((b * p.tq + i) * p.hq + h) * D;
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < D; d++) {
        s += q[at + d] * ks[d];
        dp += dout[at + d] * vs[d];
      }
      s = softcap(s, p.softcap);
      let valid = attn_visible(off + i, key, p.window);
      let pij = select(0.0, exp(select(0.0, s - lse[bh * p.tq + i], valid)), valid);
      let ds = pij * (dp - delta[bh * p.tq + i]) * softcap_grad(s, p.softcap);
      for (var d = 0u; d < D; d++) {
        dv_acc[d] += pij * dout[at + d];
        dk_acc[d] += ds * q[at + d];
      }
    }
  }

  if (!live) { return; }
  let out_at = ((b * p.kv_len + j) * p.hkv + hk) * D;
  for (var d = 0u; d < D; d++) {
    dk[out_at + d] = dk_acc[d] * p.scale;
    dv[out_at + d] = dv_acc[d];
  }
}
