// `npm run train -- --model <folder or Hub id> --data <file> --out <folder> [options]`
// The same engine and trainer as the studio's worker, in Node on Dawn, with a progress line, writing
// a PEFT adapter folder into --out.

import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Engine, GGUF_ADAPTER_FILE, WEIGHTS_CHOICES, type WeightsChoice, type WeightsOption } from '../engine/engine';
import { createNodeContext } from '../gpu/node';
import { DEFAULT_HUB } from '../util/csp';
import { fmtBytes } from '../util/format';
import { fileTuneStore } from '../engine/autotune-store.node';
import { hubSource, memoryBlobCache, type ModelSource } from '../loaders/sources';
import { dirSource } from '../loaders/sources.node';
import { DEFAULT_SETTINGS, type TrainSettings } from '../training/settings';
import type { TrainEvent } from '../training/trainer';

interface Flag {
  key: keyof TrainSettings;
  kind: 'int' | 'num' | 'bool' | 'str' | 'list';
  help: string;
}

const FLAGS: Record<string, Flag> = {
  '--steps': { key: 'steps', kind: 'int', help: 'optimizer updates' },
  '--epochs': { key: 'epochs', kind: 'int', help: 'passes over the data (overrides --steps when > 0)' },
  '--rank': { key: 'rank', kind: 'int', help: 'LoRA rank r' },
  '--alpha': { key: 'alpha', kind: 'num', help: 'LoRA alpha (scale = alpha / r)' },
  '--rslora': { key: 'useRslora', kind: 'bool', help: 'rank-stabilised scale alpha / sqrt(r)' },
  '--dropout': { key: 'dropout', kind: 'num', help: 'dropout on the LoRA branch input' },
  '--targets': {
    key: 'targets',
    kind: 'list',
    help: 'modules to adapt, e.g. q_proj,v_proj (default: PEFT default for the family)',
  },
  '--lr': { key: 'lr', kind: 'num', help: 'peak learning rate' },
  '--warmup': { key: 'warmupSteps', kind: 'int', help: 'linear warmup steps' },
  '--decay': { key: 'decay', kind: 'str', help: 'cosine | linear | constant' },
  '--min-lr-ratio': { key: 'minLrRatio', kind: 'num', help: 'decay floor as a fraction of --lr' },
  '--batch': { key: 'batchSize', kind: 'int', help: 'sequences per micro-batch' },
  '--grad-accum': { key: 'gradAccum', kind: 'int', help: 'micro-batches per update' },
  '--seq-len': { key: 'seqLen', kind: 'int', help: 'tokens per sequence' },
  '--weight-decay': { key: 'weightDecay', kind: 'num', help: 'AdamW decoupled weight decay' },
  '--max-grad-norm': { key: 'maxGradNorm', kind: 'num', help: 'clip the global gradient norm (0 = off)' },
  '--seed': { key: 'seed', kind: 'int', help: 'seed for init, data order and dropout' },
  '--checkpointing': { key: 'checkpointing', kind: 'bool', help: 'recompute activations in backward (less memory)' },
  '--val-fraction': { key: 'valFraction', kind: 'num', help: 'share of sequences held out for validation' },
  '--eval-every': { key: 'evalEvery', kind: 'int', help: 'validation loss every N steps (0 = off)' },
  '--sample-every': { key: 'sampleEvery', kind: 'int', help: 'sample generation every N steps (0 = off)' },
  '--sample-prompt': { key: 'samplePrompt', kind: 'str', help: 'prompt for the sample generations' },
  '--sample-tokens': { key: 'sampleTokens', kind: 'int', help: 'tokens per sample' },
};

function usage(): string {
  const d = DEFAULT_SETTINGS as unknown as Record<string, unknown>;
  const lines = Object.entries(FLAGS).map(
    ([f, x]) =>
      `  ${(f + (x.kind === 'bool' ? '' : ' <' + x.kind + '>')).padEnd(26)} ${x.help} (default: ${JSON.stringify(d[x.key])})`,
  );
  return `Fine-tune a Hugging Face causal LM with LoRA on WebGPU (Dawn) and write a PEFT adapter.

usage: npm run train -- --model <folder | hub repo id> --data <file> --out <folder> [options]

  --model <path|id>          a local Hugging Face model folder, a .gguf model file (F32/F16/BF16), or a Hub
                             repo id (owner/name)
  --gguf <file>              the GGUF file to load from a --model folder or Hub repo that holds several
  --data <file>              .txt, .jsonl (text | prompt/completion | instruction/input/output | messages), .csv, .tsv
  --out <folder>             where adapter_model.safetensors, adapter_config.json and README.md go, and
                             adapter.gguf (the adapter for llama.cpp) for Llama, Qwen2, Qwen3 and Gemma 3 models
  --format <name>            override the detected data format
  --column <name>            the CSV/TSV column to train on
  --name <text>              adapter name for the model card (default: the --out folder name)
  --weights <f32|f16|int8|int4>
                             how the frozen base is stored: f32, f16 (needs shader-f16), or quantized at
                             load to int8 / int4 blocks (llama.cpp's Q8_0 / Q4_0); every choice's memory
                             is printed before the weights load (default: f32)
  --f16                      the same as --weights f16
  --hub-base-url <url>       Hub mirror (default ${DEFAULT_HUB})
                             a gated repo (Llama, Gemma) reads its access token from HF_TOKEN in the environment
  --gpu-memory <GiB>         GPU memory a run may use; a model whose estimate is above it is refused
                             from its config.json, before any weight is downloaded (default: no budget,
                             only the adapter's buffer limits)
${lines.join('\n')}
  --help                     this text

The GPU driver is chosen by WEBLORA_DRIVER (lavapipe, swiftshader, system; default lavapipe).`;
}

export function parseArgs(argv: string[]) {
  const settings: Partial<TrainSettings> = {};
  const o: {
    model?: string;
    data?: string;
    out?: string;
    format?: string;
    column?: string;
    name?: string;
    weights: WeightsChoice;
    hubBaseUrl?: string;
    gpuMemoryBytes?: number;
    gguf?: string;
    help: boolean;
  } = { weights: 'f32', help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--help' || a === '-h') o.help = true;
    else if (a === '--model') o.model = val();
    else if (a === '--data') o.data = val();
    else if (a === '--out') o.out = val();
    else if (a === '--format') o.format = val();
    else if (a === '--column') o.column = val();
    else if (a === '--name') o.name = val();
    else if (a === '--f16') o.weights = 'f16';
    else if (a === '--weights') {
      const v = val();
      if (!WEIGHTS_CHOICES.includes(v as WeightsChoice))
        throw new Error(`--weights is one of ${WEIGHTS_CHOICES.join(', ')}, got '${v}'`);
      o.weights = v as WeightsChoice;
    } else if (a === '--hub-base-url') o.hubBaseUrl = val();
    else if (a === '--gpu-memory') {
      const v = val();
      const gib = Number(v);
      if (!(gib > 0 && Number.isFinite(gib)))
        throw new Error(`--gpu-memory needs a positive number of GiB, got '${v}'`);
      o.gpuMemoryBytes = gib * 1024 ** 3;
    } else if (a === '--gguf') o.gguf = val();
    else if (FLAGS[a]) {
      const f = FLAGS[a];
      const s = settings as Record<string, unknown>;
      if (f.kind === 'bool') s[f.key] = true;
      else {
        const v = val();
        if (f.kind === 'str') s[f.key] = v;
        else if (f.kind === 'list')
          s[f.key] = v
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean);
        else {
          const n = Number(v);
          if (!Number.isFinite(n)) throw new Error(`${a} needs a number, got '${v}'`);
          s[f.key] = n;
        }
      }
    } else throw new Error(`unknown option '${a}' (see --help)`);
  }
  return { ...o, settings };
}

/** One line per weights choice: weights and total memory at default settings, and why a choice cannot be used. */
export function describeOptions(options: WeightsOption[], chosen: WeightsChoice): string[] {
  return [
    'weights choices (memory at default settings):',
    ...options.map(
      (o) =>
        `  ${o.weights === chosen ? '*' : ' '} ${o.weights.padEnd(4)}  weights ${fmtBytes(o.weightBytes).padStart(10)}, total ${fmtBytes(o.totalBytes).padStart(10)}${o.refused ? `  (no: ${o.refused})` : ''}`,
    ),
  ];
}

function fmtTime(sec: number): string {
  if (!Number.isFinite(sec)) return '?';
  const m = Math.floor(sec / 60);
  const s = Math.round(sec % 60);
  return m ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}

export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  if (args.help) {
    console.log(usage());
    return 0;
  }
  if (!args.model || !args.data || !args.out) {
    console.error('error: --model, --data and --out are required\n\n' + usage());
    return 2;
  }
  const isDir = existsSync(args.model) && statSync(args.model).isDirectory();
  const isGgufFile = !isDir && existsSync(args.model) && args.model.toLowerCase().endsWith('.gguf');
  const source: ModelSource = isDir
    ? dirSource(args.model, args.gguf)
    : isGgufFile
      ? dirSource(dirname(args.model), basename(args.model))
      : hubSource(args.model, {
          baseUrl: args.hubBaseUrl,
          cache: memoryBlobCache(),
          gguf: args.gguf,
          // a gated repo's read token, from the environment as Hugging Face's own tools take it (never an argument:
          // those end up in shell histories and process lists)
          token: process.env.HF_TOKEN || undefined,
        });
  if (!existsSync(args.data)) {
    console.error(`error: data file '${args.data}' does not exist`);
    return 2;
  }
  const ctx = await createNodeContext();
  const log = (s: string) => process.stderr.write(s + '\n');
  const engine = new Engine(ctx, { tuneStore: fileTuneStore(), log, memoryBudget: args.gpuMemoryBytes });
  try {
    log(`GPU: ${ctx.adapterName}${ctx.hasF16 ? ' (f16)' : ''}`);
    // Every choice's figures first (refused from config.json, before any weight is fetched, if the chosen one cannot fit).
    const { options } = await engine.inspect(source, undefined, args.weights);
    for (const line of describeOptions(options, args.weights)) log(line);
    const loaded = await engine.loadModel(source, args.weights);
    const cfg = loaded.files.config;
    log(
      `model: ${loaded.id} (${cfg.architecture}, ${cfg.numLayers} layers, hidden ${cfg.hiddenSize}, vocab ${cfg.vocabSize}; ${fmtBytes(loaded.model.weights.bytes)} on the GPU)`,
    );
    const { settings, errors } = engine.settingsFor(args.settings);
    if (errors.length) {
      console.error(`error: invalid settings:\n  ${errors.map((e) => e.message).join('\n  ')}`);
      return 2;
    }
    const text = readFileSync(args.data, 'utf8');
    const data = await engine.loadDataset(basename(args.data), text, {
      format: args.format,
      column: args.column,
      seqLen: settings.seqLen,
      valFraction: settings.valFraction,
      seed: settings.seed,
    });
    const sum = data.summary();
    log(
      `data: ${sum.name} (${sum.format}), ${sum.examples} examples, ${sum.tokens} tokens, ${sum.trainSequences} train / ${sum.valSequences} validation sequences of ${settings.seqLen}`,
    );
    const trainer = engine.createTrainer(args.settings);
    log(
      `LoRA: r ${settings.rank}, alpha ${settings.alpha}, targets ${settings.targets.join(',')}: ${engine.lora!.paramCount.toLocaleString()} trainable parameters; ${trainer.job.totalSteps} steps`,
    );
    let lastVal = NaN;
    const isTTY = process.stderr.isTTY;
    const onEvent = (e: TrainEvent) => {
      if (e.type === 'step') {
        const width = 24;
        const done = Math.round((width * e.step) / e.totalSteps);
        const line =
          `step ${String(e.step).padStart(String(e.totalSteps).length)}/${e.totalSteps} [${'='.repeat(done)}${' '.repeat(width - done)}] ` +
          `loss ${e.loss.toFixed(4)}${Number.isFinite(lastVal) ? ` val ${lastVal.toFixed(4)}` : ''} lr ${e.lr.toExponential(2)} | ` +
          `${Math.round(e.tokensPerSec)} tok/s | ETA ${fmtTime(e.etaSec)} | GPU ${fmtBytes(e.liveBytes)} (peak ${fmtBytes(e.peakBytes)})`;
        process.stderr.write(isTTY ? `\r${line}\x1b[K` : line + '\n');
      } else if (e.type === 'eval') {
        lastVal = e.valLoss;
        if (isTTY) process.stderr.write('\n');
        log(`  validation loss at step ${e.step}: ${e.valLoss.toFixed(4)}`);
      } else if (e.type === 'sample') {
        if (isTTY) process.stderr.write('\n');
        log(`  sample at step ${e.step}: ${JSON.stringify(e.prompt + e.text)}`);
      }
    };
    const control = { paused: false, stopped: false, waitIfPaused: async () => {} };
    process.on('SIGINT', () => {
      control.stopped = true;
      log('\nstopping after this step; the adapter so far will be written');
    });
    await engine.run(control, { onEvent });
    if (isTTY) process.stderr.write('\n');
    const name = args.name ?? basename(args.out);
    const files = await engine.exportAdapter(name);
    mkdirSync(args.out, { recursive: true });
    for (const [file, content] of Object.entries(files)) writeFileSync(join(args.out, file), content);
    const written = [...Object.keys(files)];
    if (engine.canExportGguf) {
      writeFileSync(join(args.out, GGUF_ADAPTER_FILE), await engine.exportGgufAdapter(name));
      written.push(GGUF_ADAPTER_FILE);
    }
    // The run's curves and settings, for tools that build gallery entries (tools/gallery/build.sh).
    const t = engine.trainer!;
    const trainLog = {
      steps: t.step,
      settings: t.job.settings,
      lossCurve: t.history,
      valCurve: t.valHistory,
      sample: t.lastSample,
      dataset: sum.name,
    };
    writeFileSync(join(args.out, 'training_log.json'), JSON.stringify(trainLog, null, 1) + '\n');
    log(`wrote ${args.out}/${[...written, 'training_log.json'].join(', ')}`);
    return 0;
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 1;
  } finally {
    engine.unloadModel();
  }
}
