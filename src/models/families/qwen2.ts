// Qwen2 / Qwen2.5 (Qwen2ForCausalLM): the Llama block (./llama.ts) with biases on q_proj, k_proj and v_proj
// (none on o_proj or the MLP), as modeling_qwen2.py computes it:
//
//   q = q_proj(n1) + b_q    k = k_proj(n1) + b_k    v = v_proj(n1) + b_v
//
// With use_sliding_window: true, the layers from max_window_layers on (or those layer_types marks
// "sliding_attention") attend through a window of sliding_window keys: position i sees i − W < j ≤ i.

import { llamaShaped, parseLlamaLike, qwenSliding } from './llama';
import type { FamilySpec } from './types';

export const qwen2: FamilySpec = {
  ...llamaShaped,
  family: 'qwen2',
  name: 'Qwen2 / Qwen2.5',
  examples: ['Qwen/Qwen2.5-0.5B', 'Qwen/Qwen2.5-0.5B-Instruct'],
  architectures: ['Qwen2ForCausalLM'],
  modelType: 'qwen2',
  parseConfig(json, r, architecture) {
    // Qwen2Config: num_key_value_heads absent -> 32 (the __init__ default), null -> num_attention_heads.
    const defaults = {
      kvHeads: () => 32,
      maxPositions: 32768,
      ropeTheta: 10000,
      tie: false,
      bos: null,
      eos: null,
      headDimRequired: false,
    };
    const cfg = parseLlamaLike(json, r, 'qwen2', architecture, defaults, qwenSliding(json, r));
    return { ...cfg, attnBias: true }; // Qwen2 always has q/k/v biases
  },
};
