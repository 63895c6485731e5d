// The autotuner's cache in Node: a JSON file (default .cache/matmul-autotune.json in the repository), as a
// KeyValueStore. The browser uses IndexedDB (src/storage/kv.ts idbStore).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KeyValueStore } from '../storage/kv';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DEFAULT_TUNE_FILE = resolve(repoRoot, '.cache/matmul-autotune.json');

export function fileTuneStore(path = DEFAULT_TUNE_FILE): KeyValueStore {
  const read = (): Record<string, unknown> => {
    if (!existsSync(path)) return {};
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    } catch {
      return {}; // a damaged cache is only a cache: start over
    }
  };
  const write = (o: Record<string, unknown>) => {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, JSON.stringify(o, null, 1) + '\n');
  };
  return {
    get: async <T>(k: string) => read()[k] as T | undefined,
    async set(k, v) {
      write({ ...read(), [k]: v });
    },
    async del(k) {
      const o = read();
      delete o[k];
      write(o);
    },
    keys: async () => Object.keys(read()),
  };
}
