// Strided 2-D copy: dst[r, dstCol + c] = src[r, srcCol + c] for r < rows, c < cols.
// src rows are srcLd floats apart, dst rows dstLd apart. Splits GPT-2's fused qkv (N, 3C) into
// q, k, v (N, C) and puts their gradients back; writes new rows into a KV cache.

struct Params { rows: u32, cols: u32, srcLd: u32, srcCol: u32, dstLd: u32, dstCol: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  let c = i % p.cols;
  dst[r * p.dstLd + p.dstCol + c] = src[r * p.srcLd + p.srcCol + c];
}
