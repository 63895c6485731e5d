// The current training run's checkpoint: LoRA weights, AdamW moments and step, data position, RNG
// seed, settings and curves. One run at a time; saved every N steps and on pause, so a reloaded page
// (or a new GPU device after the old one was lost) resumes exactly where it was.
//
// Write, then switch: a new checkpoint goes to a key of its own, and only once it is fully stored does the
// small pointer `checkpoint:current` switch to it; the previous checkpoint is deleted after the switch. A
// write that fails half-way (storage full, tab closed) leaves the pointer on the previous checkpoint, which
// stays whole and usable. The pointer holds the SHA-256 of what was written, so a checkpoint truncated or
// corrupted in storage later is refused with a clear error instead of resuming from damaged state.

import type { TrainSettings } from '../training/settings';
import { DamagedEntryError, StorageFullError, type KeyValueStore } from './kv';

const POINTER = 'checkpoint:current';
const DATA_PREFIX = 'checkpoint:data:';

/** Whether `key` holds a checkpoint's data (not the pointer): where an injected write fault hits one. */
export function isCheckpointData(key: string): boolean {
  return key.startsWith(DATA_PREFIX);
}

export interface Checkpoint {
  version: 1;
  modelId: string;
  dataset: { name: string; text: string; format?: string; column?: string };
  settings: TrainSettings;
  totalSteps: number;
  lora: Record<string, { A: Float32Array; B: Float32Array }>;
  optimizer: { step: number; m: Record<string, Float32Array>; v: Record<string, Float32Array> };
  data: unknown;
  history: { step: number; loss: number }[];
  valHistory: { step: number; loss: number }[];
  savedAt: string;
}

/** What `checkpoint:current` holds: where the latest whole checkpoint is, and its digest. */
interface Pointer {
  version: 1;
  key: string;
  step: number;
  sha256: string;
}

/** SHA-256 of a checkpoint: its JSON (each Float32Array replaced by its length), then every array's bytes in
 * the order the JSON met them. Structured clone keeps key order, so a stored copy hashes the same. */
export async function checkpointDigest(c: Checkpoint): Promise<string> {
  const arrays: Float32Array[] = [];
  const json = JSON.stringify(c, (_k, v: unknown) => {
    if (v instanceof Float32Array) {
      arrays.push(v);
      return { f32: v.length };
    }
    return v;
  });
  const head = new TextEncoder().encode(json);
  const all = new Uint8Array(head.byteLength + arrays.reduce((n, a) => n + a.byteLength, 0));
  all.set(head);
  let at = head.byteLength;
  for (const a of arrays) {
    all.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at);
    at += a.byteLength;
  }
  const d = await crypto.subtle.digest('SHA-256', all);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Stores `c` as the latest checkpoint (write, then switch; see the top of this file). On failure the
 * previous checkpoint is still the latest and whole; a storage-full error says so.
 */
export async function saveCheckpoint(store: KeyValueStore, c: Checkpoint): Promise<void> {
  const step = c.optimizer.step;
  const prev = await store.get<Pointer>(POINTER).catch(() => undefined);
  const key = `${DATA_PREFIX}${step}-${Date.now().toString(36)}`;
  const pointer: Pointer = { version: 1, key, step, sha256: await checkpointDigest(c) };
  const kept = prev?.key
    ? `The checkpoint at step ${prev.step} is still the latest.`
    : 'There is no earlier checkpoint.';
  try {
    await store.set(key, c, `the checkpoint at step ${step}`);
    await store.set(POINTER, pointer, `the checkpoint at step ${step}`);
  } catch (e) {
    await store.del(key).catch(() => {}); // whatever part of it was written
    if (e instanceof StorageFullError) throw new StorageFullError(`${e.message} ${kept}`);
    throw new Error(`The checkpoint at step ${step} could not be saved (${(e as Error).message}). ${kept}`);
  }
  // Switched: everything else under the data prefix is the previous checkpoint or a failed attempt's leftovers.
  for (const k of await store.keys()) if (k.startsWith(DATA_PREFIX) && k !== key) await store.del(k);
}

/** The latest checkpoint, null when there is none; throws a DamagedEntryError when it is damaged. */
export async function loadCheckpoint(store: KeyValueStore): Promise<Checkpoint | null> {
  const p = await store.get<Pointer>(POINTER);
  if (p === undefined) return null;
  if (!p || typeof p !== 'object' || typeof p.key !== 'string' || typeof p.sha256 !== 'string')
    throw new DamagedEntryError(
      'The record of the saved checkpoint is damaged, so the run cannot resume from it. Discard it and start the run again; adapters in the gallery are not affected.',
    );
  if (p.version !== 1)
    throw new Error(
      `the saved checkpoint has version ${p.version}, which this version of WebLoRA cannot read; discard it`,
    );
  const damaged = (why: string) =>
    new DamagedEntryError(
      `The saved checkpoint at step ${p.step} is damaged (${why}), so the run cannot resume from it. Discard it and start the run again; adapters in the gallery are not affected.`,
    );
  let c: Checkpoint | undefined;
  try {
    c = await store.get<Checkpoint>(p.key);
  } catch (e) {
    throw damaged(`storage could not read it: ${(e as Error).message}`);
  }
  if (!c || typeof c !== 'object') throw damaged('it is missing from storage');
  let digest: string;
  try {
    digest = await checkpointDigest(c);
  } catch (e) {
    throw damaged(`it cannot be read: ${(e as Error).message}`);
  }
  if (digest !== p.sha256) throw damaged('its contents differ from what was written: truncated or corrupted');
  return c;
}

/** Forgets the current run's checkpoint (also a damaged one, and any leftovers of failed writes). */
export async function discardCheckpoint(store: KeyValueStore): Promise<void> {
  await store.del(POINTER);
  for (const k of await store.keys()) if (k.startsWith(DATA_PREFIX)) await store.del(k);
}
