{{ENABLE_F16}}
// C = alpha · op(A) · op(B) [+ C] [+ bias] [+ lscale · mask ⊙ (U · op(V))], tiled in workgroup memory: the
// variant for real GPUs (shaders/matmul.wgsl, register-blocked with no workgroup memory, wins on software Vulkan).
// a is (batch, M, K) or (batch, K, M) with TRANS_A; b is (batch, K, N) or (batch, N, K) with TRANS_B, element type
// f32, f16 or q8 / q4 blocks with their scales in bs (weights, widened or dequantized to f32 when staged:
// shaders/lib_quant.wgsl); c is (batch, M, N) with row stride ldc; bias is (N,); u is (M, R),
// v is (N, R) or (R, N) with LORA_VT (the epilogue: shaders/lib_matmul_epilogue.wgsl).
// A workgroup of 16 x 16 threads computes a BM x BN tile of C. Per step of BK: the (BM, BK) slice of op(A) and the
// (BK, BN) slice of op(B) are staged in workgroup memory as As[k][m] and Bs[k][n] (f32, (BM + BN)·BK·4 <= 16 KiB),
// then each thread accumulates its TM x TN outputs, rows ly + 16·i and columns lx + 16·j (strided, so a warp reads
// Bs without bank conflicts and As as a broadcast). Staging reads 4 consecutive elements of the operand's contiguous
// dimension per load where A_VEC4 / B_VEC4 (that extent, the leading dimension and the batch stride multiples of 4,
// the launcher checks), else one; out-of-range elements are staged as 0. Dropout masks (lib_rng, index
// row * dropLd + col of x): MASK_A on op(A)[m, k], MASK_B on op(B)[k, n], applied once per element when staged.
//! defaults: ENABLE_F16= AELEM=f32 A_AT=a[i] A_VEC=vec4f(0.0) A_VEC4=false BELEM=f32 B_AT=f32(b[i]) B_VEC=vec4f(0.0) B_VEC4=false BM=64 BN=64 BK=16 TRANS_A=false TRANS_B=false HAS_BIAS=false ACCUM=false LORA=false LORA_VT=false MASK_A=false MASK_B=false MASK_EPI=false
//#include lib_rng
//#include lib_quant
//#include lib_matmul_epilogue

struct Params {
  M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32,
  strideA: u32, strideB: u32, strideC: u32,
  R: u32, ldv: u32, seed: u32, dropLd: u32,
  alpha: f32, lscale: f32, p: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<{{AELEM}}>;
@group(0) @binding(2) var<storage, read> b: array<{{BELEM}}>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> u: array<f32>;
@group(0) @binding(6) var<storage, read> v: array<f32>;
@group(0) @binding(7) var<storage, read> bs: array<u32>; // q8 / q4 B: its scales (else an alias, unread)

const BM = {{BM}}u;
const BN = {{BN}}u;
const BK = {{BK}}u;
const TM = BM / 16u; // rows of C per thread
const TN = BN / 16u; // columns of C per thread
const TRANS_A = {{TRANS_A}};
const TRANS_B = {{TRANS_B}};
const A_VEC4 = {{A_VEC4}};
const B_VEC4 = {{B_VEC4}};
const HAS_BIAS = {{HAS_BIAS}};
const ACCUM = {{ACCUM}};
const LORA = {{LORA}};
const LORA_VT = {{LORA_VT}};
const MASK_A = {{MASK_A}};
const MASK_B = {{MASK_B}};
const MASK_EPI = {{MASK_EPI}};

var<workgroup> As: array<f32, BK * BM>; // As[k * BM + m] = op(A)[m0 + m, k0 + k]
var<workgroup> Bs: array<f32, BK * BN>; // Bs[k * BN + n] = op(B)[k0 + k, n0 + n]

fn a_at(i: u32) -> f32 { return {{A_AT}}; }
fn a_vec(i: u32) -> vec4f { return {{A_VEC}}; } // elements i..i+3, i a multiple of 4
fn b_at(i: u32) -> f32 { return {{B_AT}}; }
fn b_vec(i: u32) -> vec4f { return {{B_VEC}}; }

fn mask_a(x: f32, m: u32, k: u32) -> f32 {
  if (MASK_A) { return x * dropout_mult(p.seed, m * p.dropLd + k, p.p); }
  return x;
}
fn mask_b(x: f32, k: u32, n: u32) -> f32 {
  if (MASK_B) { return x * dropout_mult(p.seed, k * p.dropLd + n, p.p); }
  return x;
}

// As <- op(A)[m0 .. m0 + BM, k0 .. k0 + BK]; t is the thread's index in the workgroup.
fn stage_a(baseA: u32, m0: u32, k0: u32, t: u32) {
  if (A_VEC4) {
    for (var e = t; e < BM * BK / 4u; e += 256u) {
      var mm: u32; var kk: u32; // the first of 4 consecutive elements along m (TRANS_A) or k
      if (TRANS_A) { kk = e / (BM / 4u); mm = (e % (BM / 4u)) * 4u; } else { mm = e / (BK / 4u); kk = (e % (BK / 4u)) * 4u; }
      let gm = m0 + mm; let gk = k0 + kk;
      var x = vec4f(0.0);
      if (gm < p.M && gk < p.K) {
        if (TRANS_A) { x = a_vec(baseA + gk * p.lda + gm); } else { x = a_vec(baseA + gm * p.lda + gk); }
      }
      for (var q = 0u; q < 4u; q++) {
        if (TRANS_A) { As[kk * BM + mm + q] = mask_a(x[q], gm + q, gk); } else { As[(kk + q) * BM + mm] = mask_a(x[q], gm, gk + q); }
      }
    }
  } else {
    for (var e = t; e < BM * BK; e += 256u) {
      var mm: u32; var kk: u32; // consecutive threads take consecutive elements of the contiguous dimension
      if (TRANS_A) { kk = e / BM; mm = e % BM; } else { mm = e / BK; kk = e % BK; }
      let gm = m0 + mm; let gk = k0 + kk;
      var x = 0.0;
      if (gm < p.M && gk < p.K) {
        if (TRANS_A) { x = a_at(baseA + gk * p.lda + gm); } else { x = a_at(baseA + gm * p.lda + gk); }
        x = mask_a(x, gm, gk);
      }
      As[kk * BM + mm] = x;
    }
  }
}

// Bs <- op(B)[k0 .. k0 + BK, n0 .. n0 + BN]; with TRANS_B (x·W0ᵀ, W0 is (N, K)) k is the contiguous dimension.
fn stage_b(baseB: u32, n0: u32, k0: u32, t: u32) {
  if (B_VEC4) {
    for (var e = t; e < BN * BK / 4u; e += 256u) {
      var nn: u32; var kk: u32;
      if (TRANS_B) { nn = e / (BK / 4u); kk = (e % (BK / 4u)) * 4u; } else { kk = e / (BN / 4u); nn = (e % (BN / 4u)) * 4u; }
      let gn = n0 + nn; let gk = k0 + kk;
      var x = vec4f(0.0);
      if (gn < p.N && gk < p.K) {
        if (TRANS_B) { x = b_vec(baseB + gn * p.ldb + gk); } else { x = b_vec(baseB + gk * p.ldb + gn); }
      }
      for (var q = 0u; q < 4u; q++) {
        if (TRANS_B) { Bs[(kk + q) * BN + nn] = mask_b(x[q], gk + q, gn); } else { Bs[kk * BN + nn + q] = mask_b(x[q], gk, gn + q); }
      }
    }
  } else {
    for (var e = t; e < BN * BK; e += 256u) {
      var nn: u32; var kk: u32;
      if (TRANS_B) { nn = e / BK; kk = e % BK; } else { kk = e / BN; nn = e % BN; }
      let gn = n0 + nn; let gk = k0 + kk;
      var x = 0.0;
      if (gn < p.N && gk < p.K) {
        if (TRANS_B) { x = b_at(baseB + gn * p.ldb + gk); } else { x = b_at(baseB + gk * p.ldb + gn); }
        x = mask_b(x, gk, gn);
      }
      Bs[kk * BN + nn] = x;
    }
  }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let baseA = wid.z * p.strideA;
  let baseB = wid.z * p.strideB;
  let baseC = wid.z * p.strideC;
  var acc: array<f32, TM * TN>; // acc[i * TN + j] = C[m0 + ly + 16·i, n0 + lx + 16·j]
  var af: array<f32, TM>;
  var bf: array<f32, TN>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    stage_a(baseA, m0, k0, t);
    stage_b(baseB, n0, k0, t);
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      for (var i = 0u; i < TM; i++) { af[i] = As[kk * BM + lid.y + 16u * i]; }
      for (var j = 0u; j < TN; j++) { bf[j] = Bs[kk * BN + lid.x + 16u * j]; }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) { acc[i * TN + j] += af[i] * bf[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let m = m0 + lid.y + 16u * i;
    for (var j = 0u; j < TN; j++) {
      let n = n0 + lid.x + 16u * j;
      if (m < p.M && n < p.N) { epi_store(baseC, m, n, acc[i * TN + j]); }
    }
  }
}
