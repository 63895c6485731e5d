// RoPE's rotation of one pair (x_i, x_{i+D/2}) by angle = pos · inv_freq (one f32 product, as in HF), for
// shaders/rope.wgsl and shaders/rope_qk.wgsl:
//   (x1 · cos - x2 · sin, x2 · cos + x1 · sin), sin negated with sign = -1 (the backward, the inverse rotation).
// sin and cos come from sincos() below, not the builtins: WGSL only promises 2^-11 absolute error for sin/cos on
// [-π, π] and nothing outside, and angles reach the position.

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

fn rope_rotate(pos: u32, inv_freq: f32, sign: f32, x1: f32, x2: f32) -> vec2f {
  let sc = sincos(f32(pos) * inv_freq);
  let sn = sign * sc.x;
  let cs = sc.y;
  return vec2f(x1 * cs - x2 * sn, x2 * cs + x1 * sn);
}
