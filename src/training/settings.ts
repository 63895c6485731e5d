// Training settings: defaults a first-time user can keep, and validation that says what to fix.

import { DEFAULT_TARGETS, LORA_TARGETS, type ModelConfig } from '../models/config';
import type { LoraConfig } from '../models/lora';
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
  weightDtype: 'f32' | 'f16';
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

/** Every problem with the settings, as messages a person can act on (empty = valid). */
export function validateSettings(s: TrainSettings, cfg: ModelConfig, opts: { hasF16?: boolean } = {}): string[] {
  const errs: string[] = [];
  const int = (v: number, name: string, min: number, max = Infinity) => {
    if (!Number.isInteger(v) || v < min || v > max)
      errs.push(`${name} must be a whole number from ${min}${max < Infinity ? ` to ${max}` : ''} (got ${v})`);
  };
  const num = (v: number, name: string, min: number, max: number, openMin = false) => {
    if (!Number.isFinite(v) || v < min || v > max || (openMin && v === min))
      errs.push(`${name} must be ${openMin ? 'above' : 'at least'} ${min} and at most ${max} (got ${v})`);
  };
  int(s.rank, 'rank', 1, Math.min(1024, cfg.hiddenSize));
  num(s.alpha, 'alpha', 0, 1e6, true);
  num(s.dropout, 'dropout', 0, 0.9);
  num(s.lr, 'learning rate', 0, 1, true);
  int(s.warmupSteps, 'warmup steps', 0);
  if (!['cosine', 'linear', 'constant'].includes(s.decay))
    errs.push(`decay must be cosine, linear or constant (got ${s.decay})`);
  num(s.minLrRatio, 'minimum lr ratio', 0, 1);
  int(s.batchSize, 'batch size', 1, 256);
  int(s.gradAccum, 'gradient accumulation', 1, 1024);
  int(s.seqLen, 'sequence length', 2, cfg.maxPositions);
  int(s.steps, 'steps', 1, 1e7);
  int(s.epochs, 'epochs', 0, 1000);
  num(s.weightDecay, 'weight decay', 0, 1);
  num(s.maxGradNorm, 'max gradient norm', 0, 1e6);
  int(s.seed, 'seed', 0, 2 ** 32 - 1);
  num(s.valFraction, 'validation fraction', 0, 0.5);
  int(s.evalEvery, 'evaluate every', 0);
  int(s.sampleEvery, 'sample every', 0);
  int(s.checkpointEvery, 'checkpoint every', 0);
  int(s.sampleTokens, 'sample tokens', 1, 1024);
  if (s.weightDtype === 'f16' && opts.hasF16 === false) errs.push('f16 weights need a GPU with shader-f16; choose f32');
  const known = LORA_TARGETS[cfg.family];
  const bad = s.targets.filter((t) => !known.includes(t));
  if (bad.length) errs.push(`unknown target module(s) ${bad.join(', ')}; ${cfg.architecture} has ${known.join(', ')}`);
  if (!s.targets.length) errs.push('choose at least one target module');
  return errs;
}
