// Qwen3 (Qwen3ForCausalLM: Qwen3 0.6B .. 32B dense): the Llama block (./llama.ts) with a per-head RMSNorm on
// q and k before RoPE, and an explicit head_dim that need not be hidden_size / num_attention_heads. As
// modeling_qwen3.py computes it, x is (B·T, C):
//
//   q = rope(rmsnorm_per_head(q_proj(n1)) · q_norm)     q_proj: C -> Hq·D, q_norm: (D,)
//   k = rope(rmsnorm_per_head(k_proj(n1)) · k_norm)     k_proj: C -> Hkv·D, k_norm: (D,)
//   v = v_proj(n1);  h = x + o_proj(attention(q, k, v))  o_proj: Hq·D -> C
//
// No q/k/v bias (attention_bias: true is refused), tie_word_embeddings as the config says. Qwen3Config
// always writes head_dim, so it is required here. Sliding-window layers as Qwen2's (./qwen2.ts).

import { llamaShaped, parseLlamaLike, qwenSliding, refuseBiases } from './llama';
import type { FamilySpec } from './types';

export const qwen3: FamilySpec = {
  ...llamaShaped,
  family: 'qwen3',
  name: 'Qwen3',
  examples: ['Qwen/Qwen3-0.6B', 'Qwen/Qwen3-1.7B'],
  architectures: ['Qwen3ForCausalLM'],
  modelType: 'qwen3',
  parseConfig(json, r, architecture) {
    refuseBiases(r, architecture);
    const defaults = {
      kvHeads: () => 32, // Qwen3Config's __init__ default
      maxPositions: 32768,
      ropeTheta: 10000,
      tie: false,
      bos: null,
      eos: null,
      headDimRequired: true,
    };
    const cfg = parseLlamaLike(json, r, 'qwen3', architecture, defaults, qwenSliding(json, r));
    return { ...cfg, qkNorm: true };
  },
};
