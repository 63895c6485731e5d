// RoPE of q and k in one dispatch (shaders/rope.wgsl for two tensors): the first pairs_q invocations rotate q
// (N, Hq, D), the next pairs_k rotate k (N, Hk, D); both rows n sit at pos_offset + n % seq_len and share
// inv_freq (D/2,). p.sign = -1: the backward (the inverse rotation). Pairs (i, i + D/2) as in rope.wgsl, rotated
// by lib_rope's rope_rotate. One invocation per pair; linear id = gid.x + gid.y · nwg.x · 256 (grid1d).

struct Params { pairs_q: u32, pairs_k: u32, heads_q: u32, heads_k: u32, half: u32, seq_len: u32, pos_offset: u32, sign: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_q: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_k: array<f32>;

//#include lib_rope

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.x + gid.y * nwg.x * 256u;
  if (id >= p.pairs_q + p.pairs_k) { return; }
  let is_q = id < p.pairs_q;
  let pid = select(id - p.pairs_q, id, is_q);
  let i = pid % p.half;
  let nh = pid / p.half; // n · H + h
  let n = nh / select(p.heads_k, p.heads_q, is_q);
  let pos = p.pos_offset + n % p.seq_len;
  let at = nh * 2u * p.half + i;
  if (is_q) {
    let y = rope_rotate(pos, inv_freq[i], p.sign, q[at], q[at + p.half]);
    out_q[at] = y.x;
    out_q[at + p.half] = y.y;
  } else {
    let y = rope_rotate(pos, inv_freq[i], p.sign, k[at], k[at + p.half]);
    out_k[at] = y.x;
    out_k[at + p.half] = y.y;
  }
}
