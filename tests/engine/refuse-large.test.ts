// A Hub model that cannot fit this GPU is refused from its config.json and the repo's file list, before a
// single weight (or even the tokenizer) is fetched, with the figures. For every issue-11 family (Qwen3,
// Llama 3.x, SmolLM3, Mistral) the real checkpoint's config.json is served Hub-style by a local server that
// counts requests, with an engine given a 1 GiB memory budget; a Llama 3.x config whose MLP weight is one
// byte-row beyond the adapter's buffer limits is refused with no budget at all. A tiny model that fits,
// served the same way, is fetched in full: the request count is what tells the two apart.

import { describe, expect, it } from 'vitest';
import { Engine, ModelTooLargeError } from '../../src/engine/engine';
import { hubSource } from '../../src/loaders/sources';
import { serveFolder, tinyModelFolder } from '../loaders/fixtures';
import { gpu } from '../helpers/gpu';
import { LLAMA32_1B, MISTRAL_7B_V01, QWEN3_06B, SMOLLM3_3B } from '../models/hub-configs';

const GiB = 1024 ** 3;
const enc = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));

/** A Hub repo: config.json, a tokenizer, weight files (a few bytes: they must never be asked for), and the
 * API's file list. */
async function serveRepo(repo: string, files: Map<string, Uint8Array<ArrayBuffer>>) {
  const siblings = [...files.keys()].map((rfilename) => ({ rfilename }));
  const extra = new Map([[`/api/models/${repo}/revision/main`, enc({ id: repo, siblings })]]);
  return serveFolder(files, `${repo}/resolve/main/`, { extra });
}

function bigRepo(config: Record<string, unknown>, shards: number): Map<string, Uint8Array<ArrayBuffer>> {
  const files = tinyModelFolder('llama'); // tokenizer files; the weights are replaced below
  files.delete('model.safetensors');
  files.set('config.json', enc(config));
  const names = Array.from(
    { length: shards },
    (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`,
  );
  for (const n of names) files.set(n, new Uint8Array(16));
  files.set('model.safetensors.index.json', enc({ weight_map: { 'model.norm.weight': names[0] } }));
  return files;
}

const fetchedWeights = (requests: string[]) =>
  requests.filter((p) => /\.safetensors(\.index\.json)?$|tokenizer\.json$/.test(p));

describe('refuse before download', () => {
  it.each([
    ['Qwen3-0.6B', QWEN3_06B, 'qwen3'],
    ['Llama-3.2-1B', LLAMA32_1B, 'llama'],
    ['SmolLM3-3B', SMOLLM3_3B, 'smollm3'],
    ['Mistral-7B-v0.1', MISTRAL_7B_V01, 'mistral'],
  ] as const)('%s over a 1 GiB budget: refused from config.json, no weight requested', async (name, config, family) => {
    const ctx = await gpu();
    const repo = `org/${name}`;
    const server = await serveRepo(repo, bigRepo(config, 2));
    try {
      const engine = new Engine(ctx, { memoryBudget: GiB });
      const err = await engine.loadModel(hubSource(repo, { baseUrl: server.url }), 'f16').catch((e: Error) => e);
      expect(err).toBeInstanceOf(ModelTooLargeError);
      const msg = (err as Error).message;
      expect(msg).toMatch(/estimated GPU memory [\d.]+ GiB \(weights [\d.]+ GiB, .*\) is over the 1\.00 GiB budget/);
      expect(msg).toContain('model-00001-of-00002.safetensors, model-00002-of-00002.safetensors) were not fetched');
      expect(server.requests).toContain(`/${repo}/resolve/main/config.json`);
      expect(server.requests).toContain(`/api/models/${repo}/revision/main`);
      expect(fetchedWeights(server.requests)).toEqual([]);
      expect(server.requests.length).toBe(2);
      expect(engine.loaded).toBeNull();
      console.log(`MEASURED ${name} (${family}): ${server.requests.length} requests; ${msg}`);
    } finally {
      await server.close();
    }
  });

  it('a Llama 3.x MLP weight beyond the adapter buffer limits: refused with no budget given', async () => {
    const ctx = await gpu();
    const limit = Math.min(ctx.limits.maxBufferSize, ctx.limits.maxStorageBufferBindingSize);
    const hidden = 64;
    // gate_proj (I, C) in f16 is one row over the limit
    const intermediate = Math.floor(limit / (hidden * 2)) + 1;
    const config = {
      ...LLAMA32_1B,
      hidden_size: hidden,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      head_dim: 32,
      num_hidden_layers: 1,
      intermediate_size: intermediate,
      vocab_size: 1000,
    };
    const repo = 'org/too-wide-llama3';
    const server = await serveRepo(repo, bigRepo(config, 1));
    try {
      const err = await new Engine(ctx)
        .inspect(hubSource(repo, { baseUrl: server.url }), undefined, 'f16')
        .catch((e: Error) => e);
      expect(err).toBeInstanceOf(ModelTooLargeError);
      expect((err as Error).message).toMatch(
        /model\.layers\.0\.mlp\.(gate|up|down)_proj\.weight needs [\d.]+ [MG]iB, more than one storage binding or buffer allows/,
      );
      expect(fetchedWeights(server.requests)).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('a model that fits is fetched in full by the same engine (the control)', async () => {
    const ctx = await gpu();
    const repo = 'org/tiny-mistral';
    const server = await serveRepo(repo, tinyModelFolder('mistral'));
    try {
      const engine = new Engine(ctx, { memoryBudget: GiB });
      const r = await engine.inspect(hubSource(repo, { baseUrl: server.url }), undefined, 'f16');
      expect(r.model.family).toBe('mistral');
      expect(r.memory.messages.some((m) => m.level === 'error')).toBe(false);
      expect(fetchedWeights(server.requests)).toEqual([
        `/${repo}/resolve/main/tokenizer.json`,
        `/${repo}/resolve/main/model.safetensors`,
      ]);
    } finally {
      await server.close();
    }
  });
});
