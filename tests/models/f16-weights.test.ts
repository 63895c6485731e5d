// Frozen weights stored as f16 (on adapters with shader-f16, as lavapipe has): the bundled model's
// logits stay close to the f32 model's, and LoRA training runs on them.
//
// Bound: f16 keeps 11 significant bits, so each weight moves by at most 2^-11 relative; through 4
// blocks of O(1)-gain layers the logits move by a few 1e-3 of their scale. We require
// max|f16 − f32| <= 2e-2·max|logit|, and that the two agree on the top token of most positions.

import { describe, expect, it } from 'vitest';
import { forwardBackward } from '../../src/training/step';
import { forwardLogits } from '../../src/models/forward';
import { loadModelFiles } from '../../src/loaders/model-files';
import { dirSource } from '../../src/loaders/sources.node';
import { loadModel } from '../../src/models';
import { LoraState } from '../../src/models/lora';
import { BUNDLED } from '../helpers/fixtures';
import { gpu } from '../helpers/gpu';

describe('f16 weights', () => {
  it('the bundled model in f16 gives the f32 logits within the f16 bound, and trains', async () => {
    const ctx = await gpu();
    expect(ctx.hasF16).toBe(true); // lavapipe has shader-f16; the test is about that path
    const files = await loadModelFiles(dirSource(BUNDLED));
    const ids = Uint32Array.from(
      files.tokenizer.encode('Call me Ishmael. Some years ago, never mind how long precisely', true),
    );
    const T = ids.length,
      V = files.config.vocabSize;
    const m32 = await loadModel(ctx, files.config, files.weights, { dtype: 'f32' });
    const m16 = await loadModel(ctx, files.config, files.weights, { dtype: 'f16' });
    expect(m16.weights.bytes).toBeLessThan(0.6 * m32.weights.bytes);
    const l32 = forwardLogits(m32, null, ids, 1, T);
    const l16 = forwardLogits(m16, null, ids, 1, T);
    const [a, b] = [await l32.read(), await l16.read()];
    [l32, l16].forEach((t) => t.free());
    let scale = 0,
      diff = 0,
      agree = 0;
    for (let i = 0; i < a.length; i++) {
      scale = Math.max(scale, Math.abs(a[i]));
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
    }
    for (let t = 0; t < T; t++) {
      const row = (x: Float32Array) => x.subarray(t * V, (t + 1) * V);
      const arg = (x: Float32Array) => x.indexOf(Math.max(...x));
      if (arg(row(a)) === arg(row(b))) agree++;
    }
    expect(diff).toBeGreaterThan(0); // really a different storage
    expect(diff).toBeLessThanOrEqual(2e-2 * scale);
    expect(agree / T).toBeGreaterThanOrEqual(0.8);

    const lora = LoraState.init(
      ctx,
      files.config,
      { r: 4, alpha: 8, useRslora: false, dropout: 0, targets: ['q_proj', 'v_proj'] },
      1,
    );
    const targets = Uint32Array.from([...ids.subarray(1), 2]);
    const r = await forwardBackward(m16, lora, { ids, targets, B: 1, T });
    expect(Number.isFinite(r.lossSum / r.count)).toBe(true);
    const g = await lora.readGrads();
    expect([...g.values()].some((x) => x.B.some((v) => v !== 0))).toBe(true);
    lora.free();
    m32.weights.free();
    m16.weights.free();
  });
});
