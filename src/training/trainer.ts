// The training loop's single step and everything around it: gradient accumulation, the schedule,
// AdamW, validation, sample generations, NaN guards and checkpoints. It runs the same in the browser's
// Web Worker and in the Node CLI; it never touches the page.

import { countTargets, type Batch } from '../data/batch';
import type { GpuContext } from '../gpu/context';
import { pcgHash } from '../kernels/rng.cpu';
import { generate } from '../models/generate';
import type { LoraState } from '../models/lora';
import type { CausalLM } from '../models/model';
import { AdamW } from './optimizer';
import { lrAt } from './schedule';
import { MAX_GRAD_ACCUM, type TrainSettings } from './settings';
import { evalLoss, forwardBackward } from './step';

export interface BatchSource {
  nextBatch(B: number): Batch;
  /** JSON-able position, enough to resume at the same batch. */
  state(): unknown;
}

export interface StepEvent {
  type: 'step';
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
  stepMs: number;
  etaSec: number;
  liveBytes: number;
  peakBytes: number;
}
export interface EvalEvent {
  type: 'eval';
  step: number;
  valLoss: number;
}
export interface SampleEvent {
  type: 'sample';
  step: number;
  prompt: string;
  text: string;
}
export type TrainEvent = StepEvent | EvalEvent | SampleEvent;

export class NonFiniteLossError extends Error {}

/** What a trainer works on, fixed for the whole run: the engine builds it, the trainer owns it. */
export interface TrainingJob {
  readonly ctx: GpuContext;
  readonly model: CausalLM;
  readonly lora: LoraState;
  readonly settings: TrainSettings;
  /** The training batches, in order; a resumed run's source starts where the saved one stopped. */
  readonly train: BatchSource;
  readonly val: Batch[];
  readonly totalSteps: number;
  readonly decode?: (ids: number[]) => string;
  readonly encode?: (text: string) => number[];
}

export class Trainer {
  readonly opt: AdamW;
  history: { step: number; loss: number }[] = [];
  valHistory: { step: number; loss: number }[] = [];
  lastSample: string | null = null;
  private startedAt = 0;
  private stepsThisSession = 0;

  constructor(readonly job: TrainingJob) {
    const s = job.settings;
    if (s.gradAccum > MAX_GRAD_ACCUM)
      throw new Error(`gradient accumulation must be at most ${MAX_GRAD_ACCUM} (got ${s.gradAccum})`);
    this.opt = new AdamW(job.lora, {
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: s.weightDecay,
      maxGradNorm: s.maxGradNorm,
    });
  }

  get step(): number {
    return this.opt.step;
  }

  get done(): boolean {
    return this.step >= this.job.totalSteps;
  }

  lr(step = this.step): number {
    const s = this.job.settings;
    return lrAt(step, {
      lr: s.lr,
      warmupSteps: s.warmupSteps,
      totalSteps: this.job.totalSteps,
      decay: s.decay,
      minLrRatio: s.minLrRatio,
    });
  }

  /**
   * One optimizer update over gradAccum micro-batches. A non-finite loss throws NonFiniteLossError
   * before the update, so the adapter and optimizer keep their last good state.
   */
  async trainStep(): Promise<StepEvent> {
    const { ctx, model, lora, settings: s } = this.job;
    if (!this.startedAt) this.startedAt = performance.now();
    const t0 = performance.now();
    const micro = Array.from({ length: s.gradAccum }, () => this.job.train.nextBatch(s.batchSize));
    const count = micro.reduce((n, b) => n + countTargets(b.targets), 0);
    let lossSum = 0;
    for (let i = 0; i < micro.length; i++) {
      const r = await forwardBackward(model, lora, micro[i], {
        checkpointing: s.checkpointing,
        gradScale: count > 0 ? 1 / count : 0,
        dropoutSeed: pcgHash((s.seed ^ pcgHash(this.step * MAX_GRAD_ACCUM + i)) >>> 0), // see MAX_GRAD_ACCUM
      });
      lossSum += r.lossSum;
    }
    const loss = lossSum / Math.max(1, count);
    if (!Number.isFinite(loss)) {
      lora.zeroGrads();
      throw new NonFiniteLossError(
        `The training loss became ${loss} at step ${this.step + 1}. The run was stopped and the adapter kept at step ${this.step}. ` +
          'Lower the learning rate, or check the dataset.',
      );
    }
    const lr = this.lr();
    const normT = this.opt.update(lr);
    const gradNorm = (await normT.read())[0]; // reading it waits for the whole step
    normT.free();
    const stepMs = performance.now() - t0;
    this.stepsThisSession++;
    const avgMs = (performance.now() - this.startedAt) / this.stepsThisSession;
    const tokens = micro.reduce((n, b) => n + b.B * b.T, 0);
    this.history.push({ step: this.step, loss });
    return {
      type: 'step',
      step: this.step,
      totalSteps: this.job.totalSteps,
      loss,
      lr,
      gradNorm,
      tokensPerSec: tokens / (stepMs / 1000),
      stepMs,
      etaSec: ((this.job.totalSteps - this.step) * avgMs) / 1000,
      liveBytes: ctx.alloc.liveBytes,
      peakBytes: ctx.alloc.peakBytes,
    };
  }

  /** Mean validation loss over the held-out batches. */
  async validate(): Promise<EvalEvent> {
    let sum = 0;
    let n = 0;
    for (const b of this.job.val) {
      const r = await evalLoss(this.job.model, this.job.lora, b);
      sum += r.lossSum;
      n += r.count;
    }
    const valLoss = n ? sum / n : NaN;
    this.valHistory.push({ step: this.step, loss: valLoss });
    return { type: 'eval', step: this.step, valLoss };
  }

  /** A sample continuation of the settings' prompt (empty: the first tokens of a validation sequence), seeded. */
  async sample(prompt = this.job.settings.samplePrompt): Promise<SampleEvent> {
    const { encode, decode } = this.job;
    if (!encode || !decode) throw new Error('sampling needs a tokenizer');
    let ids = prompt ? encode(prompt) : [];
    if (!prompt && this.job.val.length) {
      ids = Array.from(this.job.val[0].ids.subarray(0, 8));
      prompt = decode(ids);
    }
    if (!ids.length) ids = encode('');
    const out = await generate(this.job.model, this.job.lora, ids, {
      maxNewTokens: this.job.settings.sampleTokens,
      temperature: 0.8,
      topK: 40,
      seed: this.job.settings.seed,
    });
    const text = decode(out);
    this.lastSample = prompt + text;
    return { type: 'sample', step: this.step, prompt, text };
  }

  /** Continues a saved run: the optimizer's moments and step, and the loss curves so far. */
  resumeFrom(saved: {
    optimizer: Parameters<AdamW['restore']>[0];
    history: { step: number; loss: number }[];
    valHistory: { step: number; loss: number }[];
  }): void {
    this.opt.restore(saved.optimizer);
    this.history = [...saved.history];
    this.valHistory = [...saved.valHistory];
  }

  free(): void {
    this.opt.free();
  }
}
