// Text generation: a prompt's tokens in, new tokens out, with or without a KV cache. The cached path
// runs the prompt once (prefill), then one token per step, each block appending its keys/values;
// the uncached path recomputes the whole sequence each step (the reference the cache is tested against).

import { Tensor } from '../gpu/tensor';
import { take_cols } from '../kernels/copy2d';
import { rngUniform } from '../kernels/rng.cpu';
import { forwardHidden } from './forward';
import { headLogits } from './head';
import type { LoraState } from './lora';
import type { CausalLM, KvLayer } from './model';

export interface SampleOptions {
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Stop at the end-of-sequence token (default true). */
  stopAtEos?: boolean;
  useKvCache?: boolean;
  onToken?: (id: number) => void;
}

/** Samples one token id from logits (V,) with temperature, top-k and top-p; `u` is uniform in [0, 1). */
export function sampleToken(
  logits: Float32Array,
  o: Pick<SampleOptions, 'temperature' | 'topK' | 'topP'>,
  u: number,
): number {
  const temp = o.temperature ?? 0;
  if (temp <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let idx = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
  if (o.topK && o.topK > 0) idx = idx.slice(0, o.topK);
  const max = logits[idx[0]];
  let probs = idx.map((i) => Math.exp((logits[i] - max) / temp));
  let sum = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / sum);
  if (o.topP && o.topP < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < probs.length && acc < o.topP) acc += probs[keep++];
    idx = idx.slice(0, keep);
    probs = probs.slice(0, keep);
    sum = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / sum);
  }
  let acc = 0;
  for (let j = 0; j < probs.length; j++) {
    acc += probs[j];
    if (u < acc) return idx[j];
  }
  return idx[idx.length - 1];
}

/** Logits (V,) of the last row of the final hidden state x (T, C). Frees x. */
async function lastLogits(model: CausalLM, x: Tensor): Promise<Float32Array> {
  const [T, C] = x.shape;
  const last = take_cols(x.reshape([1, T * C]), (T - 1) * C, C);
  x.free();
  const logits = headLogits(last, model.weights.lmHead, model.cfg.vocabSize, model.cfg.finalSoftcap);
  last.free();
  const out = await logits.read();
  logits.free();
  return out;
}

export async function generate(
  model: CausalLM,
  lora: LoraState | null,
  prompt: number[],
  o: SampleOptions,
): Promise<number[]> {
  const ctx = model.weights.ctx;
  const cfg = model.cfg;
  if (prompt.length === 0) throw new Error('generate: the prompt has no tokens');
  const capacity = Math.min(cfg.maxPositions, prompt.length + o.maxNewTokens);
  if (prompt.length >= capacity && o.maxNewTokens > 0)
    throw new Error(`the prompt (${prompt.length} tokens) fills the model's context of ${cfg.maxPositions}`);
  const eos = new Set([cfg.eosTokenId].flat().filter((x): x is number => typeof x === 'number'));
  const seq = [...prompt];
  const out: number[] = [];
  const useCache = o.useKvCache ?? true;
  const kvDim = cfg.numKvHeads * cfg.headDim;
  const layers: KvLayer[] = useCache
    ? Array.from({ length: cfg.numLayers }, () => ({
        k: Tensor.zeros(ctx, [capacity, kvDim], 'k_cache'),
        v: Tensor.zeros(ctx, [capacity, kvDim], 'v_cache'),
      }))
    : [];
  try {
    let pos = 0;
    for (let step = 0; step < o.maxNewTokens && seq.length < capacity + 1; step++) {
      let x: Tensor;
      if (useCache) {
        const fresh = seq.slice(pos);
        x = forwardHidden(model, lora, Tensor.fromU32(ctx, fresh, [fresh.length], 'ids'), {
          B: 1,
          T: fresh.length,
          posOffset: pos,
          kv: { layers, capacity },
        });
        pos = seq.length;
      } else {
        x = forwardHidden(model, lora, Tensor.fromU32(ctx, seq, [seq.length], 'ids'), {
          B: 1,
          T: seq.length,
          posOffset: 0,
        });
      }
      const logits = await lastLogits(model, x);
      const id = sampleToken(logits, o, rngUniform(o.seed ?? 0, step));
      seq.push(id);
      out.push(id);
      o.onToken?.(id);
      if ((o.stopAtEos ?? true) && eos.has(id)) break;
      if (seq.length >= capacity) break;
    }
  } finally {
    for (const l of layers) {
      l.k.free();
      l.v.free();
    }
  }
  return out;
}
