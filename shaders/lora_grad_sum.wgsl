// LoRA weight gradients, stage 2 of 2: the chunk partials of lora_grad.wgsl summed in chunk order and
// scaled into the gradient (no atomics: a run is bit-identical to itself).
//   out[e] = scale · Σ_{c = 0 .. chunks-1} part[c·E + e]        (+ out[e] first with ACCUM)
// part is (chunks, E), out is (E,), E = P·R elements of dA (r, IN) or dB (OUT, r).
//! defaults: ACCUM=false

struct Params {
  E: u32, chunks: u32,
  scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const ACCUM = {{ACCUM}};

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = gid.x + gid.y * nwg.x * 256u;
  if (e >= p.E) { return; }
  var s = 0.0;
  for (var c = 0u; c < p.chunks; c++) { s += part[c * p.E + e]; }
  var v = p.scale * s;
  if (ACCUM) { v = out[e] + v; }
  out[e] = v;
}
