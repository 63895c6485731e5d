// Qwen3, SmolLM3, Gemma 3, Mistral (sliding window 5 < T), a Llama with rope_scaling llama3 and a Qwen2 with
// use_sliding_window (window 3 < T on its second layer), each as a model folder (config.json,
// tokenizer, safetensors with every tensor the config implies) served Hub-style from a local HTTP server (and
// Gemma 3 also as picked files, in bf16 like its Hub checkpoints): the loader reads it, the weights go to the
// GPU, and one LoRA forward + backward runs on every target. The values are the loader tests' deterministic
// fakes; what this checks is the whole path (names, shapes, q/k norms, Gemma's four norms and sliding layers,
// NoPE layers, the scaled RoPE table), not the numbers, which golden.test.ts checks.

import { describe, expect, it } from 'vitest';
import { filesSource, hubSource } from '../../src/loaders/sources';
import { loadModelFiles } from '../../src/loaders/model-files';
import { loadModel } from '../../src/models';
import { expectedTensors } from '../../src/models/config';
import { LoraState } from '../../src/models/lora';
import { forwardBackward } from '../../src/training/step';
import { serveFolder, tinyModelFolder, TINY_CONFIGS } from '../loaders/fixtures';
import { gpu } from '../helpers/gpu';

const llama3 = {
  ...TINY_CONFIGS.llama,
  rope_theta: 500000,
  rope_scaling: {
    rope_type: 'llama3',
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 16,
  },
};

/** Qwen2 with use_sliding_window: layer 1 (from max_window_layers 1) slides by 3 < T. */
const qwen2Window = { ...TINY_CONFIGS.qwen2, use_sliding_window: true, sliding_window: 3, max_window_layers: 1 };

type Loaded = Awaited<ReturnType<typeof loadModelFiles>>;

/** Uploads the model and runs one LoRA forward + backward on every target: finite loss, a dB for every module. */
async function oneLoraStep(m: Loaded) {
  const ctx = await gpu();
  const live0 = ctx.alloc.liveBytes;
  const model = await loadModel(ctx, m.config, m.weights, { dtype: 'f32' });
  const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  const lora = LoraState.init(ctx, m.config, { r: 2, alpha: 4, useRslora: false, dropout: 0, targets }, 5);
  // T beyond original_max_position_embeddings (16) for the llama3 case and the window (3) of Gemma's sliding layer, (5) of Mistral's
  const [B, T] = [2, 20];
  const ids = Uint32Array.from({ length: B * T }, (_, i) => (i * 37) % 300);
  const tgt = Uint32Array.from({ length: B * T }, (_, i) => (i * 37 + 37) % 300);
  const r = await forwardBackward(model, lora, { ids, targets: tgt, B, T }, {});
  expect(Number.isFinite(r.lossSum)).toBe(true);
  expect(r.count).toBe(B * T);
  const grads = await lora.readGrads();
  expect(grads.size).toBe(7 * m.config.numLayers);
  // B starts at zero (PEFT init), so dB carries the signal of the first step
  for (const [path, g] of grads)
    expect(
      g.B.some((x) => x !== 0),
      `${path} dB`,
    ).toBe(true);
  lora.free();
  model.weights.free();
  expect(ctx.alloc.liveBytes).toBe(live0);
}

describe('new families from a Hub-shaped server, one LoRA step', () => {
  it.each([
    ['qwen3', 'qwen3'],
    ['smollm3', 'smollm3'],
    ['gemma3', 'gemma3'],
    ['mistral', 'mistral'],
    ['llama3', 'llama'],
    ['qwen2-window', 'qwen2'],
  ] as const)('%s', async (name, family) => {
    const files = tinyModelFolder(family);
    if (name === 'llama3') files.set('config.json', new TextEncoder().encode(JSON.stringify(llama3)));
    if (name === 'qwen2-window') files.set('config.json', new TextEncoder().encode(JSON.stringify(qwen2Window)));
    const repo = `tiny-org/tiny-${name}`;
    const server = await serveFolder(files, `${repo}/resolve/main/`);
    try {
      const m = await loadModelFiles(hubSource(repo, { baseUrl: server.url }));
      expect(m.config.family).toBe(family);
      expect(m.weights.size).toBe(expectedTensors(m.config).size);
      if (name === 'qwen3') expect(m.weights.has('model.layers.1.self_attn.k_norm.weight')).toBe(true);
      if (name === 'smollm3') expect(m.config.ropeLayers).toEqual([true, false]);
      if (name === 'llama3') expect(m.config.ropeScaling?.type).toBe('llama3');
      if (name === 'qwen2-window') expect([m.config.slidingLayers, m.config.slidingWindow]).toEqual([[false, true], 3]);
      if (name === 'mistral')
        expect([m.config.slidingLayers, m.config.slidingWindow, m.config.headDim]).toEqual([[true, true], 5, 6]);
      if (name === 'gemma3') {
        expect(m.config.slidingLayers).toEqual([true, false]);
        expect(m.weights.has('model.layers.1.post_feedforward_layernorm.weight')).toBe(true);
      }
      await oneLoraStep(m);
    } finally {
      await server.close();
    }
  });

  it('gemma3 from picked files, bf16 as on the Hub', async () => {
    const files = [...tinyModelFolder('gemma3', { dtype: 'BF16' })].map(([name, bytes]) => new File([bytes], name));
    const m = await loadModelFiles(filesSource(files));
    expect(m.config).toMatchObject({ family: 'gemma3', headDim: 8, slidingWindow: 3, tieEmbeddings: true });
    expect(m.weights.get('model.layers.0.self_attn.q_norm.weight')!.dtype).toBe('BF16');
    await oneLoraStep(m);
  });
});
