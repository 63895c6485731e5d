// Fuzzing a model folder's JSON files through the whole load (src/loaders/model-files.ts, the config
// and tokenizer readers, the chat template) and onto the GPU: config.json (wrong types, missing and
// contradictory fields, absurd sizes), tokenizer.json, tokenizer_config.json (chat templates that throw),
// generation_config.json and a sharded checkpoint's index. Each case loads the folder, uses the
// tokenizer and the chat template, uploads the weights and frees them. Seeded and reproducible.

import { describe, expect, it } from 'vitest';
import { chatContextOf } from '../../src/data/chat';
import { parseExamples } from '../../src/data/formats';
import { loadModelFiles } from '../../src/loaders/model-files';
import { loadModel } from '../../src/models';
import type { GpuContext } from '../../src/gpu/context';
import { gpu } from '../helpers/gpu';
import { tinyModelFolder } from '../loaders/fixtures';
import {
  enc,
  mapSource,
  mutateBytes,
  mutateJson,
  prng,
  report,
  runCase,
  tally,
  type Prng,
  type Tally,
} from './harness';

const SEED = 0xc0f16;
const FAMILIES = ['llama', 'qwen2', 'gpt2'] as const;
const CONFIG_KEYS = [
  'architectures',
  'model_type',
  'vocab_size',
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'head_dim',
  'max_position_embeddings',
  'rms_norm_eps',
  'rope_theta',
  'rope_scaling',
  'tie_word_embeddings',
  'attention_bias',
  'bos_token_id',
  'eos_token_id',
  'n_embd',
  'n_layer',
  'n_head',
  'n_positions',
  'n_inner',
  'torch_dtype',
];
const CHAT = JSON.stringify({
  messages: [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'hi' },
    { role: 'assistant', content: 'hello' },
  ],
});

/** Loads the folder, uses tokenizer and chat template, uploads and frees the weights. */
async function loadAll(ctx: GpuContext, files: Map<string, Uint8Array>): Promise<void> {
  const mf = await loadModelFiles(mapSource(files));
  const ids = mf.tokenizer.encode('Hello, world! <s> ü 漢字 \u0000', true);
  mf.tokenizer.decode(ids);
  parseExamples(CHAT, { format: 'jsonl', fileName: 'chat.jsonl', chat: chatContextOf(mf.tokenizer) });
  const model = await loadModel(ctx, mf.config, mf.weights, { dtype: 'f32' });
  model.weights.free();
}

function jsonOf(bytes: Uint8Array): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(bytes));
}

async function mutateFile(
  t: Tally,
  ctx: GpuContext,
  r: Prng,
  n: number,
  file: string,
  keys: string[],
  named: string[],
  folderOf: (r: Prng) => Map<string, Uint8Array>,
): Promise<void> {
  for (let i = 0; i < n; i++) {
    const files = folderOf(r);
    const base = files.get(file)!;
    let what: string;
    if (r.next() < 0.8) {
      let json: unknown = jsonOf(base);
      const whats: string[] = [];
      for (let k = 1 + r.int(2); k > 0; k--) {
        const m = mutateJson(r, json, keys);
        json = m.json;
        whats.push(m.what);
      }
      files.set(file, enc(json));
      what = whats.join('; ');
    } else {
      const m = mutateBytes(r, base);
      files.set(file, m.bytes);
      what = m.what;
    }
    await runCase(t, { label: `seed ${SEED} ${file} #${i}: ${what}`, file: named, boundMs: 5000, ctx }, () =>
      loadAll(ctx, files),
    );
  }
}

const folderOf = (r: Prng) => new Map<string, Uint8Array>(tinyModelFolder(r.pick(FAMILIES)));

describe('fuzz: model folder JSON files', () => {
  it('config.json: types, missing and contradictory fields, absurd sizes', async () => {
    const ctx = await gpu();
    const r = prng(SEED);
    const t = tally('config.json');
    const named = ['config.json', 'model.safetensors', 'tokenizer.json'];
    await mutateFile(t, ctx, r, 110, 'config.json', CONFIG_KEYS, named, folderOf);
    const hostile: [string, Record<string, unknown>][] = [
      ['num_hidden_layers 10^9', { num_hidden_layers: 1e9 }],
      ['num_hidden_layers 2^53-1', { num_hidden_layers: 2 ** 53 - 1 }],
      ['hidden_size 2^31', { hidden_size: 2 ** 31 }],
      ['vocab_size 10^15', { vocab_size: 1e15 }],
      ['intermediate_size 2^40', { intermediate_size: 2 ** 40 }],
      ['heads do not divide hidden_size', { num_attention_heads: 3 }],
      ['more kv heads than heads', { num_key_value_heads: 8 }],
      ['kv heads do not divide heads', { num_key_value_heads: 3 }],
      ['head_dim 10^6', { head_dim: 1e6 }],
      ['max_position_embeddings 2^53', { max_position_embeddings: 2 ** 53 }],
      ['architectures says GPT-2, model_type llama', { architectures: ['GPT2LMHeadModel'] }],
      ['architectures a string', { architectures: 'LlamaForCausalLM' }],
      ['architectures empty', { architectures: [] }],
      ['unknown architecture', { architectures: ['BertModel'], model_type: 'bert' }],
      ['rope_scaling linear', { rope_scaling: { type: 'linear', factor: 2 } }],
      ['rope_scaling a number', { rope_scaling: 4 }],
      ['tie_word_embeddings false without lm_head', { tie_word_embeddings: false }],
      ['eos_token_id a list with a string', { eos_token_id: [1, 'x'] }],
      ['bos_token_id past the vocabulary', { bos_token_id: 10 ** 9 }],
    ];
    for (const [what, patch] of hostile) {
      const files = new Map<string, Uint8Array>(tinyModelFolder('llama'));
      files.set('config.json', enc({ ...jsonOf(files.get('config.json')!), ...patch }));
      await runCase(t, { label: `hostile config: ${what}`, file: named, boundMs: 5000, ctx }, () =>
        loadAll(ctx, files),
      );
    }
    for (const [what, text] of [
      ['empty', ''],
      ['a list', '[]'],
      ['null', 'null'],
      ['a BOM then JSON', '\ufeff{}'],
      ['UTF-16', '\u0000{\u0000}'],
      ['10 MB of spaces', ' '.repeat(10 << 20)],
    ] as const) {
      const files = new Map<string, Uint8Array>(tinyModelFolder('gpt2'));
      files.set('config.json', enc(text));
      await runCase(t, { label: `hostile config: ${what}`, file: 'config.json', boundMs: 5000, ctx }, () =>
        loadAll(ctx, files),
      );
    }
    report(t);
  });

  it('a config declaring more parameters than the weights hold is refused with the figures, before any GPU work', async () => {
    const ctx = await gpu();
    const files = new Map<string, Uint8Array>(tinyModelFolder('llama'));
    files.set(
      'config.json',
      enc({ ...jsonOf(files.get('config.json')!), num_hidden_layers: 1024, intermediate_size: 1e7 }),
    );
    const live = ctx.alloc.liveBytes;
    const t0 = performance.now();
    await expect(loadAll(ctx, files)).rejects.toThrow(
      /^config\.json in fuzz:folder declares 4\.915e\+11 parameters \(1024 layers, hidden size 16, vocabulary 300\), at least 9\.830e\+11 bytes as F16, but the weights \(model\.safetensors\) hold 41024 bytes of data/,
    );
    // a billion layers is refused by the layer limit itself, before any per-layer table is built
    files.set('config.json', enc({ ...jsonOf(files.get('config.json')!), num_hidden_layers: 1e9 }));
    await expect(loadAll(ctx, files)).rejects.toThrow(
      /"num_hidden_layers" is 1000000000; WebLoRA supports models of at most 1024 layers/,
    );
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('tokenizer.json, tokenizer_config.json (chat templates that throw), generation_config.json, index', async () => {
    const ctx = await gpu();
    const r = prng(SEED + 1);
    const t = tally('tokenizer files, generation config, shard index');
    await mutateFile(
      t,
      ctx,
      r,
      70,
      'tokenizer.json',
      [
        'model',
        'added_tokens',
        'vocab',
        'merges',
        'type',
        'pre_tokenizer',
        'post_processor',
        'decoder',
        'normalizer',
        'id',
        'content',
      ],
      ['tokenizer.json'],
      folderOf,
    );
    await mutateFile(
      t,
      ctx,
      r,
      40,
      'tokenizer_config.json',
      ['chat_template', 'bos_token', 'eos_token', 'content', 'added_tokens_decoder', 'model_max_length'],
      ['tokenizer_config.json'],
      folderOf,
    );
    await mutateFile(
      t,
      ctx,
      r,
      15,
      'generation_config.json',
      ['max_new_tokens', 'eos_token_id'],
      ['generation_config.json'],
      folderOf,
    );
    const sharded = () => new Map<string, Uint8Array>(tinyModelFolder('qwen2', { shards: 2 }));
    await mutateFile(
      t,
      ctx,
      r,
      25,
      'model.safetensors.index.json',
      ['weight_map', 'metadata', 'model.embed_tokens.weight', 'lm_head.weight'],
      ['model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'],
      sharded,
    );
    const templates = [
      "{{ raise_exception('Conversation roles must alternate') }}",
      '{% for m in messages %}',
      '{{ messages[0].content.nonexistent() }}',
      '{% for i in range(1000000000) %}x{% endfor %}',
      '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}',
      '{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}',
      '{{ messages | tojson }}{{ 1 / 0 }}',
      '{% set x = messages[99]["content"] %}{{ x.upper() }}',
      "{{ 'a' * 1000000000 }}",
      '{{ strftime_now("%Y-%m-%d") }}{% for m in messages %}{{ m.content }}{% endfor %}',
      '',
      '{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}',
    ];
    for (const [i, template] of templates.entries()) {
      for (const where of ['tokenizer_config.json', 'chat_template.jinja']) {
        const files = new Map<string, Uint8Array>(tinyModelFolder('llama'));
        if (where === 'chat_template.jinja') files.set(where, enc(template));
        else files.set(where, enc({ ...jsonOf(files.get(where)!), chat_template: template }));
        await runCase(t, { label: `template #${i} in ${where}`, file: where, boundMs: 5000, ctx }, () =>
          loadAll(ctx, files),
        );
      }
    }
    report(t);
  });
});
