// Everything a model folder holds that WebLoRA needs: config.json, tokenizer files, and the weights as an
// index of tensors (one model.safetensors, or shards listed in model.safetensors.index.json), validated
// against the shapes the config implies before a single weight is read.

import { expectedTensors, parseConfig, type ModelConfig } from '../models/config';
import { readText, type ByteSource } from './byte-source';
import { loadGgufModelFiles } from './gguf-model';
import { decodeFloat, readSafetensorsHeader, type Dtype, type SafetensorsHeader } from './safetensors';
import type { QuantBlocks } from '../gpu/quant';
import { ModelLoadError, type ModelSource, type ProgressFn } from './sources';
import { maxBaseTokenId, TextTokenizer } from './tokenizer';

export interface WeightInfo {
  /** Canonical HF name, as in expectedTensors (e.g. transformer.h.0.attn.c_attn.weight) */
  name: string;
  /** Name inside the file (differs for GPT-2 checkpoints saved without the "transformer." prefix) */
  storedName: string;
  /** A safetensors dtype, or ggml's Q8_0 / Q4_0 blocks (GGUF files only) */
  dtype: Dtype | 'Q8_0' | 'Q4_0';
  shape: number[];
  file: string;
  /** The tensor as float32 (from F32, F16 or BF16, or dequantised from Q8_0 / Q4_0). */
  read(): Promise<Float32Array>;
  /** The raw little-endian bytes, in `dtype` (Q8_0 / Q4_0: ggml's blocks, rows in Hugging Face's order). */
  readBytes(): Promise<Uint8Array>;
  /** Q8_0 / Q4_0 tensors only: the blocks as they are, in src/gpu/quant.ts's layout; dequantize() of them is
   * read() exactly. */
  quant?(): Promise<QuantBlocks>;
}
export type WeightIndex = Map<string, WeightInfo>;

export interface ModelFiles {
  config: ModelConfig;
  configJson: Record<string, unknown>;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfigJson: Record<string, unknown>;
  generationConfig: Record<string, unknown> | null;
  /** chat_template.jinja when the repo ships one (newer transformers), else the tokenizer config's. */
  chatTemplate: string | null;
  tokenizer: TextTokenizer;
  weights: WeightIndex;
}

const FLOAT_DTYPES: Dtype[] = ['F32', 'F16', 'BF16'];

/**
 * The file names a source lists, or null when it cannot list them (then every file is asked for).
 * Optional files not in the list are never requested (no 404s for files a repo does not have).
 */
async function listedFiles(source: ModelSource): Promise<Set<string> | null> {
  const names = source.list ? await source.list() : [];
  return names.length > 0 ? new Set(names) : null;
}

/** An optional file: null without a request when the source's list says it is absent. */
async function optionalFile(source: ModelSource, name: string, onProgress?: ProgressFn) {
  const listed = await listedFiles(source);
  if (listed && !listed.has(name)) return null;
  return source.file(name, onProgress);
}

async function jsonFile(
  source: ModelSource,
  name: string,
  required: true,
  onProgress?: ProgressFn,
): Promise<Record<string, unknown>>;
async function jsonFile(
  source: ModelSource,
  name: string,
  required: false,
  onProgress?: ProgressFn,
): Promise<Record<string, unknown> | null>;
async function jsonFile(source: ModelSource, name: string, required: boolean, onProgress?: ProgressFn) {
  const src = required ? await source.file(name, onProgress) : await optionalFile(source, name, onProgress);
  if (!src) {
    if (required) {
      const hint =
        name === 'tokenizer.json'
          ? ' (the fast-tokenizer file; tokenizer.model or vocab.json + merges.txt alone are not read: AutoTokenizer.from_pretrained(...).save_pretrained(...) writes it)'
          : '';
      throw new ModelLoadError(`${name} was not found in ${source.id}; a Hugging Face model folder needs it${hint}`);
    }
    return null;
  }
  let json: unknown;
  try {
    json = JSON.parse(await readText(src));
  } catch (e) {
    throw new ModelLoadError(`${name} in ${source.id} is not valid JSON (${(e as Error).message}); download it again`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ModelLoadError(`${name} in ${source.id} is not a JSON object`);
  return json as Record<string, unknown>;
}

interface OpenedFile {
  file: string;
  src: ByteSource;
  header: SafetensorsHeader;
}

async function openWeights(
  source: ModelSource,
  onProgress?: ProgressFn,
): Promise<{ opened: OpenedFile[]; owner: Map<string, OpenedFile> }> {
  const owner = new Map<string, OpenedFile>();
  const index = await jsonFile(source, 'model.safetensors.index.json', false, onProgress);
  if (index) {
    const map = index.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) {
      throw new ModelLoadError(`model.safetensors.index.json in ${source.id} has no "weight_map" object`);
    }
    const byFile = new Map<string, string[]>();
    for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
      if (typeof file !== 'string' || !file.endsWith('.safetensors')) {
        throw new ModelLoadError(
          `model.safetensors.index.json in ${source.id}: weight_map["${name}"] is ${JSON.stringify(file)}, not a .safetensors file name`,
        );
      }
      byFile.set(file, [...(byFile.get(file) ?? []), name]);
    }
    if (byFile.size === 0)
      throw new ModelLoadError(
        `model.safetensors.index.json in ${source.id} lists no tensors in its "weight_map"; download it again`,
      );
    const opened: OpenedFile[] = [];
    for (const [file, names] of byFile) {
      const src = await source.file(file, onProgress);
      if (!src)
        throw new ModelLoadError(
          `${file} (a shard listed in model.safetensors.index.json) was not found in ${source.id}`,
        );
      const o = { file, src, header: await readSafetensorsHeader(src, `${file} (${source.id})`) };
      for (const name of names) {
        if (!o.header.tensors.has(name))
          throw new ModelLoadError(
            `${file} in ${source.id} lacks tensor "${name}" that model.safetensors.index.json places there; the shards and the index disagree`,
          );
        owner.set(name, o);
      }
      opened.push(o);
    }
    return { opened, owner };
  }
  const src = await source.file('model.safetensors', onProgress);
  if (!src) {
    const listed = source.list ? await source.list() : [];
    const bin = listed.find((f) => f.endsWith('.bin') || f.endsWith('.pth'));
    const gguf = listed.find((f) => f.toLowerCase().endsWith('.gguf'));
    throw new ModelLoadError(
      `neither model.safetensors nor model.safetensors.index.json was found in ${source.id}` +
        (gguf
          ? ` (there is ${gguf}: choose that GGUF file to load it instead)`
          : bin
            ? ` (there is ${bin}, but WebLoRA reads safetensors and GGUF only: convert it, e.g. with safetensors.torch.save_file)`
            : '') +
        '. Pick a model that ships safetensors weights, or a GGUF file.',
    );
  }
  const o = {
    file: 'model.safetensors',
    src,
    header: await readSafetensorsHeader(src, `model.safetensors (${source.id})`),
  };
  for (const name of o.header.tensors.keys()) owner.set(name, o);
  return { opened: [o], owner };
}

/**
 * The parameters config.json declares, counted without listing every layer's tensors (a config may
 * declare 10^9 layers): the tensors outside the layers plus numLayers times one layer's.
 */
export function declaredParams(cfg: ModelConfig): number {
  const count = (layers: number) => {
    let n = 0;
    for (const shape of expectedTensors({ ...cfg, numLayers: layers }).values()) n += shape.reduce((a, b) => a * b, 1);
    return n;
  };
  const outside = count(0);
  return outside + cfg.numLayers * (count(1) - outside);
}

/**
 * Refuses a config that declares more parameters than the weight files can hold (2 bytes each at the
 * least, as F16 or BF16), with the figures, before any tensor is listed, read or allocated.
 */
function checkDeclaredSize(cfg: ModelConfig, opened: OpenedFile[], where: string): void {
  const params = declaredParams(cfg);
  const dataBytes = opened.reduce((n, o) => n + (o.src.size - o.header.dataOffset), 0);
  if (!(params * 2 <= dataBytes)) {
    const files = opened.map((o) => o.file).join(', ');
    throw new ModelLoadError(
      `config.json in ${where} declares ${params.toExponential(3)} parameters (${cfg.numLayers} layers, hidden size ${cfg.hiddenSize}, vocabulary ${cfg.vocabSize}), at least ${(params * 2).toExponential(3)} bytes as F16, but the weights (${files}) hold ${dataBytes} bytes of data: the config does not belong to these weights`,
    );
  }
}

/** Names a checkpoint may use for a canonical tensor: GPT-2 and base-model saves drop the first prefix. */
function storedNames(name: string): string[] {
  const m = /^(transformer|model)\.(.+)$/.exec(name);
  return m ? [name, m[2]] : [name];
}

/**
 * Builds the weight index and checks it against what `cfg` implies. Extra tensors (lm_head.weight on a
 * tied model, rotary caches, GPT-2's attn.bias mask buffers) are ignored.
 */
function indexWeights(
  cfg: ModelConfig,
  opened: OpenedFile[],
  owner: Map<string, OpenedFile>,
  where: string,
): WeightIndex {
  const weights: WeightIndex = new Map();
  const missing: string[] = [];
  for (const [name, shape] of expectedTensors(cfg)) {
    const storedName = storedNames(name).find((n) => owner.has(n));
    if (!storedName) {
      missing.push(name);
      continue;
    }
    const o = owner.get(storedName)!;
    const t = o.header.tensors.get(storedName)!;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ModelLoadError(
        `${o.file} in ${where}: tensor "${storedName}" has shape [${t.shape.join(', ')}] but config.json implies [${shape.join(', ')}]; the weights do not belong to this config`,
      );
    }
    if (!FLOAT_DTYPES.includes(t.dtype)) {
      throw new ModelLoadError(
        `${o.file} in ${where}: tensor "${storedName}" has dtype ${t.dtype}; WebLoRA reads F32, F16 or BF16 weights (quantised checkpoints are not supported)`,
      );
    }
    const readBytes = () => o.src.read(o.header.dataOffset + t.begin, o.header.dataOffset + t.end);
    weights.set(name, {
      name,
      storedName,
      dtype: t.dtype,
      shape: t.shape,
      file: o.file,
      readBytes,
      read: async () => decodeFloat(t.dtype, await readBytes(), `tensor "${storedName}" in ${o.file}`),
    });
  }
  if (missing.length > 0) {
    const shown = missing
      .slice(0, 5)
      .map((n) => `"${n}"`)
      .join(', ');
    throw new ModelLoadError(
      `the checkpoint (${opened.map((o) => o.file).join(', ')}) in ${where} lacks ${missing.length} tensor${missing.length > 1 ? 's' : ''} that config.json implies: ${shown}${missing.length > 5 ? ', …' : ''}. The weights are incomplete or belong to another model`,
    );
  }
  return weights;
}

export interface LoadOptions {
  /**
   * Called with the parsed config and the source's file list (null when it cannot list) before anything
   * else is fetched: the tokenizer, and above all the weights. Throwing refuses the model there.
   */
  beforeWeights?(config: ModelConfig, files: string[] | null): void;
}

/**
 * The GGUF file a source asks to load: the one it names (ModelSource.gguf), else the only .gguf file of a
 * listed folder without config.json. Several and none named: the user must choose, so say which there are.
 */
async function ggufFileOf(source: ModelSource): Promise<string | null> {
  if (source.gguf) return source.gguf;
  const listed = await listedFiles(source);
  if (!listed || listed.has('config.json')) return null;
  const ggufs = [...listed].filter((f) => f.toLowerCase().endsWith('.gguf')).sort();
  if (ggufs.length === 1) return ggufs[0];
  if (ggufs.length > 1)
    throw new ModelLoadError(
      `${source.id} holds ${ggufs.length} GGUF files (${ggufs.slice(0, 8).join(', ')}${ggufs.length > 8 ? ', …' : ''}) and no config.json; choose the GGUF file to load`,
    );
  return null;
}

/**
 * Loads and validates config, tokenizer and the weight index from any source: a Hugging Face folder, or a
 * GGUF file (./gguf-model.ts). Weights are read lazily.
 */
export async function loadModelFiles(
  source: ModelSource,
  onProgress?: ProgressFn,
  opts: LoadOptions = {},
): Promise<ModelFiles> {
  const gguf = await ggufFileOf(source);
  if (gguf !== null) {
    // One file holds config, tokenizer and weights: the check runs once it is read (its header is first).
    const src = await source.file(gguf, onProgress);
    if (!src) throw new ModelLoadError(`${gguf} was not found in ${source.id}`);
    const files = await loadGgufModelFiles(src, gguf.split('/').pop()!, `${gguf} (${source.id})`);
    opts.beforeWeights?.(files.config, null);
    return files;
  }
  // config.json first: an unsupported architecture, or a model too large for the device, fails before
  // gigabytes of weights are fetched.
  const configJson = await jsonFile(source, 'config.json', true, onProgress);
  const config = parseConfig(configJson, `config.json (${source.id})`);
  const listed = await listedFiles(source);
  opts.beforeWeights?.(config, listed && [...listed]);
  const tokenizerJson = await jsonFile(source, 'tokenizer.json', true, onProgress);
  const tokenizerConfigJson = (await jsonFile(source, 'tokenizer_config.json', false, onProgress)) ?? {};
  const generationConfig = await jsonFile(source, 'generation_config.json', false, onProgress);
  const templateFile = await optionalFile(source, 'chat_template.jinja', onProgress);
  const templateText = templateFile ? await readText(templateFile) : null;

  // Added tokens past the embedding are allowed (Gemma 3 lists one); the base vocabulary must fit.
  const maxId = maxBaseTokenId(tokenizerJson);
  if (maxId >= config.vocabSize) {
    throw new ModelLoadError(
      `tokenizer.json in ${source.id} has token id ${maxId} but the model's embedding has only ${config.vocabSize} rows (vocab_size); the tokenizer belongs to another model`,
    );
  }
  const tokenizer = new TextTokenizer(tokenizerJson, tokenizerConfigJson, templateText, config.vocabSize);

  const { opened, owner } = await openWeights(source, onProgress);
  checkDeclaredSize(config, opened, source.id);
  const weights = indexWeights(config, opened, owner, source.id);
  return {
    config,
    configJson,
    tokenizerJson,
    tokenizerConfigJson,
    generationConfig,
    chatTemplate: tokenizer.chatTemplate,
    tokenizer,
    weights,
  };
}
