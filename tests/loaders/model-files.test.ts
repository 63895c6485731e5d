// loadModelFiles' checks of a checkpoint against its config, on in-memory folders.

import { describe, expect, it } from 'vitest';
import { bytesSource } from '../../src/loaders/byte-source';
import { loadModelFiles } from '../../src/loaders/model-files';
import { writeSafetensors } from '../../src/loaders/safetensors';
import { ModelLoadError, type ModelSource } from '../../src/loaders/sources';
import { fakeCheckpoint, fakeValues, TINY_CONFIGS, tinyModelFolder, tinyTokenizer } from './fixtures';

/** A ModelSource over a map of files that records which files were asked for. */
function mapSource(files: Map<string, Uint8Array<ArrayBuffer>>) {
  const asked: string[] = [];
  const source: ModelSource = {
    id: 'mem:test',
    async list() {
      return [...files.keys()];
    },
    async file(name) {
      asked.push(name);
      const b = files.get(name);
      return b ? bytesSource(b) : null;
    },
  };
  return { source, asked };
}

const json = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));

describe('loadModelFiles: validation against the config', () => {
  it('names a missing tensor', async () => {
    const files = tinyModelFolder('llama');
    files.set(
      'model.safetensors',
      writeSafetensors(fakeCheckpoint('llama').filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight')),
    );
    const err = await loadModelFiles(mapSource(files).source).catch((e) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(
      /mem:test lacks 1 tensor that config\.json implies: "model\.layers\.1\.mlp\.up_proj\.weight"/,
    );
  });

  it('names a tensor whose shape disagrees with the config', async () => {
    const files = tinyModelFolder('llama');
    const tensors = fakeCheckpoint('llama').map((t) =>
      t.name === 'model.layers.0.self_attn.k_proj.weight' ? { ...t, shape: [16, 16], data: new Float32Array(256) } : t,
    );
    files.set('model.safetensors', writeSafetensors(tensors));
    await expect(loadModelFiles(mapSource(files).source)).rejects.toThrow(
      /tensor "model\.layers\.0\.self_attn\.k_proj\.weight" has shape \[16, 16\] but config\.json implies \[8, 16\]/,
    );
  });

  it('ignores extra tensors: lm_head on a tied model, rotary caches', async () => {
    const files = tinyModelFolder('llama'); // tie_word_embeddings: true
    const extra = [
      ...fakeCheckpoint('llama'),
      { name: 'lm_head.weight', dtype: 'F32' as const, shape: [300, 16], data: new Float32Array(300 * 16) },
      {
        name: 'model.layers.0.self_attn.rotary_emb.inv_freq',
        dtype: 'F32' as const,
        shape: [2],
        data: new Float32Array(2),
      },
    ];
    files.set('model.safetensors', writeSafetensors(extra));
    const m = await loadModelFiles(mapSource(files).source);
    expect(m.weights.has('lm_head.weight')).toBe(false);
    expect(m.weights.size).toBe(2 + 2 * 9);
  });

  it('loads GPT-2 checkpoints saved without the "transformer." prefix, with attn.bias mask buffers', async () => {
    const files = tinyModelFolder('gpt2');
    const tensors = [
      ...fakeCheckpoint('gpt2', 'F32', (n) => n.replace(/^transformer\./, '')),
      { name: 'h.0.attn.bias', dtype: 'F32' as const, shape: [1, 1, 32, 32], data: new Float32Array(32 * 32) },
    ];
    files.set('model.safetensors', writeSafetensors(tensors));
    const m = await loadModelFiles(mapSource(files).source);
    const w = m.weights.get('transformer.h.1.mlp.c_fc.weight')!;
    expect([w.storedName, w.shape]).toEqual(['h.1.mlp.c_fc.weight', [16, 64]]);
    expect(Array.from(await w.read())).toEqual(Array.from(fakeValues('transformer.h.1.mlp.c_fc.weight', 16 * 64)));
  });

  it('reads BF16 weights as float32', async () => {
    const files = tinyModelFolder('qwen2');
    const tensors = fakeCheckpoint('qwen2').map((t) => ({
      ...t,
      dtype: 'BF16' as const,
      data: Uint16Array.from(new Uint32Array((t.data as Float32Array).buffer), (b) => b >>> 16),
    }));
    files.set('model.safetensors', writeSafetensors(tensors));
    const m = await loadModelFiles(mapSource(files).source);
    const w = m.weights.get('model.layers.1.self_attn.q_proj.bias')!;
    expect(w.dtype).toBe('BF16');
    expect(Array.from(await w.read())).toEqual(Array.from(fakeValues(w.name, 16))); // k/64 values are exact in bf16
    expect((await w.readBytes()).byteLength).toBe(32);
  });

  it('refuses integer (quantised) weights', async () => {
    const files = tinyModelFolder('llama');
    const tensors = fakeCheckpoint('llama').filter((t) => t.name !== 'model.norm.weight');
    const ints = writeSafetensors(tensors);
    // Rewrite the header by hand: model.norm.weight as I32 (writeSafetensors only writes floats).
    const n = Number(new DataView(ints.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(ints.subarray(8, 8 + n)));
    const dataLen = ints.byteLength - 8 - n;
    header['model.norm.weight'] = { dtype: 'I32', shape: [16], data_offsets: [dataLen, dataLen + 64] };
    const hb = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + hb.byteLength + dataLen + 64);
    new DataView(out.buffer).setBigUint64(0, BigInt(hb.byteLength), true);
    out.set(hb, 8);
    out.set(ints.subarray(8 + n), 8 + hb.byteLength);
    files.set('model.safetensors', out);
    await expect(loadModelFiles(mapSource(files).source)).rejects.toThrow(
      /"model\.norm\.weight" has dtype I32; WebLoRA reads F32, F16 or BF16/,
    );
  });

  it('rejects a tokenizer whose base vocabulary does not fit the embedding; an added token past it loads and is refused at encode', async () => {
    const files = tinyModelFolder('llama');
    const tj = tinyTokenizer().json as { model: { vocab: Record<string, number> } };
    tj.model.vocab['zz'] = 300; // a base-vocabulary id one past the 300-row embedding
    files.set('tokenizer.json', json(tj));
    await expect(loadModelFiles(mapSource(files).source)).rejects.toThrow(
      /token id 300 but the model's embedding has only 300 rows/,
    );
    // Gemma 3 ships <image_soft_token> as an added token at id vocab_size: the model loads, the token cannot
    // reach the embedding.
    const withAdded = tinyModelFolder('llama');
    withAdded.set('tokenizer.json', json(tinyTokenizer({ extraIds: 300 }).json));
    const m = await loadModelFiles(mapSource(withAdded).source);
    expect(m.tokenizer.encode('a b', false).every((id) => id < 300)).toBe(true);
    expect(() => m.tokenizer.encode('a<|extra|>b', false)).toThrow(/"<\|extra\|>" \(id 300\).*300 rows/);
  });

  it('fails on an unsupported architecture before asking for any weights', async () => {
    const files = tinyModelFolder('llama');
    files.set('config.json', json({ ...TINY_CONFIGS.llama, architectures: ['PhiForCausalLM'] }));
    const { source, asked } = mapSource(files);
    await expect(loadModelFiles(source)).rejects.toThrow(
      /config\.json \(mem:test\): architecture "PhiForCausalLM" is not supported/,
    );
    expect(asked).toEqual(['config.json']);
  });

  it('reports invalid JSON with the file name', async () => {
    const files = tinyModelFolder('llama');
    files.set('tokenizer_config.json', new TextEncoder().encode('{"bos_token": '));
    await expect(loadModelFiles(mapSource(files).source)).rejects.toThrow(
      /tokenizer_config\.json in mem:test is not valid JSON/,
    );
  });

  it('reads chat_template.jinja over the tokenizer config template', async () => {
    const files = tinyModelFolder('llama');
    files.set(
      'chat_template.jinja',
      new TextEncoder().encode('{{ bos_token }}{% for m in messages %}[{{ m.content }}]{% endfor %}'),
    );
    const m = await loadModelFiles(mapSource(files).source);
    expect(m.chatTemplate).toMatch(/^\{\{ bos_token \}\}/);
  });
});

describe('loadModelFiles: sharded index problems', () => {
  it('names a shard the index lists but the source lacks', async () => {
    const files = tinyModelFolder('llama', { shards: 2 });
    files.delete('model-00002-of-00002.safetensors');
    await expect(loadModelFiles(mapSource(files).source)).rejects.toThrow(
      /model-00002-of-00002\.safetensors \(a shard listed in model\.safetensors\.index\.json\) was not found in mem:test/,
    );
  });

  it('names a tensor the index places in a shard that does not hold it', async () => {
    const files = tinyModelFolder('llama', { shards: 2 });
    const index = JSON.parse(new TextDecoder().decode(files.get('model.safetensors.index.json')!));
    index.weight_map['model.norm.weight'] = 'model-00001-of-00002.safetensors';
    files.set('model.safetensors.index.json', json(index));
    await expect(loadModelFiles(mapSource(files).source)).rejects.toThrow(
      /model-00001-of-00002\.safetensors in mem:test lacks tensor "model\.norm\.weight"/,
    );
  });

  it('rejects an index without a weight_map', async () => {
    const files = tinyModelFolder('llama', { shards: 2 });
    files.set('model.safetensors.index.json', json({ metadata: {} }));
    await expect(loadModelFiles(mapSource(files).source)).rejects.toThrow(/has no "weight_map" object/);
  });

  it('passes a corrupt shard header through as a SafetensorsError naming the shard', async () => {
    const files = tinyModelFolder('llama', { shards: 2 });
    const shard = files.get('model-00002-of-00002.safetensors')!;
    files.set('model-00002-of-00002.safetensors', shard.subarray(0, 12));
    await expect(loadModelFiles(mapSource(files).source)).rejects.toThrow(
      /model-00002-of-00002\.safetensors \(mem:test\):.*truncated/,
    );
  });
});
