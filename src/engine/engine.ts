// The engine: everything the studio (through its Web Worker) and the CLI do, over one GPU context.
// Model in (files -> tensors on the GPU), data in (text -> token batches), a training run (blocks ->
// loss -> gradients -> optimizer), adapters out (LoRA weights -> PEFT files), and generation.

import { exportGgufAdapter, ggufArchOfConfig } from '../adapters/gguf-lora';
import { exportAdapter, importAdapter, type AdapterFiles, type CardInfo } from '../adapters/peft';
import { mergeLora, unmergeLora } from '../adapters/merge';
import type { GpuContext } from '../gpu/context';
import { estimateMemory, checkFits } from '../models/memory';
import { WEIGHTS_CHOICES, type WeightsChoice } from '../models/weights';

// The weights choices, for the CLI (which reaches the models only through the engine).
export { WEIGHTS_CHOICES, type WeightsChoice };
import { loadModelFiles, type ModelFiles } from '../loaders/model-files';
import type { ModelSource, ProgressFn } from '../loaders/sources';
import { DEFAULT_TARGETS, LORA_TARGETS, paramCount, type ModelConfig } from '../models/config';
import { FAMILIES } from '../models/families';
import { generate } from '../models/generate';
import { loadModel } from '../models';
import { loraParamCount, LoraState, type LoraConfig } from '../models/lora';
import { selectModules } from '../models/modules';
import type { CausalLM } from '../models/model';
import { stoppedAt, Trainer, type TrainEvent } from '../training/trainer';
import {
  DEFAULT_SETTINGS,
  loraConfigOf,
  resolveSettings,
  validateSettings,
  type SettingsError,
  type TrainSettings,
} from '../training/settings';
import { prepareDataset, type PreparedDataset } from '../data/dataset';
import type { Checkpoint } from '../storage/checkpoints';
import { idbStore, type KeyValueStore } from '../storage/kv';
import { autotuneMatmul, describeTune, type TuneReport } from '../kernels/autotune';
import { modelMatmulShapes } from '../models/matmul-shapes';
import { setMatmulPolicy, type MatmulPolicy } from '../kernels/matmul';
import { headChunkCols } from '../models/head';

export interface LoadedModel {
  id: string;
  files: ModelFiles;
  model: CausalLM;
  /** The matmul variant chosen per shape class at load (src/kernels/autotune.ts). */
  matmul: TuneReport;
  /** The weights choice they were loaded with (kept to load them again on a new device). */
  dtype: WeightsChoice;
}

export interface EngineOptions {
  /** Where the autotuner caches its picks: IndexedDB in the browser by default. Node callers pass
   * src/engine/autotune-store.node.ts's file store (the CLI, the bench); without one nothing is tuned and every matmul
   * runs on the baseline (or the forced variant), as in the tests. */
  tuneStore?: KeyValueStore;
  /** Time the autotuner may spend per load (ms). */
  tuneBudgetMs?: number;
  /** The setting that forces a matmul variant ('baseline', a variant, or 'auto'); unset: WEBLORA_MATMUL, else auto. */
  matmul?: MatmulPolicy;
  /** Where the autotuner's pick is logged (default console.info). */
  log?: (line: string) => void;
  /**
   * Bytes of GPU memory this device gives a run, when the caller knows (WebGPU does not say): memory
   * estimates above it are errors, and a model whose estimate is above it is refused before its weights
   * are fetched. Without it only the adapter's buffer limits can refuse a model.
   */
  memoryBudget?: number;
  /** Makes a new GPU context after the device was lost (recoverDevice); the browser's worker and Node pass one. */
  newDevice?: () => Promise<GpuContext>;
}

/** A model refused from its config.json alone: it cannot fit this device, so no weight was fetched. */
export class ModelTooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelTooLargeError';
  }
}

export interface RunControl {
  paused: boolean;
  stopped: boolean;
  /** Resolves when the run may continue (immediately if not paused). */
  waitIfPaused(): Promise<void>;
}

export interface RunHooks {
  onEvent(e: TrainEvent): void;
  /** The loop has really stopped between steps (paused) or started again. */
  onState?(state: 'paused' | 'training'): void;
  /** Called every checkpointEvery steps, on pause and at the end, with the trainer to save. */
  onCheckpoint?(t: Trainer): Promise<void>;
}

export interface ModelSummary {
  id: string; // bundled name, hub repo id, or picked folder name
  architecture: string;
  family: string;
  params: number;
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  maxPositions: number;
  weightBytes: number;
  /** The modules LoRA may target in this family, and PEFT's default choice among them. */
  loraTargets: string[];
  defaultTargets: string[];
  /** Whether its adapters can be exported for llama.cpp as GGUF (src/adapters/gguf-lora.ts). */
  ggufAdapter: boolean;
}

export interface MemorySummary {
  /** The weights choice the figures are for. */
  weights: WeightsChoice;
  totalBytes: number;
  weightBytes: number;
  loraBytes: number;
  activationBytes: number;
  messages: { level: 'info' | 'warn' | 'error'; text: string }[];
}

/** One weights choice for a model at default settings, as the studio and the CLI list them before loading. */
export interface WeightsOption {
  weights: WeightsChoice;
  weightBytes: number;
  totalBytes: number;
  /** Why it cannot be used here (no shader-f16, or an error from the memory check), or null. */
  refused: string | null;
}

/** What the settings would train and hold, or why they are invalid. */
export interface EstimateSummary {
  trainableParams: number;
  /** trainableParams as a share of the model's parameters. */
  share: number;
  /** null when the settings are invalid */
  memory: MemorySummary | null;
  errors: SettingsError[];
}

/** A model family WebLoRA loads, as the studio lists it where a model is picked. */
export interface FamilyInfo {
  family: string;
  name: string;
  /** config.json "architectures" values it loads. */
  architectures: string[];
  /** Public Hub repos of this family. */
  examples: string[];
}

/** Every family in the registry (src/models/families/index.ts), in its order. */
export function supportedFamilies(): FamilyInfo[] {
  return Object.values(FAMILIES).map((s) => ({
    family: s.family,
    name: s.name,
    architectures: [...s.architectures],
    examples: [...s.examples],
  }));
}

export function modelSummary(id: string, cfg: ModelConfig, weightBytes: number): ModelSummary {
  return {
    id,
    architecture: cfg.architecture,
    family: cfg.family,
    params: paramCount(cfg),
    layers: cfg.numLayers,
    hidden: cfg.hiddenSize,
    heads: cfg.numHeads,
    kvHeads: cfg.numKvHeads,
    vocab: cfg.vocabSize,
    maxPositions: cfg.maxPositions,
    weightBytes,
    loraTargets: [...LORA_TARGETS[cfg.family]],
    defaultTargets: [...DEFAULT_TARGETS[cfg.family]],
    ggufAdapter: ggufArchOfConfig(cfg) !== null,
  };
}

/** The name llama.cpp's adapter GGUF takes next to the PEFT files. */
export const GGUF_ADAPTER_FILE = 'adapter.gguf';

export class Engine {
  loaded: LoadedModel | null = null;
  /** The files of the last inspected model, so loading it next does not read (or download) them again. */
  private inspected: { id: string; files: ModelFiles } | null = null;
  data: PreparedDataset | null = null;
  trainer: Trainer | null = null;
  /** The adapter being trained or tried. */
  lora: LoraState | null = null;

  private readonly tuneStore: KeyValueStore | undefined;
  private context: GpuContext;

  constructor(
    ctx: GpuContext,
    private readonly opts: EngineOptions = {},
  ) {
    this.context = ctx;
    this.tuneStore = opts.tuneStore ?? (typeof indexedDB !== 'undefined' ? idbStore('weblora-autotune') : undefined);
    if (opts.matmul) setMatmulPolicy(ctx, opts.matmul);
  }

  /** The GPU context everything runs on; a new one after recoverDevice(). */
  get ctx(): GpuContext {
    return this.context;
  }

  /**
   * After the GPU device was lost: makes a new device (EngineOptions.newDevice), loads the model's weights onto
   * it again from the files kept in memory, and picks its matmul variants as at load. The run and the adapter
   * were on the lost device and are dropped: restore() the last checkpoint to continue the run exactly.
   */
  async recoverDevice(): Promise<void> {
    if (!this.opts.newDevice) throw new Error('this engine was made without a way to make a new GPU device');
    const old = this.loaded;
    this.disposeRun(); // freeing on a lost device only drops the handles
    this.lora?.free();
    this.lora = null;
    old?.model.weights.free();
    this.loaded = null;
    this.context = await this.opts.newDevice();
    if (this.opts.matmul) setMatmulPolicy(this.context, this.opts.matmul);
    if (!old) return;
    const cfg = old.files.config;
    const model = await loadModel(this.context, cfg, old.files.weights, { dtype: old.dtype });
    const matmul = await this.tuneMatmul(cfg, resolveSettings({ weightDtype: old.dtype }, cfg));
    this.loaded = { ...old, model, matmul };
  }

  /**
   * Reads a model's config and files (no GPU work) and estimates its memory at default settings with
   * `weightDtype` weights. A model that cannot fit (refuseTooLarge) is refused from config.json and the
   * file list, before its tokenizer or any weight is fetched.
   */
  async inspect(
    source: ModelSource,
    onProgress?: ProgressFn,
    weightDtype: WeightsChoice = DEFAULT_SETTINGS.weightDtype,
  ): Promise<{ files: ModelFiles; model: ModelSummary; memory: MemorySummary; options: WeightsOption[] }> {
    const refuse = (cfg: ModelConfig, names: string[] | null) => this.refuseTooLarge(source, cfg, weightDtype, names);
    const reuse = this.inspected && this.inspected.id === source.id && !source.id.startsWith('files:');
    if (reuse) refuse(this.inspected!.files.config, null);
    const files = reuse ? this.inspected!.files : await loadModelFiles(source, onProgress, { beforeWeights: refuse });
    this.inspected = { id: source.id, files };
    const wbytes = [...files.weights.values()].reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1) * 4, 0);
    return {
      files,
      model: modelSummary(modelIdOf(source, files), files.config, wbytes),
      memory: this.memory(files.config, resolveSettings({ weightDtype }, files.config)),
      options: this.weightsOptions(files.config),
    };
  }

  /** Every weights choice for `cfg` at default settings: its weight and total bytes, and whether it fits here. */
  weightsOptions(cfg: ModelConfig): WeightsOption[] {
    return WEIGHTS_CHOICES.map((weights) => {
      const m = this.memory(cfg, resolveSettings({ weightDtype: weights }, cfg));
      const errors = m.messages.filter((x) => x.level === 'error').map((x) => x.text);
      const refused =
        weights === 'f16' && !this.ctx.hasF16 ? 'this GPU has no shader-f16' : errors.length ? errors.join(' ') : null;
      return { weights, weightBytes: m.weightBytes, totalBytes: m.totalBytes, refused };
    });
  }

  memory(cfg: ModelConfig, s: TrainSettings): MemorySummary {
    const est = estimateMemory(cfg, {
      weightDtype: s.weightDtype,
      hasF16: this.ctx.hasF16,
      batch: s.batchSize,
      seqLen: s.seqLen,
      rank: s.rank,
      targets: s.targets,
      checkpointing: s.checkpointing,
      maxBindingBytes: this.ctx.limits.maxStorageBufferBindingSize,
    });
    const msgs = checkFits(
      est,
      {
        maxBufferSize: this.ctx.limits.maxBufferSize,
        maxStorageBufferBindingSize: this.ctx.limits.maxStorageBufferBindingSize,
      },
      this.opts.memoryBudget,
      this.ctx.hasF16,
    );
    return {
      weights: s.weightDtype,
      totalBytes: est.totalBytes,
      weightBytes: est.weightBytes,
      loraBytes: est.loraBytes,
      activationBytes: est.activationBytes,
      messages: msgs.map((m) => ({ level: m.level === 'warning' ? 'warn' : m.level, text: m.message })),
    };
  }

  /**
   * Throws ModelTooLargeError when a run of `cfg` at default settings with `weightDtype` weights cannot
   * fit: a tensor beyond the adapter's maxBufferSize / maxStorageBufferBindingSize, or an estimate above
   * the memory budget. The message gives the figures (src/models/memory.ts checkFits).
   */
  refuseTooLarge(source: ModelSource, cfg: ModelConfig, weightDtype: WeightsChoice, files: string[] | null): void {
    const errors = this.memory(cfg, resolveSettings({ weightDtype }, cfg)).messages.filter((m) => m.level === 'error');
    if (!errors.length) return;
    const weights = (files ?? []).filter((f) => f.endsWith('.safetensors'));
    const skipped = weights.length ? ` (${weights.join(', ')})` : '';
    throw new ModelTooLargeError(
      `${source.id} does not fit this GPU (${this.ctx.adapterName}) with ${weightDtype} weights at default settings, so its weights${skipped} were not fetched: ${errors.map((e) => e.text).join(' ')}`,
    );
  }

  /** Loads a model onto the GPU, replacing the current one. On failure nothing new stays on the GPU. */
  async loadModel(source: ModelSource, weightDtype: WeightsChoice, onProgress?: ProgressFn): Promise<LoadedModel> {
    const { files } = await this.inspect(source, onProgress, weightDtype);
    this.unloadModel();
    const file =
      weightDtype === 'int8' || weightDtype === 'int4' ? `weights → GPU, quantized to ${weightDtype}` : 'weights → GPU';
    const model = await loadModel(this.ctx, files.config, files.weights, {
      dtype: weightDtype,
      onProgress: (done, total) => onProgress?.({ file, loaded: done, total }),
    });
    for (const note of model.weights.notes) (this.opts.log ?? console.info)(note);
    const matmul = await this.tuneMatmul(files.config, resolveSettings({ weightDtype }, files.config));
    this.loaded = { id: modelIdOf(source, files), files, model, matmul, dtype: weightDtype };
    this.inspected = null;
    return this.loaded;
  }

  /** Times the matmul variants for the products a training step at `s` runs (bounded; cached per device) and
   * logs the pick per shape class. loadModel calls it with the default settings. */
  async tuneMatmul(cfg: ModelConfig, s: TrainSettings): Promise<TuneReport> {
    const shapes = modelMatmulShapes(cfg, {
      tokens: s.batchSize * s.seqLen,
      weights: s.weightDtype,
      hasF16: this.ctx.hasF16,
      headCols: headChunkCols(s.batchSize * s.seqLen, this.ctx.limits.maxStorageBufferBindingSize),
    });
    const r = await autotuneMatmul(this.ctx, shapes, { store: this.tuneStore, budgetMs: this.opts.tuneBudgetMs });
    (this.opts.log ?? console.info)(
      `matmul variants on ${r.adapter} (policy ${r.policy}, ${r.spentMs.toFixed(0)} ms):\n  ${describeTune(r).join('\n  ')}`,
    );
    return r;
  }

  unloadModel(): void {
    this.disposeRun();
    this.lora?.free();
    this.lora = null;
    this.loaded?.model.weights.free();
    this.loaded = null;
    this.data = null;
  }

  requireModel(): LoadedModel {
    if (!this.loaded) throw new Error('no model is loaded; load one first');
    return this.loaded;
  }

  async loadDataset(
    name: string,
    text: string,
    opts: { format?: string; column?: string; seqLen: number; valFraction: number; seed: number },
    onProgress?: (done: number, total: number) => void,
  ): Promise<PreparedDataset> {
    const { files } = this.requireModel();
    this.data = await prepareDataset({ name, text, format: opts.format, column: opts.column }, files.tokenizer, {
      seqLen: opts.seqLen,
      valFraction: opts.valFraction,
      seed: opts.seed,
      onProgress,
    });
    return this.data;
  }

  /** Settings for the loaded model; the weights choice is always the one it was loaded with. */
  settingsFor(partial: Partial<TrainSettings>): { settings: TrainSettings; errors: SettingsError[] } {
    const { files, dtype } = this.requireModel();
    const settings = resolveSettings({ ...partial, weightDtype: dtype }, files.config);
    return { settings, errors: validateSettings(settings, files.config, { hasF16: this.ctx.hasF16 }) };
  }

  /** The trainable parameters and memory of a run with these settings, or the settings' errors. */
  estimate(partial: Partial<TrainSettings>): EstimateSummary {
    const { settings, errors } = this.settingsFor(partial);
    if (errors.length) return { trainableParams: 0, share: 0, memory: null, errors };
    const cfg = this.requireModel().files.config;
    const trainableParams = loraParamCount(selectModules(cfg, settings.targets), settings.rank);
    return { trainableParams, share: trainableParams / paramCount(cfg), memory: this.memory(cfg, settings), errors };
  }

  /**
   * A new trainer over the loaded model and dataset, with a fresh adapter, or continuing a saved run
   * (`from`: its adapter, and its position in the data).
   */
  createTrainer(partial: Partial<TrainSettings>, from?: { lora: LoraState; dataPosition: unknown }): Trainer {
    const { model, files } = this.requireModel();
    if (!this.data) throw new Error('no dataset is loaded; choose one first');
    const { settings, errors } = this.settingsFor(partial);
    if (errors.length) throw new Error(`invalid settings: ${errors.map((e) => e.message).join('; ')}`);
    if (settings.seqLen !== this.data.seqLen) {
      this.data = this.data.repack(settings.seqLen);
    }
    this.disposeRun();
    this.lora?.free();
    this.lora = from?.lora ?? LoraState.init(this.ctx, files.config, loraConfigOf(settings), settings.seed);
    const perEpoch = Math.max(1, Math.floor(this.data.trainSequences / (settings.batchSize * settings.gradAccum)));
    const totalSteps = settings.epochs > 0 ? settings.epochs * perEpoch : settings.steps;
    const tok = files.tokenizer;
    this.trainer = new Trainer({
      ctx: this.ctx,
      model,
      lora: this.lora,
      settings,
      train: this.data.cursor(settings.seed, from?.dataPosition),
      val: this.data.valBatches(settings.batchSize),
      totalSteps,
      encode: (t) => tok.encode(t, true),
      decode: (ids) => tok.decode(ids, true),
    });
    return this.trainer;
  }

  /**
   * Runs the trainer until done, stopped, or an error; pauses between steps when asked. Step events come
   * one step late (step k's while step k+1 runs on the GPU); before an evaluation, a sample, a checkpoint,
   * a pause and at the end the pending step is drained, so events keep their order. A lost GPU device ends it
   * with a RunDeviceLostError naming the step: recoverDevice(), then restore() the last checkpoint.
   */
  async run(control: RunControl, hooks: RunHooks): Promise<'done' | 'stopped'> {
    const t = this.trainer;
    if (!t) throw new Error('no training run; start one first');
    try {
      await this.loop(t, control, hooks);
    } catch (e) {
      throw stoppedAt(t.step, e); // a device lost in an evaluation, a sample or a checkpoint says where, too
    }
    return control.stopped && !t.done ? 'stopped' : 'done';
  }

  private async loop(t: Trainer, control: RunControl, hooks: RunHooks): Promise<void> {
    const s = t.job.settings;
    const drain = async () => {
      const ev = await t.drain();
      if (ev) hooks.onEvent(ev);
    };
    while (!t.done) {
      if (control.paused) {
        await drain();
        await hooks.onCheckpoint?.(t);
        hooks.onState?.('paused');
        await control.waitIfPaused();
        if (!control.stopped) hooks.onState?.('training');
      }
      if (control.stopped) break;
      const ev = await t.advance();
      if (ev) hooks.onEvent(ev);
      const step = t.step;
      const evalNow = s.evalEvery > 0 && (step % s.evalEvery === 0 || t.done) && t.job.val.length > 0;
      const sampleNow = s.sampleEvery > 0 && (step % s.sampleEvery === 0 || t.done);
      const checkpointNow = s.checkpointEvery > 0 && step % s.checkpointEvery === 0 && !t.done;
      if (evalNow || sampleNow || checkpointNow) await drain();
      if (evalNow) hooks.onEvent(await t.validate());
      if (sampleNow) hooks.onEvent(await t.sample());
      if (checkpointNow) await hooks.onCheckpoint?.(t);
    }
    await drain();
  }

  /** The PEFT files of the current adapter. */
  async exportAdapter(name: string): Promise<AdapterFiles> {
    const { id, files } = this.requireModel();
    const t = this.trainer;
    if (!this.lora) throw new Error('there is no adapter to export yet; train one first');
    const s = t?.job.settings;
    const card: CardInfo = {
      name,
      baseModel: id,
      dataset: this.data?.name ?? 'unknown',
      settings: s
        ? {
            rank: s.rank,
            alpha: s.alpha,
            use_rslora: s.useRslora,
            dropout: s.dropout,
            targets: s.targets,
            lr: s.lr,
            steps: t!.step,
            batch: s.batchSize,
            grad_accum: s.gradAccum,
            seq_len: s.seqLen,
            seed: s.seed,
          }
        : {},
      trainLoss: t?.history.at(-1)?.loss ?? null,
      valLoss: t?.valHistory.at(-1)?.loss ?? null,
      sample: t?.lastSample ?? null,
      ggufFile: ggufArchOfConfig(files.config) ? GGUF_ADAPTER_FILE : null,
    };
    return exportAdapter(files.config, this.lora.config, await this.lora.read(), card);
  }

  /** The current adapter as llama.cpp's LoRA GGUF (llama, qwen2 and qwen3 models). */
  async exportGgufAdapter(name: string): Promise<Uint8Array> {
    const { files } = this.requireModel();
    if (!this.lora) throw new Error('there is no adapter to export yet; train one first');
    return exportGgufAdapter(files.config, this.lora.config, await this.lora.read(), name);
  }

  /** Whether the loaded model's adapters can be written as llama.cpp GGUF. */
  get canExportGguf(): boolean {
    return this.loaded !== null && ggufArchOfConfig(this.loaded.files.config) !== null;
  }

  /** Validates PEFT files against the loaded model and returns the adapter on the GPU (caller frees). */
  adapterFromFiles(files: Partial<AdapterFiles>): { lora: LoraState; warnings: string[]; config: LoraConfig } {
    const { id, files: mf } = this.requireModel();
    const imp = importAdapter(files, mf.config, id);
    return {
      lora: LoraState.fromArrays(this.ctx, mf.config, imp.lora, imp.arrays),
      warnings: imp.warnings,
      config: imp.lora,
    };
  }

  /**
   * Text continuation of `prompt` by the base model (lora null) or with an adapter. `merged`: fold the
   * adapter into the weights for the generation (the base model's speed, no LoRA branch per token),
   * then restore the base weights bit for bit.
   */
  async generate(
    prompt: string,
    lora: LoraState | null,
    o: { seed: number; maxTokens: number; temperature: number; merged?: boolean },
  ): Promise<{ text: string; tokens: number }> {
    const { model, files } = this.requireModel();
    const ids = files.tokenizer.encode(prompt, true);
    const sampling = { maxNewTokens: o.maxTokens, temperature: o.temperature, topK: 40, seed: o.seed };
    let out: number[];
    if (lora && o.merged) {
      const m = mergeLora(model.weights, lora);
      try {
        out = await generate(model, null, ids, sampling);
      } finally {
        unmergeLora(m);
      }
    } else out = await generate(model, lora, ids, sampling);
    return { text: files.tokenizer.decode(out, true), tokens: out.length };
  }

  /** Everything needed to resume the current run exactly (see src/storage/checkpoints.ts). */
  async snapshot(dataset: Checkpoint['dataset']): Promise<Checkpoint> {
    const t = this.trainer;
    if (!t || !this.lora || !this.loaded) throw new Error('there is no training run to checkpoint');
    if (t.hasPending) throw new Error('internal: drain the pending training step before a checkpoint');
    const lora: Checkpoint['lora'] = {};
    for (const [k, v] of await this.lora.read()) lora[k] = v;
    return {
      version: 1,
      modelId: this.loaded.id,
      dataset,
      settings: t.job.settings,
      totalSteps: t.job.totalSteps,
      lora,
      optimizer: await t.opt.state(),
      data: t.job.train.state(),
      history: [...t.history],
      valHistory: [...t.valHistory],
      savedAt: new Date().toISOString(),
    };
  }

  /** Rebuilds the run a checkpoint describes: same dataset order, adapter, optimizer state and curves. */
  async restore(c: Checkpoint): Promise<Trainer> {
    const { id, files, dtype } = this.requireModel();
    if (c.modelId !== id)
      throw new Error(`the saved run is for model '${c.modelId}', but '${id}' is loaded; load that model to resume it`);
    const s = c.settings;
    // the run's arithmetic depends on how the base is stored: resume only on the same weights (older
    // checkpoints, from before the choice existed, trained on f32)
    const saved = s.weightDtype ?? 'f32';
    if (saved !== dtype)
      throw new Error(
        `the saved run trained on ${saved} weights, but the model is loaded with ${dtype} weights; choose ${saved} under Weights (the model reloads) and resume`,
      );
    await this.loadDataset(c.dataset.name, c.dataset.text, {
      format: c.dataset.format,
      column: c.dataset.column,
      seqLen: s.seqLen,
      valFraction: s.valFraction,
      seed: s.seed,
    });
    const lora = LoraState.fromArrays(this.ctx, files.config, loraConfigOf(s), new Map(Object.entries(c.lora)));
    const t = this.createTrainer(s, { lora, dataPosition: c.data });
    t.resumeFrom(c);
    return t;
  }

  disposeRun(): void {
    this.trainer?.free();
    this.trainer = null;
  }
}

function modelIdOf(source: ModelSource, files: ModelFiles): string {
  const fromConfig = files.configJson._name_or_path;
  if (source.id.startsWith('hf:')) return source.id.slice(3).replace(/@main$/, '');
  // A GGUF file from a folder or picked files is named after the file.
  if (source.gguf && !source.id.startsWith('hf:')) return source.gguf;
  // A bundled or local folder is named after the folder.
  if (source.id.startsWith('bundled:') || source.id.startsWith('dir:'))
    return source.id.replace(/^\w+:/, '').replace(/\/$/, '').split('/').pop() || 'local';
  return typeof fromConfig === 'string' && fromConfig ? fromConfig : source.id;
}
