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
/** A stored entry that is truncated, corrupted or unreadable; the message names the entry and what to do. */
export class DamagedEntryError extends Error {}

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

/** What a faultyStore does with one write: store it, fail like a full store, or store a truncated copy (every
 * typed array cut to half, as a write that died half-way) and then fail like a full store. */
export type WriteFault = 'ok' | 'quota' | 'partial';

function truncated(v: unknown): unknown {
  if (ArrayBuffer.isView(v) && 'subarray' in v)
    return (v as Float32Array).slice(0, Math.floor((v as Float32Array).length / 2));
  if (Array.isArray(v)) return v.map(truncated);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, truncated(x)]));
  return v;
}

/** `inner` with injected write faults: `fault(key)` decides each write (tests; the studio's test hook). */
export function faultyStore(inner: KeyValueStore, fault: (key: string) => WriteFault): KeyValueStore {
  return {
    get: (k) => inner.get(k),
    async set(k, v, what) {
      const f = fault(k);
      if (f === 'partial') await inner.set(k, truncated(v), what);
      if (f !== 'ok') {
        const e = new Error('quota exceeded (injected)');
        e.name = 'QuotaExceededError';
        throw friendly(e, what ?? `'${k}'`);
      }
      await inner.set(k, v, what);
    },
    del: (k) => inner.del(k),
    keys: () => inner.keys(),
  };
}
