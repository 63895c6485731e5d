// The gallery and checkpoint stores (the browser uses the same code over IndexedDB; the e2e tests
// cover that). A full store refuses a new adapter with a message that says what to do, and every
// adapter already saved is untouched.

import { describe, expect, it } from 'vitest';
import { exportAdapter } from '../../src/adapters/peft';
import { parseConfig } from '../../src/models/config';
import { discardCheckpoint, loadCheckpoint, saveCheckpoint } from '../../src/storage/checkpoints';
import { Gallery, sha256Hex } from '../../src/storage/gallery';
import { memoryStore, StorageFullError } from '../../src/storage/kv';

// Wide enough that the weights, not the card and config text, dominate an entry's size.
const cfg = parseConfig({
  architectures: ['LlamaForCausalLM'],
  vocab_size: 50,
  hidden_size: 512,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 2,
});
const lc = { r: 2, alpha: 4, useRslora: false, dropout: 0, targets: ['q_proj'] };

function files(seed: number) {
  const arrays = new Map(
    [0, 1].map((l) => [
      `model.layers.${l}.self_attn.q_proj`,
      {
        A: Float32Array.from({ length: 1024 }, (_, i) => Math.sin(i + seed)),
        B: Float32Array.from({ length: 1024 }, (_, i) => Math.cos(i * seed)),
      },
    ]),
  );
  return exportAdapter(cfg, lc, arrays, {
    name: `a${seed}`,
    baseModel: 'tiny',
    dataset: 'd',
    settings: {},
    trainLoss: 1,
    valLoss: 2,
    sample: 'x',
  });
}
const meta = (name: string) => ({
  name,
  baseModel: 'tiny',
  dataset: 'd',
  settings: { rank: 2, alpha: 4, targets: ['q_proj'] },
  lossCurve: [{ step: 1, loss: 2 }],
  valCurve: [],
});

describe('gallery', () => {
  it('saves, lists, renames and deletes adapters with their weights hash', async () => {
    const g = new Gallery(memoryStore());
    const f = files(1);
    const e = await g.save(meta('first'), f);
    expect(e.weightsHash).toBe(await sha256Hex(f['adapter_model.safetensors']));
    expect(e.builtin).toBe(false);
    await g.save(meta('second'), files(2));
    expect((await g.list()).entries.map((x) => x.name).sort()).toEqual(['first', 'second']);
    expect((await g.rename(e.id, '  renamed  ')).name).toBe('renamed');
    await expect(g.rename(e.id, '   ')).rejects.toThrow(/cannot be empty/);
    await g.delete(e.id);
    expect((await g.list()).entries.map((x) => x.name)).toEqual(['second']);
    await expect(g.get(e.id)).rejects.toThrow(/no adapter/);
  });

  it('a full store refuses the new adapter clearly and keeps every saved one', async () => {
    const one = files(1);
    const size = one['adapter_model.safetensors'].byteLength;
    const store = memoryStore(size * 2.5); // room for two adapters, not three
    const g = new Gallery(store);
    await g.save(meta('a'), one);
    await g.save(meta('b'), files(2));
    const before = await g.list();
    const err = await g.save(meta('c'), files(3)).catch((x) => x);
    expect(err).toBeInstanceOf(StorageFullError);
    expect(String(err.message)).toMatch(
      /storage is full, so the adapter 'c' was not saved.*Delete adapters you no longer need.*Nothing already saved was changed/,
    );
    const after = await g.list();
    expect(after).toEqual(before);
    expect(after.damaged).toEqual([]);
    for (const e of after.entries) expect((await g.get(e.id)).files['adapter_model.safetensors'].byteLength).toBe(size);
  });
});

describe('checkpoints', () => {
  it('save, load and discard the current run; a future version is refused with advice', async () => {
    const store = memoryStore();
    expect(await loadCheckpoint(store)).toBeNull();
    const c = {
      version: 1 as const,
      modelId: 'm',
      dataset: { name: 'd', text: 't' },
      settings: {} as never,
      totalSteps: 3,
      lora: { x: { A: new Float32Array([1]), B: new Float32Array([2]) } },
      optimizer: { step: 1, m: {}, v: {} },
      data: { epoch: 0, index: 1, seed: 1 },
      history: [{ step: 1, loss: 2 }],
      valHistory: [],
      savedAt: 'now',
    };
    await saveCheckpoint(store, c);
    expect(await loadCheckpoint(store)).toEqual(c);
    const pointer = await store.get<object>('checkpoint:current');
    await store.set('checkpoint:current', { ...pointer, version: 2 });
    await expect(loadCheckpoint(store)).rejects.toThrow(/version 2.*discard it/);
    await discardCheckpoint(store);
    expect(await loadCheckpoint(store)).toBeNull();
  });
});
