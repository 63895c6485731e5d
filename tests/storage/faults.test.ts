// Storage faults (issue 12): a checkpoint write that runs out of quota half-way leaves the previous
// checkpoint the latest, whole and usable (write, then switch); a checkpoint or gallery entry truncated or
// corrupted in storage gives a clear error for that entry alone, and every other entry stays listed and
// usable. The browser runs the same code over IndexedDB (tests/e2e/faults.test.ts).

import { describe, expect, it } from 'vitest';
import { exportAdapter } from '../../src/adapters/peft';
import { parseConfig } from '../../src/models/config';
import { discardCheckpoint, loadCheckpoint, saveCheckpoint, type Checkpoint } from '../../src/storage/checkpoints';
import { Gallery } from '../../src/storage/gallery';
import {
  DamagedEntryError,
  faultyStore,
  memoryStore,
  StorageFullError,
  type KeyValueStore,
  type WriteFault,
} from '../../src/storage/kv';

/** A checkpoint at `step` whose arrays (n floats each) depend on the step. */
function checkpointAt(step: number, n = 4096): Checkpoint {
  const arr = (k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k + step));
  return {
    version: 1,
    modelId: 'm',
    dataset: { name: 'd', text: 'some text' },
    settings: { rank: 2, seed: 7 } as never,
    totalSteps: 10,
    lora: { 'model.layers.0.self_attn.q_proj': { A: arr(1), B: arr(2) } },
    optimizer: { step, m: { x: arr(3) }, v: { x: arr(4) } },
    data: { epoch: 0, index: step * 2, seed: 7 },
    history: Array.from({ length: step }, (_, i) => ({ step: i + 1, loss: 3 - i / 10 })),
    valHistory: [],
    savedAt: `t${step}`,
  };
}

const dataKeys = async (s: KeyValueStore) => (await s.keys()).filter((k) => k.startsWith('checkpoint:data:'));

describe('checkpoint writes: write, then switch', () => {
  it('a write that fails half-way (quota) keeps the previous checkpoint the latest, whole and usable', async () => {
    const mem = memoryStore();
    let fault: WriteFault = 'ok';
    const store = faultyStore(mem, (k) => (k.startsWith('checkpoint:data:') ? fault : 'ok'));
    const c3 = checkpointAt(3);
    await saveCheckpoint(store, c3);

    fault = 'partial'; // half of every array lands in storage, then the quota error
    const err = await saveCheckpoint(store, checkpointAt(6)).catch((x) => x);
    expect(err).toBeInstanceOf(StorageFullError);
    expect(String(err.message)).toMatch(/storage is full, so the checkpoint at step 6 was not saved/);
    expect(String(err.message)).toMatch(
      /Nothing already saved was changed\. The checkpoint at step 3 is still the latest\.$/,
    );
    expect(await loadCheckpoint(store)).toEqual(c3);
    expect(await dataKeys(mem)).toHaveLength(1); // the half-written one was removed

    fault = 'quota'; // fails before anything is written
    await expect(saveCheckpoint(store, checkpointAt(7))).rejects.toThrow(StorageFullError);
    expect(await loadCheckpoint(store)).toEqual(c3);

    fault = 'ok'; // room again: the next checkpoint replaces it, and only it is kept
    const c8 = checkpointAt(8);
    await saveCheckpoint(store, c8);
    expect(await loadCheckpoint(store)).toEqual(c8);
    expect(await dataKeys(mem)).toHaveLength(1);
  });

  it('a real quota with room for one checkpoint, not two, keeps the first', async () => {
    const one = 4 * 4096 * 4; // the four arrays of a checkpoint
    const store = memoryStore(one * 1.6);
    const c2 = checkpointAt(2);
    await saveCheckpoint(store, c2);
    await expect(saveCheckpoint(store, checkpointAt(4))).rejects.toThrow(
      /step 4 was not saved.*The checkpoint at step 2 is still the latest/,
    );
    expect(await loadCheckpoint(store)).toEqual(c2);
  });

  it('a tab that died between writing a checkpoint and switching to it leaves the previous one the latest', async () => {
    const store = memoryStore();
    const c5 = checkpointAt(5);
    await saveCheckpoint(store, c5);
    // What a write cut off before the switch leaves: a data entry nothing points to.
    await store.set('checkpoint:data:9-orphan', { ...checkpointAt(9), lora: {} });
    expect(await loadCheckpoint(store)).toEqual(c5);
    await saveCheckpoint(store, checkpointAt(6)); // the next save sweeps the leftover
    expect(await dataKeys(store)).toHaveLength(1);
    expect((await loadCheckpoint(store))!.optimizer.step).toBe(6);
  });
});

describe('damaged checkpoints', () => {
  const damagedMessage = /The saved checkpoint at step 4 is damaged \((.+)\).*Discard it and start the run again/;

  async function saved(): Promise<{ store: ReturnType<typeof memoryStore>; key: string }> {
    const store = memoryStore();
    await saveCheckpoint(store, checkpointAt(4));
    return { store, key: (await dataKeys(store))[0] };
  }

  it('a truncated array, a changed value or a missing entry is refused with a clear error; discard clears it', async () => {
    const damage: [string, (c: Checkpoint) => unknown][] = [
      ['truncated array', (c) => ({ ...c, optimizer: { ...c.optimizer, m: { x: c.optimizer.m.x.slice(0, 100) } } })],
      [
        'flipped value',
        (c) => {
          const A = c.lora['model.layers.0.self_attn.q_proj'].A.slice();
          A[17] = -A[17];
          return {
            ...c,
            lora: { 'model.layers.0.self_attn.q_proj': { ...c.lora['model.layers.0.self_attn.q_proj'], A } },
          };
        },
      ],
      ['not an object', () => 'garbage'],
      ['missing', () => undefined],
    ];
    for (const [what, f] of damage) {
      const { store, key } = await saved();
      const bad = f(store.map.get(key) as Checkpoint);
      if (bad === undefined) store.map.delete(key);
      else store.map.set(key, bad);
      const err = await loadCheckpoint(store).catch((x) => x);
      expect(err, what).toBeInstanceOf(DamagedEntryError);
      expect(String(err.message), what).toMatch(damagedMessage);
      await discardCheckpoint(store);
      expect(await loadCheckpoint(store), what).toBeNull();
      expect(store.map.size, what).toBe(0);
    }
  });

  it('an unreadable pointer is refused with a clear error', async () => {
    const { store } = await saved();
    store.map.set('checkpoint:current', 42);
    await expect(loadCheckpoint(store)).rejects.toThrow(/record of the saved checkpoint is damaged.*Discard it/);
  });
});

describe('checkpoints written before the pointer (the legacy layout: the checkpoint itself, no digest)', () => {
  /** A checkpoint as Engine.snapshot makes one: rank 2, q_proj and v_proj of a 64-wide layer, an m and a v
   * for each A and B (named `${module}.lora_A` / `.lora_B`, as the optimizer names them). */
  function legacyAt(step: number): Checkpoint {
    const arr = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k + step));
    const lora: Checkpoint['lora'] = {};
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    ['q_proj', 'v_proj'].forEach((p, j) => {
      const name = `model.layers.0.self_attn.${p}`;
      lora[name] = { A: arr(2 * 64, j + 1), B: arr(64 * 2, j + 2) };
      for (const w of ['lora_A', 'lora_B']) {
        m[`${name}.${w}`] = arr(128, j + 3);
        v[`${name}.${w}`] = arr(128, j + 4).map(Math.abs);
      }
    });
    return {
      version: 1,
      modelId: 'm',
      dataset: { name: 'd', text: 'some text' },
      settings: { rank: 2, seed: 7 } as never,
      totalSteps: 10,
      lora,
      optimizer: { step, m, v },
      data: { epoch: 0, index: step * 2, seed: 7 },
      history: Array.from({ length: step }, (_, i) => ({ step: i + 1, loss: 3 - i / 10 })),
      valHistory: [{ step: 2, loss: 2.9 }],
      savedAt: `t${step}`,
    };
  }

  /** What saveCheckpoint did before the pointer (commit 0e28bfa^): the checkpoint under checkpoint:current. */
  async function savedTheOldWay(step: number): Promise<ReturnType<typeof memoryStore>> {
    const store = memoryStore();
    await store.set('checkpoint:current', legacyAt(step), 'the training checkpoint');
    return store;
  }

  it('a whole one is read as it was, and the next save replaces it with the current layout', async () => {
    const mem = await savedTheOldWay(4);
    expect(await loadCheckpoint(mem)).toEqual(legacyAt(4));

    // A save that runs out of quota half-way keeps it, and says which step is still the latest.
    let fault: WriteFault = 'partial';
    const store = faultyStore(mem, (k) => (k.startsWith('checkpoint:data:') ? fault : 'ok'));
    await expect(saveCheckpoint(store, legacyAt(6))).rejects.toThrow(
      /step 6 was not saved.*The checkpoint at step 4 is still the latest\.$/,
    );
    expect(await loadCheckpoint(store)).toEqual(legacyAt(4));
    expect(await dataKeys(mem)).toEqual([]);

    fault = 'ok';
    await saveCheckpoint(store, legacyAt(8));
    expect(await loadCheckpoint(store)).toEqual(legacyAt(8));
    expect(mem.map.get('checkpoint:current')).toMatchObject({ version: 1, step: 8, sha256: expect.any(String) });
    expect(await dataKeys(mem)).toHaveLength(1);
  });

  it('a damaged one is refused, naming the older format and what is wrong; discard clears it', async () => {
    const name = 'model.layers.0.self_attn.v_proj';
    const damage: [string, (c: Checkpoint) => void, RegExp][] = [
      [
        'truncated moment',
        (c) => (c.optimizer.m[`${name}.lora_B`] = c.optimizer.m[`${name}.lora_B`].slice(0, 100)),
        /B matrix.*cut short/,
      ],
      ['truncated weight', (c) => (c.lora[name].A = c.lora[name].A.slice(0, 127)), /A matrix.*cut short/],
      ['missing matrix', (c) => delete (c.lora[name] as Partial<Checkpoint['lora'][string]>).B, /B matrix.*missing/],
      ['NaN weight', (c) => (c.lora[name].A[5] = NaN), /A matrix.*impossible values/],
      ['negative second moment', (c) => (c.optimizer.v[`${name}.lora_A`][3] = -1), /A matrix.*impossible values/],
      [
        'extra moment',
        (c) => (c.optimizer.v['model.layers.1.mlp.up_proj.lora_A'] = new Float32Array(4)),
        /does not match/,
      ],
      ['no weights', (c) => (c.lora = {}), /adapter weights are missing/],
      ['no dataset', (c) => ((c as { dataset: unknown }).dataset = null), /dataset is missing/],
      ['curve too long', (c) => c.history.push({ step: 5, loss: 1 }), /longer than its run/],
      ['step past the run', (c) => (c.optimizer.step = 11), /optimizer state is missing/],
    ];
    for (const [what, f, why] of damage) {
      const store = await savedTheOldWay(4);
      f(store.map.get('checkpoint:current') as Checkpoint);
      const err = await loadCheckpoint(store).catch((x) => x);
      expect(err, what).toBeInstanceOf(DamagedEntryError);
      expect(String(err.message), what).toMatch(
        /^The saved checkpoint( at step \d+)?, written by an earlier version of WebLoRA, is damaged \(.+\), so the run cannot resume from it\. Discard it/,
      );
      expect(String(err.message), what).toMatch(why);
      await discardCheckpoint(store);
      expect(await loadCheckpoint(store), what).toBeNull();
    }
  });
});

// Wide enough that an entry's weights are a real array.
const cfg = parseConfig({
  architectures: ['LlamaForCausalLM'],
  vocab_size: 50,
  hidden_size: 64,
  intermediate_size: 24,
  num_hidden_layers: 1,
  num_attention_heads: 2,
});

function adapterFiles(seed: number) {
  const arrays = new Map([
    [
      'model.layers.0.self_attn.q_proj',
      {
        A: Float32Array.from({ length: 128 }, (_, i) => Math.sin(i + seed)),
        B: Float32Array.from({ length: 128 }, (_, i) => Math.cos(i * seed)),
      },
    ],
  ]);
  const lc = { r: 2, alpha: 4, useRslora: false, dropout: 0, targets: ['q_proj'] };
  const card = {
    name: `a${seed}`,
    baseModel: 'tiny',
    dataset: 'd',
    settings: {},
    trainLoss: 1,
    valLoss: 2,
    sample: 'x',
  };
  return exportAdapter(cfg, lc, arrays, card);
}

const meta = (name: string) => ({
  name,
  baseModel: 'tiny',
  dataset: 'd',
  settings: { rank: 2, alpha: 4, targets: ['q_proj'] },
  lossCurve: [{ step: 1, loss: 2 }],
  valCurve: [],
});

describe('damaged gallery entries', () => {
  it('each damaged entry is listed apart with its reason; every other entry stays listed and usable', async () => {
    const mem = memoryStore();
    let unreadable = '';
    // A store whose IndexedDB read of one key fails, as a corrupted record does.
    const store: KeyValueStore = {
      ...mem,
      get: async <T>(k: string) => {
        if (k === unreadable) throw new Error('DataError: the record could not be read');
        return mem.get<T>(k);
      },
    };
    const g = new Gallery(store);
    const saved = [];
    for (let i = 1; i <= 6; i++) saved.push({ entry: await g.save(meta(`adapter ${i}`), adapterFiles(i)), seed: i });
    const [truncated, noFiles, garbage, unread, ...good] = saved;
    const key = (id: string) => `adapter:${id}`;
    type Stored = { meta: object; files: Record<string, unknown> };
    const t = mem.map.get(key(truncated.entry.id)) as Stored;
    const w = t.files['adapter_model.safetensors'] as Uint8Array;
    mem.map.set(key(truncated.entry.id), { ...t, files: { ...t.files, 'adapter_model.safetensors': w.slice(0, 40) } });
    const n = mem.map.get(key(noFiles.entry.id)) as Stored;
    mem.map.set(key(noFiles.entry.id), { meta: n.meta });
    mem.map.set(key(garbage.entry.id), 'garbage');
    unreadable = key(unread.entry.id);

    const { entries, damaged } = await g.list();
    expect(entries.map((e) => e.name).sort()).toEqual(good.map((s) => s.entry.name).sort());
    const why = Object.fromEntries(damaged.map((d) => [d.id, d]));
    expect(Object.keys(why).sort()).toEqual([truncated, noFiles, garbage, unread].map((s) => s.entry.id).sort());
    const message = (name: string, reason: RegExp) =>
      new RegExp(`^The adapter '${name}' \\(.*\\) in the gallery is damaged \\(${reason.source}\\)\\. Delete it`);
    expect(why[truncated.entry.id].error).toMatch(message('adapter 1', /its weights differ .*corrupted/));
    expect(why[noFiles.entry.id].error).toMatch(message('adapter 2', /its adapter files are missing/));
    expect(why[garbage.entry.id].error).toMatch(message(garbage.entry.id, /its description is missing or unreadable/));
    expect(why[unread.entry.id].error).toMatch(message(unread.entry.id, /storage could not read it: DataError.*/));
    expect(why[truncated.entry.id].name).toBe('adapter 1'); // the name is kept where it can be read

    // Every good entry is whole: the same bytes came back.
    for (const s of good)
      expect((await g.get(s.entry.id)).files['adapter_model.safetensors']).toEqual(
        adapterFiles(s.seed)['adapter_model.safetensors'],
      );
    // A damaged one says why when used, and can be deleted.
    await expect(g.get(truncated.entry.id)).rejects.toThrow(DamagedEntryError);
    for (const s of [truncated, noFiles, garbage, unread]) await g.delete(s.entry.id);
    const after = await g.list();
    expect(after.damaged).toEqual([]);
    expect(after.entries).toEqual(entries);
  });
});
