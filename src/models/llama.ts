// Llama (SmolLM, TinyLlama, Llama 2/3, our bundled model) and Qwen2 (the same plus q/k/v biases),
// as Hugging Face's LlamaForCausalLM computes it:
//
//   h   = x + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))   n1 = rmsnorm(x)
//   out = h + down_proj(silu(gate_proj(n2)) · up_proj(n2))                        n2 = rmsnorm(h)
//
// x is (B·T, C). Grouped-query attention: Hq query heads share Hkv key/value heads.

import { add, linear, rmsnorm, rope, swiglu } from '../autograd/ops';
import type { Tape, Var } from '../autograd/tape';
import type { Tensor } from '../gpu/tensor';
import { embedding_forward } from '../kernels/embedding';
import type { ModelConfig } from './config';
import type { LoraState } from './lora';
import { frozenLinear, selfAttention, type CausalLM, type RunInfo } from './model';
import type { GpuWeights } from './weights';

export class Llama implements CausalLM {
  constructor(
    readonly cfg: ModelConfig,
    readonly weights: GpuWeights,
  ) {
    if (cfg.family !== 'llama' && cfg.family !== 'qwen2') throw new Error(`Llama model given a ${cfg.family} config`);
  }

  embed(ids: Tensor, _run: RunInfo): Tensor {
    return embedding_forward(ids, this.weights.embedding);
  }

  block(i: number, tape: Tape, x: Var, lora: LoraState | null, run: RunInfo): Var {
    const c = this.cfg;
    const p = `model.layers.${i}`;
    const lin = (name: string, input: Var) => {
      const path = `${p}.${name}`;
      const branch = lora?.branch(tape, path, run.dropoutSeed ?? null) ?? null;
      return linear(tape, input, frozenLinear(this.weights, path, false), branch, path);
    };
    const ropeOpts = {
      headDim: c.headDim,
      theta: c.ropeTheta,
      seqLen: run.T,
      posOffset: run.posOffset,
      invFreq: this.weights.get('rope.inv_freq'),
    };

    // attention
    const n1 = rmsnorm(tape, x, this.weights.get(`${p}.input_layernorm.weight`), c.normEps, `${p}.input_layernorm`);
    const q = rope(tape, lin('self_attn.q_proj', n1), { ...ropeOpts, heads: c.numHeads }, `${p}.rope_q`);
    const k = rope(tape, lin('self_attn.k_proj', n1), { ...ropeOpts, heads: c.numKvHeads }, `${p}.rope_k`);
    const v = lin('self_attn.v_proj', n1);
    const a = selfAttention(
      tape,
      q,
      k,
      v,
      { heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim, seqLen: run.T },
      run,
      i,
      `${p}.attn`,
    );
    const h = add(tape, x, lin('self_attn.o_proj', a), `${p}.resid_attn`);

    // MLP
    const n2 = rmsnorm(
      tape,
      h,
      this.weights.get(`${p}.post_attention_layernorm.weight`),
      c.normEps,
      `${p}.post_attention_layernorm`,
    );
    const m = swiglu(tape, lin('mlp.gate_proj', n2), lin('mlp.up_proj', n2), `${p}.swiglu`);
    return add(tape, h, lin('mlp.down_proj', m), `${p}.resid_mlp`);
  }

  finalNorm(tape: Tape, x: Var): Var {
    return rmsnorm(tape, x, this.weights.get('model.norm.weight'), this.cfg.normEps, 'model.norm');
  }
}
