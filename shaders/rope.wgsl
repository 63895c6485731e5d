// Rotary position embedding, Hugging Face "rotate_half" layout: within each head the pairs are (i, i + D/2),
//   out_i       = x_i · cos - x_{i+D/2} · sin
//   out_{i+D/2} = x_{i+D/2} · cos + x_i · sin,     angle = pos · inv_freq[i],  pos = pos_offset + n % seq_len
// and the backward is the inverse rotation (the same with sin negated: p.sign = -1).
// x, out are (N, H, D) with N = B·T; inv_freq is (D/2,), computed on the host exactly as HF computes it in f32.
// The angle is one f32 product, as in HF. sin and cos come from sincos() below, not the builtins: WGSL only
// promises 2^-11 absolute error for sin/cos on [-π, π] and nothing outside, and angles reach the position.
// One invocation per pair; linear id = gid.x + gid.y · nwg.x · 256 (grid1d).

struct Params { pairs: u32, heads: u32, half: u32, seq_len: u32, pos_offset: u32, sign: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// π/2 split Cody-Waite style into four 8-bit chunks and a remainder: k · chunk is exact for k < 2^16, so the
// reduction a - k·π/2 loses nothing to cancellation for angles up to ~1e5 (beyond, it degrades gracefully).
const PIO2_1 = 1.5703125;
const PIO2_2 = 4.825592041015625e-4;
const PIO2_3 = 1.2665987014770508e-6;
const PIO2_4 = 9.89530235528946e-10;
const PIO2_5 = 2.5633440682570896e-12;

// (sin a, cos a) for a ≥ 0 (|a| < 1e5 for full accuracy): reduce to r in [-π/4, π/4] and quadrant k mod 4,
// then the Cephes sinf/cosf minimax polynomials (about 1 ulp on that interval).
fn sincos(a: f32) -> vec2f {
  let k = floor(a * 0.63661975 + 0.5);
  var r = a - k * PIO2_1;
  r -= k * PIO2_2;
  r -= k * PIO2_3;
  r -= k * PIO2_4;
  r -= k * PIO2_5;
  let z = r * r;
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  switch (i32(k) & 3) {
    case 0: { return vec2f(s, c); }
    case 1: { return vec2f(c, -s); }
    case 2: { return vec2f(-s, -c); }
    default: { return vec2f(-c, s); }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.x + gid.y * nwg.x * 256u;
  if (id >= p.pairs) { return; }
  let i = id % p.half;
  let nh = id / p.half; // n · H + h
  let n = nh / p.heads;
  let pos = p.pos_offset + n % p.seq_len;
  let sc = sincos(f32(pos) * inv_freq[i]);
  let sn = p.sign * sc.x;
  let cs = sc.y;
  let at = nh * 2u * p.half + i;
  let x1 = x[at];
  let x2 = x[at + p.half];
  out[at] = x1 * cs - x2 * sn;
  out[at + p.half] = x2 * cs + x1 * sn;
}
