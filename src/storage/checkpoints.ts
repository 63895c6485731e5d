// The current training run's checkpoint: LoRA weights, AdamW moments and step, data position, RNG
// seed, settings and curves. One run at a time; saved every N steps and on pause, so a reloaded page
// resumes exactly where it was.

import type { TrainSettings } from '../training/settings';
import type { KeyValueStore } from './kv';

const KEY = 'checkpoint:current';

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

export async function saveCheckpoint(store: KeyValueStore, c: Checkpoint): Promise<void> {
  await store.set(KEY, c, 'the training checkpoint');
}

export async function loadCheckpoint(store: KeyValueStore): Promise<Checkpoint | null> {
  const c = await store.get<Checkpoint>(KEY);
  if (!c) return null;
  if (c.version !== 1)
    throw new Error(
      `the saved checkpoint has version ${c.version}, which this version of WebLoRA cannot read; discard it`,
    );
  return c;
}

export async function discardCheckpoint(store: KeyValueStore): Promise<void> {
  await store.del(KEY);
}
