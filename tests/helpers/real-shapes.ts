// Random-weight checkpoints at real model shapes, written to a temporary folder in the test (never
// committed): the Hub repo's config.json, the family's real tokenizer files (./real-tokenizers.ts), and one
// model.safetensors in F16 with every tensor the config implies. Values come from a cheap PRNG so that a
// 2.5 GB checkpoint takes seconds: 2-D weights uniform in ±WEIGHT_BOUND (std 0.02, as HF initialises),
// 1-D norm weights a constant (the family's "no change": 1 for x·w norms). The folder is served the way the
// Hub lays files out (`/<owner>/<name>/resolve/main/<file>`), streamed from disk.
//
// Adding a model is one entry in REAL_SHAPES.

import {
  createReadStream,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
  openSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { f32ToF16Bits } from '../../src/gpu/f16';
import { expectedTensors, paramCount, parseConfig, type ModelConfig } from '../../src/models/config';
import { GEMMA3_270M, LLAMA32_1B, QWEN3_06B } from '../models/hub-configs';
import { realTokenizerFiles, type RealTokenizerName } from './real-tokenizers';

export interface RealShape {
  /** Repo id the test serves it as (the real model's name under a test owner). */
  repo: string;
  tokenizer: RealTokenizerName;
  /** config.json as the real repo has it (the fields transformers writes that WebLoRA reads, verbatim). */
  config: Record<string, unknown>;
  /** The value of every 1-D (norm) weight. */
  normValue: number;
}

export const REAL_SHAPES = {
  // Qwen/Qwen3-0.6B: 596 M parameters (tied), 28 layers, 16 q / 8 kv heads of 128, q/k norms.
  'qwen3-0.6b': {
    repo: 'test-org/Qwen3-0.6B',
    tokenizer: 'qwen3',
    normValue: 1,
    config: QWEN3_06B,
  },
  // meta-llama/Llama-3.2-1B: 1.24 B parameters (tied), 16 layers, 32 q / 8 kv heads of 64, RoPE llama3 x32.
  'llama-3.2-1b': {
    repo: 'test-org/Llama-3.2-1B',
    tokenizer: 'llama3',
    normValue: 1,
    config: LLAMA32_1B,
  },
  // google/gemma-3-270m: 268 M parameters (170 M of them the tied 262,144 x 640 embedding), 18 layers (5 of
  // every 6 sliding, window 512), 4 q / 1 kv heads of 256. Its tokenizer lists <image_soft_token> at id
  // 262,144, one past the embedding, as the real repo's does. Norm weights are w in x·(1 + w): 0 is identity.
  'gemma-3-270m': {
    repo: 'test-org/gemma-3-270m',
    tokenizer: 'gemma3',
    normValue: 0,
    config: GEMMA3_270M,
  },
} satisfies Record<string, RealShape>;

export type RealShapeName = keyof typeof REAL_SHAPES;

/** Uniform in ±WEIGHT_BOUND has standard deviation 0.02 (bound = 0.02·√3). */
export const WEIGHT_BOUND = 0.02 * Math.sqrt(3);

/** The real shape's config.json, with `layers` blocks instead of all of them when given. */
export function realConfigJson(shape: RealShape, layers?: number): Record<string, unknown> {
  if (layers === undefined) return shape.config;
  const c: Record<string, unknown> = { ...shape.config, num_hidden_layers: layers };
  if ('max_window_layers' in c) c.max_window_layers = layers;
  if (Array.isArray(c.layer_types)) c.layer_types = c.layer_types.slice(0, layers); // the first `layers` layers' kinds
  return c;
}

export interface WrittenCheckpoint {
  dir: string;
  cfg: ModelConfig;
  params: number;
  /** Bytes of model.safetensors. */
  bytes: number;
  seconds: number;
  remove(): void;
}

/** 4096 f16 bit patterns evenly spread over ±WEIGHT_BOUND, drawn from by the PRNG. */
const TABLE = Uint16Array.from({ length: 4096 }, (_, i) =>
  f32ToF16Bits(((i + 0.5) / 4096) * 2 * WEIGHT_BOUND - WEIGHT_BOUND),
);

/**
 * Writes the folder to a new temp dir. model.safetensors is streamed (header, then each tensor in the
 * header's order) through one 8 MiB buffer, so memory stays small whatever the model's size.
 */
export function writeRealShapeFolder(
  shape: RealShape,
  opts: { layers?: number; seed?: number } = {},
): WrittenCheckpoint {
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'weblora-real-shape-'));
  const json = realConfigJson(shape, opts.layers);
  const cfg = parseConfig(json);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json, null, 2));
  for (const [file, bytes] of realTokenizerFiles(shape.tokenizer).bytes) writeFileSync(join(dir, file), bytes);

  // safetensors: 8-byte little-endian header length, the JSON header padded with spaces to 8 bytes, data.
  const tensors = [...expectedTensors(cfg)].sort(([a], [b]) => (a < b ? -1 : 1));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, shp] of tensors) {
    const n = shp.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'F16', shape: shp, data_offsets: [offset, offset + 2 * n] };
    offset += 2 * n;
  }
  let headerText = JSON.stringify(header);
  headerText += ' '.repeat((8 - (headerText.length % 8)) % 8);
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(headerText.length), true);
    writeSync(fd, len);
    writeSync(fd, new TextEncoder().encode(headerText));
    const buf = new Uint16Array(4 << 20);
    let s = (opts.seed ?? 1) >>> 0 || 1; // xorshift32 state
    for (const [, shp] of tensors) {
      let left = shp.reduce((a, b) => a * b, 1);
      const norm = shp.length === 1;
      while (left > 0) {
        const n = Math.min(left, buf.length);
        if (norm) buf.fill(f32ToF16Bits(shape.normValue), 0, n);
        else
          for (let i = 0; i < n; i++) {
            s ^= s << 13;
            s ^= s >>> 17;
            s ^= s << 5;
            buf[i] = TABLE[s & 4095];
          }
        writeSync(fd, buf.subarray(0, n));
        left -= n;
      }
    }
  } finally {
    closeSync(fd);
  }
  return {
    dir,
    cfg,
    params: paramCount(cfg),
    bytes: statSync(join(dir, 'model.safetensors')).size,
    seconds: (performance.now() - t0) / 1000,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Serves folders as Hub repos on 127.0.0.1: `/<repo>/resolve/main/<file>`, streamed from disk, CORS open. */
export async function serveHubRepos(dirs: Record<string, string>) {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    res.setHeader('access-control-allow-origin', '*');
    const m = /^\/([\w.-]+\/[\w.-]+)\/resolve\/main\/([\w.-]+)$/.exec((req.url ?? '').split('?')[0]);
    const dir = m ? dirs[m[1]] : undefined;
    let size = -1;
    try {
      if (dir) size = statSync(join(dir, m![2])).size;
    } catch {
      size = -1;
    }
    if (size < 0) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Entry not found');
      return;
    }
    requests.push(req.url!);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    createReadStream(join(dir!, m![2])).pipe(res);
  });
  // The server shares the test's event loop, which building a real tokenizer blocks for seconds: with the
  // default 5 s keep-alive timeout the server would close an idle connection just as the client reuses it.
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
