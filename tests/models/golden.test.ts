// The whole model, forward and backward, against the independent PyTorch oracle (tools/golden.py,
// float64): logits, loss, the input of every block and its gradient, and every LoRA gradient, for the
// bundled model and tiny configs of every family (GPT-2, Llama with GQA, untied Llama, Qwen2 with bias,
// Qwen3 tied and untied with head_dim ≠ hidden/heads, Llama 3.x rope_scaling llama3 with T beyond
// original_max_position_embeddings, SmolLM3 with NoPE layers, Gemma 3 with sliding-window layers mixed with full
// ones, both soft caps, GQA and head_dim ≠ hidden/heads, and Gemma 3 in gemma-3-1b's config form with linear
// rope_scaling and an untied head; Mistral with a sliding window shorter than T; Qwen3 and Qwen2 with
// use_sliding_window, their sliding layers chosen by max_window_layers and by layer_types, window < T).
//
// Bounds: the GPU computes in f32. Over a few layers the relative error of f32 activations is ~1e-6
// per op, growing with depth and width; gradients pass through softmax and norms that amplify it a
// little. We require max|got − want| ≤ 1e-3·max|want| + 1e-5 per tensor (logits, hidden states,
// gradients) and |loss − want| ≤ 1e-5·|want| + 1e-6: about 100x the f32 rounding we expect, and 100x
// below what any real bug (a wrong sign, a missing scale, a transposed weight) produces.

import { describe, expect, it } from 'vitest';
import { forwardBackward } from '../../src/training/step';
import { forwardLogits } from '../../src/models/forward';
import { IGNORE_INDEX } from '../../src/kernels/ignore_index';
import { loadModel } from '../../src/models';
import { LoraState, type LoraArrays } from '../../src/models/lora';
import { goldenCases, loadFixtureModel, readGolden } from '../helpers/fixtures';
import { gpu } from '../helpers/gpu';

const cases = goldenCases();

/** Worst |got − want| / max|want| of the current case, printed per case as a MEASURED line. */
let worstRel = 0;

function expectTensorClose(got: Float32Array, want: Float32Array, what: string, rel = 1e-3, abs = 1e-5) {
  expect(got.length, `${what}: length`).toBe(want.length);
  let maxWant = 0;
  let worst = 0;
  let at = 0;
  for (let i = 0; i < want.length; i++) {
    maxWant = Math.max(maxWant, Math.abs(want[i]));
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) {
      worst = Number.isNaN(d) ? Infinity : d;
      at = i;
    }
  }
  const bound = rel * maxWant + abs;
  if (maxWant > 0) worstRel = Math.max(worstRel, worst / maxWant);
  if (!(worst <= bound)) {
    throw new Error(
      `${what}: element ${at} is ${got[at]}, oracle ${want[at]} (|diff| ${worst.toExponential(3)} > ${bound.toExponential(3)} = ${rel}·max|want| + ${abs})`,
    );
  }
}

describe('model vs PyTorch oracle', () => {
  it('has fixtures for every family and the bundled model', () => {
    const names = cases.map((c) => c.name);
    for (const n of [
      'gpt2-tiny',
      'llama-gqa-tied',
      'llama-untied',
      'qwen2-bias',
      'weblora-llama-1m',
      'qwen3-gqa-tied',
      'qwen3-untied',
      'llama3-scaled',
      'smollm3-nope',
      'gemma3-sliding-softcap',
      'gemma3-pattern-untied',
      'mistral-window',
      'qwen3-window',
      'qwen2-window',
    ])
      expect(names).toContain(n);
  });

  for (const c of cases) {
    it(`${c.name}: logits, loss, block inputs and their gradients, LoRA gradients`, async () => {
      const ctx = await gpu();
      const live0 = ctx.alloc.liveBytes;
      worstRel = 0;
      const files = await loadFixtureModel(c.modelDir);
      const g = await readGolden(c.dir);
      const { B, T } = g.json;
      const cfg = files.config;
      const model = await loadModel(ctx, cfg, files.weights, { dtype: 'f32' });
      const arrays: LoraArrays = new Map();
      for (const path of g.json.modules as string[]) {
        arrays.set(path, { A: await g.f32(`lora.${path}.A`), B: await g.f32(`lora.${path}.B`) });
      }
      const lc = g.json.lora;
      const lora = LoraState.fromArrays(
        ctx,
        cfg,
        { r: lc.r, alpha: lc.alpha, useRslora: lc.use_rslora, dropout: 0, targets: lc.targets },
        arrays,
      );
      expect(lora.modules.size).toBe(arrays.size);

      const ids = Uint32Array.from(await g.i32('input_ids'));
      const targets = Uint32Array.from(await g.i32('labels'), (x) => (x < 0 ? IGNORE_INDEX : x));

      const logits = forwardLogits(model, lora, ids, B, T);
      expectTensorClose(await logits.read(), await g.f32('logits'), 'logits');
      logits.free();

      const r = await forwardBackward(model, lora, { ids, targets, B, T }, { capture: true });
      const wantLoss = (await g.f32('loss'))[0];
      expect(Math.abs(r.lossSum / r.count - wantLoss)).toBeLessThanOrEqual(1e-5 * Math.abs(wantLoss) + 1e-6);
      expect(r.count).toBe(targets.filter((t) => t !== IGNORE_INDEX).length);
      for (let i = 0; i < cfg.numLayers; i++) {
        expectTensorClose(await r.hidden![i].read(), await g.f32(`hidden.${i}`), `hidden.${i}`);
        expectTensorClose(await r.dhidden![i].read(), await g.f32(`dhidden.${i}`), `dhidden.${i}`);
      }
      [...r.hidden!, ...r.dhidden!].forEach((t) => t.free());
      const grads = await lora.readGrads();
      for (const [path, gr] of grads) {
        expectTensorClose(gr.A, await g.f32(`grad.${path}.A`), `grad ${path}.lora_A`);
        expectTensorClose(gr.B, await g.f32(`grad.${path}.B`), `grad ${path}.lora_B`);
      }
      lora.free();
      model.weights.free();
      // Nothing the step made stays on the GPU.
      expect(ctx.alloc.liveBytes).toBe(live0);
      console.log(
        `MEASURED ${c.name}: worst |got - oracle| / max|oracle| over all tensors = ${worstRel.toExponential(2)}, loss ${wantLoss}`,
      );
    });
  }

  it.each(['qwen3-window', 'qwen2-window'])(
    '%s: the window is what makes it match: full attention on its sliding layers misses the oracle',
    async (name) => {
      const c = cases.find((x) => x.name === name)!;
      const ctx = await gpu();
      const files = await loadFixtureModel(c.modelDir);
      const g = await readGolden(c.dir);
      const { B, T } = g.json;
      expect(files.config.slidingWindow).toBeLessThan(T);
      const { slidingLayers: _, slidingWindow: __, ...full } = files.config;
      const model = await loadModel(ctx, full, files.weights, { dtype: 'f32' });
      const arrays: LoraArrays = new Map();
      for (const path of g.json.modules as string[])
        arrays.set(path, { A: await g.f32(`lora.${path}.A`), B: await g.f32(`lora.${path}.B`) });
      const lc = g.json.lora;
      const lora = LoraState.fromArrays(
        ctx,
        full,
        { r: lc.r, alpha: lc.alpha, useRslora: lc.use_rslora, dropout: 0, targets: lc.targets },
        arrays,
      );
      const logits = forwardLogits(model, lora, Uint32Array.from(await g.i32('input_ids')), B, T);
      const got = await logits.read();
      const want = await g.f32('logits');
      logits.free();
      lora.free();
      model.weights.free();
      // The same weights and LoRA without the window: the logits miss the oracle's far past the 1e-3 bound.
      let worst = 0;
      let maxWant = 0;
      for (let i = 0; i < want.length; i++) {
        worst = Math.max(worst, Math.abs(got[i] - want[i]));
        maxWant = Math.max(maxWant, Math.abs(want[i]));
      }
      console.log(
        `MEASURED ${name} without its window: worst |got - oracle| / max|oracle| = ${(worst / maxWant).toExponential(2)}`,
      );
      expect(worst / maxWant).toBeGreaterThan(1e-2);
    },
  );
});
