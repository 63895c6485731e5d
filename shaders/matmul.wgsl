{{ENABLE_F16}}
// C = alpha · op(A) · op(B) [+ C] [+ bias] [+ lscale · mask ⊙ (U · op(V))], register-blocked.
// a is (batch, M, K) or (batch, K, M) with TRANS_A; b is (batch, K, N) or (batch, N, K) with TRANS_B,
// element type BT (f32 or f16 weights); c is (batch, M, N) with row stride ldc; bias is (N,).
// LoRA epilogue (LORA): u is (M, R), v is (N, R), or (R, N) with LORA_VT; added once per output.
// Dropout (lib_rng, idx = row * dropLd + col of x): MASK_A masks op(A)[m, k], MASK_B masks op(B)[k, n],
// MASK_EPI masks the LoRA term at [m, n]. Each thread computes a 4x4 block of C; a workgroup of
// WG_N x WG_M threads computes a (4·WG_M) x (4·WG_N) tile. No workgroup memory: on the software
// Vulkan drivers barriers cost more than the cache misses they save.
//! defaults: ENABLE_F16= BT=f32 WG_M=16 WG_N=16 TRANS_A=false TRANS_B=false HAS_BIAS=false ACCUM=false LORA=false LORA_VT=false MASK_A=false MASK_B=false MASK_EPI=false
//#include lib_rng

struct Params {
  M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32,
  strideA: u32, strideB: u32, strideC: u32,
  R: u32, ldv: u32, seed: u32, dropLd: u32,
  alpha: f32, lscale: f32, p: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<{{BT}}>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> u: array<f32>;
@group(0) @binding(6) var<storage, read> v: array<f32>;

const WG_M = {{WG_M}}u;
const WG_N = {{WG_N}}u;
const TRANS_A = {{TRANS_A}};
const TRANS_B = {{TRANS_B}};
const HAS_BIAS = {{HAS_BIAS}};
const ACCUM = {{ACCUM}};
const LORA = {{LORA}};
const LORA_VT = {{LORA_VT}};
const MASK_A = {{MASK_A}};
const MASK_B = {{MASK_B}};
const MASK_EPI = {{MASK_EPI}};

fn load_a(base: u32, m: u32, k: u32) -> f32 {
  var x: f32;
  if (TRANS_A) { x = a[base + k * p.lda + m]; } else { x = a[base + m * p.lda + k]; }
  if (MASK_A) { x *= dropout_mult(p.seed, m * p.dropLd + k, p.p); }
  return x;
}

fn load_b(base: u32, k: u32, n: u32) -> f32 {
  var x: f32;
  if (TRANS_B) { x = f32(b[base + n * p.ldb + k]); } else { x = f32(b[base + k * p.ldb + n]); }
  if (MASK_B) { x *= dropout_mult(p.seed, k * p.dropLd + n, p.p); }
  return x;
}

@compute @workgroup_size(WG_N, WG_M)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let m0 = (wid.y * WG_M + lid.y) * 4u;
  let n0 = (wid.x * WG_N + lid.x) * 4u;
  if (m0 >= p.M || n0 >= p.N) { return; }
  let baseA = wid.z * p.strideA;
  let baseB = wid.z * p.strideB;
  let baseC = wid.z * p.strideC;
  // Clamp rows/cols at the edges so the inner loop reads in bounds without branches; only stores are guarded.
  let ms = vec4u(m0, min(m0 + 1u, p.M - 1u), min(m0 + 2u, p.M - 1u), min(m0 + 3u, p.M - 1u));
  let ns = vec4u(n0, min(n0 + 1u, p.N - 1u), min(n0 + 2u, p.N - 1u), min(n0 + 3u, p.N - 1u));
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k = 0u; k < p.K; k++) {
    let bv = vec4f(load_b(baseB, k, ns.x), load_b(baseB, k, ns.y), load_b(baseB, k, ns.z), load_b(baseB, k, ns.w));
    acc0 += load_a(baseA, ms.x, k) * bv;
    acc1 += load_a(baseA, ms.y, k) * bv;
    acc2 += load_a(baseA, ms.z, k) * bv;
    acc3 += load_a(baseA, ms.w, k) * bv;
  }
  var acc = array<vec4f, 4>(acc0 * p.alpha, acc1 * p.alpha, acc2 * p.alpha, acc3 * p.alpha);
  if (HAS_BIAS) {
    let bv = vec4f(bias[ns.x], bias[ns.y], bias[ns.z], bias[ns.w]);
    for (var i = 0u; i < 4u; i++) { acc[i] += bv; }
  }
  if (LORA) {
    // rank-R term: lscale · U[m, :] · op(V)[:, n], R MACs per output
    var l = array<vec4f, 4>(vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0));
    for (var j = 0u; j < p.R; j++) {
      var vv: vec4f;
      if (LORA_VT) {
        vv = vec4f(v[j * p.ldv + ns.x], v[j * p.ldv + ns.y], v[j * p.ldv + ns.z], v[j * p.ldv + ns.w]);
      } else {
        vv = vec4f(v[ns.x * p.ldv + j], v[ns.y * p.ldv + j], v[ns.z * p.ldv + j], v[ns.w * p.ldv + j]);
      }
      for (var i = 0u; i < 4u; i++) { l[i] += u[ms[i] * p.R + j] * vv; }
    }
    for (var i = 0u; i < 4u; i++) {
      var li = l[i] * p.lscale;
      if (MASK_EPI) {
        let row = ms[i] * p.dropLd;
        li *= vec4f(dropout_mult(p.seed, row + ns.x, p.p), dropout_mult(p.seed, row + ns.y, p.p),
                    dropout_mult(p.seed, row + ns.z, p.p), dropout_mult(p.seed, row + ns.w, p.p));
      }
      acc[i] += li;
    }
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + j;
      if (n >= p.N) { break; }
      let ci = baseC + m * p.ldc + n;
      if (ACCUM) { c[ci] += acc[i][j]; } else { c[ci] = acc[i][j]; }
    }
  }
}
