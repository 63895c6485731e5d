// LoRA adapters as llama.cpp's adapter GGUF, the file `llama-cli -m base.gguf --lora adapter.gguf` loads,
// laid out as llama.cpp's convert_lora_to_gguf.py writes it and as its loader (src/llama-adapter.cpp) checks:
//
//   metadata  general.architecture = the base's GGUF arch (llama, qwen2, qwen3, gemma3), general.type = adapter,
//             adapter.type = lora, adapter.lora.alpha (f32), general.name
//   tensors   blk.N.<module>.weight.lora_a  (r, IN)  ggml ne [IN, r]     F32
//             blk.N.<module>.weight.lora_b  (OUT, r) ggml ne [r, OUT]    F32
//
// llama.cpp checks base ne[0] == a.ne[0] (IN), base ne[1] == b.ne[1] (OUT), a.ne[1] == b.ne[0] (r), and
// computes W·x + s·B·(A·x) with s = alpha / r (times the user's --lora-scaled factor). So:
//   - rsLoRA's scale alpha/√r is written as alpha' = alpha·√r, which llama.cpp's alpha'/r turns back into it;
//   - for the llama architecture, whose q_proj / k_proj rows convert_hf_to_gguf.py permuted (see
//     src/loaders/gguf-model.ts), B of q_proj and k_proj gets the same row permutation (A is untouched:
//     permuting W's rows is permuting B·A's rows, which are B's rows).

import { GGUF_VALUE, writeGguf, type GgufTensorToWrite } from '../loaders/gguf';
import { GGUF_ARCHES, ggufName, permuteRows } from '../loaders/gguf-model';
import type { ModelConfig } from '../models/config';
import { linearModules } from '../models/modules';
import type { LoraArrays, LoraConfig } from '../models/lora';
import { AdapterError } from './peft';

/** The GGUF architecture name of a model config, or null when llama.cpp has no GGUF of this family here. */
export function ggufArchOfConfig(cfg: ModelConfig): string | null {
  const hit = Object.entries(GGUF_ARCHES).find(([, a]) => a.architecture === cfg.architecture);
  return hit ? hit[0] : null;
}

/** The alpha llama.cpp must see so that its alpha/r is our scale. */
export function ggufAlpha(lc: LoraConfig): number {
  return lc.useRslora ? lc.alpha * Math.sqrt(lc.r) : lc.alpha;
}

/** adapter.gguf for llama.cpp. Throws for a family llama.cpp's adapter loader is not mapped for here. */
export function exportGgufAdapter(cfg: ModelConfig, lc: LoraConfig, arrays: LoraArrays, name: string): Uint8Array {
  const arch = ggufArchOfConfig(cfg);
  if (arch === null)
    throw new AdapterError(
      `a GGUF adapter for llama.cpp is written for ${Object.keys(GGUF_ARCHES).join(', ')} models; ${cfg.architecture} is not one (its PEFT files still work)`,
    );
  const ga = GGUF_ARCHES[arch];
  const permuted = ga.permuteQK;
  const tensors: GgufTensorToWrite[] = [];
  for (const m of linearModules(cfg)) {
    const a = arrays.get(m.path);
    if (!a) continue;
    const base = ggufName(`${m.path}.weight`, ga);
    if (base === null) throw new AdapterError(`module '${m.path}' has no llama.cpp tensor name`);
    const heads = !permuted
      ? null
      : m.target === 'q_proj'
        ? cfg.numHeads
        : m.target === 'k_proj'
          ? cfg.numKvHeads
          : null;
    const B = heads === null ? a.B : permuteRows(a.B, m.outFeatures, lc.r, heads);
    tensors.push({ name: `${base}.lora_a`, shape: [lc.r, m.inFeatures], type: 'F32', data: a.A });
    tensors.push({ name: `${base}.lora_b`, shape: [m.outFeatures, lc.r], type: 'F32', data: B });
  }
  if (!tensors.length) throw new AdapterError('the adapter has no LoRA tensors to write');
  return writeGguf(
    [
      { key: 'general.architecture', type: GGUF_VALUE.STRING, value: arch },
      { key: 'general.type', type: GGUF_VALUE.STRING, value: 'adapter' },
      { key: 'general.name', type: GGUF_VALUE.STRING, value: name },
      { key: 'adapter.type', type: GGUF_VALUE.STRING, value: 'lora' },
      { key: 'adapter.lora.alpha', type: GGUF_VALUE.FLOAT32, value: ggufAlpha(lc) },
    ],
    tensors,
  );
}
