// The linear layers of each family, by their Hugging Face module path. LoRA attaches to these, the
// adapter file names its tensors after them, and the model code reads their weights.

import { ConfigError, LORA_TARGETS, type ModelConfig } from './config';

export interface LinearModule {
  /** Full HF module path, e.g. `model.layers.0.self_attn.q_proj` or `transformer.h.0.attn.c_attn`. */
  path: string;
  /** The name PEFT's target_modules match, e.g. `q_proj`, `c_attn`, `c_proj`. */
  target: string;
  layer: number;
  /** Position among its layer's linear modules, in the order the forward pass runs them. */
  slot: number;
  inFeatures: number;
  outFeatures: number;
  /** GPT-2 Conv1D stores the weight as (IN, OUT). */
  transposed: boolean;
  hasBias: boolean;
}

export function linearModules(cfg: ModelConfig): LinearModule[] {
  const mods: LinearModule[] = [];
  const C = cfg.hiddenSize;
  for (let i = 0; i < cfg.numLayers; i++) {
    let slot = 0;
    if (cfg.family === 'gpt2') {
      const p = `transformer.h.${i}`;
      const F = cfg.intermediateSize;
      const m = (path: string, target: string, inF: number, outF: number) =>
        mods.push({
          path: `${p}.${path}`,
          target,
          layer: i,
          slot: slot++,
          inFeatures: inF,
          outFeatures: outF,
          transposed: true,
          hasBias: true,
        });
      m('attn.c_attn', 'c_attn', C, 3 * C);
      m('attn.c_proj', 'c_proj', C, C);
      m('mlp.c_fc', 'c_fc', C, F);
      m('mlp.c_proj', 'c_proj', F, C);
    } else {
      const p = `model.layers.${i}`;
      const q = cfg.numHeads * cfg.headDim;
      const kv = cfg.numKvHeads * cfg.headDim;
      const F = cfg.intermediateSize;
      const m = (path: string, inF: number, outF: number, bias: boolean) =>
        mods.push({
          path: `${p}.${path}`,
          target: path.split('.').pop()!,
          layer: i,
          slot: slot++,
          inFeatures: inF,
          outFeatures: outF,
          transposed: false,
          hasBias: bias,
        });
      m('self_attn.q_proj', C, q, cfg.attnBias);
      m('self_attn.k_proj', C, kv, cfg.attnBias);
      m('self_attn.v_proj', C, kv, cfg.attnBias);
      m('self_attn.o_proj', q, C, false);
      m('mlp.gate_proj', C, F, false);
      m('mlp.up_proj', C, F, false);
      m('mlp.down_proj', F, C, false);
    }
  }
  return mods;
}

/** The modules a PEFT-style target list selects (a target matches the last part of the path). */
export function selectModules(cfg: ModelConfig, targets: string[]): LinearModule[] {
  const allowed = LORA_TARGETS[cfg.family];
  for (const t of targets) {
    if (!allowed.includes(t))
      throw new ConfigError(
        `LoRA target "${t}" does not exist in ${cfg.architecture}; choose from ${allowed.join(', ')}`,
      );
  }
  return linearModules(cfg).filter((m) => targets.includes(m.target));
}
