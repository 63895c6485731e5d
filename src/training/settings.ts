// Training settings: defaults a first-time user can keep, and validation that says what to fix.

import { DEFAULT_TARGETS, LORA_TARGETS, type ModelConfig } from '../models/config';
import type { LoraConfig } from '../models/lora';
import type { WeightsChoice } from '../models/weights';
import type { Decay } from './schedule';

export interface TrainSettings {
  rank: number;
  alpha: number;
  useRslora: boolean;
  dropout: number;
  /** HF module names, e.g. ['q_proj', 'v_proj']; empty = the family's PEFT default. */
  targets: string[];
  lr: number;
  warmupSteps: number;
  decay: Decay;
  minLrRatio: number;
  batchSize: number;
  gradAccum: number;
  seqLen: number;
  /** Optimizer updates; when epochs > 0 it is derived from the dataset instead. */
  steps: number;
  epochs: number;
  weightDecay: number;
  maxGradNorm: number;
  seed: number;
  checkpointing: boolean;
  /** How the frozen base is stored: f32, f16, or quantized to int8 / int4 at load (src/models/weights.ts). */
  weightDtype: WeightsChoice;
  valFraction: number;
  evalEvery: number;
  sampleEvery: number;
  checkpointEvery: number;
  samplePrompt: string;
  sampleTokens: number;
}

export const DEFAULT_SETTINGS: TrainSettings = {
  rank: 8,
  alpha: 16,
  useRslora: false,
  dropout: 0.05,
  targets: [],
  lr: 2e-3,
  warmupSteps: 10,
  decay: 'cosine',
  minLrRatio: 0.1,
  batchSize: 4,
  gradAccum: 1,
  seqLen: 128,
  steps: 200,
  epochs: 0,
  weightDecay: 0,
  maxGradNorm: 1,
  seed: 42,
  checkpointing: false,
  weightDtype: 'f32',
  valFraction: 0.1,
  evalEvery: 25,
  sampleEvery: 50,
  checkpointEvery: 25,
  samplePrompt: '',
  sampleTokens: 40,
};

/** Settings with defaults filled in and targets resolved for the model. */
export function resolveSettings(partial: Partial<TrainSettings>, cfg: ModelConfig): TrainSettings {
  const s = { ...DEFAULT_SETTINGS, ...partial };
  if (!s.targets.length) s.targets = [...DEFAULT_TARGETS[cfg.family]];
  return s;
}

/** The adapter the settings describe. */
export function loraConfigOf(s: TrainSettings): LoraConfig {
  return { r: s.rank, alpha: s.alpha, useRslora: s.useRslora, dropout: s.dropout, targets: s.targets };
}

/** A problem with one setting, in words a person can act on. */
export interface SettingsError {
  field: keyof TrainSettings;
  message: string;
}

/**
 * The most micro-batches one optimizer step may sum. The trainer gives micro-batch i of step n the
 * dropout stream n · MAX_GRAD_ACCUM + i, which stays distinct only below this.
 */
export const MAX_GRAD_ACCUM = 1024;

/** Every problem with the settings, each with the setting it is about (empty = valid). */
export function validateSettings(s: TrainSettings, cfg: ModelConfig, opts: { hasF16?: boolean } = {}): SettingsError[] {
  const errs: SettingsError[] = [];
  const int = (field: keyof TrainSettings, name: string, min: number, max = Infinity) => {
    const v = s[field] as number;
    if (!Number.isInteger(v) || v < min || v > max)
      errs.push({
        field,
        message: `${name} must be a whole number from ${min}${max < Infinity ? ` to ${max}` : ''} (got ${v})`,
      });
  };
  const num = (field: keyof TrainSettings, name: string, min: number, max: number, openMin = false) => {
    const v = s[field] as number;
    if (!Number.isFinite(v) || v < min || v > max || (openMin && v === min))
      errs.push({
        field,
        message: `${name} must be ${openMin ? 'above' : 'at least'} ${min} and at most ${max} (got ${v})`,
      });
  };
  int('rank', 'rank', 1, Math.min(1024, cfg.hiddenSize));
  num('alpha', 'alpha', 0, 1e6, true);
  num('dropout', 'dropout', 0, 0.9);
  num('lr', 'learning rate', 0, 1, true);
  int('warmupSteps', 'warmup steps', 0);
  if (!['cosine', 'linear', 'constant'].includes(s.decay))
    errs.push({ field: 'decay', message: `decay must be cosine, linear or constant (got ${s.decay})` });
  num('minLrRatio', 'minimum lr ratio', 0, 1);
  int('batchSize', 'batch size', 1, 256);
  int('gradAccum', 'gradient accumulation', 1, MAX_GRAD_ACCUM);
  int('seqLen', 'sequence length', 2, cfg.maxPositions);
  int('steps', 'steps', 1, 1e7);
  int('epochs', 'epochs', 0, 1000);
  num('weightDecay', 'weight decay', 0, 1);
  num('maxGradNorm', 'max gradient norm', 0, 1e6);
  int('seed', 'seed', 0, 2 ** 32 - 1);
  num('valFraction', 'validation fraction', 0, 0.5);
  int('evalEvery', 'evaluate every', 0);
  int('sampleEvery', 'sample every', 0);
  int('checkpointEvery', 'checkpoint every', 0);
  int('sampleTokens', 'sample tokens', 1, 1024);
  if (s.weightDtype === 'f16' && opts.hasF16 === false)
    errs.push({ field: 'weightDtype', message: 'f16 weights need a GPU with shader-f16; choose f32' });
  const known = LORA_TARGETS[cfg.family];
  const bad = s.targets.filter((t) => !known.includes(t));
  if (bad.length)
    errs.push({
      field: 'targets',
      message: `unknown target module(s) ${bad.join(', ')}; ${cfg.architecture} has ${known.join(', ')}`,
    });
  if (!s.targets.length) errs.push({ field: 'targets', message: 'choose at least one target module' });
  return errs;
}
