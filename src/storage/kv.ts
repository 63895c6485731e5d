// Key-value storage for the gallery and checkpoints: IndexedDB through idb-keyval in the browser
// (page and worker share it), a Map in Node (CLI, tests). Values are structured-cloneable.

import { createStore, del, get, keys, set, type UseStore } from 'idb-keyval';

export interface KeyValueStore {
  get<T>(key: string): Promise<T | undefined>;
  /** `what` names the value in a storage-full message ("the adapter 'x'"). */
  set(key: string, value: unknown, what?: string): Promise<void>;
  del(key: string): Promise<void>;
  keys(): Promise<string[]>;
}

export class StorageFullError extends Error {}

function friendly(e: unknown, what: string): Error {
  const name = (e as { name?: string })?.name;
  if (name === 'QuotaExceededError') {
    return new StorageFullError(
      `The browser's storage is full, so ${what} was not saved. Delete adapters you no longer need from the gallery (or export them first), then try again. Nothing already saved was changed.`,
    );
  }
  return e instanceof Error ? e : new Error(String(e));
}

export function idbStore(db = 'weblora', storeName = 'kv'): KeyValueStore {
  const store: UseStore = createStore(db, storeName);
  return {
    get: (k) => get(k, store),
    async set(k, v, what) {
      try {
        await set(k, v, store);
      } catch (e) {
        throw friendly(e, what ?? `'${k}'`);
      }
    },
    del: (k) => del(k, store),
    keys: async () => (await keys(store)).map(String),
  };
}

/** An in-memory store; `quotaBytes` makes it fail like a full browser store (for tests of that path). */
export function memoryStore(quotaBytes = Infinity): KeyValueStore & { map: Map<string, unknown> } {
  const map = new Map<string, unknown>();
  const size = (v: unknown): number => {
    if (v instanceof Uint8Array || v instanceof Float32Array) return v.byteLength;
    if (v && typeof v === 'object') return Object.values(v).reduce((n: number, x) => n + size(x), 0);
    return String(v).length;
  };
  return {
    map,
    get: async <T>(k: string) => map.get(k) as T | undefined,
    async set(k, v, what) {
      let used = 0;
      for (const [key, val] of map) if (key !== k) used += size(val);
      if (used + size(v) > quotaBytes) {
        const e = new Error('quota exceeded');
        e.name = 'QuotaExceededError';
        throw friendly(e, what ?? `'${k}'`);
      }
      map.set(k, structuredClone(v));
    },
    del: async (k) => void map.delete(k),
    keys: async () => [...map.keys()],
  };
}
