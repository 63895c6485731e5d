// Hugging Face PEFT LoRA adapters: the exact files PEFT writes and reads.
//   adapter_model.safetensors  base_model.model.<module>.lora_A.weight (r, IN), .lora_B.weight (OUT, r)
//   adapter_config.json        PEFT's LoraConfig, keys sorted as PEFT writes them
//   README.md                  a model card with YAML front matter (library_name: peft, base_model)

import { zipSync, unzipSync, strToU8, strFromU8 } from 'fflate';
import { parseSafetensorsHeader, decodeFloat, writeSafetensors } from '../loaders/safetensors';
import type { ModelConfig } from '../models/config';
import { readAll, readText } from '../loaders/byte-source';
import type { ModelSource } from '../loaders/sources';
import { linearModules } from '../models/modules';
import type { LoraArrays, LoraConfig } from '../models/lora';

const PREFIX = 'base_model.model.';

export interface AdapterFiles {
  'adapter_model.safetensors': Uint8Array;
  'adapter_config.json': string;
  'README.md': string;
}

export interface CardInfo {
  name: string;
  baseModel: string;
  dataset: string;
  settings: Record<string, unknown>;
  trainLoss: number | null;
  valLoss: number | null;
  sample: string | null;
  /** The adapter's llama.cpp GGUF file name (src/adapters/gguf-lora.ts), when the family has one. */
  ggufFile?: string | null;
}

export class AdapterError extends Error {}

export function peftConfig(cfg: ModelConfig, lc: LoraConfig, baseModel: string): Record<string, unknown> {
  const c: Record<string, unknown> = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: cfg.family === 'gpt2',
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: lc.alpha,
    lora_dropout: lc.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: lc.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...lc.targets].sort(),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: lc.useRslora,
  };
  return Object.fromEntries(
    Object.keys(c)
      .sort()
      .map((k) => [k, c[k]]),
  );
}

function yamlString(s: string): string {
  return JSON.stringify(s); // a JSON string is a valid YAML double-quoted scalar
}

export function modelCard(info: CardInfo): string {
  const fmt = (x: number | null) => (x === null || !Number.isFinite(x) ? 'n/a' : x.toFixed(4));
  const settings = Object.entries(info.settings)
    .map(([k, v]) => `| ${k} | ${Array.isArray(v) ? v.join(', ') : String(v)} |`)
    .join('\n');
  return `---
library_name: peft
base_model: ${yamlString(info.baseModel)}
tags:
- lora
- weblora
---

# ${info.name}

A LoRA adapter for \`${info.baseModel}\`, fine-tuned in the browser with WebLoRA.

- Dataset: ${info.dataset}
- Final training loss: ${fmt(info.trainLoss)}
- Final validation loss: ${fmt(info.valLoss)}

## Settings

| setting | value |
|---|---|
${settings}

## Sample

\`\`\`
${info.sample ?? '(none)'}
\`\`\`

## Use with PEFT

\`\`\`python
from peft import PeftModel
from transformers import AutoModelForCausalLM
base = AutoModelForCausalLM.from_pretrained(${JSON.stringify(info.baseModel)})
model = PeftModel.from_pretrained(base, "path/to/this/folder")
\`\`\`
${info.ggufFile ? llamaCppSection(info.baseModel, info.ggufFile) : ''}`;
}

function llamaCppSection(baseModel: string, ggufFile: string): string {
  return `
## Use with llama.cpp

\`${ggufFile}\` is this adapter as a llama.cpp LoRA GGUF. \`base.gguf\` is a GGUF of \`${baseModel}\` (any
quantisation; convert_hf_to_gguf.py makes one from the Hugging Face checkpoint):

\`\`\`sh
llama-cli -m base.gguf --lora ${ggufFile}
\`\`\`
`;
}

/** The three PEFT files for an adapter. Tensors are written in module order, as f32. */
export function exportAdapter(cfg: ModelConfig, lc: LoraConfig, arrays: LoraArrays, card: CardInfo): AdapterFiles {
  const tensors = [];
  for (const m of linearModules(cfg)) {
    const a = arrays.get(m.path);
    if (!a) continue;
    tensors.push({
      name: `${PREFIX}${m.path}.lora_A.weight`,
      dtype: 'F32' as const,
      shape: [lc.r, m.inFeatures],
      data: a.A,
    });
    tensors.push({
      name: `${PREFIX}${m.path}.lora_B.weight`,
      dtype: 'F32' as const,
      shape: [m.outFeatures, lc.r],
      data: a.B,
    });
  }
  return {
    'adapter_model.safetensors': writeSafetensors(tensors, { format: 'pt' }),
    'adapter_config.json': JSON.stringify(peftConfig(cfg, lc, card.baseModel), null, 2) + '\n',
    'README.md': modelCard(card),
  };
}

export function zipAdapter(files: AdapterFiles): Uint8Array {
  return zipSync({
    'adapter_model.safetensors': files['adapter_model.safetensors'],
    'adapter_config.json': strToU8(files['adapter_config.json']),
    'README.md': strToU8(files['README.md']),
  });
}

/** The most bytes one adapter file may unpack to (a rank-64 adapter of a 1.5B model is ~150 MB in f32). */
export const MAX_ADAPTER_ENTRY_BYTES = 1 << 30;
/** Above this compression ratio (for entries over 1 MiB) an entry is taken for a zip bomb: weights barely compress. */
export const MAX_ZIP_RATIO = 100;
const ADAPTER_NAMES = new Set(['adapter_model.safetensors', 'adapter_config.json', 'README.md']);

/**
 * Checks a zip's directory before unpacking anything: no absolute or '../' paths, each adapter file at
 * most once, and no entry that would unpack to more than MAX_ADAPTER_ENTRY_BYTES or compresses better
 * than MAX_ZIP_RATIO:1. Returns the problem, or null.
 */
function zipEntryProblem(f: { name: string; size: number; originalSize: number }, seen: Map<string, string>) {
  if (f.name.startsWith('/') || f.name.split(/[/\\]/).includes('..'))
    return `entry "${f.name}" has an unsafe path (absolute or with '..'); a zip of an adapter holds plain file names`;
  const base = f.name.split('/').pop()!;
  if (!ADAPTER_NAMES.has(base)) return null;
  const before = seen.get(base);
  if (before !== undefined) return `it holds ${base} twice ("${before}" and "${f.name}"); put one adapter in a zip`;
  seen.set(base, f.name);
  if (f.originalSize > MAX_ADAPTER_ENTRY_BYTES)
    return `${f.name} would unpack to ${f.originalSize} bytes, more than the ${MAX_ADAPTER_ENTRY_BYTES}-byte limit for an adapter file`;
  if (f.originalSize > 1 << 20 && f.originalSize > MAX_ZIP_RATIO * f.size)
    return `${f.name} would unpack from ${f.size} to ${f.originalSize} bytes (${Math.round(f.originalSize / Math.max(1, f.size))}:1); LoRA weights do not compress like that, so this looks like a zip bomb`;
  return null;
}

/** The adapter files from a zip (at its root or in one folder); `fileName` names the zip in errors. */
export function unzipAdapter(zip: Uint8Array, fileName = 'the adapter zip'): Partial<AdapterFiles> {
  let entries: Record<string, Uint8Array>;
  let problem: string | null = null;
  const seen = new Map<string, string>();
  const declared = new Map<string, number>();
  try {
    entries = unzipSync(zip, {
      filter: (f) => {
        problem ??= zipEntryProblem(f, seen);
        declared.set(f.name, f.originalSize);
        return problem === null && ADAPTER_NAMES.has(f.name.split('/').pop()!);
      },
    });
  } catch (e) {
    throw new AdapterError(`${fileName} is not a valid zip (${(e as Error).message}); export the adapter again`);
  }
  if (problem !== null) throw new AdapterError(`${fileName}: ${problem}`);
  for (const [path, bytes] of Object.entries(entries))
    if (bytes.byteLength !== declared.get(path))
      throw new AdapterError(
        `${fileName}: ${path} unpacked to ${bytes.byteLength} bytes but the zip declares ${declared.get(path)}; the zip is corrupt, export the adapter again`,
      );
  const out: Partial<AdapterFiles> = {};
  for (const [path, bytes] of Object.entries(entries)) {
    const base = path.split('/').pop()!;
    if (base === 'adapter_model.safetensors') out['adapter_model.safetensors'] = bytes;
    else if (base === 'adapter_config.json') out['adapter_config.json'] = strFromU8(bytes);
    else if (base === 'README.md') out['README.md'] = strFromU8(bytes);
  }
  return out;
}

/**
 * The adapter files among a user's upload: one zip (unpacked, its errors naming the file as uploaded),
 * or adapter_config.json, adapter_model.safetensors and README.md picked one by one.
 */
export async function adapterFilesFromUpload(files: File[]): Promise<Partial<AdapterFiles>> {
  if (files.length === 1 && /\.zip$/i.test(files[0].name))
    return unzipAdapter(new Uint8Array(await files[0].arrayBuffer()), files[0].name);
  const out: Partial<AdapterFiles> = {};
  for (const f of files) {
    if (f.name === 'adapter_model.safetensors')
      out['adapter_model.safetensors'] = new Uint8Array(await f.arrayBuffer());
    else if (f.name === 'adapter_config.json') out['adapter_config.json'] = await f.text();
    else if (f.name === 'README.md') out['README.md'] = await f.text();
  }
  return out;
}

export interface ImportedAdapter {
  lora: LoraConfig;
  arrays: LoraArrays;
  baseModel: string;
  warnings: string[];
}

/**
 * Reads a PEFT adapter and checks it against the loaded base model: every tensor name and shape,
 * the options we support, and the base model id (a mismatch is a warning; a shape mismatch refuses).
 */
export function importAdapter(files: Partial<AdapterFiles>, cfg: ModelConfig, baseModelId: string): ImportedAdapter {
  const cfgText = files['adapter_config.json'];
  const st = files['adapter_model.safetensors'];
  if (!cfgText)
    throw new AdapterError(
      'adapter_config.json is missing: a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors',
    );
  if (!st)
    throw new AdapterError(
      'adapter_model.safetensors is missing (adapter_model.bin pickles are not supported: re-save with safe_serialization=True)',
    );
  let pc: Record<string, unknown>;
  try {
    pc = JSON.parse(cfgText);
  } catch (e) {
    throw new AdapterError(`adapter_config.json is not valid JSON (${(e as Error).message})`);
  }
  const warnings: string[] = [];
  const unsupported: string[] = [];
  if (pc.peft_type !== 'LORA') unsupported.push(`peft_type ${JSON.stringify(pc.peft_type)} (only LORA is supported)`);
  if (pc.use_dora) unsupported.push('DoRA (use_dora: true)');
  if (pc.modules_to_save && (pc.modules_to_save as unknown[]).length)
    unsupported.push(`modules_to_save ${JSON.stringify(pc.modules_to_save)}`);
  if (pc.bias !== undefined && pc.bias !== 'none') unsupported.push(`bias training (bias: ${JSON.stringify(pc.bias)})`);
  for (const k of ['rank_pattern', 'alpha_pattern'] as const) {
    if (pc[k] && Object.keys(pc[k] as object).length) unsupported.push(`per-module ${k}`);
  }
  if (pc.layers_to_transform !== undefined && pc.layers_to_transform !== null) unsupported.push('layers_to_transform');
  if (pc.use_qalora || pc.lora_bias) unsupported.push('QA-LoRA / lora_bias');
  if (pc.task_type !== undefined && pc.task_type !== 'CAUSAL_LM')
    warnings.push(`task_type is ${JSON.stringify(pc.task_type)}; WebLoRA uses it as a causal LM adapter`);
  if (unsupported.length)
    throw new AdapterError(`adapter_config.json uses options WebLoRA does not support: ${unsupported.join('; ')}`);
  const r = Number(pc.r);
  const alpha = Number(pc.lora_alpha ?? r);
  if (!(Number.isInteger(r) && r > 0))
    throw new AdapterError(`adapter_config.json: r is ${JSON.stringify(pc.r)}; expected a positive integer`);
  const expectFifo = cfg.family === 'gpt2';
  if (pc.fan_in_fan_out !== undefined && Boolean(pc.fan_in_fan_out) !== expectFifo) {
    warnings.push(
      `fan_in_fan_out is ${pc.fan_in_fan_out} but ${cfg.architecture} expects ${expectFifo}; the lora_A/lora_B shapes decide, and they match`,
    );
  }
  const base = String(pc.base_model_name_or_path ?? '');
  if (base && base !== baseModelId) warnings.push(`made for base model '${base}', loaded on '${baseModelId}'`);

  let header;
  try {
    header = parseSafetensorsHeader(st, 'adapter_model.safetensors');
  } catch (e) {
    throw new AdapterError((e as Error).message);
  }
  const mods = new Map(linearModules(cfg).map((m) => [m.path, m]));
  const arrays: LoraArrays = new Map();
  const targets = new Set<string>();
  const parts = new Map<string, { A?: Float32Array; B?: Float32Array }>();
  for (const [name, info] of header.tensors) {
    const m = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.default)?\.weight$/.exec(name);
    if (!m)
      throw new AdapterError(
        `adapter_model.safetensors: unexpected tensor '${name}' (only lora_A / lora_B weights are supported)`,
      );
    const [, path, which] = m;
    const mod = mods.get(path);
    if (!mod)
      throw new AdapterError(
        `adapter_model.safetensors: tensor '${name}' names module '${path}', which ${cfg.architecture} (${cfg.numLayers} layers) does not have: this adapter is for another model`,
      );
    const want = which === 'A' ? [r, mod.inFeatures] : [mod.outFeatures, r];
    if (info.shape.length !== 2 || info.shape[0] !== want[0] || info.shape[1] !== want[1]) {
      throw new AdapterError(
        `adapter_model.safetensors: tensor '${name}' has shape [${info.shape}], but the loaded model needs [${want}] (with r = ${r} from adapter_config.json): this adapter is for another model, or its config and weights disagree`,
      );
    }
    const data = decodeFloat(
      info.dtype,
      st.subarray(header.dataOffset + info.begin, header.dataOffset + info.end),
      `tensor '${name}' in adapter_model.safetensors`,
    );
    const p = parts.get(path) ?? {};
    p[which as 'A' | 'B'] = data;
    parts.set(path, p);
    targets.add(mod.target);
  }
  if (!parts.size) throw new AdapterError('adapter_model.safetensors holds no LoRA tensors');
  for (const [path, p] of parts) {
    if (!p.A || !p.B)
      throw new AdapterError(
        `adapter_model.safetensors: module '${path}' has lora_${p.A ? 'A' : 'B'} but no lora_${p.A ? 'B' : 'A'}`,
      );
    arrays.set(path, { A: p.A, B: p.B });
  }
  // Every module the targets select must be present (PEFT adapts them all).
  for (const m of linearModules(cfg)) {
    if (targets.has(m.target) && !arrays.has(m.path))
      throw new AdapterError(
        `adapter_model.safetensors has no weights for '${m.path}', though the adapter targets '${m.target}'`,
      );
  }
  return {
    lora: { r, alpha, useRslora: Boolean(pc.use_rslora), dropout: Number(pc.lora_dropout ?? 0), targets: [...targets] },
    arrays,
    baseModel: base,
    warnings,
  };
}

/** The PEFT files of an adapter folder behind any source (a Hub repo id, a local folder). */
export async function readAdapterFiles(source: ModelSource): Promise<Partial<AdapterFiles>> {
  const cfg = await source.file('adapter_config.json');
  if (!cfg) throw new AdapterError(`${source.id} has no adapter_config.json: it is not a PEFT adapter repository`);
  const st = await source.file('adapter_model.safetensors');
  if (!st) {
    const listed = source.list ? await source.list() : [];
    const bin = listed.includes('adapter_model.bin');
    throw new AdapterError(
      `${source.id} has no adapter_model.safetensors` +
        (bin
          ? ' (only adapter_model.bin, a pickle WebLoRA does not read: re-save it with safe_serialization=True)'
          : ''),
    );
  }
  const card = await source.file('README.md');
  return {
    'adapter_config.json': await readText(cfg),
    'adapter_model.safetensors': await readAll(st),
    ...(card ? { 'README.md': await readText(card) } : {}),
  };
}
