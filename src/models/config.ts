// Hugging Face config.json -> ModelConfig, read the way transformers reads it (LlamaConfig, Qwen2Config,
// Qwen3Config, SmolLM3Config, MistralConfig, GPT2Config). What each family reads lives in its own file under ./families/;
// this module is the entry point the rest of WebLoRA uses (parseConfig, expectedTensors, the target lists).

import { ARCHITECTURES, FAMILIES, architectureOf, familySpec } from './families';
import { ConfigError, reader, type Family, type Json, type ModelConfig } from './families/types';

export { ConfigError, type Family, type ModelConfig };

/** HF architecture -> family, for every family WebLoRA loads. */
export const SUPPORTED_ARCHITECTURES: Record<string, Family> = ARCHITECTURES;

/** config.json (parsed JSON) -> ModelConfig. Throws ConfigError naming the file and the problem. */
export function parseConfig(json: unknown, fileName = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ConfigError(`${fileName}: expected a JSON object`);
  const j = json as Json;
  const architecture = architectureOf(j, fileName);
  return familySpec(SUPPORTED_ARCHITECTURES[architecture]).parseConfig(j, reader(j, fileName), architecture);
}

/** Every tensor name in a Hugging Face checkpoint of this config -> its shape (GPT-2 Conv1D as [in, out]). */
export function expectedTensors(cfg: ModelConfig): Map<string, number[]> {
  return familySpec(cfg).tensors(cfg);
}

/** Number of parameters, tied embeddings counted once (as model.num_parameters() does). */
export function paramCount(cfg: ModelConfig): number {
  let n = 0;
  for (const shape of expectedTensors(cfg).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * Module names LoRA may target, as PEFT's target_modules spells them: the one list per family (from its
 * description), read by settings validation, module selection, and the page (through the engine's model
 * summary).
 */
export const LORA_TARGETS = Object.fromEntries(Object.values(FAMILIES).map((s) => [s.family, s.loraTargets])) as Record<
  Family,
  string[]
>;

/** PEFT's defaults (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
export const DEFAULT_TARGETS = Object.fromEntries(
  Object.values(FAMILIES).map((s) => [s.family, s.defaultTargets]),
) as Record<Family, string[]>;
