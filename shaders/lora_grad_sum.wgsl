// LoRA weight gradients, stage 2 of 2 on its own: the chunk partials of lora_grad.wgsl summed in chunk order and
// scaled into dA and dB (no atomics: a run is bit-identical to itself). Usually the next lora_grad dispatch does
// this with its extra workgroups (the same sums, lora_grad.wgsl's carried_sum); this kernel is for the last one
// (GradCarry.flush in src/kernels/lora_grad.ts) and for one that cannot be carried.
//   g[e] = scale · Σ_{c = 0 .. chunks-1} part[c·E + e]        (+ the gradient's value first with ACCUM)
// part is (chunks, E) with E = EA + EB: elements e < EA go to da[e] (dA, (r, IN)), the rest to db[e - EA]
// (dB, (OUT, r)). 64 threads per workgroup: E / 64 workgroups (≥ 264 for a group's span of SmolLM2-135M's q, k, v,
// whose sum over 512 chunks is above 10 MFLOP).
//! defaults: ACCUM=false

struct Params {
  EA: u32, EB: u32, chunks: u32,
  scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> da: array<f32>;
@group(0) @binding(3) var<storage, read_write> db: array<f32>;

const ACCUM = {{ACCUM}};

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = gid.x + gid.y * nwg.x * 64u;
  let E = p.EA + p.EB;
  if (e >= E) { return; }
  var s = 0.0;
  for (var c = 0u; c < p.chunks; c++) { s += part[c * E + e]; }
  var v = p.scale * s;
  if (e < p.EA) {
    if (ACCUM) { v = da[e] + v; }
    da[e] = v;
  } else {
    if (ACCUM) { v = db[e - p.EA] + v; }
    db[e - p.EA] = v;
  }
}
