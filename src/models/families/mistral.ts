// Mistral (MistralForCausalLM: Mistral 7B v0.1 .. v0.3, Mistral NeMo, and the small Mistral-shaped models
// on the Hub): the Llama block (./llama.ts) whose attention may slide, as modeling_mistral.py computes it:
//
//   attention(q, k, v): position i sees keys j with  i − W < j ≤ i     W = sliding_window, every layer
//
// sliding_window null means plain causal attention (Mistral 7B v0.2 and later); absent, it is 4096, as
// MistralConfig's __init__ default is (Mistral 7B v0.1 writes 4096). head_dim may be given and need not be
// hidden_size / num_attention_heads (Mistral NeMo: 5120 / 32 heads, head_dim 128). No biases anywhere
// (MistralAttention builds q/k/v/o without them, whatever the config says), untied by default.

import { FULL_WINDOW, llamaShaped, parseLlamaLike } from './llama';
import type { FamilySpec } from './types';

export const mistral: FamilySpec = {
  ...llamaShaped,
  family: 'mistral',
  name: 'Mistral',
  examples: ['Locutusque/TinyMistral-248M', 'mistralai/Mistral-7B-v0.1'],
  architectures: ['MistralForCausalLM'],
  modelType: 'mistral',
  parseConfig(json, r, architecture) {
    const defaults = {
      kvHeads: () => 8, // MistralConfig's __init__ default
      maxPositions: 4096 * 32,
      ropeTheta: 10000,
      tie: false,
      bos: 1,
      eos: 2,
      headDimRequired: false,
    };
    // MistralModel slides by config.sliding_window alone: use_sliding_window and max_window_layers are
    // Qwen2's switches, not Mistral's, so no layer list is refused here.
    const cfg = parseLlamaLike(json, r, 'mistral', architecture, defaults, null);
    const W = json.sliding_window === null ? 0 : r.int('sliding_window', 4096);
    if (!(W > 0 && W < FULL_WINDOW)) return cfg;
    return { ...cfg, slidingLayers: Array(cfg.numLayers).fill(true), slidingWindow: W };
  },
};
