// One AdamW step over the flat LoRA buffers (every parameter of the model at once), in place, as
// torch.optim.AdamW (single-tensor path) does it in f32, then the gradients zeroed for the next step:
//   g = grad · scale      (scale = stats[2], the clip factor from optim_finalize)
//   grad = 0
//   if stats[3] != 0 (a non-finite loss or norm was seen): stop here, param, m and v stay as they are
//   param *= 1 - lr·wd    (decoupled weight decay, before the Adam update)
//   m = lerp(m, g, 1 - β1) = m + (1 - β1)·(g - m)
//   v = β2·v + (1 - β2)·g²
//   param -= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps),   bc1 = 1 - β1^step, bc2 = 1 - β2^step
// The bias corrections are computed once on the CPU in float64, as torch computes them in Python floats.
// param, grad, m, v are (n,) (one chunk of the flat buffers, padding included: zeros stay zeros); stats is (8,).
// Linear index i = gid.x + gid.y · nwg.x · 256.

struct Params {
  n: u32,
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
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  var g = grad[i];
  g *= stats[2];
  grad[i] = 0.0;
  if (stats[3] != 0.0) { return; }
  let w = param[i] * p.decay;
  let mi = m[i] + p.oneMinusB1 * (g - m[i]);
  let vi = p.beta2 * v[i] + p.oneMinusB2 * (g * g);
  m[i] = mi;
  v[i] = vi;
  param[i] = w - p.stepSize * (mi / (sqrt(vi) / p.bc2Sqrt + p.eps));
}
