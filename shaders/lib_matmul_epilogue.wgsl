// The epilogue shared by the matmul variants (shaders/matmul_tiled.wgsl, shaders/matmul_splitk.wgsl), one
// output element at a time, the same operations in the same order as finish_row in shaders/matmul.wgsl:
//   o = alpha · acc [+ bias[n]] [+ mask(m, n) · Σ_j u[m, j] · (lscale · op(V)[j, n])] [+ c[m, n]]
// u is (M, R); v is (N, R), or (R, N) with LORA_VT; the mask index is m * dropLd + n (MASK_EPI).
// The includer declares p (Params), c, bias, u, v and the consts HAS_BIAS, ACCUM, LORA, LORA_VT, MASK_EPI.

fn epi_v(j: u32, n: u32) -> f32 {
  if (LORA_VT) { return v[j * p.ldv + n]; }
  return v[n * p.ldv + j];
}

fn epi_store(baseC: u32, m: u32, n: u32, acc: f32) {
  var o = acc * p.alpha;
  if (HAS_BIAS) { o += bias[n]; }
  if (LORA) {
    var l = 0.0;
    for (var j = 0u; j < p.R; j++) { l += u[m * p.R + j] * (epi_v(j, n) * p.lscale); }
    if (MASK_EPI) { l *= dropout_mult(p.seed, m * p.dropLd + n, p.p); }
    o += l;
  }
  let ci = baseC + m * p.ldc + n;
  if (ACCUM) { o += c[ci]; }
  c[ci] = o;
}
