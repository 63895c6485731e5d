{{ENABLE_F16}}
// Embedding gather for one row chunk of the table: out[n, :] = table[ids[n] - rowStart, :] · scale for every row n
// whose id falls in this chunk, rowStart <= id < rowStart + rows; other rows of out are left as they are
// (the caller clears out and runs one dispatch per chunk, since the full table may not fit one binding).
// ids is (N,) u32; table is (rows, C) of element type T (f32, or f16 where the adapter has shader-f16), or the
// u32 words of q8 / q4 blocks with their f16 scales in ts (dequantized in registers: shaders/lib_quant.wgsl);
// TABLE_AT spells value i of the table as f32 (src/kernels/embedding.ts); out is (N, C) f32. scale is 1, or Gemma's √hidden_size normalizer. One invocation per element of out, linear index i = gid.x + gid.y · nwg.x · 256.
//! defaults: ENABLE_F16= T=f32 TABLE_AT=f32(table[i])
//#include lib_quant

struct Params { N: u32, C: u32, rowStart: u32, rows: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<{{T}}>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> ts: array<u32>; // q8 / q4 table: its scales (else an alias, unread)

fn table_at(i: u32) -> f32 { return {{TABLE_AT}}; }

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.N * p.C) { return; }
  let n = i / p.C;
  let c = i - n * p.C;
  let id = ids[n];
  // Unsigned: an id below rowStart wraps to a huge value and fails the same test.
  let r = id - p.rowStart;
  if (id < p.rowStart || r >= p.rows) { return; }
  out[i] = table_at(r * p.C + c) * p.scale;
}
