// GELU (tanh approximation) backward: with t = tanh(u), u = sqrt(2/π) · (x + 0.044715 · x³),
//   dy/dx = 0.5 · (1 + t) + 0.5 · x · (1 - t²) · sqrt(2/π) · (1 + 3 · 0.044715 · x²)
// With e = exp(-2|u|): 1 + t as in the forward and 1 - t² = 4e / (1 + e)², both free of cancellation.
// dy, x, dx are (n,).

struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const K0 = 0.7978845608028654; // sqrt(2/π)
const K1 = 0.044715;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let v = x[i];
  let u = K0 * (v + K1 * v * v * v);
  let e = exp(-2.0 * abs(u));
  let d = 1.0 + e;
  let one_plus_t = select(2.0 * e, 2.0, u >= 0.0) / d;
  let sech2 = 4.0 * e / (d * d);
  let du = K0 * (1.0 + 3.0 * K1 * v * v);
  dx[i] = dy[i] * (0.5 * one_plus_t + 0.5 * v * sech2 * du);
}
