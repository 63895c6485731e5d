// Reading a quantized frozen weight (src/gpu/quant.ts) in registers: value i of a (rows, cols) q8 or q4 matrix,
// i = row · cols + col in row-major order, from the u32 word of quants that holds it and the u32 word of f16
// scales that holds its block's scale (block i >> 5, two scales a word: word i >> 6, half (i >> 5) & 1).
//   q8  byte i of the quants, an int8:            word q[i >> 2], byte i & 3
//   q4  block i >> 5 is 4 words; value j = i & 31 is a nibble of byte j & 15 (low for j < 16, high above),
//       minus 8:                                  word q[(i >> 5) · 4 + ((i & 15) >> 2)], byte i & 3
// Every product scale · q is exact in f32 (an f16 scale times an integer below 2^8), so the kernels see
// exactly dequantize(blocks). The includer binds the words and passes them in: B_AT / B_VEC of the matmul
// kernels and TABLE_AT of the embedding spell the loads (src/kernels/matmul.ts: quantB).

fn q_scale(s: u32, i: u32) -> f32 { return unpack2x16float(s)[(i >> 5u) & 1u]; }

// The word of quants that holds value i.
fn q8_word(i: u32) -> u32 { return i >> 2u; }
fn q4_word(i: u32) -> u32 { return (i >> 5u) * 4u + ((i & 15u) >> 2u); }

fn q8_at(w: u32, s: u32, i: u32) -> f32 {
  return f32(extractBits(bitcast<i32>(w), (i & 3u) * 8u, 8u)) * q_scale(s, i);
}
fn q4_at(w: u32, s: u32, i: u32) -> f32 {
  return (f32(extractBits(w, (i & 3u) * 8u + ((i >> 4u) & 1u) * 4u, 4u)) - 8.0) * q_scale(s, i);
}

// Values i .. i + 3, i a multiple of 4: one word of quants and one scale (they share a word and a block).
fn q8_vec(w: u32, s: u32, i: u32) -> vec4f {
  let x = bitcast<i32>(w);
  let q = vec4f(f32(extractBits(x, 0u, 8u)), f32(extractBits(x, 8u, 8u)), f32(extractBits(x, 16u, 8u)),
                f32(extractBits(x, 24u, 8u)));
  return q * q_scale(s, i);
}
fn q4_vec(w: u32, s: u32, i: u32) -> vec4f {
  let h = ((i >> 4u) & 1u) * 4u;
  let q = vec4f(f32(extractBits(w, h, 4u)), f32(extractBits(w, h + 8u, 4u)), f32(extractBits(w, h + 16u, 4u)),
                f32(extractBits(w, h + 24u, 4u)));
  return (q - 8.0) * q_scale(s, i);
}
