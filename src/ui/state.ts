// What the page knows about the engine, shared by the panels. Panels read it and subscribe to changes;
// only the panel that owns a fact writes it (model panel: model, dataset panel: dataset, ...).

import type { EngineClient } from '../worker/client';
import type { DatasetSummary, GalleryEntry, ModelSummary, Replies, WeightsChoice } from '../worker/protocol';

export type TrainState = 'idle' | 'training' | 'paused' | 'stopping';
export type Topic = 'engine' | 'model' | 'dataset' | 'train' | 'gallery' | 'run';

export class Studio {
  /** The init reply; null until init succeeds (or forever, without WebGPU). */
  engine: Replies['init'] | null = null;
  model: ModelSummary | null = null;
  /** True while a model is being loaded (a second load waits). */
  modelLoading = false;
  /** How the next model load stores the frozen base (the model panel's "Weights" select). */
  weightDtype: WeightsChoice = 'f32';
  dataset: DatasetSummary | null = null;
  trainState: TrainState = 'idle';
  /** Steps done by the latest run in this page; > 0 means there is an adapter to save or export. */
  runSteps = 0;
  gallery: GalleryEntry[] = [];
  private subs = new Map<Topic, Set<() => void>>();

  constructor(readonly client: EngineClient) {}

  on(topic: Topic, f: () => void): void {
    if (!this.subs.has(topic)) this.subs.set(topic, new Set());
    this.subs.get(topic)!.add(f);
  }

  emit(topic: Topic): void {
    for (const f of this.subs.get(topic) ?? []) f();
  }
}
