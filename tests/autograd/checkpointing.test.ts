// Activation checkpointing changes when activations live, not what is computed: with it on, a training
// step of the bundled model gives bit-identical loss and LoRA gradients (dropout on, so the recomputed
// blocks must reuse the forward's dropout streams) while holding fewer bytes at its peak.

import { describe, expect, it } from 'vitest';
import { forwardBackward } from '../../src/training/step';
import { loadModelFiles } from '../../src/loaders/model-files';
import { dirSource } from '../../src/loaders/sources.node';
import { loadModel } from '../../src/models';
import { LoraState } from '../../src/models/lora';
import { BUNDLED } from '../helpers/fixtures';
import { gpu } from '../helpers/gpu';

describe('activation checkpointing', () => {
  it('gives the same loss and gradients with less peak memory', async () => {
    const ctx = await gpu();
    const files = await loadModelFiles(dirSource(BUNDLED));
    const model = await loadModel(ctx, files.config, files.weights, { dtype: 'f32' });
    const lc = { r: 4, alpha: 8, useRslora: false, dropout: 0.2, targets: ['q_proj', 'v_proj', 'o_proj', 'up_proj'] };
    const text = files.tokenizer.encode(
      'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. '.repeat(
        3,
      ),
      true,
    );
    const B = 2,
      T = 48;
    const ids = Uint32Array.from(text.slice(0, B * T));
    const targets = Uint32Array.from(text.slice(1, B * T + 1));
    const run = async (checkpointing: boolean) => {
      const lora = LoraState.init(ctx, files.config, lc, 5);
      for (const m of lora.modules.values())
        m.B.write(Float32Array.from({ length: m.B.numel }, (_, i) => Math.sin(i) * 0.05));
      await ctx.sync();
      ctx.alloc.trim();
      ctx.alloc.resetPeak();
      const base = ctx.alloc.allocatedBytes;
      const r = await forwardBackward(model, lora, { ids, targets, B, T }, { checkpointing, dropoutSeed: 1234 });
      const peak = ctx.alloc.peakBytes - base;
      const grads = await lora.readGrads();
      lora.free();
      return { loss: r.lossSum, grads, peak };
    };
    const off = await run(false);
    const on = await run(true);
    expect(on.loss).toBe(off.loss);
    for (const [path, g] of off.grads) {
      expect(on.grads.get(path)!.A).toEqual(g.A);
      expect(on.grads.get(path)!.B).toEqual(g.B);
    }
    expect(on.peak).toBeLessThan(off.peak);
    model.weights.free();
  });
});
