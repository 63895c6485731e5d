// Rotary position embedding, Hugging Face "rotate_half" layout: within each head the pairs are (i, i + D/2),
//   out_i       = x_i · cos - x_{i+D/2} · sin
//   out_{i+D/2} = x_{i+D/2} · cos + x_i · sin,     angle = pos · inv_freq[i],  pos = pos_offset + n % seq_len
// and the backward is the inverse rotation (the same with sin negated: p.sign = -1).
// x, out are (N, H, D) with N = B·T; inv_freq is (D/2,), computed on the host exactly as HF computes it in f32.
// The rotation of a pair is lib_rope's rope_rotate (the angle one f32 product, as in HF; accurate sin and cos).
// One invocation per pair; linear id = gid.x + gid.y · nwg.x · 256 (grid1d).

struct Params { pairs: u32, heads: u32, half: u32, seq_len: u32, pos_offset: u32, sign: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

//#include lib_rope

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.x + gid.y * nwg.x * 256u;
  if (id >= p.pairs) { return; }
  let i = id % p.half;
  let nh = id / p.half; // n · H + h
  let n = nh / p.heads;
  let pos = p.pos_offset + n % p.seq_len;
  let at = nh * 2u * p.half + i;
  let y = rope_rotate(pos, inv_freq[i], p.sign, x[at], x[at + p.half]);
  out[at] = y.x;
  out[at + p.half] = y.y;
}
