// Pass 2 of the LM head (src/models/head.ts): one vocabulary chunk of logits turned in place into its gradient,
//   z = softcap(y),   dlogits[n, j] = (exp(z − m[n]) / l[n] − [v0 + j == t])·gradScale·softcap'(z)
// y = logits[n, j] is column v0 + j of the (N, V) logits; logits is (N, VC); stats (N, 3) = (m, l, zt) from pass 1
// (head_lse.wgsl), so exp(z − m) / l is softmax(z)[v0 + j]; targets is (N,). IGNORE (0xFFFFFFFF) rows get 0.
// One invocation per element (linear id = gid.x + gid.y · nwg.x · WG).
//#include lib_softcap

struct Params { N: u32, VC: u32, v0: u32, gradScale: f32, softcap: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;

const WG = 256u;
const IGNORE = 0xFFFFFFFFu;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.N * p.VC) { return; }
  let row = i / p.VC;
  let j = i - row * p.VC;
  let t = targets[row];
  if (t == IGNORE) {
    logits[i] = 0.0;
    return;
  }
  let z = softcap(logits[i], p.softcap);
  var g = exp(z - stats[3u * row]) * (p.gradScale / stats[3u * row + 1u]);
  if (p.v0 + j == t) { g -= p.gradScale; }
  logits[i] = g * softcap_grad(z, p.softcap);
}
