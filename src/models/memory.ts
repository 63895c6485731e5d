// How much GPU memory a LoRA fine-tune of `cfg` will hold, counted from what the model code keeps
// (src/autograd/ops.ts, src/training/step.ts, src/models/head.ts, src/models/weights.ts):
//
//   weights     linear weights and embedding tables as the weights choice stores them (src/models/weights.ts
//               storedDtype: f32, f16, or int8 / int4 blocks by quantLayout, a tensor whose rows do not split
//               into blocks in f16 or f32); norm weights, biases and learned positions in f32; a tied LM
//               head shares the embedding table.
//   lora        A (r, in) and B (out, r) per targeted module, f32, ×4: parameter, gradient, Adam m and v.
//   activations what the tape saves for backward, f32, per block (N = B·T rows): each family says how
//               many floats per row (src/models/families/<family>.ts blockFloatsPerRow), e.g.
//                 llama/qwen2/smollm3/mistral: block input x, rstd, n1 = rmsnorm(x), q and k after RoPE, v,
//                   attention output, lse (Hq per row), h = x + attn, rstd, n2, gate, up, silu(gate)·up;
//                 qwen3: the same plus q and k before their per-head norms and those norms' rstd;
//                 gemma3: qwen3's set plus the o_proj and down_proj outputs the post-attention and
//                   post-feedforward norms save, and two more rstd (four norms per layer);
//                 gpt2: x, mean+rstd, n1, q, k, v (split copies), attention output, lse, h, mean+rstd,
//                   n2, c_fc output, gelu output;
//               plus the rank-r U = drop(x)·Aᵀ of every targeted linear.
//               Without checkpointing every block's set lives until its backward; with checkpointing
//               only each block's input (N·C) does, plus one block's set, recomputed. On top: the final
//               norm (input, stats, output), the head's dx (N·C), and a workspace of one block's set
//               for the gradients in flight during a block's backward (an estimate, not a measurement).
//               And lora_grad's workspace (src/kernels/lora_grad.ts GradCarry, kept from the first backward on):
//               the G's of one call and the chunk partials of two calls in a row (each call's sum rides on the
//               next one's dispatch), the largest such pair of the backward; a call is one linear, or q, k, v
//               (gate, up) together where all of them are targeted (the families' `linears`).
//   logits      the head (src/models/head.ts) never holds the (B·T, V) logits: one (N, max(VC, C)) buffer
//               (headBufferCols; VC = headChunkCols: at most 2,048 columns and ~32 MiB) for a chunk of them, turned
//               in place into the softmax numerators, then for the target rows of the table, and the (N, 3) row
//               statistics of its log-sum-exp.
// Not counted: the allocator's rounding and pooling, pipelines, staging buffers for reads, the token
// ids and targets (tiny), and the CPU-side copy of the weights while they are uploaded.

import { expectedTensors, type ModelConfig } from './config';
import { familySpec } from './families';
import { headBufferCols, headChunkCols } from './head';
import { loraParamCount } from './lora';
import { gradWorkspace } from '../kernels/lora_grad';
import { selectModules, type LinearModule } from './modules';
import { storedDtype, weightNames, WEIGHTS_CHOICES, type WeightsChoice } from './weights';
import { tensorBytes } from '../gpu/tensor';
import { fmtBytes } from '../util/format';

export interface MemoryOptions {
  /** The weights choice (the setting is called weightDtype). */
  weightDtype: WeightsChoice;
  /** Whether the device has shader-f16: where int8 / int4 leave a tensor float, f16 or f32 (default false). */
  hasF16?: boolean;
  batch: number;
  seqLen: number;
  rank: number;
  targets: string[];
  checkpointing: boolean;
  /** maxStorageBufferBindingSize, which bounds the head's row blocks (default 128 MiB, the WebGPU default). */
  maxBindingBytes?: number;
}

export interface MemoryEstimate {
  weights: WeightsChoice;
  weightBytes: number;
  loraBytes: number;
  activationBytes: number;
  logitsBytes: number;
  totalBytes: number;
  largestTensorBytes: number;
  /** HF name of the largest tensor (or "logits chunk"). */
  largestTensorName: string;
  /** True when the largest tensor is an embedding / LM-head table (which the model code splits by rows). */
  largestIsTable: boolean;
  /** The largest tensor that must fit one storage binding (any weight but the tables, or the logits chunk). */
  largestUnsplitBytes: number;
  largestUnsplitName: string;
  /** Bytes of one block's saved activations (useful to see what checkpointing saves). */
  blockActivationBytes: number;
}

const F32 = 4;

/** Embedding and LM-head tables: the model code keeps them as row chunks, each within one binding. */
function isTable(name: string): boolean {
  return /(wte|embed_tokens|lm_head)\.weight$/.test(name);
}

export function estimateMemory(cfg: ModelConfig, opts: MemoryOptions): MemoryEstimate {
  const { batch, seqLen, rank } = opts;
  for (const [k, v] of Object.entries({ batch, seqLen, rank })) {
    if (!Number.isSafeInteger(v) || v <= 0)
      throw new RangeError(`estimateMemory: ${k} must be a positive integer, got ${v}`);
  }
  const names = weightNames(cfg);
  const stored = new Set([...names.large, ...names.tables]);
  const N = batch * seqLen;
  const C = cfg.hiddenSize;
  const V = cfg.vocabSize;

  let weightBytes = 0;
  let largestTensorBytes = 0;
  let largestTensorName = '';
  let largestUnsplitBytes = 0;
  let largestUnsplitName = '';
  for (const [name, shape] of expectedTensors(cfg)) {
    const cols = shape[shape.length - 1];
    const bytes = tensorBytes(shape, stored.has(name) ? storedDtype(opts.weightDtype, cols, !!opts.hasF16) : 'f32');
    weightBytes += bytes;
    if (bytes > largestTensorBytes) {
      largestTensorBytes = bytes;
      largestTensorName = name;
    }
    if (!isTable(name) && bytes > largestUnsplitBytes) {
      largestUnsplitBytes = bytes;
      largestUnsplitName = name;
    }
  }

  const modules = selectModules(cfg, opts.targets);
  const loraParams = loraParamCount(modules, rank);
  const loraBytes = loraParams * F32 * 4;
  const uPerBlock = (modules.length / cfg.numLayers) * rank; // U (N, r) per targeted linear of a block

  const blockActivationBytes = N * (familySpec(cfg).blockFloatsPerRow(cfg) + uPerBlock) * F32;
  const stats = familySpec(cfg).finalNormStatsPerRow;
  const finalNorm = N * (2 * C + stats) * F32; // its input (last block's output) and stats, its output
  const headDx = N * C * F32;
  const saved = opts.checkpointing
    ? cfg.numLayers * N * C * F32 + blockActivationBytes
    : cfg.numLayers * blockActivationBytes;
  const binding = opts.maxBindingBytes ?? 128 * 1024 * 1024;
  const activationBytes =
    saved + finalNorm + headDx + blockActivationBytes + gradWorkspaceBytes(modules, N, rank, binding);

  const cols = Math.min(V, headChunkCols(N, opts.maxBindingBytes ?? 128 * 1024 * 1024));
  const logitsChunk = N * headBufferCols(cols, C) * F32;
  const logitsBytes = logitsChunk + N * 3 * F32; // one chunk of logits (then the target rows), the row statistics
  if (logitsChunk > largestTensorBytes) {
    largestTensorBytes = logitsChunk;
    largestTensorName = 'logits chunk';
  }
  if (logitsChunk > largestUnsplitBytes) {
    largestUnsplitBytes = logitsChunk;
    largestUnsplitName = 'logits chunk';
  }
  return {
    weights: opts.weightDtype,
    weightBytes,
    loraBytes,
    activationBytes,
    logitsBytes,
    totalBytes: weightBytes + loraBytes + activationBytes + logitsBytes,
    largestTensorBytes,
    largestTensorName,
    largestIsTable: isTable(largestTensorName),
    largestUnsplitBytes,
    largestUnsplitName,
    blockActivationBytes,
  };
}

/** The linears one lora_grad call takes together where all of them are targeted (llama.ts and gemma3.ts `linears`). */
const GRAD_GROUPS = [
  ['q_proj', 'k_proj', 'v_proj'],
  ['gate_proj', 'up_proj'],
];

/** lora_grad's workspace for the backward of `modules` (see the header): [G's | two calls' partials], in bytes;
 * binding: the device's bytes per storage binding. */
export function gradWorkspaceBytes(modules: LinearModule[], N: number, r: number, binding: number): number {
  const calls: LinearModule[][] = [];
  for (let i = 0; i < modules.length;) {
    const m = modules[i];
    const group = GRAD_GROUPS.find(
      (g) => g[0] === m.target && g.every((t, k) => modules[i + k]?.target === t && modules[i + k].layer === m.layer),
    );
    const n = group?.length ?? 1;
    calls.push(modules.slice(i, i + n));
    i += n;
  }
  if (!calls.length) return 0;
  const ws = calls.map((c) =>
    gradWorkspace(
      N,
      c[0].inFeatures,
      c.map((m) => m.outFeatures),
      r,
      binding,
    ),
  );
  const g = Math.max(...ws.map((w) => w.g));
  // consecutive calls (the backward runs them in reverse; the last of one micro-batch and the first of the next too)
  const pair = Math.max(...ws.map((w, i) => w.room + (ws.length > 1 ? ws[(i + 1) % ws.length].room : 0)));
  const single = Math.max(...ws.map((w) => w.room));
  return 4 * (g + Math.max(single, Math.min(pair, Math.floor((binding / 4 - g) / 64) * 64)));
}

/**
 * The next weights choice that holds the frozen base in fewer bytes (f32 -> f16 where the device has
 * shader-f16, else int8; f16 -> int8; int8 -> int4), or null after int4.
 */
export function smallerWeights(c: WeightsChoice, hasF16: boolean): WeightsChoice | null {
  const next = WEIGHTS_CHOICES.slice(WEIGHTS_CHOICES.indexOf(c) + 1).filter((x) => x !== 'f16' || hasF16);
  return next[0] ?? null;
}

export interface FitMessage {
  level: 'info' | 'warning' | 'error';
  message: string;
}

/**
 * Checks an estimate against the device's limits and, when known, a memory budget in bytes (the GPU's
 * memory, or what the user allows). Errors mean the run will not fit; info explains what is handled.
 */
export function checkFits(
  est: MemoryEstimate,
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number },
  deviceMemoryHint?: number,
  hasF16 = true,
): FitMessage[] {
  const out: FitMessage[] = [];
  const smaller = smallerWeights(est.weights, hasF16);
  const orSmaller = smaller ? `${smaller} weights or ` : '';
  const binding = limits.maxStorageBufferBindingSize;
  if (est.largestIsTable && est.largestTensorBytes > binding) {
    out.push({
      level: 'info',
      message: `${est.largestTensorName} (${fmtBytes(est.largestTensorBytes)}) is larger than one storage binding (${fmtBytes(binding)}); the model code splits it by rows into several buffers.`,
    });
  }
  const unsplitLimit = Math.min(binding, limits.maxBufferSize);
  if (est.largestUnsplitBytes > unsplitLimit) {
    out.push({
      level: 'error',
      message: `${est.largestUnsplitName} needs ${fmtBytes(est.largestUnsplitBytes)}, more than one storage binding or buffer allows (${fmtBytes(unsplitLimit)}); use ${orSmaller}a smaller model.`,
    });
  }
  const total = fmtBytes(est.totalBytes);
  const parts = `weights ${fmtBytes(est.weightBytes)}, LoRA with Adam ${fmtBytes(est.loraBytes)}, activations ${fmtBytes(est.activationBytes)}, logits ${fmtBytes(est.logitsBytes)}`;
  if (deviceMemoryHint === undefined || !(deviceMemoryHint > 0)) {
    out.push({
      level: 'info',
      message: `estimated GPU memory ${total} (${parts}); the browser does not say how much the GPU has.`,
    });
  } else if (est.totalBytes > deviceMemoryHint) {
    out.push({
      level: 'error',
      message: `estimated GPU memory ${total} (${parts}) is over the ${fmtBytes(deviceMemoryHint)} budget: lower batch or sequence length, turn on checkpointing${smaller ? `, or use ${smaller} weights` : ''}.`,
    });
  } else if (est.totalBytes > 0.8 * deviceMemoryHint) {
    out.push({
      level: 'warning',
      message: `estimated GPU memory ${total} (${parts}) is close to the ${fmtBytes(deviceMemoryHint)} budget; the estimate leaves out allocator overhead.`,
    });
  } else {
    out.push({
      level: 'info',
      message: `estimated GPU memory ${total} (${parts}), within the ${fmtBytes(deviceMemoryHint)} budget.`,
    });
  }
  return out;
}
