// The linear layers of each family, by their Hugging Face module path. LoRA attaches to these, the
// adapter file names its tensors after them, and the model code reads their weights. Each family lists
// its own (src/models/families/<family>.ts linears).

import { familySpec } from './families';
import { ConfigError, type LinearModule, type ModelConfig } from './families/types';

export type { LinearModule };

export function linearModules(cfg: ModelConfig): LinearModule[] {
  const spec = familySpec(cfg);
  const mods: LinearModule[] = [];
  for (let i = 0; i < cfg.numLayers; i++) mods.push(...spec.linears(cfg, i));
  return mods;
}

/** The modules a PEFT-style target list selects (a target matches the last part of the path). */
export function selectModules(cfg: ModelConfig, targets: string[]): LinearModule[] {
  const allowed = familySpec(cfg).loraTargets;
  for (const t of targets) {
    if (!allowed.includes(t))
      throw new ConfigError(
        `LoRA target "${t}" does not exist in ${cfg.architecture}; choose from ${allowed.join(', ')}`,
      );
  }
  return linearModules(cfg).filter((m) => targets.includes(m.target));
}
