// SwiGLU backward: with s = sigmoid(g),
//   dup   = dh · silu(g)
//   dgate = dh · up · silu'(g),  silu'(g) = s · (1 + g · (1 - s))
// From e = exp(-|g|) as in the forward: s and 1 - s are 1/(1 + e) and e/(1 + e), swapped for g < 0, so
// neither is computed as a difference (1 - s would cancel for large g).
// dh, gate, up, dgate, dup are (N, F), flattened to n = N·F.

struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dh: array<f32>;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read> up: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(5) var<storage, read_write> dup: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let g = gate[i];
  let d = dh[i];
  let e = exp(-abs(g));
  let big = 1.0 / (1.0 + e); // max(s, 1 - s)
  let small = e * big; // min(s, 1 - s)
  let pos = g >= 0.0;
  let s = select(small, big, pos);
  let one_minus_s = select(big, small, pos);
  dup[i] = d * (g * s);
  dgate[i] = (d * up[i]) * (s * (1.0 + g * one_minus_s));
}
