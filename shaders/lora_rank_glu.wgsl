// A gated activation and the LoRA U of the linear that reads it (Llama's SwiGLU, Gemma's GeGLU, then down_proj),
// one dispatch:
//   h[n, k] = act(gate[n, k]) · up[n, k]           act = silu (GELU: gelu_tanh)      (swiglu/geglu_forward.wgsl's h)
//   out[n, j] = Σ_k drop(h)[n, k] · A[j, k]                                           (lora_rank.wgsl's u)
// gate, up and h are (N, K), A is (R, K) at float a0 of w, out is (N, R). A workgroup owns 8 whole rows: it
// stores their h and after a storage barrier runs the rank product of shaders/lib_lora_rank.wgsl over them.
//! defaults: KS=32 JQ=2 MASK=false GELU=false
//#include lib_rng
//#include lib_silu
//#include lib_gelu
//#include lib_lora_rank

struct Params { N: u32, K: u32, R: u32, ostride: u32, a0: u32, seed0: u32, p: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> h: array<f32>;

const KS = {{KS}}u;
const JQ = {{JQ}}u;
const W_KR = false;
const MASK = {{MASK}};
const GELU = {{GELU}};
const THREADS = KS * JQ;

fn act(v: f32) -> f32 {
  if (GELU) { return gelu_tanh(v); }
  return silu(v);
}

fn x_at(seed: u32, i: u32, n: u32, k: u32) -> f32 {
  var v = h[n * p.K + k];
  if (MASK) { v *= dropout_mult(seed, n * p.K + k, p.p); }
  return v;
}

@compute @workgroup_size(KS, JQ)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let n0 = (wid.x + wid.y * nwg.x) * ROWS;
  if (n0 >= p.N) { return; } // the same for the whole workgroup, so the barrier below stays uniform
  let end = min(n0 + ROWS, p.N) * p.K;
  for (var i = n0 * p.K + li; i < end; i += THREADS) {
    h[i] = act(gate[i]) * up[i];
  }
  storageBarrier(); // the h just stored, seen by every thread of the workgroup
  rank_rows(n0, 0u, p.a0, p.seed0, lid.x, lid.y, li);
}
