{{ENABLE_F16}}
{{ENABLE_SUBGROUPS}}
// C = alpha · op(A) · op(B) [+ C] [+ bias] [+ lscale · mask ⊙ (U · op(V))] with the K sum split over a workgroup:
// the variant for skinny outputs with a long K (the rank-r products dB = s·dYᵀ·U and dA = s·Gᵀ·X, K = tokens),
// which a tile-per-thread kernel runs on a handful of workgroups with a serial loop over all tokens.
// Shapes and options as shaders/matmul.wgsl (a (batch, M, K) or transposed, b (batch, K, N) or transposed, f32,
// f16, or q8 / q4 blocks with their scales in bs, read through B_AT: shaders/lib_quant.wgsl; the epilogue:
// shaders/lib_matmul_epilogue.wgsl). A workgroup of 256 threads computes a 4 x 4 tile of C: thread t sums
// k = t, t + 256, ... into 4 x 4 registers (rows and columns clamped at the edges; only stores are guarded), then
// each row is reduced: within the subgroup first (SG_ADD = subgroupAdd where the adapter has subgroups, one lane
// per subgroup keeps the sum and the others contribute 0), then by a fixed tree over the 256 slots in workgroup
// memory. The tree's order is fixed, so a run is bit-identical to itself on one device.
//! defaults: ENABLE_F16= ENABLE_SUBGROUPS= SG_ADD=x SG_KEEP=true BELEM=f32 B_AT=f32(b[i]) TRANS_A=false TRANS_B=false HAS_BIAS=false ACCUM=false LORA=false LORA_VT=false MASK_A=false MASK_B=false MASK_EPI=false
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
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<{{BELEM}}>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> u: array<f32>;
@group(0) @binding(6) var<storage, read> v: array<f32>;
@group(0) @binding(7) var<storage, read> bs: array<u32>; // q8 / q4 B: its scales (else an alias, unread)

const TRANS_A = {{TRANS_A}};
const TRANS_B = {{TRANS_B}};
const HAS_BIAS = {{HAS_BIAS}};
const ACCUM = {{ACCUM}};
const LORA = {{LORA}};
const LORA_VT = {{LORA_VT}};
const MASK_A = {{MASK_A}};
const MASK_B = {{MASK_B}};
const MASK_EPI = {{MASK_EPI}};

var<workgroup> red: array<vec4f, 256>; // one row of the tile per reduction, one slot per thread
var<workgroup> tile: array<vec4f, 4>; // the reduced 4 x 4 tile

// The sum over the thread's subgroup kept by one lane (0 from the others); without subgroups, x itself.
fn sg_sum(x: vec4f) -> vec4f {
  let s = {{SG_ADD}};
  return select(vec4f(0.0), s, {{SG_KEEP}});
}

fn load_a(base: u32, m: u32, k: u32) -> f32 {
  var x: f32;
  if (TRANS_A) { x = a[base + k * p.lda + m]; } else { x = a[base + m * p.lda + k]; }
  if (MASK_A) { x *= dropout_mult(p.seed, m * p.dropLd + k, p.p); }
  return x;
}

fn b_at(i: u32) -> f32 { return {{B_AT}}; }

fn load_b(base: u32, k: u32, n: u32) -> f32 {
  var x: f32;
  if (TRANS_B) { x = b_at(base + n * p.ldb + k); } else { x = b_at(base + k * p.ldb + n); }
  if (MASK_B) { x *= dropout_mult(p.seed, k * p.dropLd + n, p.p); }
  return x;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let m0 = wid.y * 4u;
  let n0 = wid.x * 4u;
  let baseA = wid.z * p.strideA;
  let baseB = wid.z * p.strideB;
  let baseC = wid.z * p.strideC;
  let ms = min(vec4u(m0, m0 + 1u, m0 + 2u, m0 + 3u), vec4u(p.M - 1u));
  let ns = min(vec4u(n0, n0 + 1u, n0 + 2u, n0 + 3u), vec4u(p.N - 1u));
  var acc0 = vec4f(0.0); var acc1 = vec4f(0.0); var acc2 = vec4f(0.0); var acc3 = vec4f(0.0);
  for (var k = t; k < p.K; k += 256u) {
    let bv = vec4f(load_b(baseB, k, ns.x), load_b(baseB, k, ns.y), load_b(baseB, k, ns.z), load_b(baseB, k, ns.w));
    acc0 += load_a(baseA, ms.x, k) * bv;
    acc1 += load_a(baseA, ms.y, k) * bv;
    acc2 += load_a(baseA, ms.z, k) * bv;
    acc3 += load_a(baseA, ms.w, k) * bv;
  }
  reduce_row(0u, acc0, t);
  reduce_row(1u, acc1, t);
  reduce_row(2u, acc2, t);
  reduce_row(3u, acc3, t);
  workgroupBarrier();
  if (t < 16u) {
    let m = m0 + t / 4u;
    let n = n0 + t % 4u;
    if (m < p.M && n < p.N) { epi_store(baseC, m, n, tile[t / 4u][t % 4u]); }
  }
}

// tile[i] = Σ over the workgroup's threads of x (row i of the tile, 4 columns), in a fixed order.
fn reduce_row(i: u32, x: vec4f, t: u32) {
  red[t] = sg_sum(x);
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] += red[t + s]; }
    workgroupBarrier();
  }
  if (t == 0u) { tile[i] = red[0]; }
  workgroupBarrier();
}
