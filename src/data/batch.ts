// A training batch: B sequences of T token ids and their next-token targets, as the data pipeline
// (src/data/dataset.ts) hands them to the training step.

import { IGNORE_INDEX } from '../kernels/ignore_index';

export interface Batch {
  ids: Uint32Array; // (B·T,)
  targets: Uint32Array; // (B·T,), IGNORE_INDEX where the loss is masked
  B: number;
  T: number;
}

/** Targets the loss counts (those not IGNORE_INDEX). */
export function countTargets(targets: Uint32Array): number {
  let n = 0;
  for (const t of targets) if (t !== IGNORE_INDEX) n++;
  return n;
}
