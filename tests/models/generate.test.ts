// Text generation on the bundled model: the KV-cache path gives the same tokens as recomputing the
// whole sequence at every step (base model and with an adapter; and on Gemma 3, whose sliding-window layers
// attend over a cache longer than their window, with both soft caps; and Mistral's sliding window), sampling is reproducible by seed, and
// the samplers do what they say.

import { describe, expect, it } from 'vitest';
import { forwardLogits } from '../../src/models/forward';
import { loadModelFiles } from '../../src/loaders/model-files';
import { dirSource } from '../../src/loaders/sources.node';
import { loadModel, modelFor } from '../../src/models';
import { generate, sampleToken } from '../../src/models/generate';
import { LoraState } from '../../src/models/lora';
import { join } from 'node:path';
import { BUNDLED, FIXTURES, goldenCases, loadFixtureModel } from '../helpers/fixtures';
import { gpu, rng } from '../helpers/gpu';

async function bundled() {
  const ctx = await gpu();
  const files = await loadModelFiles(dirSource(BUNDLED));
  const model = await loadModel(ctx, files.config, files.weights, { dtype: 'f32' });
  return { ctx, files, model };
}

describe('generation', () => {
  it('the KV cache gives the same greedy tokens as full recomputation, with and without an adapter', async () => {
    const { ctx, files, model } = await bundled();
    const live0 = ctx.alloc.liveBytes;
    const prompt = files.tokenizer.encode('Call me Ishmael. Some years ago', true);
    const o = { maxNewTokens: 12, temperature: 0, stopAtEos: false };
    const cached = await generate(model, null, prompt, { ...o, useKvCache: true });
    const full = await generate(model, null, prompt, { ...o, useKvCache: false });
    expect(cached).toEqual(full);
    expect(files.tokenizer.decode(cached).length).toBeGreaterThan(0);

    // An adapter with random nonzero B changes the text, and the cache still agrees with recompute.
    const lora = LoraState.init(
      ctx,
      files.config,
      { r: 4, alpha: 64, useRslora: false, dropout: 0, targets: ['q_proj', 'v_proj', 'down_proj'] },
      3,
    );
    for (const m of lora.modules.values()) m.B.write(rng(9).normal(m.B.numel, 0.5));
    const cachedL = await generate(model, lora, prompt, { ...o, useKvCache: true });
    const fullL = await generate(model, lora, prompt, { ...o, useKvCache: false });
    expect(cachedL).toEqual(fullL);
    expect(cachedL).not.toEqual(cached);

    lora.free();
    ctx.flush();
    expect(ctx.alloc.liveBytes).toBe(live0);
    model.weights.free();
  });

  it('Gemma 3: the KV cache over sliding-window layers (window 4, 16 positions) gives the tokens of recompute', async () => {
    const ctx = await gpu();
    const c = goldenCases().find((x) => x.name === 'gemma3-sliding-softcap')!;
    const files = await loadFixtureModel(c.modelDir);
    const model = await loadModel(ctx, files.config, files.weights, { dtype: 'f32' });
    expect(files.config.slidingWindow).toBe(4);
    const prompt = [2, 17, 40, 5, 88, 23];
    const o = { maxNewTokens: 10, temperature: 0, stopAtEos: false };
    const cached = await generate(model, null, prompt, { ...o, useKvCache: true });
    const full = await generate(model, null, prompt, { ...o, useKvCache: false });
    expect(cached).toEqual(full);
    // the first token is the argmax of the (soft-capped) logits of the prompt's last row
    const logits = forwardLogits(model, null, Uint32Array.from(prompt), 1, prompt.length);
    const last = (await logits.read()).subarray((prompt.length - 1) * files.config.vocabSize);
    logits.free();
    expect(Math.max(...last.map(Math.abs))).toBeLessThanOrEqual(files.config.finalSoftcap!);
    expect(cached[0]).toBe(last.indexOf(Math.max(...last)));
    model.weights.free();
  });

  it('Mistral: the KV cache keeps the sliding window (4) as the sequence grows past it', async () => {
    const ctx = await gpu();
    const files = await loadFixtureModel(join(FIXTURES, 'mistral-window'));
    expect([files.config.slidingLayers, files.config.slidingWindow]).toEqual([[true, true], 4]);
    const model = await loadModel(ctx, files.config, files.weights, { dtype: 'f32' });
    const o = { maxNewTokens: 12, temperature: 0, stopAtEos: false };
    const prompt = [1, 40, 41, 7, 60]; // 5 tokens: the window already drops the first key at position 4
    const cached = await generate(model, null, prompt, { ...o, useKvCache: true });
    const full = await generate(model, null, prompt, { ...o, useKvCache: false });
    expect(cached).toEqual(full);
    // Without the window the same weights continue differently: the window is in force in both paths.
    const unwindowed = modelFor({ ...files.config, slidingLayers: undefined, slidingWindow: undefined }, model.weights);
    const plain = await generate(unwindowed, null, prompt, { ...o, useKvCache: false });
    expect(plain).not.toEqual(full);
    model.weights.free();
  });

  it('sampling is reproducible by seed and differs across seeds', async () => {
    const { files, model } = await bundled();
    const prompt = files.tokenizer.encode('The whale', true);
    const o = { maxNewTokens: 16, temperature: 1, topK: 50, topP: 0.95, stopAtEos: false };
    const a = await generate(model, null, prompt, { ...o, seed: 1 });
    const b = await generate(model, null, prompt, { ...o, seed: 1 });
    const c = await generate(model, null, prompt, { ...o, seed: 2 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    // Greedy equals the argmax of the full forward's last row.
    const logits = forwardLogits(model, null, Uint32Array.from(prompt), 1, prompt.length);
    const all = await logits.read();
    logits.free();
    const V = files.config.vocabSize;
    const last = all.subarray((prompt.length - 1) * V);
    const [g] = await generate(model, null, prompt, { maxNewTokens: 1, temperature: 0 });
    expect(g).toBe(last.indexOf(Math.max(...last)));
    model.weights.free();
  });

  it('samplers: greedy, top-k and top-p keep only what they should', () => {
    const logits = Float32Array.from([0, 3, 1, 2.5, -1]);
    expect(sampleToken(logits, { temperature: 0 }, 0.99)).toBe(1);
    // top-k 1 is greedy whatever u is.
    for (const u of [0, 0.5, 0.999]) expect(sampleToken(logits, { temperature: 1, topK: 1 }, u)).toBe(1);
    // top-k 2 only ever gives the two best.
    for (let i = 0; i < 50; i++) expect([1, 3]).toContain(sampleToken(logits, { temperature: 1, topK: 2 }, i / 50));
    // top-p 0.5 keeps the smallest set whose mass reaches 0.5: here the best token alone (p = 0.55).
    for (let i = 0; i < 50; i++) expect(sampleToken(logits, { temperature: 1, topP: 0.5 }, i / 50)).toBe(1);
    // At temperature 1 with no cut, u sweeps every token in order of probability.
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) seen.add(sampleToken(logits, { temperature: 1 }, i / 1000));
    expect(seen).toEqual(new Set([0, 1, 2, 3, 4]));
  });
});
