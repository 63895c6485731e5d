// Tiny model folders generated in the test itself: config.json for each family, a byte-level BPE
// tokenizer.json (GPT-2 style), and a checkpoint with every tensor the config implies.

import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expectedTensors, parseConfig, type Family } from '../../src/models/config';
import { writeSafetensors, type TensorToWrite } from '../../src/loaders/safetensors';

export const TINY_CONFIGS: Record<Family, Record<string, unknown>> = {
  llama: {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: 300,
    hidden_size: 16,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    tie_word_embeddings: true,
    bos_token_id: 257,
    eos_token_id: 256,
    hidden_act: 'silu',
    rope_scaling: null,
    torch_dtype: 'float32',
  },
  qwen2: {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    vocab_size: 300,
    hidden_size: 16,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    tie_word_embeddings: false,
    use_sliding_window: false,
    sliding_window: 4096,
    max_window_layers: 28,
    hidden_act: 'silu',
    bos_token_id: 256,
    eos_token_id: 256,
  },
  qwen3: {
    architectures: ['Qwen3ForCausalLM'],
    model_type: 'qwen3',
    vocab_size: 300,
    hidden_size: 16,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 6,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    tie_word_embeddings: true,
    use_sliding_window: false,
    hidden_act: 'silu',
    bos_token_id: 256,
    eos_token_id: 256,
  },
  smollm3: {
    architectures: ['SmolLM3ForCausalLM'],
    model_type: 'smollm3',
    vocab_size: 300,
    hidden_size: 16,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    rope_theta: 2000000.0,
    no_rope_layers: [1, 0],
    tie_word_embeddings: true,
    hidden_act: 'silu',
    bos_token_id: 256,
    eos_token_id: 256,
  },
  gemma3: {
    architectures: ['Gemma3ForCausalLM'],
    model_type: 'gemma3_text',
    vocab_size: 300,
    hidden_size: 16,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 8,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    rope_local_base_freq: 10000.0,
    layer_types: ['sliding_attention', 'full_attention'],
    sliding_window: 3,
    query_pre_attn_scalar: 8,
    final_logit_softcapping: null,
    attn_logit_softcapping: null,
    hidden_activation: 'gelu_pytorch_tanh',
    bos_token_id: 256,
    eos_token_id: 256,
  },
  mistral: {
    architectures: ['MistralForCausalLM'],
    model_type: 'mistral',
    vocab_size: 300,
    hidden_size: 16,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 6,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 1000000.0,
    sliding_window: 5,
    tie_word_embeddings: false,
    hidden_act: 'silu',
    bos_token_id: 256,
    eos_token_id: 256,
  },
  gpt2: {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: 300,
    n_embd: 16,
    n_layer: 2,
    n_head: 4,
    n_positions: 32,
    n_ctx: 32,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    bos_token_id: 256,
    eos_token_id: 256,
  },
};

/** Deterministic values that differ per tensor and per element (exact in f16 and bf16: multiples of 1/64 below 2). */
export function fakeValues(name: string, n: number): Float32Array {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (((h + i * 7) % 97) - 48) / 64;
  return out;
}

/** Every tensor of the family's tiny config, as F32 (or F16) tensors ready for writeSafetensors. */
export function fakeCheckpoint(
  family: Family,
  dtype: 'F32' | 'F16' | 'BF16' = 'F32',
  rename: (n: string) => string = (n) => n,
): TensorToWrite[] {
  const cfg = parseConfig(TINY_CONFIGS[family]);
  return [...expectedTensors(cfg)].map(([name, shape]) => {
    const values = fakeValues(
      name,
      shape.reduce((a, b) => a * b, 1),
    );
    // bf16 is the top half of the f32 bits (exact for these values)
    const data = dtype === 'BF16' ? Uint16Array.from(new Uint32Array(values.buffer), (u) => u >>> 16) : values;
    return { name: rename(name), dtype, shape, data };
  });
}

/** GPT-2's byte -> printable-unicode table (bytes_to_unicode). */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const table: string[] = new Array(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i])));
  return table;
}

/**
 * A byte-level BPE tokenizer.json: ids 0..255 are the bytes, 256 is <|endoftext|>, 257 is <s>, then a
 * few merges. With `bos`, the post-processor prepends <s> (as Llama's does).
 */
export function tinyTokenizer(opts: { bos?: boolean; extraIds?: number } = {}): {
  json: Record<string, unknown>;
  config: Record<string, unknown>;
} {
  const b2u = bytesToUnicode();
  const vocab: Record<string, number> = {};
  b2u.forEach((u, b) => (vocab[u] = b));
  const merges = ['Ġ t', 'h e', 'Ġt he', 'Ġ a', 'i n'];
  let next = 258;
  for (const m of merges) vocab[m.replace(' ', '')] = next++;
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const added = [special(256, '<|endoftext|>'), special(257, '<s>')];
  if (opts.extraIds) added.push(special(opts.extraIds, '<|extra|>'));
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: opts.bos
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: '<s>', type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { '<s>': { id: '<s>', ids: [257], tokens: ['<s>'] } },
        }
      : { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
  const config = {
    bos_token: opts.bos ? '<s>' : '<|endoftext|>',
    eos_token: {
      content: '<|endoftext|>',
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      __type: 'AddedToken',
    },
    chat_template: "{% for m in messages %}{{ m['content'] }}{% endfor %}",
    clean_up_tokenization_spaces: false,
  };
  return { json, config };
}

const enc = (x: unknown) => new TextEncoder().encode(typeof x === 'string' ? x : JSON.stringify(x, null, 2));

/** A whole model folder: file name -> bytes. `shards` > 1 writes model-0000i-of-0000n.safetensors + index. */
export function tinyModelFolder(
  family: Family,
  opts: { shards?: number; dtype?: 'F32' | 'F16' | 'BF16' } = {},
): Map<string, Uint8Array<ArrayBuffer>> {
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  files.set('config.json', enc(TINY_CONFIGS[family]));
  const tok = tinyTokenizer({ bos: family === 'llama' });
  files.set('tokenizer.json', enc(tok.json));
  files.set('tokenizer_config.json', enc(tok.config));
  files.set('generation_config.json', enc({ bos_token_id: 256, eos_token_id: 256, max_new_tokens: 20 }));
  const tensors = fakeCheckpoint(family, opts.dtype ?? 'F32');
  const shards = opts.shards ?? 1;
  if (shards === 1) {
    files.set('model.safetensors', writeSafetensors(tensors, { format: 'pt' }));
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(tensors.length / shards);
    for (let s = 0; s < shards; s++) {
      const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = tensors.slice(s * per, (s + 1) * per);
      for (const t of part) weightMap[t.name] = name;
      files.set(name, writeSafetensors(part, { format: 'pt' }));
    }
    files.set('model.safetensors.index.json', enc({ metadata: { total_size: 0 }, weight_map: weightMap }));
  }
  return files;
}

export interface ServeOptions {
  /** Send this many bytes of the named file, then destroy the socket. */
  dropAfter?: { file: string; bytes: number };
  /** Leave out Content-Length (chunked transfer). */
  noLength?: boolean;
  /** Send bodies in chunks of this many bytes, so progress has several steps. */
  chunk?: number;
  /** Answer every missing file with this HTML page and status 200 (a dev server's SPA fallback). */
  htmlFallback?: boolean;
  /** More files at absolute paths (e.g. a Hub API answer). */
  extra?: Map<string, Uint8Array<ArrayBuffer>>;
}

/** Serves `files` on 127.0.0.1 (port 0) at `/${prefix}${name}`; counts requests per path. */
export async function serveFolder(
  files: Map<string, Uint8Array<ArrayBuffer>>,
  prefix: string,
  opts: ServeOptions = {},
) {
  const requests: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent((req.url ?? '').split('?')[0]);
    requests.push(path);
    const name = path.startsWith('/' + prefix) ? path.slice(prefix.length + 1) : null;
    const body = opts.extra?.get(path) ?? (name !== null ? files.get(name) : undefined);
    if (!body) {
      if (opts.htmlFallback) {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>app</title>');
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('Entry not found');
      }
      return;
    }
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (!opts.noLength) headers['content-length'] = String(body.byteLength);
    res.writeHead(200, headers);
    if (opts.dropAfter && opts.dropAfter.file === name) {
      res.write(body.subarray(0, opts.dropAfter.bytes), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    if (!opts.chunk) return void res.end(body);
    // Paced chunks (1 ms apart) so that the client sees them as separate reads.
    const chunk = opts.chunk;
    let at = 0;
    const pump = () => {
      if (at >= body.byteLength) return void res.end();
      const part = body.subarray(at, at + chunk);
      at += part.byteLength;
      res.write(part, () => setTimeout(pump, 1));
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A Hub-shaped repository with a history, on 127.0.0.1 (port 0): `push(files)` makes a new commit and points
 * `main` at it. Serves the model info at `/api/models/<repo>/revision/main` (the commit in `sha`, the files in
 * `siblings`, as the Hub does) and each commit's files at `/<repo>/resolve/<main | commit>/<file>`; records
 * every request path.
 */
export async function serveHubRepo(repo: string, files: Map<string, Uint8Array<ArrayBuffer>>) {
  const commits = new Map<string, Map<string, Uint8Array<ArrayBuffer>>>();
  let head = '';
  const push = (next: Map<string, Uint8Array<ArrayBuffer>>): string => {
    const h = createHash('sha1').update(`commit ${commits.size}`);
    for (const [name, bytes] of next) h.update(name).update(bytes);
    head = h.digest('hex');
    commits.set(head, new Map(next));
    return head;
  };
  push(files);
  const requests: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent((req.url ?? '').split('?')[0]);
    requests.push(path);
    if (path === `/api/models/${repo}/revision/main`) {
      const siblings = [...commits.get(head)!.keys()].map((rfilename) => ({ rfilename }));
      return void res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ id: repo, sha: head, siblings }));
    }
    const m = path.startsWith(`/${repo}/resolve/`) ? /^([^/]+)\/(.+)$/.exec(path.slice(repo.length + 10)) : null;
    const body = m ? commits.get(m[1] === 'main' ? head : m[1])?.get(m[2]) : undefined;
    if (!body) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('Entry not found');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.byteLength) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    push,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
