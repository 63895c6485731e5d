// CPU twin of shaders/embedding.wgsl over the full table. ids is (N,); table is (V, C) row-major; every value
// is multiplied by scale.
// An id outside the table gives a zero row, as the GPU kernel leaves it.
export function embedding_forward_cpu(
  ids: ArrayLike<number>,
  table: ArrayLike<number>,
  V: number,
  C: number,
  scale = 1,
): Float64Array {
  const out = new Float64Array(ids.length * C);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    if (id >= V) continue;
    for (let c = 0; c < C; c++) out[n * C + c] = table[id * C + c] * scale;
  }
  return out;
}
