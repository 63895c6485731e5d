// The current training run's checkpoint: LoRA weights, AdamW moments and step, data position, RNG
// seed, settings and curves. One run at a time; saved every N steps and on pause, so a reloaded page
// (or a new GPU device after the old one was lost) resumes exactly where it was.
//
// Write, then switch: a new checkpoint goes to a key of its own, and only once it is fully stored does the
// small pointer `checkpoint:current` switch to it; the previous checkpoint is deleted after the switch. A
// write that fails half-way (storage full, tab closed) leaves the pointer on the previous checkpoint, which
// stays whole and usable. The pointer holds the SHA-256 of what was written, so a checkpoint truncated or
// corrupted in storage later is refused with a clear error instead of resuming from damaged state.
//
// Older versions of WebLoRA stored the checkpoint itself under `checkpoint:current`, with no digest. Such an
// entry is still read (a legacy entry): with no digest to compare, it is checked as far as its own contents
// allow (every field present with its type, each adapter matrix with both AdamW moments of its size, every
// value finite, the second moments >= 0) and refused as damaged only when that fails. The next checkpoint
// saved replaces it with the current layout.

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

/** What `checkpoint:current` may hold: a pointer, or a whole checkpoint (the legacy layout, no digest). */
function isLegacy(p: unknown): p is Checkpoint {
  return !!p && typeof p === 'object' && 'optimizer' in p && 'lora' in p;
}

/** The step of the checkpoint `checkpoint:current` names, in either layout; undefined when it names none. */
function stepOf(p: Pointer | Checkpoint | undefined): number | undefined {
  if (isLegacy(p)) return p.optimizer?.step;
  return typeof p?.key === 'string' ? p.step : undefined;
}

/** Why a legacy checkpoint (no digest) cannot be whole, or null when everything it holds fits together. */
function legacyProblem(c: Checkpoint): string | null {
  const isF32 = (a: unknown): a is Float32Array => a instanceof Float32Array && a.length > 0;
  const finite = (a: Float32Array) => a.every(Number.isFinite);
  const isObj = (o: unknown): o is Record<string, unknown> => !!o && typeof o === 'object';
  if (typeof c.modelId !== 'string') return 'its model is not named';
  if (!isObj(c.dataset) || typeof c.dataset.name !== 'string' || typeof c.dataset.text !== 'string')
    return 'its dataset is missing';
  if (!isObj(c.settings) || !Number.isInteger(c.settings.rank) || c.settings.rank < 1)
    return 'its settings are missing';
  if (!isObj(c.data)) return 'its place in the dataset is missing';
  if (!Number.isInteger(c.totalSteps) || c.totalSteps < 1) return 'its number of steps is missing';
  const o = c.optimizer;
  if (!isObj(o) || !Number.isInteger(o.step) || o.step < 0 || o.step > c.totalSteps || !isObj(o.m) || !isObj(o.v))
    return 'its optimizer state is missing';
  if (!isObj(c.lora) || Object.keys(c.lora).length === 0) return 'its adapter weights are missing';
  // The moments are named after each matrix, `${module}.lora_A` and `.lora_B` (flatLayout in
  // src/models/lora.ts): one m and one v per A and per B.
  let matrices = 0;
  for (const [name, ab] of Object.entries(c.lora)) {
    for (const which of ['A', 'B'] as const) {
      const w = (ab as Record<string, unknown>)?.[which];
      const [m, v] = [o.m[`${name}.lora_${which}`], o.v[`${name}.lora_${which}`]];
      // A is (r, in) and B is (out, r): both a whole number of rank-r rows or columns
      const cut = !isF32(w) || w.length % c.settings.rank !== 0;
      if (cut || !isF32(m) || !isF32(v) || m.length !== w.length || v.length !== w.length)
        return `the ${which} matrix of ${name} or its optimizer state is missing or cut short`;
      if (!finite(w) || !finite(m) || !finite(v) || v.some((x) => x < 0))
        return `the ${which} matrix of ${name} or its optimizer state holds impossible values`;
      matrices++;
    }
  }
  if (Object.keys(o.m).length !== matrices || Object.keys(o.v).length !== matrices)
    return 'its optimizer state does not match its adapter weights';
  const curve = (h: unknown) =>
    Array.isArray(h) && h.every((p) => isObj(p) && Number.isInteger(p.step) && typeof p.loss === 'number');
  if (!curve(c.history) || !curve(c.valHistory)) return 'its loss curves are unreadable';
  if (c.history.length > o.step) return 'its loss curve is longer than its run';
  return null;
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
  const prevStep = stepOf(await store.get<Pointer | Checkpoint>(POINTER).catch(() => undefined));
  const key = `${DATA_PREFIX}${step}-${Date.now().toString(36)}`;
  const pointer: Pointer = { version: 1, key, step, sha256: await checkpointDigest(c) };
  const kept =
    prevStep !== undefined
      ? `The checkpoint at step ${prevStep} is still the latest.`
      : 'There is no earlier checkpoint.';
  try {
    await store.set(key, c, `the checkpoint at step ${step}`);
    await store.set(POINTER, pointer, `the checkpoint at step ${step}`);
  } catch (e) {
    await store.del(key).catch(() => {}); // whatever part of it was written
    if (e instanceof StorageFullError) throw new StorageFullError(`${e.message} ${kept}`);
    throw new Error(`The checkpoint at step ${step} could not be saved (${(e as Error).message}). ${kept}`);
  }
  // Switched (a legacy checkpoint, stored in the pointer's place, is gone with the switch): everything else
  // under the data prefix is the previous checkpoint or a failed attempt's leftovers.
  for (const k of await store.keys()) if (k.startsWith(DATA_PREFIX) && k !== key) await store.del(k);
}

/** The latest checkpoint, null when there is none; throws a DamagedEntryError when it is damaged. */
export async function loadCheckpoint(store: KeyValueStore): Promise<Checkpoint | null> {
  const p = await store.get<Pointer | Checkpoint>(POINTER);
  if (p === undefined) return null;
  if (isLegacy(p)) return loadLegacy(p);
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

/** A checkpoint stored whole under the pointer's key by an older version: checked as far as it can be (the
 * restore then checks each matrix against the model). */
function loadLegacy(c: Checkpoint): Checkpoint {
  if (c.version !== 1)
    throw new Error(
      `the saved checkpoint has version ${c.version}, which this version of WebLoRA cannot read; discard it`,
    );
  const problem = legacyProblem(c);
  if (problem)
    throw new DamagedEntryError(
      `The saved checkpoint${Number.isInteger(c.optimizer?.step) ? ` at step ${c.optimizer.step}` : ''}, written by an earlier version of WebLoRA, is damaged (${problem}), so the run cannot resume from it. Discard it and start the run again; adapters in the gallery are not affected.`,
    );
  return c;
}

/** Forgets the current run's checkpoint (also a damaged one, and any leftovers of failed writes). */
export async function discardCheckpoint(store: KeyValueStore): Promise<void> {
  await store.del(POINTER);
  for (const k of await store.keys()) if (k.startsWith(DATA_PREFIX)) await store.del(k);
}
