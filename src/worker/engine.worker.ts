// The engine's Web Worker: answers the page's requests (src/worker/protocol.ts) with the Engine, and
// streams events. All GPU work happens here; the page never sees a GPU object.

/// <reference lib="webworker" />
import { adapterFilesFromUpload, readAdapterFiles, zipAdapter, type AdapterFiles } from '../adapters/peft';
import { Engine, modelSummary, supportedFamilies } from '../engine/engine';
import { DeviceLostError, GpuContext, lostWhy } from '../gpu/context';
import { bundledSource, cacheStorageBlobCache, filesSource, hubSource, type ModelSource } from '../loaders/sources';
import { LoraState } from '../models/lora';
import {
  discardCheckpoint,
  isCheckpointData,
  loadCheckpoint,
  saveCheckpoint,
  type Checkpoint,
} from '../storage/checkpoints';
import { Gallery } from '../storage/gallery';
import { faultyStore, idbStore, type WriteFault } from '../storage/kv';
import type { Trainer } from '../training/trainer';
import type { Event, FromWorker, GalleryEntry, ModelSourceSpec, Replies, Request, ToWorker } from './protocol';

const scope = self as unknown as DedicatedWorkerGlobalScope;
/** Faults injected through the test hook (init's testHooks); none otherwise. */
const faults = { enabled: false, checkpointWrites: 'ok' as WriteFault };
const store = faultyStore(idbStore(), (k) => (isCheckpointData(k) ? faults.checkpointWrites : 'ok'));
const gallery = new Gallery(store);
/** The Web Lock a tab holds while it trains: every tab of the studio shares the one saved run. */
const TRAINING_LOCK = 'weblora-training-run';
const OTHER_TAB =
  'Another tab of the studio is training right now. All tabs share the saved run, so only one may train at a time: pause or stop the run in that tab (or close it), then try again here.';

let engine: Engine | null = null;
let datasetSpec: Checkpoint['dataset'] | null = null;
const control = {
  paused: false,
  stopped: false,
  wake: null as (() => void) | null,
  waitIfPaused() {
    return this.paused ? new Promise<void>((r) => (this.wake = r)) : Promise.resolve();
  },
};
/** Adapters loaded for trying, by gallery id, so switching does not reload anything. */
const tryCache = new Map<string, LoraState>();
let runActive = false;

function emit(event: Event): void {
  scope.postMessage({ kind: 'event', event } satisfies FromWorker);
}

function requireEngine(): Engine {
  if (!engine) throw new Error('the engine is not initialised');
  return engine;
}

function sourceOf(spec: ModelSourceSpec): ModelSource {
  if (spec.kind === 'bundled') return bundledSource(new URL(spec.url, baseUrl()).href);
  if (spec.kind === 'hub')
    return hubSource(spec.repo, {
      baseUrl: spec.baseUrl,
      revision: spec.revision,
      cache: cacheStorageBlobCache(),
      gguf: spec.gguf,
      token: spec.token || undefined,
    });
  return filesSource(spec.files, spec.gguf);
}

/** The site's base URL (the worker script lives under <base>/assets/ in a build, <base>/src/worker/ in dev). */
function baseUrl(): string {
  const here = new URL(scope.location.href);
  const p = here.pathname;
  const cut = p.indexOf('/assets/') >= 0 ? p.indexOf('/assets/') : p.indexOf('/src/worker/');
  return new URL(cut >= 0 ? p.slice(0, cut + 1) : './', here.origin).href;
}

function progress(phase: 'download' | 'upload') {
  return (p: { file: string; loaded: number; total: number | null }) =>
    emit({ type: 'progress', phase, file: p.file, loaded: p.loaded, total: p.total });
}

/** Saves the run's checkpoint. A storage failure does not stop the run: the page is told, and the previous
 * checkpoint stays the latest (src/storage/checkpoints.ts writes, then switches). */
async function checkpoint(t: Trainer): Promise<void> {
  const e = requireEngine();
  if (!datasetSpec) return;
  const c = await e.snapshot(datasetSpec);
  try {
    await saveCheckpoint(store, c);
    emit({ type: 'checkpoint', step: t.step });
  } catch (err) {
    emit({ type: 'checkpoint', step: t.step, error: (err as Error).message });
  }
}

/** Runs `f` holding the training lock; refuses with OTHER_TAB when another tab holds it. Without Web Locks
 * (an old browser) it just runs `f`. */
async function withTrainingLock<T>(f: () => Promise<T>): Promise<T> {
  const locks = scope.navigator.locks as LockManager | undefined;
  if (!locks) return f();
  return locks.request(TRAINING_LOCK, { ifAvailable: true }, async (lock) => {
    if (!lock) throw new Error(OTHER_TAB);
    return f();
  });
}

async function builtinGallery(): Promise<(GalleryEntry & { path: string })[]> {
  try {
    const r = await fetch(new URL('gallery/index.json', baseUrl()).href);
    if (!r.ok) return [];
    const list = (await r.json()) as (GalleryEntry & { path: string })[];
    return list.map((g) => ({ ...g, builtin: true }));
  } catch {
    return [];
  }
}

async function builtinFiles(entry: { path: string }): Promise<AdapterFiles> {
  const base = new URL(entry.path.replace(/\/?$/, '/'), new URL('gallery/', baseUrl())).href;
  const get = async (f: string) => {
    const r = await fetch(base + f);
    if (!r.ok) throw new Error(`built-in adapter file ${f} could not be fetched (HTTP ${r.status})`);
    return new Uint8Array(await r.arrayBuffer());
  };
  const dec = new TextDecoder();
  return {
    'adapter_model.safetensors': await get('adapter_model.safetensors'),
    'adapter_config.json': dec.decode(await get('adapter_config.json')),
    'README.md': dec.decode(await get('README.md')),
  };
}

async function adapterFilesById(id: string): Promise<{ files: AdapterFiles; meta: GalleryEntry }> {
  const b = (await builtinGallery()).find((g) => g.id === id);
  if (b) return { files: await builtinFiles(b), meta: b };
  const s = await gallery.get(id);
  return { files: s.files, meta: s.meta };
}

function entryMeta(e: Engine, name: string) {
  const t = e.trainer;
  const s = t?.job.settings;
  const lc = e.lora!.config;
  return {
    name,
    baseModel: e.loaded!.id,
    dataset: e.data?.name ?? 'unknown',
    settings: { ...(s ?? {}), rank: lc.r, alpha: lc.alpha, targets: lc.targets },
    lossCurve: t?.history ?? [],
    valCurve: t?.valHistory ?? [],
  };
}

type Req<K extends Request['type']> = Extract<Request, { type: K }>;
type Handler<K extends Request['type']> = (req: Req<K>) => Promise<Replies[K]> | Replies[K];

/** A GPU context whose loss is reported to the page (the run stops; the next GPU request makes a new one). */
async function newContext(): Promise<GpuContext> {
  const ctx = await GpuContext.create(scope.navigator.gpu);
  ctx.onLost((info) => emit({ type: 'deviceLost', message: `The GPU device was lost (${lostWhy(info)}).` }));
  return ctx;
}

let recovering: Promise<void> | null = null;

/** The engine on a working device: after a loss, a new device with the model loaded again (once, shared by
 * the requests that wait for it). Adapters loaded for trying were on the lost device. */
async function engineOnDevice(): Promise<Engine> {
  const e = requireEngine();
  if (e.ctx.lost && !runActive) {
    recovering ??= (async () => {
      tryCache.clear();
      await e.recoverDevice();
    })().finally(() => (recovering = null));
  }
  await recovering;
  return e;
}

async function init(req: Req<'init'>): Promise<Replies['init']> {
  if (req.testHooks) faults.enabled = true;
  if (!engine) engine = new Engine(await newContext(), { newDevice: newContext });
  const c = engine.ctx;
  return {
    adapterName: c.adapterName,
    hasF16: c.hasF16,
    maxBindingBytes: c.limits.maxStorageBufferBindingSize,
    maxBufferBytes: c.limits.maxBufferSize,
  };
}

/** The test hook: injects a fault (init must have asked for test hooks). */
function injectFault(req: Req<'injectFault'>): Replies['injectFault'] {
  if (!faults.enabled) throw new Error('fault injection is only for tests (init with testHooks)');
  if (req.fault === 'device-lost') requireEngine().ctx.device.destroy(); // as a driver reset would
  faults.checkpointWrites = req.fault === 'checkpoint-quota' ? 'partial' : 'ok';
  return {};
}

async function inspectModel(req: Req<'inspectModel'>): Promise<Replies['inspectModel']> {
  const r = await requireEngine().inspect(sourceOf(req.source), progress('download'), req.weightDtype);
  return { model: r.model, memory: r.memory, options: r.options };
}

async function loadModel(req: Req<'loadModel'>): Promise<Replies['loadModel']> {
  const e = await engineOnDevice();
  for (const l of tryCache.values()) l.free();
  tryCache.clear();
  const m = await e.loadModel(sourceOf(req.source), req.weightDtype, progress('download'));
  const cfg = m.files.config;
  const { settings } = e.settingsFor({});
  return {
    model: modelSummary(m.id, cfg, m.model.weights.bytes),
    memory: e.memory(cfg, settings),
    notes: [...m.model.weights.notes],
  };
}

async function loadDataset(req: Req<'loadDataset'>): Promise<Replies['loadDataset']> {
  const e = requireEngine();
  const { settings } = e.settingsFor({});
  const d = await e.loadDataset(
    req.name,
    req.text,
    {
      format: req.format,
      column: req.column,
      seqLen: settings.seqLen,
      valFraction: settings.valFraction,
      seed: settings.seed,
    },
    (done, total) => emit({ type: 'progress', phase: 'tokenize', loaded: done, total }),
  );
  datasetSpec = { name: req.name, text: req.text, format: req.format, column: req.column };
  return d.summary();
}

function train(req: Req<'train'>): Promise<Replies['train']> {
  if (runActive) throw new Error('a run is already in progress; stop it first');
  return withTrainingLock(() => runTraining(req));
}

async function runTraining(req: Req<'train'>): Promise<Replies['train']> {
  const e = await engineOnDevice();
  control.paused = false;
  control.stopped = false;
  let trainer: Trainer;
  if (req.resume) {
    const c = await loadCheckpoint(store);
    if (!c) throw new Error('there is no saved run to resume');
    trainer = await e.restore(c);
    datasetSpec = c.dataset;
  } else {
    trainer = e.createTrainer(req.settings);
  }
  runActive = true;
  emit({ type: 'state', state: 'training' });
  try {
    const how = await e.run(control, {
      onEvent: emit,
      onCheckpoint: checkpoint,
      onState: (state) => emit({ type: 'state', state }),
    });
    if (how === 'done') await discardCheckpoint(store);
    else await checkpoint(trainer);
    return { finished: how === 'done', step: trainer.step, reason: how };
  } catch (err) {
    if (err instanceof DeviceLostError) e.disposeRun(); // its state was on the lost device
    throw err;
  } finally {
    runActive = false;
    emit({ type: 'state', state: 'idle' });
  }
}

/** Pause: the step in flight finishes first; the run reports 'paused' when it has really stopped. */
function pause(): Replies['pause'] {
  control.paused = true;
  return { step: engine?.trainer?.step ?? 0 };
}

function resume(): Replies['resume'] {
  control.paused = false;
  control.wake?.();
  control.wake = null;
  return { step: engine?.trainer?.step ?? 0 };
}

function stop(): Replies['stop'] {
  control.stopped = true;
  control.paused = false;
  control.wake?.();
  emit({ type: 'state', state: 'stopping' });
  return { step: engine?.trainer?.step ?? 0 };
}

async function checkpointInfo(): Promise<Replies['checkpointInfo']> {
  const c = await loadCheckpoint(store);
  if (!c) return null;
  return {
    exists: true,
    step: c.optimizer.step,
    totalSteps: c.totalSteps,
    modelId: c.modelId,
    dataset: c.dataset.name,
    savedAt: c.savedAt,
  };
}

async function exportAdapter(req: Req<'exportAdapter'>): Promise<Replies['exportAdapter']> {
  const files = await (await engineOnDevice()).exportAdapter(req.name);
  return { zip: zipAdapter(files), fileName: `${slug(req.name)}.zip` };
}

async function exportGgufAdapter(req: Req<'exportGgufAdapter'>): Promise<Replies['exportGgufAdapter']> {
  const bytes = await requireEngine().exportGgufAdapter(req.name);
  return { bytes, fileName: `${slug(req.name)}.gguf` };
}

/** The .gguf files of a Hub repository, for the page to offer as choices. */
async function listGgufFiles(req: Req<'listGgufFiles'>): Promise<Replies['listGgufFiles']> {
  const names = await hubSource(req.repo, {
    baseUrl: req.baseUrl,
    revision: req.revision,
    token: req.token || undefined,
  }).list!();
  return { files: names.filter((f) => f.toLowerCase().endsWith('.gguf')).sort() };
}

async function saveToGallery(req: Req<'saveToGallery'>): Promise<Replies['saveToGallery']> {
  const e = await engineOnDevice();
  const files = await e.exportAdapter(req.name);
  return gallery.save(entryMeta(e, req.name), files);
}

async function deleteAdapter(req: Req<'deleteAdapter'>): Promise<Replies['deleteAdapter']> {
  await gallery.delete(req.id);
  tryCache.get(req.id)?.free();
  tryCache.delete(req.id);
  return {};
}

async function exportGalleryAdapter(req: Req<'exportGalleryAdapter'>): Promise<Replies['exportGalleryAdapter']> {
  const { files, meta } = await adapterFilesById(req.id);
  return { zip: zipAdapter(files), fileName: `${slug(meta.name)}.zip` };
}

/** Reads an adapter from the Hub or from uploaded files, checks it against the loaded model, and keeps it. */
async function importAdapter(req: Req<'importAdapter'>): Promise<Replies['importAdapter']> {
  const e = await engineOnDevice();
  const files = req.hub
    ? await readAdapterFiles(
        hubSource(req.hub.repo, {
          baseUrl: req.hub.baseUrl,
          revision: req.hub.revision,
          cache: cacheStorageBlobCache(),
          token: req.hub.token || undefined,
        }),
      )
    : await adapterFilesFromUpload(req.files ?? []);
  const { lora, warnings, config } = e.adapterFromFiles(files); // validates against the loaded model
  lora.free();
  const complete: AdapterFiles = {
    'adapter_model.safetensors': files['adapter_model.safetensors']!,
    'adapter_config.json': files['adapter_config.json']!,
    'README.md': files['README.md'] ?? '',
  };
  const name = req.hub?.repo ?? (req.files?.[0]?.name.replace(/\.zip$/i, '') || 'imported adapter');
  const entry = await gallery.save(
    {
      name,
      baseModel: e.loaded!.id,
      dataset: 'imported',
      settings: { rank: config.r, alpha: config.alpha, targets: config.targets },
      lossCurve: [],
      valCurve: [],
    },
    complete,
  );
  return { ...entry, warnings };
}

/** The adapter a generate request names: none, the one being trained ('current'), or a gallery id. */
async function adapterFor(e: Engine, adapterId: string | null): Promise<LoraState | null> {
  if (adapterId === 'current') {
    if (!e.lora) throw new Error('there is no trained adapter in this session yet');
    return e.lora;
  }
  if (!adapterId) return null;
  const cached = tryCache.get(adapterId);
  if (cached) return cached;
  const { files, meta } = await adapterFilesById(adapterId);
  if (meta.baseModel && meta.baseModel !== e.requireModel().id) {
    throw new Error(
      `adapter '${meta.name}' was made for base model '${meta.baseModel}', but '${e.requireModel().id}' is loaded; load that model to try it`,
    );
  }
  const lora = e.adapterFromFiles(files).lora;
  tryCache.set(adapterId, lora);
  return lora;
}

async function generate(req: Req<'generate'>): Promise<Replies['generate']> {
  const e = await engineOnDevice();
  const lora = await adapterFor(e, req.adapterId);
  const prev = lora?.strength ?? 1;
  if (lora) lora.strength = req.strength;
  try {
    return await e.generate(req.prompt, lora, {
      seed: req.seed,
      maxTokens: req.maxTokens,
      temperature: req.temperature,
      merged: req.merged,
    });
  } finally {
    if (lora) lora.strength = prev;
  }
}

/** One handler per request type; each reply's type is the protocol's for that request. */
const handlers: { [K in Request['type']]: Handler<K> } = {
  init,
  families: () => supportedFamilies(),
  injectFault,
  inspectModel,
  loadModel,
  loadDataset,
  estimate: (req) => requireEngine().estimate(req.settings),
  train,
  pause,
  resume,
  stop,
  checkpointInfo,
  discardCheckpoint: () =>
    withTrainingLock(async () => {
      await discardCheckpoint(store);
      return {};
    }),
  exportAdapter,
  exportGgufAdapter,
  listGgufFiles,
  saveToGallery,
  listGallery: async () => {
    const mine = await gallery.list();
    return { entries: [...(await builtinGallery()), ...mine.entries], damaged: mine.damaged };
  },
  renameAdapter: (req) => gallery.rename(req.id, req.name),
  deleteAdapter,
  exportGalleryAdapter,
  importAdapter,
  generate,
};

function handle<K extends Request['type']>(req: Req<K>): Promise<Replies[K]> | Replies[K] {
  return (handlers[req.type] as Handler<K>)(req);
}

function slug(s: string): string {
  return (
    s
      .trim()
      .replace(/[^\w.-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 80) || 'adapter'
  );
}

scope.onmessage = async (m: MessageEvent<ToWorker>) => {
  const { id, req } = m.data;
  try {
    const value = await handle(req);
    scope.postMessage({ kind: 'reply', id, ok: true, value } satisfies FromWorker);
  } catch (e) {
    scope.postMessage({ kind: 'reply', id, ok: false, error: (e as Error).message || String(e) } satisfies FromWorker);
  }
};
