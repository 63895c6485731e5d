// Gradient clipping factor from the accumulated Σg², as torch.nn.utils.clip_grad_norm_ computes it:
//   norm = sqrt(acc),  scale = min(1, maxNorm / (norm + 1e-6))   (scale = 1 when clip = 0: no clipping)
// acc, norm, scale are (1,). A single invocation.

struct Params { clip: u32, maxNorm: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> acc: array<f32>;
@group(0) @binding(2) var<storage, read_write> norm: array<f32>;
@group(0) @binding(3) var<storage, read_write> scale: array<f32>;

@compute @workgroup_size(1)
fn main() {
  let n = sqrt(acc[0]);
  norm[0] = n;
  scale[0] = select(1.0, min(1.0, p.maxNorm / (n + 1e-6)), p.clip == 1u);
}
