// The matmul products one training step of a model runs on matmulRaw, for the autotuner
// (src/kernels/autotune.ts): each linear's y = x·W0ᵀ and dx = dy·W0 (LoRA's rank-r products have their own
// kernels, src/kernels/lora.ts), and the head's two products on one vocabulary chunk (src/models/head.ts).
// The linears come from the family's own description (one layer's: every layer has the same shapes).
// Each product carries the type its weight is stored in under the weights choice (storedDtype: under int8 / int4
// the weights whose rows split into 32-value blocks are q8 / q4, the rest f16 or f32), so that the quantized
// products are tuned as the classes they run in.
import type { MatmulShape } from '../kernels/autotune';
import type { BDtype } from '../kernels/matmul';
import type { ModelConfig } from './config';
import { familySpec } from './families';
import { storedDtype, type WeightsChoice } from './weights';

/** At `tokens` rows (batch · seqLen); `headCols` is the head's vocabulary chunk (headChunkCols). */
export function modelMatmulShapes(
  cfg: ModelConfig,
  o: { tokens: number; weights: WeightsChoice; hasF16: boolean; headCols?: number },
): MatmulShape[] {
  const T = o.tokens;
  const s: MatmulShape[] = [];
  // a (rows, cols) weight's type as loadModel stores it
  const typeOf = (cols: number) => storedDtype(o.weights, cols, o.hasF16) as BDtype;
  const add = (what: string, M: number, N: number, K: number, transB: boolean, bDtype: BDtype) =>
    s.push({ what, M, N, K, transA: false, transB, bDtype });
  for (const m of familySpec(cfg).linears(cfg, 0)) {
    // w0 is (OUT, IN), or (IN, OUT) for GPT-2's Conv1D (m.transposed)
    const t = typeOf(m.transposed ? m.outFeatures : m.inFeatures);
    add(`${m.target} y = x·W0ᵀ`, T, m.outFeatures, m.inFeatures, !m.transposed, t);
    add(`${m.target} dx = dy·W0`, T, m.inFeatures, m.outFeatures, m.transposed, t);
  }
  // the (V, C) table
  const vc = Math.min(cfg.vocabSize, o.headCols ?? cfg.vocabSize);
  const t = typeOf(cfg.hiddenSize);
  add('head logits = x·Eᵀ (a chunk)', T, vc, cfg.hiddenSize, true, t);
  add('head dx += dlogits·E (a chunk)', T, cfg.hiddenSize, vc, false, t);
  return s;
}
