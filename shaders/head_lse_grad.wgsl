// The LM head's loss and gradient in one pass over the vocabulary (src/models/head.ts): one chunk of logits
// merged into the per-row running log-sum-exp (shaders/lib_head_lse.wgsl: m → m', l → l'), then, in place,
//   logits[n, j] ← p[n, j] = exp(z[n, j] − m'[n]) · softcap'(z[n, j])      the softmax numerator at the new max
//   dx[n, :]     ← dx[n, :] · exp(m[n] − m'[n])                           the running Σ p·W rescaled to the new max
// so that after the caller's dx += p · W_c over every chunk, dx[n] = l[n] · Σ_v softmax(z)[v]·softcap'(z_v)·W[v]
// (shaders/head_dx.wgsl divides by l and subtracts the target's row). dx is (N, C); on the first chunk it is
// not read (the caller's first matmul overwrites it). One workgroup per row (row = wid.x + wid.y · nwg.x).
//! defaults: WG=64
//#include lib_head_lse

struct Params { N: u32, VC: u32, V: u32, v0: u32, first: u32, last: u32, C: u32, softcap: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

const WG = {{WG}}u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.N) { return; } // the same for the whole workgroup, so the barriers stay uniform
  let mm = lse_update(row, lid);
  storageBarrier(); // invocation 0 read the target's logit in lse_update; the loop below overwrites the row
  let at = row * p.VC;
  for (var j = lid; j < p.VC; j += WG) {
    let z = softcap(logits[at + j], p.softcap);
    logits[at + j] = exp(z - mm.y) * softcap_grad(z, p.softcap);
  }
  if (p.first == 0u && mm.x != mm.y) { // the max moved: exp(m − m') < 1 (else it is exactly 1)
    let alpha = exp(mm.x - mm.y);
    for (var c = lid; c < p.C; c += WG) {
      dx[row * p.C + c] *= alpha;
    }
  }
}
