// The LM head's loss (src/models/head.ts, without a gradient): one vocabulary chunk of logits merged into the
// per-row running log-sum-exp (shaders/lib_head_lse.wgsl), the losses written on the last chunk.
// One workgroup per row (row = wid.x + wid.y · nwg.x).
//! defaults: WG=64
//#include lib_head_lse

struct Params { N: u32, VC: u32, V: u32, v0: u32, first: u32, last: u32, C: u32, softcap: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;

const WG = {{WG}}u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.N) { return; } // the same for the whole workgroup, so the barriers stay uniform
  _ = lse_update(row, lid);
}
