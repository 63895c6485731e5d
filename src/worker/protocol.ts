// The one interface between the studio page and the engine, which runs in a dedicated Web Worker.
// The page sends requests (each with an id) and receives exactly one reply per request (ok or error),
// plus events at any time (progress, training steps, samples). No GPU object ever crosses it.

import type { DatasetSummary } from '../data/dataset';
import type { EstimateSummary, FamilyInfo, MemorySummary, ModelSummary, WeightsOption } from '../engine/engine';
import type { WeightsChoice } from '../models/weights';
import type { DamagedGalleryEntry, GalleryEntry } from '../storage/gallery';
import type { SettingsError, TrainSettings } from '../training/settings';
import type { TrainEvent } from '../training/trainer';

// The summaries live with the code that makes them; the page reads them (and the default settings) from here.
export type {
  DamagedGalleryEntry,
  DatasetSummary,
  EstimateSummary,
  FamilyInfo,
  GalleryEntry,
  MemorySummary,
  ModelSummary,
  SettingsError,
  TrainEvent,
  TrainSettings,
  WeightsChoice,
  WeightsOption,
};
export { DEFAULT_SETTINGS } from '../training/settings';
export { WEIGHTS_CHOICES } from '../models/weights';

/**
 * A Hub repository. `token`: the user's Hugging Face access token for a gated or private repo. It lives
 * only in the page's form field and in these messages: the worker sends it as an Authorization header to
 * the Hub base URL and keeps it nowhere (not in the model id, a checkpoint, the cache keys, a URL or a log).
 */
export interface HubSpec {
  repo: string;
  baseUrl?: string;
  revision?: string;
  token?: string;
}

export type ModelSourceSpec =
  | { kind: 'bundled'; url: string } // folder URL, e.g. 'models/weblora-llama-1m/'
  | ({ kind: 'hub'; gguf?: string } & HubSpec) // gguf: the file to load
  | { kind: 'files'; files: File[]; gguf?: string };

/** Faults the studio's test hook can inject (only when init asked for test hooks): lose the GPU device as a
 * driver reset would, make checkpoint writes fail half-way like a full store, or stop injecting. */
export type Fault = 'device-lost' | 'checkpoint-quota' | 'none';

export type Request =
  | { type: 'init'; testHooks?: boolean }
  | { type: 'injectFault'; fault: Fault }
  | { type: 'families' }
  | { type: 'inspectModel'; source: ModelSourceSpec; weightDtype?: WeightsChoice }
  | { type: 'loadModel'; source: ModelSourceSpec; weightDtype: WeightsChoice }
  | { type: 'loadDataset'; name: string; text: string; format?: string; column?: string }
  | { type: 'estimate'; settings: Partial<TrainSettings> }
  | { type: 'train'; settings: Partial<TrainSettings>; resume?: boolean }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'stop' }
  | { type: 'checkpointInfo' }
  | { type: 'discardCheckpoint' }
  | { type: 'exportAdapter'; name: string }
  | { type: 'exportGgufAdapter'; name: string }
  | ({ type: 'listGgufFiles' } & HubSpec)
  | { type: 'saveToGallery'; name: string }
  | { type: 'listGallery' }
  | { type: 'renameAdapter'; id: string; name: string }
  | { type: 'deleteAdapter'; id: string }
  | { type: 'exportGalleryAdapter'; id: string }
  | { type: 'importAdapter'; files?: File[]; hub?: HubSpec }
  | {
      type: 'generate';
      prompt: string;
      adapterId: string | null;
      strength: number;
      seed: number;
      maxTokens: number;
      temperature: number;
      merged?: boolean;
    };

export interface Replies {
  init: { adapterName: string; hasF16: boolean; maxBindingBytes: number; maxBufferBytes: number };
  families: FamilyInfo[];
  injectFault: Record<string, never>;
  /** memory: at the asked weights choice; options: every choice's figures, before anything is loaded. */
  inspectModel: { model: ModelSummary; memory: MemorySummary; options: WeightsOption[] };
  /** notes: what the load did differently from the choice (weights left float, blocks requantized). */
  loadModel: { model: ModelSummary; memory: MemorySummary; notes: string[] };
  loadDataset: DatasetSummary;
  estimate: EstimateSummary;
  train: { finished: boolean; step: number; reason: 'done' | 'stopped' | 'error' };
  pause: { step: number };
  resume: { step: number };
  stop: { step: number };
  checkpointInfo: {
    exists: boolean;
    step: number;
    totalSteps: number;
    modelId: string;
    dataset: string;
    savedAt: string;
  } | null;
  discardCheckpoint: Record<string, never>;
  exportAdapter: { zip: Uint8Array; fileName: string };
  exportGgufAdapter: { bytes: Uint8Array; fileName: string };
  listGgufFiles: { files: string[] };
  saveToGallery: GalleryEntry;
  /** Damaged entries come apart, each with why; they never hide the others. */
  listGallery: { entries: GalleryEntry[]; damaged: DamagedGalleryEntry[] };
  renameAdapter: GalleryEntry;
  deleteAdapter: Record<string, never>;
  exportGalleryAdapter: { zip: Uint8Array; fileName: string };
  importAdapter: GalleryEntry & { warnings: string[] };
  generate: { text: string; tokens: number };
}

export type Event =
  | { type: 'progress'; phase: 'download' | 'upload' | 'tokenize'; file?: string; loaded: number; total: number | null }
  | TrainEvent // 'step', 'eval' and 'sample', as the trainer makes them
  | { type: 'checkpoint'; step: number; error?: string } // error: not saved (the previous checkpoint is kept)
  | { type: 'deviceLost'; message: string } // the run stopped; the last checkpoint can be resumed on a new device
  | { type: 'state'; state: 'idle' | 'training' | 'paused' | 'stopping' }
  | { type: 'fatal'; message: string }; // the worker itself failed: the page shows it; saved work is kept

export type ToWorker = { id: number; req: Request };
export type FromWorker =
  | { kind: 'reply'; id: number; ok: true; value: unknown }
  | { kind: 'reply'; id: number; ok: false; error: string }
  | { kind: 'event'; event: Event };
