// The user's adapter gallery: each adapter's PEFT files and its metadata under one key, so an entry is
// written (or fails) as a whole and a failed write leaves every other entry as it was.

import type { AdapterFiles } from '../adapters/peft';
import type { TrainSettings } from '../training/settings';
import type { KeyValueStore } from './kv';

export interface GalleryEntry {
  id: string;
  name: string;
  builtin: boolean;
  baseModel: string;
  weightsHash: string;
  dataset: string;
  settings: Partial<TrainSettings> & { rank: number; alpha: number; targets: string[] };
  lossCurve: { step: number; loss: number }[];
  valCurve: { step: number; loss: number }[];
  createdAt: string;
  sizeBytes: number;
}

const PREFIX = 'adapter:';

interface Stored {
  meta: GalleryEntry;
  files: AdapterFiles;
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export class Gallery {
  constructor(private store: KeyValueStore) {}

  async list(): Promise<GalleryEntry[]> {
    const out: GalleryEntry[] = [];
    for (const k of await this.store.keys()) {
      if (!k.startsWith(PREFIX)) continue;
      const s = await this.store.get<Stored>(k);
      if (s) out.push(s.meta);
    }
    return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  async save(
    meta: Omit<GalleryEntry, 'id' | 'weightsHash' | 'sizeBytes' | 'createdAt' | 'builtin'>,
    files: AdapterFiles,
  ): Promise<GalleryEntry> {
    const weightsHash = await sha256Hex(files['adapter_model.safetensors']);
    const entry: GalleryEntry = {
      ...meta,
      id: `${Date.now().toString(36)}-${weightsHash.slice(0, 8)}`,
      builtin: false,
      weightsHash,
      createdAt: new Date().toISOString(),
      sizeBytes:
        files['adapter_model.safetensors'].byteLength + files['adapter_config.json'].length + files['README.md'].length,
    };
    await this.store.set(PREFIX + entry.id, { meta: entry, files } satisfies Stored, `the adapter '${entry.name}'`);
    return entry;
  }

  async get(id: string): Promise<Stored> {
    const s = await this.store.get<Stored>(PREFIX + id);
    if (!s) throw new Error(`no adapter '${id}' in the gallery (it may have been deleted in another tab)`);
    return s;
  }

  async rename(id: string, name: string): Promise<GalleryEntry> {
    const clean = name.trim();
    if (!clean) throw new Error('an adapter name cannot be empty');
    const s = await this.get(id);
    s.meta = { ...s.meta, name: clean.slice(0, 200) };
    await this.store.set(PREFIX + id, s, `the new name of '${s.meta.name}'`);
    return s.meta;
  }

  async delete(id: string): Promise<void> {
    await this.get(id);
    await this.store.del(PREFIX + id);
  }
}
