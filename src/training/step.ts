// The training step: forward and backward of one batch, block by block, and the validation loss.
//
//   ids -> embed -> block 0 .. block L-1 -> final norm -> LM head + cross-entropy
//   d(loss) -> final norm backward -> block L-1 backward .. block 0 backward
//
// Each block runs on its own tape. Without checkpointing a block's tape keeps what its backward needs
// until that backward has run. With checkpointing only each block's input is kept: the forward runs on
// a no-grad tape, and the backward first recomputes the block (same dropout stream) on a fresh tape.

import { Tape, type Var } from '../autograd/tape';
import { countTargets, type Batch } from '../data/batch';
import { Tensor } from '../gpu/tensor';
import { forwardHidden } from '../models/forward';
import { headLoss } from '../models/head';
import { sum_accumulate } from '../kernels/grad_norm';
import type { LoraState } from '../models/lora';
import type { CausalLM, RunInfo } from '../models/model';

export interface StepOptions {
  checkpointing?: boolean;
  /** Multiplies dlogits; default 1 / (non-ignored targets) = the gradient of the mean loss. */
  gradScale?: number;
  dropoutSeed?: number;
  /** Keep copies of every block input and its gradient (for tests against the oracle); the caller frees them. */
  capture?: boolean;
  /** A (1,) accumulator (the optimizer's lossAcc): the loss sum is added into it on the GPU and not read
   * back, so nothing waits for the GPU; lossSum is then NaN. */
  lossInto?: Tensor;
}

export interface StepResult {
  lossSum: number;
  count: number;
  hidden?: Tensor[];
  dhidden?: Tensor[];
}

function clone(t: Tensor): Tensor {
  const c = Tensor.empty(t.ctx, t.shape, 'capture');
  t.ctx.copy(t.buf, 0, c.buf, 0, t.bytes);
  return c;
}

async function sumLosses(losses: Tensor): Promise<number> {
  const v = await losses.read();
  losses.free();
  let s = 0;
  for (const x of v) s += x;
  return s;
}

/** Forward and backward of one batch; LoRA gradients are added into lora's gradient accumulators. */
export async function forwardBackward(
  model: CausalLM,
  lora: LoraState,
  batch: Batch,
  opts: StepOptions = {},
): Promise<StepResult> {
  const ctx = lora.ctx;
  const { B, T } = batch;
  const L = model.cfg.numLayers;
  const count = countTargets(batch.targets);
  const gradScale = opts.gradScale ?? (count > 0 ? 1 / count : 0);
  const run: RunInfo = { B, T, posOffset: 0, dropoutSeed: opts.dropoutSeed ?? 0 };
  const checkpointing = opts.checkpointing ?? false;

  const ids = Tensor.fromU32(ctx, batch.ids, [B * T], 'ids');
  const inputs: Tensor[] = [model.embed(ids, run)];
  ids.free();
  const hidden = opts.capture ? [clone(inputs[0])] : undefined;
  const dhidden: Tensor[] = [];

  // Forward, block by block.
  const saved: { tape: Tape; x: Var; out: Var }[] = [];
  // Embeddings are frozen: block 0's input needs no gradient (skipping the input-gradient matmuls of
  // its first projections) unless a test captures it.
  const runBlock = (i: number, grad: boolean) => {
    const tape = new Tape(grad);
    const x = tape.leaf(inputs[i], `h${i}`, i > 0 || !!opts.capture);
    const out = model.block(i, tape, x, lora, run);
    const [h] = tape.endForward([out]);
    return { tape, x, out, h };
  };
  for (let i = 0; i < L; i++) {
    const { tape, x, out, h } = runBlock(i, !checkpointing);
    inputs.push(h);
    if (hidden && i + 1 < L) hidden.push(clone(h));
    if (!checkpointing) saved.push({ tape, x, out });
  }

  // Head: final norm, logits, loss, and the gradient flowing back into the last block.
  const headTape = new Tape(true);
  const xL = headTape.leaf(inputs[L], 'hL', true);
  const root = model.finalNorm(headTape, xL);
  const [normed] = headTape.endForward([root]);
  const softcap = model.cfg.finalSoftcap;
  const { losses, dx } = headLoss(normed, model.weights.lmHead, model.cfg.vocabSize, batch.targets, gradScale, true, {
    softcap,
  });
  let lossSum: Promise<number>;
  if (opts.lossInto) {
    sum_accumulate(losses, opts.lossInto);
    losses.free();
    lossSum = Promise.resolve(NaN);
  } else lossSum = sumLosses(losses);
  normed.free(); // backward needs only the gradient arriving at the root
  let [dh] = headTape.backward(root, dx!, [xL]);
  inputs[L].free();

  // Backward, block by block, last first.
  for (let i = L - 1; i >= 0; i--) {
    let rec = saved[i];
    if (checkpointing) {
      const r = runBlock(i, true);
      r.h.free(); // the recomputed output is not needed, only the tape
      rec = r;
    }
    const [g] = rec.tape.backward(rec.out, dh!, [rec.x]);
    if (i + 1 < L) inputs[i + 1].free();
    dh = g;
    if (opts.capture) dhidden.unshift(clone(dh!));
  }
  inputs[0].free();
  dh?.free();
  return { lossSum: await lossSum, count, hidden, dhidden: opts.capture ? dhidden : undefined };
}

/** Mean loss of a batch without gradients (validation). */
export async function evalLoss(
  model: CausalLM,
  lora: LoraState | null,
  batch: Batch,
): Promise<{ lossSum: number; count: number }> {
  const ctx = model.weights.ctx;
  const x = forwardHidden(model, lora, Tensor.fromU32(ctx, batch.ids, [batch.B * batch.T], 'ids'), {
    B: batch.B,
    T: batch.T,
    posOffset: 0,
  });
  const { losses } = headLoss(x, model.weights.lmHead, model.cfg.vocabSize, batch.targets, 1, false, {
    softcap: model.cfg.finalSoftcap,
  });
  x.free();
  return { lossSum: await sumLosses(losses), count: countTargets(batch.targets) };
}
