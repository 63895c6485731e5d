// The training loop's single step and everything around it: gradient accumulation, the schedule,
// AdamW, validation, sample generations, NaN guards and checkpoints. It runs the same in the browser's
// Web Worker and in the Node CLI; it never touches the page.

import { countTargets, type Batch } from '../data/batch';
import { DeviceLostError, type GpuContext } from '../gpu/context';
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

/** A lost device as a training run reports it: the step the run stopped at, and what comes next. */
export class RunDeviceLostError extends DeviceLostError {
  constructor(
    readonly step: number,
    lost: DeviceLostError,
  ) {
    super(
      `Training stopped at step ${step}: ${lost.message[0].toLowerCase()}${lost.message.slice(1)} The steps after that checkpoint are trained again, with the same results.`,
    );
  }
}

/** An error of step `step`'s GPU work (or of the work after it); a lost device becomes a RunDeviceLostError. */
export function stoppedAt(step: number, e: unknown): unknown {
  return e instanceof DeviceLostError && !(e instanceof RunDeviceLostError) ? new RunDeviceLostError(step, e) : e;
}

/** A recorded step whose figures are on their way back from the GPU. */
interface PendingStep {
  /** 1-based number of the step (the optimizer's step after it). */
  step: number;
  lr: number;
  /** Targets counted over its micro-batches (the loss is their mean). */
  count: number;
  tokens: number;
  /** [loss sum, norm, scale, ok] as f32, mapped once the GPU is done with the step. */
  stats: Promise<ArrayBuffer>;
}

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
  private lastReportAt = 0;
  private stepsThisSession = 0;
  /** The step advance() recorded whose figures are not read yet. */
  private pending: PendingStep | null = null;

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
   * One optimizer update over gradAccum micro-batches, waiting for its figures: advance() then drain().
   * A non-finite loss or gradient norm throws NonFiniteLossError; the GPU skipped that update, so the
   * adapter and optimizer keep their last good state.
   */
  async trainStep(): Promise<StepEvent> {
    if (this.pending) throw new Error('trainStep: a step is still pending; drain() it first');
    await this.advance();
    return (await this.drain())!;
  }

  /**
   * Records and submits the next step, then returns the previous step's event (null when there is none):
   * its loss and gradient norm were copied to a staging buffer at its end and are mapped while this step
   * runs, so no readback stands between one step and the next. Call drain() for the last step's event.
   */
  async advance(): Promise<StepEvent | null> {
    const prev = this.pending;
    try {
      this.pending = this.encodeStep();
    } catch (e) {
      throw stoppedAt(this.step + 1, e);
    }
    if (!prev) return null;
    try {
      return await this.report(prev);
    } catch (e) {
      this.discardPending();
      throw e;
    }
  }

  /** The event of the step advance() recorded last, once the GPU has done it (null when none is pending). */
  async drain(): Promise<StepEvent | null> {
    const p = this.pending;
    this.pending = null;
    return p ? this.report(p) : null;
  }

  /** Whether a step was recorded whose event drain() has not given yet. */
  get hasPending(): boolean {
    return this.pending !== null;
  }

  private encodeStep(): PendingStep {
    const { ctx, model, lora, settings: s } = this.job;
    if (!this.startedAt) this.startedAt = this.lastReportAt = performance.now();
    const micro = Array.from({ length: s.gradAccum }, () => this.job.train.nextBatch(s.batchSize));
    const count = micro.reduce((n, b) => n + countTargets(b.targets), 0);
    const step = this.step;
    this.opt.beginStep();
    const lossAcc = this.opt.lossAcc;
    for (let i = 0; i < micro.length; i++) {
      forwardBackward(model, lora, micro[i], {
        checkpointing: s.checkpointing,
        gradScale: count > 0 ? 1 / count : 0,
        dropoutSeed: pcgHash((s.seed ^ pcgHash(step * MAX_GRAD_ACCUM + i)) >>> 0), // see MAX_GRAD_ACCUM
        lossInto: lossAcc,
      });
    }
    const lr = this.lr();
    this.opt.apply(lr);
    // [loss sum, norm, scale, ok] of this step, copied now and mapped without waiting
    const stats = ctx.readLater(this.opt.stats, 16);
    stats.catch(() => {}); // a discarded step's readback may fail with the run; the one awaited reports it
    return { step: step + 1, lr, count, tokens: micro.reduce((n, b) => n + b.B * b.T, 0), stats };
  }

  private async report(p: PendingStep): Promise<StepEvent> {
    const { ctx } = this.job;
    const st = AdamW.decodeStats(await p.stats.catch((e) => Promise.reject(stoppedAt(p.step, e))));
    const loss = st.lossSum / Math.max(1, p.count);
    if (!st.ok || !Number.isFinite(loss)) {
      // The GPU skipped this update and every one recorded after it (the guard is sticky): the adapter and
      // the moments are those of step p.step - 1. Gradients were zeroed by the update kernel.
      this.opt.step = p.step - 1;
      this.opt.resetGuard();
      const what = Number.isFinite(loss) ? `gradient norm became ${st.norm}` : `loss became ${loss}`;
      throw new NonFiniteLossError(
        `The training ${what} at step ${p.step}. The run was stopped and the adapter kept at step ${p.step - 1}. ` +
          'Lower the learning rate, or check the dataset.',
      );
    }
    const now = performance.now();
    const stepMs = now - this.lastReportAt;
    this.lastReportAt = now;
    this.stepsThisSession++;
    const avgMs = (now - this.startedAt) / this.stepsThisSession;
    this.history.push({ step: p.step, loss });
    return {
      type: 'step',
      step: p.step,
      totalSteps: this.job.totalSteps,
      loss,
      lr: p.lr,
      gradNorm: st.norm,
      tokensPerSec: p.tokens / (stepMs / 1000),
      stepMs,
      etaSec: ((this.job.totalSteps - p.step) * avgMs) / 1000,
      liveBytes: ctx.alloc.liveBytes,
      peakBytes: ctx.alloc.peakBytes,
    };
  }

  /** Forgets a recorded step after an error: the GPU skipped its update (the guard stays down until reset). */
  private discardPending(): void {
    this.pending = null;
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
    this.pending = null;
    this.opt.free();
  }
}
