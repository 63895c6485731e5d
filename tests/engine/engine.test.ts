// The engine the worker and the CLI share: trying an adapter merged into the weights gives the same
// greedy text as running its LoRA branch, and leaves the base model exactly as it was.

import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { dirSource } from '../../src/loaders/sources.node';
import { LoraState } from '../../src/models/lora';
import { BUNDLED } from '../helpers/fixtures';
import { gpu, rng } from '../helpers/gpu';

describe('engine', () => {
  it('merged generation equals the LoRA-branch generation, and the base weights come back bit for bit', async () => {
    const ctx = await gpu();
    const e = new Engine(ctx);
    const { files, model } = await e.loadModel(dirSource(BUNDLED), 'f32');
    const lora = LoraState.init(
      ctx,
      files.config,
      { r: 4, alpha: 32, useRslora: false, dropout: 0, targets: ['q_proj', 'v_proj', 'up_proj'] },
      7,
    );
    for (const m of lora.modules.values()) m.B.write(rng(3).normal(m.B.numel, 0.3));
    const name = 'model.layers.1.self_attn.q_proj.weight';
    const w0 = await model.weights.get(name).read();
    const o = { seed: 1, maxTokens: 12, temperature: 0 };
    const base = await e.generate('The whale', null, o);
    const branch = await e.generate('The whale', lora, o);
    const merged = await e.generate('The whale', lora, { ...o, merged: true });
    expect(branch.text).not.toBe(base.text);
    expect(merged.text).toBe(branch.text);
    expect(await model.weights.get(name).read()).toEqual(w0);
    expect((await e.generate('The whale', null, o)).text).toBe(base.text);
    lora.free();
    e.unloadModel();
  });
});
