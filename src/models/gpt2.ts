// GPT-2 as Hugging Face's GPT2LMHeadModel computes it:
//
//   x0  = wte[ids] + wpe[positions]
//   h   = x + attn.c_proj(attention(split(attn.c_attn(ln_1(x)))))    c_attn gives q, k, v fused (N, 3C)
//   out = h + mlp.c_proj(gelu_tanh(mlp.c_fc(ln_2(h))))
//   logits = ln_f(out) · wteᵀ                                         (tied head)
//
// Conv1D weights are stored (IN, OUT): the linears run with w0Transposed.

import { add, gelu, layernorm, linear, splitCols } from '../autograd/ops';
import type { Tape, Var } from '../autograd/tape';
import { Tensor } from '../gpu/tensor';
import { add_forward } from '../kernels/add';
import { embedding_forward } from '../kernels/embedding';
import type { ModelConfig } from './config';
import type { LoraState } from './lora';
import { frozenLinear, selfAttention, type CausalLM, type RunInfo } from './model';
import type { GpuWeights } from './weights';

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
    const lin = (name: string, input: Var) => {
      const path = `${p}.${name}`;
      const branch = lora?.branch(tape, path, run.dropoutSeed ?? null) ?? null;
      return linear(tape, input, frozenLinear(this.weights, path, true), branch, path);
    };

    // attention
    const n1 = layernorm(tape, x, w('ln_1.weight'), w('ln_1.bias'), c.normEps, `${p}.ln_1`);
    const qkv = lin('attn.c_attn', n1);
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
    const h = add(tape, x, lin('attn.c_proj', a), `${p}.resid_attn`);

    // MLP
    const n2 = layernorm(tape, h, w('ln_2.weight'), w('ln_2.bias'), c.normEps, `${p}.ln_2`);
    const f = gelu(tape, lin('mlp.c_fc', n2), `${p}.gelu`);
    return add(tape, h, lin('mlp.c_proj', f), `${p}.resid_mlp`);
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
