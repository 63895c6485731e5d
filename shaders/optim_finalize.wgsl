// Stage 2 of the whole-model gradient norm, the clip factor of torch.nn.utils.clip_grad_norm_ and the
// non-finite guard, in one workgroup:
//   sumsq = Σ partials            (stage 1, grad_norm_sumsq, wrote `groups` partials per chunk at stride 256)
//   norm  = sqrt(sumsq),  scale = min(1, maxNorm / (norm + 1e-6))   (scale = 1 when clip = 0: no clipping)
//   bad   = bad or [loss or norm is not finite]                      (sticky: one bad step stops all updates)
// stats is (8,): [0] the step's loss sum (accumulated by the forward passes, read here), [1] norm, [2] scale,
// [3] bad (0.0 or 1.0; all-zero stats are a healthy state), [4] sumsq. partials is (chunks · 256,), the unused tail of each chunk's 256 never read.
// WGSL lets a compiler assume finite floats, so finiteness is tested on the bits: exponent all ones = Inf/NaN.
//! defaults: WG=256

struct Params { groups: u32, chunks: u32, clip: u32, maxNorm: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

const WG = {{WG}}u;
const PART_STRIDE = 256u; // partials per chunk slot: one 256-byte-aligned binding offset per 64 floats, 4 of them
var<workgroup> partial: array<f32, WG>;

fn isFinite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < p.groups * p.chunks; i += WG) {
    s += partials[(i / p.groups) * PART_STRIDE + i % p.groups];
  }
  partial[lid] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) { partial[lid] += partial[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let sumsq = partial[0];
    let norm = sqrt(sumsq);
    let finite = isFinite(stats[0]) && isFinite(sumsq) && isFinite(norm);
    stats[1] = norm;
    stats[2] = select(1.0, min(1.0, p.maxNorm / (norm + 1e-6)), p.clip == 1u);
    stats[3] = select(1.0, stats[3], finite);
    stats[4] = sumsq;
  }
}
