// LoRA's backward rank-r products in one pass, stage 1 of 2: for one chunk of CH token rows (CH = 8·SB) a
// workgroup computes G for its rows and the chunk's partial sums of dA and dB (split over tokens so the grid
// is wide and no thread loops over all N tokens):
//   G[n, j] = Σ_o dy[n, o] · B[o, j]                          dy is (N, OUT), B is (OUT, R); G is (N, R), stored
//   part[c][dA: j·IN + i]      = Σ_{n in chunk c} G[n, j] · drop(x)[n, i]       x is (N, IN)
//   part[c][dB: EA + o·R + j]  = Σ_{n in chunk c} dy[n, o] · u[n, j]            u is (N, R), EA = R·IN
// drop(x)[n, i] = x[n, i] · dropout_mult(seed, n·IN + i, p) with MASK (lib_rng, the forward's mask of x).
// Stage 2 adds the chunks in order, scales by s and adds into dA (R, IN) and dB (OUT, R): either on its own
// (lora_grad_sum.wgsl) or, carried, by the extra workgroups of the NEXT lora_grad dispatch (below).
// Segments (SEGS of them, up to 3): the linears of one input x (q, k, v; gate, up) in one dispatch,
// segment s with its own dy_s (binding dy0, dy1 or dy2), OUT_s, B_s (at float bo_s of b), u_s (at float uo_s
// of u), G_s (at float go_s of ws) and dropout seed_s; p is shared.
// ws, the workspace (src/kernels/lora_grad.ts GradCarry), holds the G's and the chunk partials: the chunk's row
// of partials starts at float PO + c·PE and may be shared by several linears (their gradients side by side, as
// in the flat LoRA buffer): segment s's dA at column PA_s and dB at PB_s, each followed by ZA / ZB_s zeros
// (padding).
// Workgroups [0, W1) do stage 1: w = s·chunks + c. Workgroups from W1 on do a carried stage 2 (a previous
// lora_grad's, independent of this one): element e of its rows of QE partials (QC chunks at float QO of ws) is
//   dst[e or QD + e - QA] (+)= qs · Σ_{c in order} ws[QO + c·QE + e]     (+ with QACC; e < QA: dA's range)
// the same sums in the same order as lora_grad_sum.wgsl, so carried or not the gradients are bit for bit equal.
// The chunk goes in blocks of 8 rows: (1) the KS x JQ threads (JQ = ceil(R / 4)) compute the block's G, thread
// (kt, jq) all 8 rows x columns 4·jq.. over o = kt, kt + KS, ... (like lora_rank.wgsl), and the KS partials of
// each output are added in order into workgroup memory; (2) thread t owns columns o = t, t + KS·JQ, ... of dB
// and (3) columns i = t, ... of dA: 8 row values in registers, then R sums of 8 terms each, written to the
// chunk's partial (added to it after the first block). Rows past N count as zero. Every sum runs in a fixed
// order, the same for a segment as for its linear alone: a run is bit-identical to itself.
//! defaults: KS=32 JQ=2 MASK=false SEGS=3
//#include lib_rng

struct Params {
  N: u32, IN: u32, R: u32, SB: u32, PE: u32, ZA: u32,
  OUT0: u32, OUT1: u32, OUT2: u32, seed0: u32, seed1: u32, seed2: u32,
  bo0: u32, bo1: u32, bo2: u32, uo0: u32, uo1: u32, uo2: u32, go0: u32, go1: u32, go2: u32,
  PA0: u32, PA1: u32, PA2: u32, PB0: u32, PB1: u32, PB2: u32, ZB0: u32, ZB1: u32, ZB2: u32,
  PO: u32, W1: u32, QO: u32, QE: u32, QA: u32, QD: u32, QC: u32, QACC: u32,
  p: f32, qs: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy0: array<f32>;
@group(0) @binding(2) var<storage, read> dy1: array<f32>;
@group(0) @binding(3) var<storage, read> dy2: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read> u: array<f32>;
@group(0) @binding(6) var<storage, read> b: array<f32>;
@group(0) @binding(7) var<storage, read_write> ws: array<f32>; // the G's and the chunk partials
@group(0) @binding(8) var<storage, read_write> dst: array<f32>; // the carried stage 2's gradients

const ROWS = 8u; // rows per block
const KS = {{KS}}u; // threads that split one G sum over OUT
const JQ = {{JQ}}u; // column quads of R: ceil(R / 4)
const MASK = {{MASK}};
const SEGS = {{SEGS}}u;
const T = KS * JQ; // threads per workgroup
const NOUT = ROWS * JQ; // vec4 values of G per block

var<workgroup> gp: array<vec4f, KS * NOUT>; // G partials: gp[kt·NOUT + row·JQ + jq], KS·JQ ≤ 128: ≤ 16 KiB
var<workgroup> gs: array<vec4f, NOUT>; // the block's G, gs[row·JQ + jq]
var<workgroup> us: array<vec4f, NOUT>; // the block's u, same layout

fn x_at(seed: u32, n: u32, i: u32) -> f32 {
  var v = x[n * p.IN + i];
  if (MASK) { v *= dropout_mult(seed, n * p.IN + i, p.p); }
  return v;
}

// dy of segment s (uniform per workgroup; with SEGS = 1 the branches fold away)
fn dy_at(s: u32, e: u32) -> f32 {
  if (SEGS == 1u || s == 0u) { return dy0[e]; }
  if (SEGS == 2u || s == 1u) { return dy1[e]; }
  return dy2[e];
}

// segment s's value of a per-segment parameter
fn seg(s: u32, v0: u32, v1: u32, v2: u32) -> u32 { return select(select(v0, v1, s == 1u), v2, s == 2u); }

// element j of a (row, quad) vec4 in gs / us
fn quad(v: vec4f, j: u32) -> f32 { return v[j & 3u]; }

// the carried stage 2: element e of its span
fn carried_sum(e: u32) {
  if (e >= p.QE) { return; }
  var s = 0.0;
  for (var c = 0u; c < p.QC; c++) { s += ws[p.QO + c * p.QE + e]; }
  var v = p.qs * s;
  let d = select(p.QD + e - p.QA, e, e < p.QA);
  if (p.QACC != 0u) { v = dst[d] + v; }
  dst[d] = v;
}

@compute @workgroup_size(KS, JQ)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= p.W1) { // uniform per workgroup: no barrier is skipped by half of one
    carried_sum((w - p.W1) * T + li);
    return;
  }
  let chunks = (p.N + ROWS * p.SB - 1u) / (ROWS * p.SB);
  let c = w % chunks; // the chunk
  let sg = w / chunks; // the segment
  let OUT = seg(sg, p.OUT0, p.OUT1, p.OUT2);
  let seed = seg(sg, p.seed0, p.seed1, p.seed2);
  let bo = seg(sg, p.bo0, p.bo1, p.bo2);
  let uo = seg(sg, p.uo0, p.uo1, p.uo2);
  let go = seg(sg, p.go0, p.go1, p.go2);
  let PA = seg(sg, p.PA0, p.PA1, p.PA2);
  let PB = seg(sg, p.PB0, p.PB1, p.PB2);
  let pc = p.PO + c * p.PE; // the chunk's row of partials in ws
  let EA = p.R * p.IN;
  let EB = OUT * p.R;
  for (var t = li; t < p.ZA; t += T) { ws[pc + PA + EA + t] = 0.0; }
  for (var t = li; t < seg(sg, p.ZB0, p.ZB1, p.ZB2); t += T) { ws[pc + PB + EB + t] = 0.0; }
  let kt = lid.x;
  let jq = lid.y;
  let last = p.N - 1u;
  for (var blk = 0u; blk < p.SB; blk++) {
    let n0 = (c * p.SB + blk) * ROWS;
    if (n0 >= p.N) { break; } // uniform per workgroup
    // (1) G of rows n0..n0+7 (clamped reads), columns j0..j0+3 (clamped), K = OUT split over KS threads
    let r0 = min(n0, last); let r1 = min(n0 + 1u, last); let r2 = min(n0 + 2u, last); let r3 = min(n0 + 3u, last);
    let r4 = min(n0 + 4u, last); let r5 = min(n0 + 5u, last); let r6 = min(n0 + 6u, last); let r7 = min(n0 + 7u, last);
    let j0 = jq * 4u;
    let js = min(vec4u(j0, j0 + 1u, j0 + 2u, j0 + 3u), vec4u(p.R - 1u));
    var a0 = vec4f(0.0); var a1 = vec4f(0.0); var a2 = vec4f(0.0); var a3 = vec4f(0.0);
    var a4 = vec4f(0.0); var a5 = vec4f(0.0); var a6 = vec4f(0.0); var a7 = vec4f(0.0);
    for (var o = kt; o < OUT; o += KS) {
      let bk = bo + o * p.R;
      let bv = vec4f(b[bk + js.x], b[bk + js.y], b[bk + js.z], b[bk + js.w]);
      a0 += dy_at(sg, r0 * OUT + o) * bv; a1 += dy_at(sg, r1 * OUT + o) * bv;
      a2 += dy_at(sg, r2 * OUT + o) * bv; a3 += dy_at(sg, r3 * OUT + o) * bv;
      a4 += dy_at(sg, r4 * OUT + o) * bv; a5 += dy_at(sg, r5 * OUT + o) * bv;
      a6 += dy_at(sg, r6 * OUT + o) * bv; a7 += dy_at(sg, r7 * OUT + o) * bv;
    }
    let gb = kt * NOUT + jq;
    gp[gb] = a0; gp[gb + JQ] = a1; gp[gb + 2u * JQ] = a2; gp[gb + 3u * JQ] = a3;
    gp[gb + 4u * JQ] = a4; gp[gb + 5u * JQ] = a5; gp[gb + 6u * JQ] = a6; gp[gb + 7u * JQ] = a7;
    workgroupBarrier();
    // each (row, quad) of G: its KS partials in order; u of the same rows beside it; G stored
    for (var q = li; q < NOUT; q += T) {
      var s = vec4f(0.0);
      for (var t = 0u; t < KS; t++) { s += gp[t * NOUT + q]; }
      gs[q] = s;
      let n = min(n0 + q / JQ, last);
      let c0 = (q % JQ) * 4u;
      let cs = min(vec4u(c0, c0 + 1u, c0 + 2u, c0 + 3u), vec4u(p.R - 1u));
      let un = uo + n * p.R;
      us[q] = vec4f(u[un + cs.x], u[un + cs.y], u[un + cs.z], u[un + cs.w]);
      if (n0 + q / JQ < p.N) {
        for (var e = 0u; e < 4u; e++) { if (c0 + e < p.R) { ws[go + n * p.R + c0 + e] = s[e]; } }
      }
    }
    workgroupBarrier();
    // rows past N weigh zero in the sums over the chunk
    let w = vec4f(select(0.0, 1.0, n0 < p.N), select(0.0, 1.0, n0 + 1u < p.N),
                  select(0.0, 1.0, n0 + 2u < p.N), select(0.0, 1.0, n0 + 3u < p.N));
    let w2 = vec4f(select(0.0, 1.0, n0 + 4u < p.N), select(0.0, 1.0, n0 + 5u < p.N),
                   select(0.0, 1.0, n0 + 6u < p.N), select(0.0, 1.0, n0 + 7u < p.N));
    // (2) dB: column o of dy for the 8 rows, times u[row, j], for every j
    for (var o = li; o < OUT; o += T) {
      let y0 = w.x * dy_at(sg, r0 * OUT + o); let y1 = w.y * dy_at(sg, r1 * OUT + o);
      let y2 = w.z * dy_at(sg, r2 * OUT + o); let y3 = w.w * dy_at(sg, r3 * OUT + o);
      let y4 = w2.x * dy_at(sg, r4 * OUT + o); let y5 = w2.y * dy_at(sg, r5 * OUT + o);
      let y6 = w2.z * dy_at(sg, r6 * OUT + o); let y7 = w2.w * dy_at(sg, r7 * OUT + o);
      for (var j = 0u; j < p.R; j++) {
        let k = j / 4u;
        var s = y0 * quad(us[k], j) + y1 * quad(us[JQ + k], j);
        s += y2 * quad(us[2u * JQ + k], j); s += y3 * quad(us[3u * JQ + k], j);
        s += y4 * quad(us[4u * JQ + k], j); s += y5 * quad(us[5u * JQ + k], j);
        s += y6 * quad(us[6u * JQ + k], j); s += y7 * quad(us[7u * JQ + k], j);
        let e = pc + PB + o * p.R + j;
        if (blk > 0u) { s = ws[e] + s; }
        ws[e] = s;
      }
    }
    // (3) dA: column i of drop(x) for the 8 rows, times G[row, j], for every j
    for (var i = li; i < p.IN; i += T) {
      let x0 = w.x * x_at(seed, r0, i); let x1 = w.y * x_at(seed, r1, i);
      let x2 = w.z * x_at(seed, r2, i); let x3 = w.w * x_at(seed, r3, i);
      let x4 = w2.x * x_at(seed, r4, i); let x5 = w2.y * x_at(seed, r5, i);
      let x6 = w2.z * x_at(seed, r6, i); let x7 = w2.w * x_at(seed, r7, i);
      for (var j = 0u; j < p.R; j++) {
        let k = j / 4u;
        var s = x0 * quad(gs[k], j) + x1 * quad(gs[JQ + k], j);
        s += x2 * quad(gs[2u * JQ + k], j); s += x3 * quad(gs[3u * JQ + k], j);
        s += x4 * quad(gs[4u * JQ + k], j); s += x5 * quad(gs[5u * JQ + k], j);
        s += x6 * quad(gs[6u * JQ + k], j); s += x7 * quad(gs[7u * JQ + k], j);
        let e = pc + PA + j * p.IN + i;
        if (blk > 0u) { s = ws[e] + s; }
        ws[e] = s;
      }
    }
    workgroupBarrier(); // gs, us and gp are rewritten by the next block
  }
}
