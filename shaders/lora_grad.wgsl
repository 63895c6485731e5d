// LoRA weight gradients, stage 1 of 2: partial sums over one chunk of CH token rows (split over tokens so the
// grid is wide and no thread loops over all N tokens).
//   part[c][p, j] = Σ_{n in chunk c} drop(y)[n, p] · z[n, j]     y is (N, P), z is (N, R), c = 0 .. chunks-1
//   dB = scale · dyᵀ·u:     y = dy (N, OUT), z = u (N, r), out element (p, j) at p·R + j        (OUT_PJ)
//   dA = scale · Gᵀ·drop(x): y = x (N, IN) masked (MASK), z = G (N, r), out element (p, j) at j·P + p
// MASK: drop(y)[n, p] = y[n, p] · dropout_mult(seed, n·P + p, p) (lib_rng, the forward's mask of x).
// Each chunk's partial (P·R values, laid out like the gradient) goes to part[c·P·R + ..]; stage 2
// (lora_grad_sum.wgsl) adds the chunks in order into the gradient. DIRECT (one chunk, N ≤ CH): the one
// partial is the whole sum, so this pass writes out = scale·sum, or out += scale·sum with ACCUM, itself.
// A workgroup is WP x JW threads; thread (tp, jw) owns 4 columns p0..p0+3 (p0 = 4·(wid.x·WP + tp)) x 4·JT
// columns j0.. (j0 = 4·JT·jw) of the result: 16 or 32 accumulators, reads clamped, stores guarded. JT = 2
// (8 columns of r per thread) halves the loads and mask hashes per multiply-add where r > 4.
// Every sum runs in a fixed order (n ascending): a run is bit-identical to itself.
//! defaults: WP=16 JW=1 JT=2 OUT_PJ=false MASK=false DIRECT=false ACCUM=false
//#include lib_rng

struct Params {
  N: u32, P: u32, R: u32, CH: u32, seed: u32,
  p: f32, scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WP = {{WP}}u; // threads along P (4 columns each)
const JW = {{JW}}u; // threads along R: ceil(R / (4·JT))
const JT = {{JT}}u; // column quads of R per thread: 1 or 2
const OUT_PJ = {{OUT_PJ}};
const MASK = {{MASK}};
const DIRECT = {{DIRECT}};
const ACCUM = {{ACCUM}};

fn y_at(n: u32, q: u32) -> f32 {
  var v = y[n * p.P + q];
  if (MASK) { v *= dropout_mult(p.seed, n * p.P + q, p.p); }
  return v;
}

@compute @workgroup_size(WP, JW)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let p0 = (wid.x * WP + lid.x) * 4u;
  let j0 = lid.y * 4u * JT;
  if (p0 >= p.P) { return; }
  let ps = min(vec4u(p0, p0 + 1u, p0 + 2u, p0 + 3u), vec4u(p.P - 1u));
  let js = min(vec4u(j0, j0 + 1u, j0 + 2u, j0 + 3u), vec4u(p.R - 1u));
  let jt = min(vec4u(j0 + 4u, j0 + 5u, j0 + 6u, j0 + 7u), vec4u(p.R - 1u));
  let c = wid.y;
  let n1 = min(p.N, (c + 1u) * p.CH);
  var a0 = vec4f(0.0); var a1 = vec4f(0.0); var a2 = vec4f(0.0); var a3 = vec4f(0.0);
  var b0 = vec4f(0.0); var b1 = vec4f(0.0); var b2 = vec4f(0.0); var b3 = vec4f(0.0);
  for (var n = c * p.CH; n < n1; n++) {
    // y row n, columns ps; z row n, columns js (and jt): a_i[j] += y[n, p0 + i] · z[n, j]
    let y0 = y_at(n, ps.x); let y1 = y_at(n, ps.y); let y2 = y_at(n, ps.z); let y3 = y_at(n, ps.w);
    let zr = n * p.R;
    let zv = vec4f(z[zr + js.x], z[zr + js.y], z[zr + js.z], z[zr + js.w]);
    a0 += y0 * zv; a1 += y1 * zv; a2 += y2 * zv; a3 += y3 * zv;
    if (JT > 1u) {
      let zw = vec4f(z[zr + jt.x], z[zr + jt.y], z[zr + jt.z], z[zr + jt.w]);
      b0 += y0 * zw; b1 += y1 * zw; b2 += y2 * zw; b3 += y3 * zw;
    }
  }
  store_col(c, p0, j0, a0); store_col(c, p0 + 1u, j0, a1);
  store_col(c, p0 + 2u, j0, a2); store_col(c, p0 + 3u, j0, a3);
  if (JT > 1u) {
    store_col(c, p0, j0 + 4u, b0); store_col(c, p0 + 1u, j0 + 4u, b1);
    store_col(c, p0 + 2u, j0 + 4u, b2); store_col(c, p0 + 3u, j0 + 4u, b3);
  }
}

// The 4 results (q, j0..j0+3) of one column q: to chunk c's partial, or (DIRECT) scaled into the gradient.
fn store_col(c: u32, q: u32, j0: u32, a: vec4f) {
  if (q >= p.P) { return; }
  for (var i = 0u; i < 4u; i++) {
    let j = j0 + i;
    if (j >= p.R) { return; }
    var e: u32;
    if (OUT_PJ) { e = q * p.R + j; } else { e = j * p.P + q; }
    if (DIRECT) {
      var v = p.scale * a[i];
      if (ACCUM) { v = out[e] + v; }
      out[e] = v;
    } else {
      out[c * p.P * p.R + e] = a[i];
    }
  }
}
