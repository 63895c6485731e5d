// The model's no-grad forward: ids -> embed -> block 0 .. block L-1 -> final norm (-> LM head logits).
// Each block runs on its own no-grad tape, so only one block's intermediates live at a time. Generation,
// validation and the tests use it; the training step (src/training/step.ts) runs its own forward with
// gradients.

import { Tape } from '../autograd/tape';
import { Tensor } from '../gpu/tensor';
import { headLogits } from './head';
import type { LoraState } from './lora';
import type { CausalLM, RunInfo } from './model';

/** The final-norm output (B·T, C) of a no-grad forward. Takes ownership of `ids`. */
export function forwardHidden(model: CausalLM, lora: LoraState | null, ids: Tensor, run: RunInfo): Tensor {
  let h = model.embed(ids, run);
  ids.free();
  for (let i = 0; i < model.cfg.numLayers; i++) {
    const tape = new Tape(false);
    const out = model.block(i, tape, tape.leaf(h, `h${i}`), lora, run);
    const [next] = tape.endForward([out]);
    h.free();
    h = next;
  }
  const tape = new Tape(false);
  const [normed] = tape.endForward([model.finalNorm(tape, tape.leaf(h, 'hL'))]);
  h.free();
  return normed;
}

/** Logits (B·T, V) of a no-grad forward. */
export function forwardLogits(model: CausalLM, lora: LoraState | null, ids: Uint32Array, B: number, T: number): Tensor {
  const ctx = model.weights.ctx;
  const x = forwardHidden(model, lora, Tensor.fromU32(ctx, ids, [B * T], 'ids'), { B, T, posOffset: 0 });
  const logits = headLogits(x, model.weights.lmHead, model.cfg.vocabSize, model.cfg.finalSoftcap);
  x.free();
  return logits;
}
