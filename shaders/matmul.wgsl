{{ENABLE_F16}}
// C = alpha · op(A) · op(B) [+ C] [+ bias] [+ lscale · mask ⊙ (U · op(V))], register-blocked.
// a is (batch, M, K) or (batch, K, M) with TRANS_A; b is (batch, K, N) or (batch, N, K) with TRANS_B,
// f32, f16 weights, or q8 / q4 blocks of a frozen weight (u32 words; bs holds their f16 scales, dequantized in
// registers by shaders/lib_quant.wgsl); c is (batch, M, N) with row stride ldc; bias is (N,).
// LoRA (LORA): u is (M, R), v is (N, R), or (R, N) with LORA_VT; R more register-blocked terms after the K
// loop, so C is written once.
// Dropout (lib_rng, idx = row * dropLd + col of x): MASK_A masks op(A)[m, k], MASK_B masks op(B)[k, n],
// MASK_EPI masks the LoRA term at [m, n]. Each thread computes a TM x 4 block of C; a workgroup of
// WG_N x WG_M threads computes a (TM·WG_M) x (4·WG_N) tile. No workgroup memory: on the software
// Vulkan drivers barriers cost more than the cache misses they save. B_VEC4 (no TRANS_B, N and ldb multiples
// of 4): op(B)[k, n0..n0+3] is one load (a vec4 of f32/f16, or one word of quants and one scale); B_AT / B_VEC
// spell the element access (src/kernels/matmul.ts: bAccess).
//! defaults: ENABLE_F16= BELEM=f32 B_AT=f32(b[i]) B_VEC=vec4f(0.0) B_VEC4=false WG_M=16 WG_N=16 TM=4 TRANS_A=false TRANS_B=false HAS_BIAS=false ACCUM=false LORA=false LORA_VT=false MASK_A=false MASK_B=false MASK_EPI=false
//#include lib_rng
//#include lib_quant

struct Params {
  M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32,
  strideA: u32, strideB: u32, strideC: u32,
  R: u32, ldv: u32, seed: u32, dropLd: u32,
  alpha: f32, lscale: f32, p: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<{{BELEM}}>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> u: array<f32>;
@group(0) @binding(6) var<storage, read> v: array<f32>;
@group(0) @binding(7) var<storage, read> bs: array<u32>; // q8 / q4 B: its scales (else an alias, unread)

const WG_M = {{WG_M}}u;
const WG_N = {{WG_N}}u;
const TM = {{TM}}u; // rows of C per thread (4 columns each): 1, 2, 4 or 8
const TRANS_A = {{TRANS_A}};
const TRANS_B = {{TRANS_B}};
const HAS_BIAS = {{HAS_BIAS}};
const ACCUM = {{ACCUM}};
const LORA = {{LORA}};
const LORA_VT = {{LORA_VT}};
const MASK_A = {{MASK_A}};
const MASK_B = {{MASK_B}};
const MASK_EPI = {{MASK_EPI}};
const B_VEC4 = {{B_VEC4}};
fn b_at(i: u32) -> f32 { return {{B_AT}}; }
fn b_vec(i: u32) -> vec4f { return {{B_VEC}}; }

fn load_a(base: u32, m: u32, k: u32) -> f32 {
  var x: f32;
  if (TRANS_A) { x = a[base + k * p.lda + m]; } else { x = a[base + m * p.lda + k]; }
  if (MASK_A) { x *= dropout_mult(p.seed, m * p.dropLd + k, p.p); }
  return x;
}

fn load_b(base: u32, k: u32, n: u32) -> f32 {
  var x: f32;
  if (TRANS_B) { x = b_at(base + n * p.ldb + k); } else { x = b_at(base + k * p.ldb + n); }
  if (MASK_B) { x *= dropout_mult(p.seed, k * p.dropLd + n, p.p); }
  return x;
}

@compute @workgroup_size(WG_N, WG_M)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let m0 = (wid.y * WG_M + lid.y) * TM;
  let n0 = (wid.x * WG_N + lid.x) * 4u;
  if (m0 >= p.M || n0 >= p.N) { return; }
  let baseA = wid.z * p.strideA;
  let baseB = wid.z * p.strideB;
  let baseC = wid.z * p.strideC;
  // Clamp rows/cols at the edges so the inner loop reads in bounds without branches; only stores are guarded.
  // The TM rows are spelled out (not a private array): SwiftShader keeps private arrays in memory (5x slower).
  let last = p.M - 1u;
  let r0 = m0; let r1 = min(m0 + 1u, last); let r2 = min(m0 + 2u, last); let r3 = min(m0 + 3u, last);
  let r4 = min(m0 + 4u, last); let r5 = min(m0 + 5u, last); let r6 = min(m0 + 6u, last); let r7 = min(m0 + 7u, last);
  let ns = vec4u(n0, min(n0 + 1u, p.N - 1u), min(n0 + 2u, p.N - 1u), min(n0 + 3u, p.N - 1u));
  var acc0 = vec4f(0.0); var acc1 = vec4f(0.0); var acc2 = vec4f(0.0); var acc3 = vec4f(0.0);
  var acc4 = vec4f(0.0); var acc5 = vec4f(0.0); var acc6 = vec4f(0.0); var acc7 = vec4f(0.0);
  for (var k = 0u; k < p.K; k++) {
    var bv: vec4f;
    if (B_VEC4) { bv = b_vec(baseB + k * p.ldb + n0); } else {
      bv = vec4f(load_b(baseB, k, ns.x), load_b(baseB, k, ns.y), load_b(baseB, k, ns.z), load_b(baseB, k, ns.w));
    }
    acc0 += load_a(baseA, r0, k) * bv;
    if (TM > 1u) { acc1 += load_a(baseA, r1, k) * bv; }
    if (TM > 2u) { acc2 += load_a(baseA, r2, k) * bv; acc3 += load_a(baseA, r3, k) * bv; }
    if (TM > 4u) {
      acc4 += load_a(baseA, r4, k) * bv; acc5 += load_a(baseA, r5, k) * bv;
      acc6 += load_a(baseA, r6, k) * bv; acc7 += load_a(baseA, r7, k) * bv;
    }
  }
  // LoRA: R more terms with the same register blocking, a = U[m, j], b = lscale · op(V)[j, n], kept apart
  // from acc so that alpha and the dropout mask apply to each part alone.
  var l0 = vec4f(0.0); var l1 = vec4f(0.0); var l2 = vec4f(0.0); var l3 = vec4f(0.0);
  var l4 = vec4f(0.0); var l5 = vec4f(0.0); var l6 = vec4f(0.0); var l7 = vec4f(0.0);
  if (LORA) {
    for (var j = 0u; j < p.R; j++) {
      let vv = vec4f(load_v(j, ns.x), load_v(j, ns.y), load_v(j, ns.z), load_v(j, ns.w)) * p.lscale;
      l0 += u[r0 * p.R + j] * vv;
      if (TM > 1u) { l1 += u[r1 * p.R + j] * vv; }
      if (TM > 2u) { l2 += u[r2 * p.R + j] * vv; l3 += u[r3 * p.R + j] * vv; }
      if (TM > 4u) {
        l4 += u[r4 * p.R + j] * vv; l5 += u[r5 * p.R + j] * vv;
        l6 += u[r6 * p.R + j] * vv; l7 += u[r7 * p.R + j] * vv;
      }
    }
  }
  finish_row(baseC, m0, n0, ns, acc0, l0);
  if (TM > 1u) { finish_row(baseC, m0 + 1u, n0, ns, acc1, l1); }
  if (TM > 2u) { finish_row(baseC, m0 + 2u, n0, ns, acc2, l2); finish_row(baseC, m0 + 3u, n0, ns, acc3, l3); }
  if (TM > 4u) {
    finish_row(baseC, m0 + 4u, n0, ns, acc4, l4); finish_row(baseC, m0 + 5u, n0, ns, acc5, l5);
    finish_row(baseC, m0 + 6u, n0, ns, acc6, l6); finish_row(baseC, m0 + 7u, n0, ns, acc7, l7);
  }
}

fn load_v(j: u32, n: u32) -> f32 {
  if (LORA_VT) { return v[j * p.ldv + n]; }
  return v[n * p.ldv + j];
}

// The epilogue of one row m of the thread's block, columns n0..n0+3 (ns: clamped): alpha, bias, the LoRA
// term l (masked by dropout where asked), store.
fn finish_row(baseC: u32, m: u32, n0: u32, ns: vec4u, acc: vec4f, lora: vec4f) {
  if (m >= p.M) { return; }
  var o = acc * p.alpha;
  if (HAS_BIAS) { o += vec4f(bias[ns.x], bias[ns.y], bias[ns.z], bias[ns.w]); }
  if (LORA) {
    var l = lora;
    if (MASK_EPI) {
      let row = m * p.dropLd;
      l *= vec4f(dropout_mult(p.seed, row + ns.x, p.p), dropout_mult(p.seed, row + ns.y, p.p),
                 dropout_mult(p.seed, row + ns.z, p.p), dropout_mult(p.seed, row + ns.w, p.p));
    }
    o += l;
  }
  let ci = baseC + m * p.ldc + n0;
  if (ACCUM) { o += vec4f(c[ci], c[ci + select(0u, 1u, n0 + 1u < p.N)], c[ci + select(0u, 2u, n0 + 2u < p.N)], c[ci + select(0u, 3u, n0 + 3u < p.N)]); }
  c[ci] = o.x;
  if (n0 + 1u < p.N) { c[ci + 1u] = o.y; }
  if (n0 + 2u < p.N) { c[ci + 2u] = o.z; }
  if (n0 + 3u < p.N) { c[ci + 3u] = o.w; }
}
