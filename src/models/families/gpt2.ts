// GPT-2 (GPT2LMHeadModel) as Hugging Face's modeling_gpt2.py computes it, x is (B·T, C):
//
//   x0  = wte[ids] + wpe[positions]
//   h   = x + attn.c_proj(attention(split(attn.c_attn(ln_1(x)))))    c_attn gives q, k, v fused (N, 3C)
//   out = h + mlp.c_proj(gelu_tanh(mlp.c_fc(ln_2(h))))
//   logits = ln_f(out) · wteᵀ                                         (tied head)
//
// Conv1D weights are stored (IN, OUT): the linears run with w0Transposed.

import { gelu, layernorm, linear, splitCols } from '../../autograd/ops';
import type { Tape, Var } from '../../autograd/tape';
import { Tensor } from '../../gpu/tensor';
import { add_forward } from '../../kernels/add';
import { embedding_forward } from '../../kernels/embedding';
import type { LoraState } from '../lora';
import { frozenLinear, selfAttention, type CausalLM, type RunInfo } from '../model';
import type { GpuWeights } from '../weights';
import type { FamilySpec, LinearModule, ModelConfig } from './types';

export class GPT2 implements CausalLM {
  constructor(
    readonly cfg: ModelConfig,
    readonly weights: GpuWeights,
  ) {
    if (cfg.family !== 'gpt2') throw new Error(`GPT2 model given a ${cfg.family} config`);
  }

  embed(ids: Tensor, run: RunInfo): Tensor {
    const ctx = ids.ctx;
    if (run.posOffset + run.T > this.cfg.maxPositions) {
      throw new Error(`GPT-2 has ${this.cfg.maxPositions} positions; asked for ${run.posOffset + run.T}`);
    }
    const tok = embedding_forward(ids, this.weights.embedding);
    const positions = new Uint32Array(run.B * run.T);
    for (let i = 0; i < positions.length; i++) positions[i] = run.posOffset + (i % run.T);
    const posIds = Tensor.fromU32(ctx, positions, [positions.length], 'positions');
    const pos = embedding_forward(posIds, [{ table: this.weights.get('transformer.wpe.weight'), rowStart: 0 }]);
    const x = add_forward(tok, pos);
    [tok, pos, posIds].forEach((t) => t.free());
    return x;
  }

  block(i: number, tape: Tape, x: Var, lora: LoraState | null, run: RunInfo): Var {
    const c = this.cfg;
    const C = c.hiddenSize;
    const p = `transformer.h.${i}`;
    const w = (name: string) => this.weights.get(`${p}.${name}`);
    const lin = (name: string, input: Var, residual?: Var) => {
      const path = `${p}.${name}`;
      const branch = lora?.branch(tape, path, run.dropoutSeed ?? null) ?? null;
      return linear(tape, input, frozenLinear(this.weights, path, true), branch, path, residual);
    };

    // attention
    const n1 = layernorm(tape, x, w('ln_1.weight'), w('ln_1.bias'), c.normEps, `${p}.ln_1`);
    const qkv = lin('attn.c_attn', n1); // (N, 3C)
    const [q, k, v] = splitCols(tape, qkv, [C, C, C], [`${p}.q`, `${p}.k`, `${p}.v`]);
    const a = selfAttention(
      tape,
      q,
      k,
      v,
      { heads: c.numHeads, kvHeads: c.numHeads, headDim: c.headDim, seqLen: run.T },
      run,
      i,
      `${p}.attn`,
    );
    const h = lin('attn.c_proj', a, x); // x + c_proj(a): the residual added by the matmul

    // MLP
    const n2 = layernorm(tape, h, w('ln_2.weight'), w('ln_2.bias'), c.normEps, `${p}.ln_2`);
    const f = gelu(tape, lin('mlp.c_fc', n2), `${p}.gelu`); // (N, I)
    return lin('mlp.c_proj', f, h); // h + c_proj(f)
  }

  finalNorm(tape: Tape, x: Var): Var {
    return layernorm(
      tape,
      x,
      this.weights.get('transformer.ln_f.weight'),
      this.weights.get('transformer.ln_f.bias'),
      this.cfg.normEps,
      'transformer.ln_f',
    );
  }
}

function gpt2Linears(cfg: ModelConfig, layer: number): LinearModule[] {
  const C = cfg.hiddenSize;
  const F = cfg.intermediateSize;
  const p = `transformer.h.${layer}`;
  let slot = 0;
  const m = (path: string, target: string, inFeatures: number, outFeatures: number): LinearModule => ({
    path: `${p}.${path}`,
    target,
    layer,
    slot: slot++,
    inFeatures,
    outFeatures,
    transposed: true,
    hasBias: true,
  });
  return [
    m('attn.c_attn', 'c_attn', C, 3 * C),
    m('attn.c_proj', 'c_proj', C, C),
    m('mlp.c_fc', 'c_fc', C, F),
    m('mlp.c_proj', 'c_proj', F, C),
  ];
}

export const gpt2: FamilySpec = {
  family: 'gpt2',
  name: 'GPT-2',
  examples: ['openai-community/gpt2', 'distilbert/distilgpt2'],
  architectures: ['GPT2LMHeadModel'],
  modelType: 'gpt2',

  parseConfig(json, r, architecture) {
    const hiddenSize = r.int('n_embd');
    const numHeads = r.int('n_head');
    if (hiddenSize % numHeads !== 0) r.fail(`n_embd (${hiddenSize}) is not divisible by n_head (${numHeads})`);
    const act = r.str('activation_function', 'gelu_new');
    if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh')
      r.fail(`activation_function "${act}" is not supported; WebLoRA implements GPT-2's tanh GELU (gelu_new)`);
    if (!r.bool('scale_attn_weights', true)) r.fail('scale_attn_weights: false is not supported');
    if (r.bool('scale_attn_by_inverse_layer_idx', false))
      r.fail('scale_attn_by_inverse_layer_idx: true is not supported');
    if (!r.bool('tie_word_embeddings', true))
      r.fail('tie_word_embeddings: false is not supported for GPT-2; WebLoRA uses wte as the LM head');
    return {
      family: 'gpt2',
      architecture,
      vocabSize: r.int('vocab_size'),
      hiddenSize,
      numLayers: r.layers('n_layer'),
      numHeads,
      numKvHeads: numHeads,
      headDim: hiddenSize / numHeads,
      intermediateSize: r.int('n_inner', 4 * hiddenSize), // n_inner: null -> 4 * n_embd
      maxPositions: r.int('n_positions', 1024),
      normEps: r.num('layer_norm_epsilon', 1e-5),
      ropeTheta: 0,
      tieEmbeddings: true,
      attnBias: true,
      act: 'gelu_tanh',
      bosTokenId: r.tokenId('bos_token_id', 50256),
      eosTokenId: r.tokenIds('eos_token_id', 50256),
    };
  },

  tensors(cfg) {
    const m = new Map<string, number[]>();
    const { hiddenSize: H, vocabSize: V } = cfg;
    m.set('transformer.wte.weight', [V, H]);
    m.set('transformer.wpe.weight', [cfg.maxPositions, H]);
    for (let l = 0; l < cfg.numLayers; l++) {
      const p = `transformer.h.${l}.`;
      const [cAttn, cProj, cFc, mProj] = gpt2Linears(cfg, l);
      m.set(p + 'ln_1.weight', [H]);
      m.set(p + 'ln_1.bias', [H]);
      for (const lin of [cAttn, cProj]) {
        m.set(lin.path + '.weight', [lin.inFeatures, lin.outFeatures]);
        m.set(lin.path + '.bias', [lin.outFeatures]);
      }
      m.set(p + 'ln_2.weight', [H]);
      m.set(p + 'ln_2.bias', [H]);
      for (const lin of [cFc, mProj]) {
        m.set(lin.path + '.weight', [lin.inFeatures, lin.outFeatures]);
        m.set(lin.path + '.bias', [lin.outFeatures]);
      }
    }
    m.set('transformer.ln_f.weight', [H]);
    m.set('transformer.ln_f.bias', [H]);
    return m;
  },

  linears: gpt2Linears,

  weightNames(cfg) {
    const large: string[] = [];
    const small: string[] = [];
    for (let i = 0; i < cfg.numLayers; i++) {
      for (const m of gpt2Linears(cfg, i)) {
        large.push(`${m.path}.weight`);
        small.push(`${m.path}.bias`);
      }
    }
    for (let i = 0; i < cfg.numLayers; i++) {
      for (const ln of ['ln_1', 'ln_2']) small.push(`transformer.h.${i}.${ln}.weight`, `transformer.h.${i}.${ln}.bias`);
    }
    small.push('transformer.ln_f.weight', 'transformer.ln_f.bias', 'transformer.wpe.weight');
    return { large, small, tables: ['transformer.wte.weight'] };
  },

  // attn.c_proj and mlp.c_proj are both "c_proj", as in PEFT (suffix match on the module name).
  loraTargets: ['c_attn', 'c_proj', 'c_fc'],
  defaultTargets: ['c_attn'],

  blockFloatsPerRow(cfg) {
    // x, n1, q, k, v, attn out, h, n2 (8C) + fc out, gelu out (2I) + lse + 2×(mean, rstd)
    return 8 * cfg.hiddenSize + 2 * cfg.intermediateSize + cfg.numHeads + 4;
  },
  finalNormStatsPerRow: 2,

  model: (cfg, weights) => new GPT2(cfg, weights),
};
