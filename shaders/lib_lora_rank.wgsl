// The rank-r product of one block of 8 rows, shared by shaders/lora_rank.wgsl (x as it is) and the kernels that
// make their input in the same dispatch (shaders/lora_rank_norm.wgsl, shaders/lora_rank_glu.wgsl):
//   out[sg·ostride + n·R + j] = Σ_k x_at(seed, i, n, k) · w_at(a, j, k)      n = n0 + i < N, j < R
// A workgroup is KS x JQ threads (JQ = ceil(R / 4)); thread (kt, jq) computes all 8 rows of the block for
// columns j0..j0+3 (j0 = 4·jq, clamped at R), register-blocked like matmul.wgsl (one w load serves 8 rows),
// over k = kt, kt + KS, ... (consecutive threads read consecutive k). Then each of the 8·JQ outputs sums its
// KS partials in a fixed order (kt = 0, 1, ...): no atomics, so a run is bit-identical to itself.
// The includer declares p (Params with N, K, R, ostride), w, out, the consts KS, JQ, W_KR, and
// fn x_at(seed, i, n, k): element (n, k) of the input as the product reads it (dropout applied), n being the
// block's row i (0..7; rows past N are the last row again).

const ROWS = 8u; // output rows per workgroup (and per thread)
const NOUT = ROWS * JQ; // vec4 outputs per workgroup

var<workgroup> part: array<vec4f, KS * NOUT>; // part[kt·NOUT + row·JQ + jq], KS·JQ ≤ 128: at most 16 KiB

fn w_at(a: u32, j: u32, k: u32) -> f32 {
  if (W_KR) { return w[a + k * p.R + j]; }
  return w[a + j * p.K + k];
}

// The block of rows n0.. of segment sg (its w at float aoff, its dropout stream seed); every thread of the
// workgroup calls it (it has a barrier), kt = lid.x, jq = lid.y, li the local index.
fn rank_rows(n0: u32, sg: u32, aoff: u32, seed: u32, kt: u32, jq: u32, li: u32) {
  // loads read clamped rows and columns (in bounds without branches); only the stores are guarded.
  // The 8 rows are spelled out (not a private array): SwiftShader keeps private arrays in memory.
  let last = p.N - 1u;
  let r0 = min(n0, last); let r1 = min(n0 + 1u, last); let r2 = min(n0 + 2u, last); let r3 = min(n0 + 3u, last);
  let r4 = min(n0 + 4u, last); let r5 = min(n0 + 5u, last); let r6 = min(n0 + 6u, last); let r7 = min(n0 + 7u, last);
  let j0 = jq * 4u;
  let js = min(vec4u(j0, j0 + 1u, j0 + 2u, j0 + 3u), vec4u(p.R - 1u));
  var a0 = vec4f(0.0); var a1 = vec4f(0.0); var a2 = vec4f(0.0); var a3 = vec4f(0.0);
  var a4 = vec4f(0.0); var a5 = vec4f(0.0); var a6 = vec4f(0.0); var a7 = vec4f(0.0);
  for (var k = kt; k < p.K; k += KS) {
    let wv = vec4f(w_at(aoff, js.x, k), w_at(aoff, js.y, k), w_at(aoff, js.z, k), w_at(aoff, js.w, k));
    a0 += x_at(seed, 0u, r0, k) * wv; a1 += x_at(seed, 1u, r1, k) * wv; a2 += x_at(seed, 2u, r2, k) * wv;
    a3 += x_at(seed, 3u, r3, k) * wv; a4 += x_at(seed, 4u, r4, k) * wv; a5 += x_at(seed, 5u, r5, k) * wv;
    a6 += x_at(seed, 6u, r6, k) * wv; a7 += x_at(seed, 7u, r7, k) * wv;
  }
  let b = kt * NOUT + jq;
  part[b] = a0; part[b + JQ] = a1; part[b + 2u * JQ] = a2; part[b + 3u * JQ] = a3;
  part[b + 4u * JQ] = a4; part[b + 5u * JQ] = a5; part[b + 6u * JQ] = a6; part[b + 7u * JQ] = a7;
  workgroupBarrier();
  // output o = row·JQ + jq of the block: the sum of its KS partials in order
  for (var o = li; o < NOUT; o += KS * JQ) {
    var s = vec4f(0.0);
    for (var t = 0u; t < KS; t++) { s += part[t * NOUT + o]; }
    let row = n0 + o / JQ;
    let c0 = (o % JQ) * 4u; // < R: JQ = ceil(R / 4)
    if (row < p.N) {
      let base = sg * p.ostride + row * p.R + c0;
      out[base] = s.x;
      if (c0 + 1u < p.R) { out[base + 1u] = s.y; }
      if (c0 + 2u < p.R) { out[base + 2u] = s.z; }
      if (c0 + 3u < p.R) { out[base + 3u] = s.w; }
    }
  }
}
