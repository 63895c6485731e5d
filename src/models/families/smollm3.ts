// SmolLM3 (SmolLM3ForCausalLM): the Llama block (./llama.ts) where some layers skip RoPE ("NoPE"), as
// modeling_smollm3.py computes it:
//
//   use_rope = no_rope_layers[layer]          1: q, k = rope(q), rope(k);  0: q, k used as projected
//
// no_rope_layers absent: every no_rope_layer_interval-th layer (default 4) is NoPE, i.e.
// no_rope_layers[i] = int((i + 1) % interval != 0), as SmolLM3Config builds it. No biases; tied by default.

import { llamaShaped, parseLlamaLike, refuseBiases } from './llama';
import type { ConfigReader, FamilySpec, Json } from './types';

/** no_rope_layers (1 = RoPE, 0 = NoPE) per layer, given or built from no_rope_layer_interval. */
function ropeLayers(json: Json, r: ConfigReader, numLayers: number): boolean[] {
  const v = json.no_rope_layers;
  if (v === undefined || v === null) {
    const interval = r.int('no_rope_layer_interval', 4);
    return Array.from({ length: numLayers }, (_, i) => (i + 1) % interval !== 0);
  }
  if (!Array.isArray(v) || v.length !== numLayers || !v.every((x) => x === 0 || x === 1))
    r.fail(
      `"no_rope_layers" is ${JSON.stringify(v)}; expected ${numLayers} entries (num_hidden_layers), each 1 (RoPE) or 0 (no RoPE)`,
    );
  return (v as number[]).map((x) => x === 1);
}

export const smollm3: FamilySpec = {
  ...llamaShaped,
  family: 'smollm3',
  name: 'SmolLM3',
  examples: ['HuggingFaceTB/SmolLM3-3B'],
  architectures: ['SmolLM3ForCausalLM'],
  modelType: 'smollm3',
  parseConfig(json, r, architecture) {
    refuseBiases(r, architecture);
    const defaults = {
      kvHeads: () => 4, // SmolLM3Config's __init__ default
      maxPositions: 32768,
      ropeTheta: 2000000,
      tie: true,
      bos: 128000,
      eos: 128001,
      headDimRequired: false,
    };
    const numLayers = r.layers('num_hidden_layers');
    const rope = ropeLayers(json, r, numLayers);
    // SmolLM3Config keeps sliding_window (default null) whatever use_sliding_window says; its default
    // layer_types: a layer slides when use_sliding_window, sliding_window is set and it has no RoPE.
    const window = json.sliding_window === undefined || json.sliding_window === null ? null : r.int('sliding_window');
    const on = r.bool('use_sliding_window', false) && window !== null;
    const sliding = { window, defaults: () => (on ? rope.flatMap((uses, i) => (uses ? [] : [i])) : []) };
    const cfg = parseLlamaLike(json, r, 'smollm3', architecture, defaults, sliding);
    return { ...cfg, ropeLayers: rope };
  },
};
