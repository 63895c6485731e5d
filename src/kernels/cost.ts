// Paper costs of kernel launches (DispatchCost in src/gpu/context.ts), computed from the shapes. They feed
// the GPU shape report of `npm run bench` and are never used to run anything. Conventions:
//   flops         2 per multiply-add, 1 per other arithmetic operation (exp, max, ... count 1)
//   bytesRead     every input element counted once (ideal caching), 4 bytes per f32/u32
//   bytesWritten  every output element once
//   serialLoop    iterations of the longest loop one thread runs (1 for one element per thread)
import type { DispatchCost } from '../gpu/context';

/** Per element of an n-element map: `flops` operations, `reads` and `writes` 4-byte values. */
export function elementwiseCost(n: number, flops: number, reads: number, writes: number): DispatchCost {
  return { flops: n * flops, bytesRead: 4 * n * reads, bytesWritten: 4 * n * writes, serialLoop: 1 };
}

/** A row kernel over x (N, C), one workgroup of `wg` threads per row, each striding over C: `flops` per
 * element, `reads`/`writes` (N, C) tensors, plus `vecReads` (C,) and `rowWrites` (N,) vectors. */
export function rowCost(
  N: number,
  C: number,
  wg: number,
  o: { flops: number; reads: number; writes: number; vecReads?: number; rowReads?: number; rowWrites?: number },
): DispatchCost {
  return {
    flops: N * C * o.flops,
    bytesRead: 4 * (N * C * o.reads + C * (o.vecReads ?? 0) + N * (o.rowReads ?? 0)),
    bytesWritten: 4 * (N * C * o.writes + N * (o.rowWrites ?? 0)),
    serialLoop: Math.ceil(C / wg),
  };
}
