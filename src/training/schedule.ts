// Learning-rate schedule: linear warmup, then cosine or linear decay that reaches minLrRatio·lr at the
// last step, or constant. step is 0-based: the lr used by the (step+1)-th optimizer update.

export type Decay = 'cosine' | 'linear' | 'constant';

export interface Schedule {
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  decay: Decay;
  /** The floor of the decay as a fraction of lr. */
  minLrRatio: number;
}

export function lrAt(step: number, s: Schedule): number {
  if (s.warmupSteps > 0 && step < s.warmupSteps) return (s.lr * (step + 1)) / s.warmupSteps;
  if (s.decay === 'constant') return s.lr;
  const span = Math.max(1, s.totalSteps - s.warmupSteps - 1);
  const progress = Math.min(1, (step - s.warmupSteps) / span);
  const floor = s.lr * s.minLrRatio;
  const f = s.decay === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return floor + (s.lr - floor) * f;
}
