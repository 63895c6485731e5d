// The matmul products one training step of a model runs on matmulRaw, for the autotuner
// (src/kernels/autotune.ts): each linear's y = x·W0ᵀ and dx = dy·W0 (LoRA's rank-r products have their own
// kernels, src/kernels/lora.ts), and the head's two products on one vocabulary chunk (src/models/head.ts).
// The linears come from the family's own description (one layer's: every layer has the same shapes).
// `weightDtype` is the float type of the weights matmulRaw reads: under int8 / int4 only the weights left
// float (rows that do not split into blocks: f16 or f32) go through it, so the caller passes that type.
import type { MatmulShape } from '../kernels/autotune';
import type { BDtype } from '../kernels/matmul';
import type { ModelConfig } from './config';
import { familySpec } from './families';

/** At `tokens` rows (batch · seqLen); `headCols` is the head's vocabulary chunk (headChunkCols). */
export function modelMatmulShapes(
  cfg: ModelConfig,
  o: { tokens: number; weightDtype: BDtype; headCols?: number },
): MatmulShape[] {
  const T = o.tokens;
  const s: MatmulShape[] = [];
  const add = (what: string, M: number, N: number, K: number, transB: boolean) =>
    s.push({ what, M, N, K, transA: false, transB, bDtype: o.weightDtype });
  for (const m of familySpec(cfg).linears(cfg, 0)) {
    // w0 is (OUT, IN), or (IN, OUT) for GPT-2's Conv1D (m.transposed)
    add(`${m.target} y = x·W0ᵀ`, T, m.outFeatures, m.inFeatures, !m.transposed);
    add(`${m.target} dx = dy·W0`, T, m.inFeatures, m.outFeatures, m.transposed);
  }
  const vc = Math.min(cfg.vocabSize, o.headCols ?? cfg.vocabSize);
  add('head logits = x·Eᵀ (a chunk)', T, vc, cfg.hiddenSize, true);
  add('head dx += dlogits·E (a chunk)', T, cfg.hiddenSize, vc, false);
  return s;
}
