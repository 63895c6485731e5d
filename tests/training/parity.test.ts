// 30 LoRA training steps against a PyTorch run (tools/golden.py, float64): the same initial A/B, the
// same batches, torch.optim.AdamW with clip_grad_norm_, and the learning-rate schedule.
//
// Tolerance, and why: our step is f32. Per step the loss and gradients agree with float64 to ~1e-6
// relative (the model test shows it), but AdamW normalises each gradient by its own running RMS, so a
// parameter whose gradient is tiny moves by ~lr whatever its sign: an f32 rounding difference can flip
// such a step. These differences feed back through 30 steps. We require every loss within 1e-4 relative,
// every pre-clip gradient norm within 1e-3 relative, and the final A and B within 2e-3·max|value| + 1e-5:
// far below what a real error does (a wrong bias correction, decay on the wrong term, or a missed clip
// change the losses at the 1e-2 level within a few steps).

import { describe, expect, it } from 'vitest';
import { forwardBackward } from '../../src/training/step';
import { IGNORE_INDEX } from '../../src/kernels/ignore_index';
import { loadModel } from '../../src/models';
import { LoraState, type LoraArrays } from '../../src/models/lora';
import { AdamW } from '../../src/training/optimizer';
import { lrAt } from '../../src/training/schedule';
import { goldenCases, loadFixtureModel, readGolden } from '../helpers/fixtures';
import { gpu } from '../helpers/gpu';

const cases = goldenCases('train_golden.json');

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let maxWant = 0,
    worst = 0;
  for (let i = 0; i < want.length; i++) {
    maxWant = Math.max(maxWant, Math.abs(want[i]));
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  return worst / (maxWant + 1e-30);
}

describe('training parity with PyTorch', () => {
  it('has training fixtures for GPT-2, the bundled model, Qwen3 and Gemma 3', () => {
    expect(cases.map((c) => c.name)).toEqual(
      expect.arrayContaining(['gpt2-tiny', 'weblora-llama-1m', 'qwen3-gqa-tied', 'gemma3-sliding-softcap']),
    );
  });

  for (const c of cases) {
    it(`${c.name}: 30 steps of LoRA + AdamW + clipping follow the PyTorch run`, async () => {
      const ctx = await gpu();
      const files = await loadFixtureModel(c.modelDir);
      const g = await readGolden(c.dir, 'train_golden');
      const j = g.json;
      const { B, T, steps } = j;
      const cfg = files.config;
      const model = await loadModel(ctx, cfg, files.weights, { dtype: 'f32' });
      const init: LoraArrays = new Map();
      for (const path of j.modules as string[])
        init.set(path, { A: await g.f32(`init.${path}.A`), B: await g.f32(`init.${path}.B`) });
      const lora = LoraState.fromArrays(
        ctx,
        cfg,
        { r: j.lora.r, alpha: j.lora.alpha, useRslora: j.lora.use_rslora, dropout: 0, targets: j.lora.targets },
        init,
      );
      const o = j.optimizer;
      const opt = new AdamW(lora, {
        beta1: o.betas[0],
        beta2: o.betas[1],
        eps: o.eps,
        weightDecay: o.weight_decay,
        maxGradNorm: o.clip_grad_norm,
      });
      // Our schedule gives the same learning rates as the fixture's.
      for (let i = 0; i < steps; i++) {
        const lr = lrAt(i, { lr: o.lr_peak, warmupSteps: 5, totalSteps: steps, decay: 'cosine', minLrRatio: 0.1 });
        expect(Math.abs(lr - j.lrs[i])).toBeLessThanOrEqual(1e-12 * o.lr_peak);
      }
      const ids = await g.i32('batches.input_ids');
      const labels = await g.i32('batches.labels');
      const losses: number[] = [];
      const norms: number[] = [];
      for (let i = 0; i < steps; i++) {
        const batch = {
          ids: Uint32Array.from(ids.subarray(i * B * T, (i + 1) * B * T)),
          targets: Uint32Array.from(labels.subarray(i * B * T, (i + 1) * B * T), (x) => (x < 0 ? IGNORE_INDEX : x)),
          B,
          T,
        };
        const r = await forwardBackward(model, lora, batch);
        losses.push(r.lossSum / r.count);
        const norm = opt.update(j.lrs[i]);
        norms.push((await norm.read())[0]);
        norm.free();
      }
      const wantLosses = await g.f32('losses');
      const wantNorms = await g.f32('grad_norms');
      for (let i = 0; i < steps; i++) {
        expect(
          Math.abs(losses[i] - wantLosses[i]) / wantLosses[i],
          `loss at step ${i}: ${losses[i]} vs ${wantLosses[i]}`,
        ).toBeLessThanOrEqual(2e-5);
        expect(
          Math.abs(norms[i] - wantNorms[i]) / wantNorms[i],
          `grad norm at step ${i}: ${norms[i]} vs ${wantNorms[i]}`,
        ).toBeLessThanOrEqual(1e-4);
      }
      const final = await lora.read();
      let worst = 0;
      for (const [path, w] of final) {
        worst = Math.max(
          worst,
          maxRelErr(w.A, await g.f32(`final.${path}.A`)),
          maxRelErr(w.B, await g.f32(`final.${path}.B`)),
        );
      }
      expect(worst, 'final A/B, max |diff| / max |value|').toBeLessThanOrEqual(1e-4);
      console.log(
        `${c.name}: loss ${losses[0].toFixed(4)} -> ${losses[steps - 1].toFixed(4)}; worst final A/B relative error ${worst.toExponential(2)}`,
      );
      opt.free();
      lora.free();
      model.weights.free();
    });
  }
});
