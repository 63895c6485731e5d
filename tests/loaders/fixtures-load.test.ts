// The PyTorch oracle's model folders (tests/fixtures/<case>/, written by tools/golden.py) load through
// the same path the studio uses, and the weights decode to what the file holds.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { f16BitsToF32 } from '../../src/gpu/f16';
import { loadModelFiles } from '../../src/loaders/model-files';
import { bundledSource, type FileProgress } from '../../src/loaders/sources';
import { dirSource } from '../../src/loaders/sources.node';
import { expectedTensors, paramCount } from '../../src/models/config';
import { serveFolder } from './fixtures';

const FIXTURES = resolve(__dirname, '../fixtures');
const CASES = [
  { name: 'gpt2-tiny', family: 'gpt2', dtype: 'F32' },
  { name: 'llama-gqa-tied', family: 'llama', dtype: 'F16' },
  { name: 'llama-untied', family: 'llama', dtype: 'BF16' },
  { name: 'qwen2-bias', family: 'qwen2', dtype: 'F32' },
] as const;

/** Element i of a tensor, decoded straight from the file bytes with DataView (independent of the loader). */
function rawElement(file: Uint8Array, name: string, i: number): number {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const info = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n)))[name];
  const at = 8 + n + info.data_offsets[0];
  if (info.dtype === 'F32') return dv.getFloat32(at + 4 * i, true);
  if (info.dtype === 'F16') return f16BitsToF32(dv.getUint16(at + 2 * i, true));
  if (info.dtype === 'BF16') {
    const bits = new DataView(new ArrayBuffer(4));
    bits.setUint32(0, dv.getUint16(at + 2 * i, true) << 16);
    return bits.getFloat32(0);
  }
  throw new Error(info.dtype);
}

describe('oracle fixtures load', () => {
  for (const c of CASES) {
    it(`${c.name}: ${c.family}, ${c.dtype} weights`, async () => {
      const dir = join(FIXTURES, c.name);
      const m = await loadModelFiles(dirSource(dir));
      expect(m.config.family).toBe(c.family);
      expect(m.weights.size).toBe(expectedTensors(m.config).size);
      const file = new Uint8Array(readFileSync(join(dir, 'model.safetensors')));
      for (const [name, w] of m.weights) {
        expect(w.dtype, name).toBe(c.dtype);
        const v = await w.read();
        expect(v.length).toBe(w.shape.reduce((a, b) => a * b, 1));
        expect(v.every(Number.isFinite), name).toBe(true);
        for (const i of [0, v.length >> 1, v.length - 1])
          expect(v[i], `${name}[${i}]`).toBe(rawElement(file, w.storedName, i));
      }
      // The tokenizer fits the embedding and round-trips plain text.
      expect(m.tokenizer.vocabSize).toBeLessThanOrEqual(m.config.vocabSize);
      const text = 'the cat sat';
      const ids = m.tokenizer.encode(text, false);
      expect(ids.length).toBeGreaterThan(0);
      expect(ids.every((id) => id >= 0 && id < m.config.vocabSize)).toBe(true);
      expect(m.tokenizer.decode(ids).trim()).toBe(text);
    });
  }
});

describe('the bundled model (public/models/weblora-llama-1m)', () => {
  const BUNDLED = resolve(__dirname, '../../public/models/weblora-llama-1m');

  it('loads over HTTP as the studio serves it (dev-server HTML fallback for absent files), ~1M parameters', async () => {
    const files = new Map<string, Uint8Array<ArrayBuffer>>();
    for (const f of [
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]) {
      files.set(f, new Uint8Array(readFileSync(join(BUNDLED, f))));
    }
    const server = await serveFolder(files, 'models/weblora-llama-1m/', { htmlFallback: true, chunk: 256 * 1024 });
    try {
      const events: FileProgress[] = [];
      const m = await loadModelFiles(bundledSource(`${server.url}/models/weblora-llama-1m/`), (p) => events.push(p));
      expect(m.config).toMatchObject({
        family: 'llama',
        vocabSize: 2048,
        hiddenSize: 128,
        numLayers: 4,
        numKvHeads: 2,
        headDim: 32,
        tieEmbeddings: true,
      });
      expect(paramCount(m.config)).toBe(988_288);
      const size = files.get('model.safetensors')!.byteLength;
      expect(events.filter((e) => e.file === 'model.safetensors').at(-1)).toEqual({
        file: 'model.safetensors',
        loaded: size,
        total: size,
      });
      const emb = await m.weights.get('model.embed_tokens.weight')!.read();
      expect(emb.length).toBe(2048 * 128);
      expect(emb.every(Number.isFinite)).toBe(true);
      expect([m.tokenizer.bosId, m.tokenizer.eosId]).toEqual([1, 2]);
      expect(m.tokenizer.encode('Hello', true)[0]).toBe(1); // add_bos_token
      expect(m.chatTemplate).toContain('add_generation_prompt');
      expect(m.generationConfig).toMatchObject({ max_new_tokens: 64 });
    } finally {
      await server.close();
    }
  });

  it("its tokenizer gives sentencepiece's ids (first 100 oracle cases)", async () => {
    const m = await loadModelFiles(dirSource(BUNDLED));
    const cases = JSON.parse(readFileSync(join(FIXTURES, 'tokenizer/bundled_cases.json'), 'utf8')).cases as [
      string,
      number[],
    ][];
    for (const [text, ids] of cases.slice(0, 100))
      expect(m.tokenizer.encode(text, false), text.slice(0, 40)).toEqual(ids);
  });
});
