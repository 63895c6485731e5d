// The last step of the LM head's gradient (src/models/head.ts), after every vocabulary chunk:
//   dx[n, :] = gradScale · (dx[n, :] / l[n] − softcap'(zt[n]) · wt[n, :])        0 for IGNORE (0xFFFFFFFF) rows
// dx (N, C) holds l[n] · Σ_v softmax(z)[v]·softcap'(z_v)·W[v] (shaders/head_lse_grad.wgsl and the chunk matmuls),
// wt (N, C) is the target's table row W[t_n] (zero where t_n is in no row of the table), stats (N, 3) = (m, l, zt),
// so dx becomes ((softmax(z) − onehot(t))·gradScale·softcap'(z)) · W. One invocation per element of dx
// (linear id = gid.x + gid.y · nwg.x · WG).
//#include lib_softcap

struct Params { N: u32, C: u32, gradScale: f32, softcap: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> wt: array<f32>;

const WG = 256u;
const IGNORE = 0xFFFFFFFFu;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.N * p.C) { return; }
  let row = i / p.C;
  if (targets[row] == IGNORE) {
    dx[i] = 0.0;
    return;
  }
  let capt = softcap_grad(stats[3u * row + 2u], p.softcap);
  dx[i] = p.gradScale * (dx[i] / stats[3u * row + 1u] - capt * wt[i]);
}
