// The registry of model families. Adding a family: one file here exporting a FamilySpec, listed below,
// plus its golden fixtures (tools/golden.py) and tests. Everything else (config parsing, tensor names,
// linear modules, LoRA targets, weight upload, the memory estimate, the model code, the UI's target list,
// the studio's list of families with example repos) reads from the spec.

import { ConfigError, type Family, type FamilySpec, type Json, type ModelConfig } from './types';
import { gemma3 } from './gemma3';
import { gpt2 } from './gpt2';
import { llama } from './llama';
import { mistral } from './mistral';
import { qwen2 } from './qwen2';
import { qwen3 } from './qwen3';
import { smollm3 } from './smollm3';

export const FAMILIES: Record<Family, FamilySpec> = { llama, qwen2, gpt2, qwen3, smollm3, gemma3, mistral };

export function familySpec(f: Family | ModelConfig): FamilySpec {
  const spec = FAMILIES[typeof f === 'string' ? f : f.family];
  if (!spec) throw new Error(`unknown model family ${JSON.stringify(typeof f === 'string' ? f : f.family)}`);
  return spec;
}

/** HF architecture -> family, for every family. */
export const ARCHITECTURES: Record<string, Family> = Object.fromEntries(
  Object.values(FAMILIES).flatMap((s) => s.architectures.map((a) => [a, s.family])),
);

/**
 * Checkpoints people try that are close to a supported family but are not one: a clear reason each. They need
 * parts WebLoRA does not have.
 */
const NOT_SUPPORTED: Record<string, string> = {
  Gemma3ForConditionalGeneration:
    'this is a Gemma 3 multimodal checkpoint (vision tower + language model, the text model under "text_config"); WebLoRA fine-tunes text-only causal LMs such as Gemma3ForCausalLM (gemma-3-270m, gemma-3-1b)',
  Gemma3nForCausalLM:
    'Gemma 3n (per-layer embeddings, AltUp, LAuReL, MatFormer) is not supported; WebLoRA fine-tunes standard decoder-only Transformers',
  Gemma3nForConditionalGeneration:
    'Gemma 3n (per-layer embeddings, AltUp, LAuReL, MatFormer, audio and vision towers) is not supported; WebLoRA fine-tunes standard decoder-only text Transformers',
};

/** config.json's architecture (or model_type when "architectures" is absent), checked against the registry. */
export function architectureOf(json: Json, fileName: string): string {
  const supported = Object.keys(ARCHITECTURES).join(', ');
  const archs = json.architectures;
  if (Array.isArray(archs) && archs.length > 0) {
    const known = archs.find((a) => typeof a === 'string' && a in ARCHITECTURES);
    if (known) return known;
    const named = archs.find((a) => typeof a === 'string' && a in NOT_SUPPORTED);
    const why = named ? ` (${NOT_SUPPORTED[named]})` : '';
    throw new ConfigError(
      `${fileName}: architecture ${archs.map((a) => JSON.stringify(a)).join(', ')} is not supported${why}; WebLoRA loads ${supported}. Pick a model of one of those families.`,
    );
  }
  const mt = json.model_type;
  const byType = Object.values(FAMILIES).find((s) => s.modelType === mt);
  if (byType) return byType.architectures[0];
  throw new ConfigError(
    `${fileName}: neither "architectures" nor a known "model_type" (${JSON.stringify(mt ?? null)}) says which model this is; WebLoRA loads ${supported}.`,
  );
}
