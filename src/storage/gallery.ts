// The user's adapter gallery: each adapter's PEFT files and its metadata under one key, so an entry is
// written (or fails) as a whole and a failed write leaves every other entry as it was. An entry damaged in
// storage (truncated, corrupted, unreadable) is reported on its own, with what to do; it never hides the
// others. Its weights are checked against the SHA-256 saved with them whenever the entry is read.

import type { AdapterFiles } from '../adapters/peft';
import type { TrainSettings } from '../training/settings';
import { DamagedEntryError, type KeyValueStore } from './kv';

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

/** An entry that could not be read back whole: its id, the best name known for it, and why. */
export interface DamagedGalleryEntry {
  id: string;
  name: string;
  error: string;
}

export interface GalleryListing {
  entries: GalleryEntry[];
  damaged: DamagedGalleryEntry[];
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

  /** Every entry, newest first; damaged ones apart, each with its reason. */
  async list(): Promise<GalleryListing> {
    const entries: GalleryEntry[] = [];
    const damaged: DamagedGalleryEntry[] = [];
    for (const k of await this.store.keys()) {
      if (!k.startsWith(PREFIX)) continue;
      const id = k.slice(PREFIX.length);
      try {
        const s = await this.read(id);
        if (s) entries.push(s.meta);
      } catch (e) {
        const meta = await this.store.get<Partial<Stored>>(k).then(
          (s) => s?.meta,
          () => undefined,
        );
        const name = typeof meta?.name === 'string' ? meta.name : id;
        damaged.push({ id, name, error: (e as Error).message });
      }
    }
    entries.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    return { entries, damaged };
  }

  /** An entry read back and checked whole (undefined when there is none); throws DamagedEntryError. */
  private async read(id: string): Promise<Stored | undefined> {
    let s: Stored | undefined;
    try {
      s = await this.store.get<Stored>(PREFIX + id);
    } catch (e) {
      throw damaged(id, id, `storage could not read it: ${(e as Error).message}`);
    }
    if (s === undefined) return undefined;
    const m = s?.meta;
    if (!m || typeof m !== 'object' || typeof m.name !== 'string' || m.id !== id)
      throw damaged(id, id, 'its description is missing or unreadable');
    const f = s.files;
    const weights = f?.['adapter_model.safetensors'];
    if (!(weights instanceof Uint8Array) || typeof f['adapter_config.json'] !== 'string')
      throw damaged(id, m.name, 'its adapter files are missing');
    if ((await sha256Hex(weights)) !== m.weightsHash)
      throw damaged(id, m.name, 'its weights differ from what was saved: truncated or corrupted');
    return s;
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
    const s = await this.read(id);
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

  /** Deletes an entry, also a damaged one. */
  async delete(id: string): Promise<void> {
    if (!(await this.store.keys()).includes(PREFIX + id))
      throw new Error(`no adapter '${id}' in the gallery (it may have been deleted in another tab)`);
    await this.store.del(PREFIX + id);
  }
}

function damaged(id: string, name: string, why: string): DamagedEntryError {
  return new DamagedEntryError(
    `The adapter '${name}' (${id}) in the gallery is damaged (${why}). Delete it, and import it again if you exported it; the other adapters are not affected.`,
  );
}
