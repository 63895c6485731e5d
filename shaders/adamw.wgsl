// One AdamW step in place, as torch.optim.AdamW (single-tensor path) does it in f32:
//   g = grad · s          (s = scale[0], the gradient-clipping factor, when hasScale = 1; else 1)
//   param *= 1 - lr·wd    (decoupled weight decay, before the Adam update)
//   m = lerp(m, g, 1 - β1) = m + (1 - β1)·(g - m)
//   v = β2·v + (1 - β2)·g²
//   param -= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps),   bc1 = 1 - β1^step, bc2 = 1 - β2^step
// The bias corrections are computed once on the CPU in float64, as torch computes them in Python floats.
// param, grad, m, v are (n,); scale is (1,). Linear index i = gid.x + gid.y · nwg.x · 256.

struct Params {
  n: u32, hasScale: u32,
  decay: f32,       // 1 - lr·weightDecay
  oneMinusB1: f32,  // 1 - β1
  beta2: f32,
  oneMinusB2: f32,  // 1 - β2
  stepSize: f32,    // lr / bc1
  bc2Sqrt: f32,     // sqrt(bc2)
  eps: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> scale: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  var g = grad[i];
  if (p.hasScale == 1u) { g *= scale[0]; }
  let w = param[i] * p.decay;
  let mi = m[i] + p.oneMinusB1 * (g - m[i]);
  let vi = p.beta2 * v[i] + p.oneMinusB2 * (g * g);
  m[i] = mi;
  v[i] = vi;
  param[i] = w - p.stepSize * (mi / (sqrt(vi) / p.bc2Sqrt + p.eps));
}
