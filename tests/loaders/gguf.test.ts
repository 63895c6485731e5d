// GGUF: the format reader and writer (src/loaders/gguf.ts), and GGUF models (src/loaders/gguf-model.ts)
// against the same models loaded from safetensors. The GGUF files in tests/fixtures/gguf/ were written by
// the independent Python writer tools/gguf_write.py (llama.cpp's layout, q/k permuted for llama), so these
// tests check the reader, the name mapping, the config mapping and the un-permutation against it.
//
// Exactness: an F32 GGUF holds the same floats as the checkpoint; F16/BF16 ones hold them rounded to
// that type. We require the weights bit for bit (after the same rounding) and, loaded on the GPU the same
// way, the logits bit for bit: any difference is a bug, not rounding. Gemma 3's norm weights are stored as
// 1 + w: they are compared as the 1 + w the model uses, which is what survives the round trip exactly.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { f32ToF16Bits, fromBF16, fromF16 } from '../../src/gpu/f16';
import { dequantize, quantize } from '../../src/gpu/quant';
import { bytesSource } from '../../src/loaders/byte-source';
import {
  GGUF_VALUE,
  GgufError,
  readGgufHeader,
  writeGguf,
  type GgufKv,
  type GgufScalar,
  type GgufValue,
} from '../../src/loaders/gguf';
import { ggufName, permuteRows, unpermuteRows } from '../../src/loaders/gguf-model';
import { loadModelFiles, type ModelFiles } from '../../src/loaders/model-files';
import { dirSource } from '../../src/loaders/sources.node';
import { loadModel } from '../../src/models';
import { forwardLogits } from '../../src/models/forward';
import type { TensorReader } from '../../src/models/weights';
import { FIXTURES } from '../helpers/fixtures';
import { gpu, rng } from '../helpers/gpu';

const GGUF_DIR = join(FIXTURES, 'gguf');

/** The fixture GGUF files: [file, the golden folder it was written from, its tensor type]. */
const CASES: [string, string, 'F32' | 'F16' | 'BF16'][] = [
  ['llama-gqa-tied-f32.gguf', 'llama-gqa-tied', 'F32'],
  ['llama-gqa-tied-f16.gguf', 'llama-gqa-tied', 'F16'],
  ['llama-untied-bf16.gguf', 'llama-untied', 'BF16'],
  ['qwen2-bias-f32.gguf', 'qwen2-bias', 'F32'],
  ['qwen3-gqa-tied-f32.gguf', 'qwen3-gqa-tied', 'F32'],
  ['qwen3-untied-f16.gguf', 'qwen3-untied', 'F16'],
  ['gemma3-pattern-untied-f32.gguf', 'gemma3-pattern-untied', 'F32'],
  ['gemma3-final-softcap-f32.gguf', 'gemma3-final-softcap', 'F32'],
];

/** What a float32 value becomes stored as `type` (round to nearest even), back as float32. */
function roundTo(type: 'F32' | 'F16' | 'BF16', x: Float32Array): Float32Array {
  if (type === 'F32') return x;
  if (type === 'F16') return fromF16(Uint16Array.from(x, f32ToF16Bits));
  const u = new Uint32Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
  return fromBF16(Uint16Array.from(u, (b) => (b + 0x7fff + ((b >>> 16) & 1)) >>> 16));
}

describe('GGUF format', () => {
  it('round-trips every metadata type, awkward tensor shapes and a 64-byte alignment', async () => {
    const r = rng(7);
    const kvs: GgufKv[] = [
      { key: 'general.architecture', type: GGUF_VALUE.STRING, value: 'llama' },
      { key: 'u8', type: GGUF_VALUE.UINT8, value: 255 },
      { key: 'i8', type: GGUF_VALUE.INT8, value: -128 },
      { key: 'u16', type: GGUF_VALUE.UINT16, value: 65535 },
      { key: 'i16', type: GGUF_VALUE.INT16, value: -32768 },
      { key: 'u32', type: GGUF_VALUE.UINT32, value: 4294967295 },
      { key: 'i32', type: GGUF_VALUE.INT32, value: -2147483648 },
      { key: 'f32', type: GGUF_VALUE.FLOAT32, value: 0.1 },
      { key: 'bool', type: GGUF_VALUE.BOOL, value: true },
      { key: 'u64', type: GGUF_VALUE.UINT64, value: 2n ** 63n + 5n },
      { key: 'i64', type: GGUF_VALUE.INT64, value: -(2n ** 62n) },
      { key: 'f64', type: GGUF_VALUE.FLOAT64, value: Math.PI },
      { key: 'strings', type: GGUF_VALUE.STRING, value: ['', 'ä ▁x', '<|end|>'], array: true },
      { key: 'ints', type: GGUF_VALUE.INT32, value: [1, -2, 3], array: true },
      { key: 'empty', type: GGUF_VALUE.FLOAT32, value: [], array: true },
    ];
    const a = r.uniform(7 * 13);
    const b = r.uniform(3);
    const c = r.uniform(5 * 2 * 3);
    const file = writeGguf(
      kvs,
      [
        { name: 'a', shape: [7, 13], type: 'F32', data: a },
        { name: 'b', shape: [3], type: 'F16', data: b },
        { name: 'c', shape: [5, 2, 3], type: 'F32', data: c },
      ],
      64,
    );
    const h = await readGgufHeader(bytesSource(file), 't.gguf');
    expect(h.version).toBe(3);
    expect(h.alignment).toBe(64);
    expect(h.dataOffset % 64).toBe(0);
    for (const kv of kvs) {
      const got = h.metadata.get(kv.key);
      if (kv.type === GGUF_VALUE.FLOAT32 && !kv.array) expect(got).toBe(Math.fround(kv.value as number));
      else expect(got, kv.key).toEqual(kv.value);
    }
    expect(h.tensors.get('a')).toMatchObject({ shape: [7, 13], type: 'F32', begin: 0, end: 7 * 13 * 4 });
    expect(h.tensors.get('b')).toMatchObject({ shape: [3], type: 'F16', begin: 384, end: 390 });
    expect(h.tensors.get('c')!.begin % 64).toBe(0);
    const at = (name: string) => {
      const t = h.tensors.get(name)!;
      return file.slice(h.dataOffset + t.begin, h.dataOffset + t.end);
    };
    expect(new Float32Array(at('a').buffer)).toEqual(a);
    expect(fromF16(new Uint16Array(at('b').buffer))).toEqual(roundTo('F16', b));
    expect(new Float32Array(at('c').buffer)).toEqual(c);
  });

  it('reads the Python writer: ne reversed to PyTorch shapes, 1-D norms kept F32', async () => {
    const h = await readGgufHeader(
      bytesSource(readFileSync(join(GGUF_DIR, 'llama-gqa-tied-f16.gguf'))),
      'llama-gqa-tied-f16.gguf',
    );
    expect(h.metadata.get('general.architecture')).toBe('llama');
    expect(h.tensors.get('blk.1.attn_k.weight')).toMatchObject({ shape: [16, 48], type: 'F16' });
    expect(h.tensors.get('blk.0.attn_norm.weight')).toMatchObject({ shape: [48], type: 'F32' });
    expect(h.tensors.has('output.weight')).toBe(false); // tied
  });

  it('refuses a non-GGUF file, a wrong version and a bad alignment by name', async () => {
    const good = writeGguf([{ key: 'k', type: GGUF_VALUE.UINT32, value: 1 }], []);
    const read = (b: Uint8Array) => readGgufHeader(bytesSource(b), 'x.gguf');
    const notGguf = good.slice();
    notGguf.set([0x50, 0x4b, 3, 4]);
    await expect(read(notGguf)).rejects.toThrow(/x\.gguf: starts with "PK\\u0003\\u0004", not "GGUF"/);
    const v1 = good.slice();
    new DataView(v1.buffer).setUint32(4, 1, true);
    await expect(read(v1)).rejects.toThrow(/GGUF version 1; WebLoRA reads versions 2 and 3/);
    const align = writeGguf([{ key: 'general.alignment', type: GGUF_VALUE.UINT32, value: 12 }], []);
    await expect(read(align)).rejects.toThrow(GgufError);
    await expect(read(align)).rejects.toThrow(/general\.alignment is 12; it must be a positive multiple of 8/);
  });
});

describe('GGUF names and the llama q/k permutation', () => {
  it('maps Hugging Face names to llama.cpp names', () => {
    expect(ggufName('model.embed_tokens.weight')).toBe('token_embd.weight');
    expect(ggufName('lm_head.weight')).toBe('output.weight');
    expect(ggufName('model.norm.weight')).toBe('output_norm.weight');
    expect(ggufName('model.layers.11.self_attn.q_proj.bias')).toBe('blk.11.attn_q.bias');
    expect(ggufName('model.layers.0.self_attn.k_norm.weight')).toBe('blk.0.attn_k_norm.weight');
    expect(ggufName('model.layers.3.mlp.down_proj')).toBe('blk.3.ffn_down');
    expect(ggufName('model.layers.3.mlp.experts')).toBe(null);
  });

  it('unpermuteRows undoes permuteRows for several heads and head sizes', () => {
    const r = rng(3);
    for (const [heads, D, cols] of [
      [1, 2, 1],
      [3, 6, 5],
      [2, 10, 7],
    ]) {
      const x = r.uniform(heads * D * cols);
      const p = permuteRows(x, heads * D, cols, heads);
      // head 0, first half's row 1 goes to interleaved row 2 (pair 1, element 0)
      if (D >= 4) expect(p.subarray(2 * cols, 3 * cols)).toEqual(x.subarray(cols, 2 * cols));
      const back = unpermuteRows(new Uint8Array(p.buffer), heads * D, cols * 4, heads);
      expect(new Float32Array(back.buffer)).toEqual(x);
    }
  });
});

async function bothModels(file: string, folder: string): Promise<[ModelFiles, ModelFiles]> {
  return [await loadModelFiles(dirSource(GGUF_DIR, file)), await loadModelFiles(dirSource(join(FIXTURES, folder)))];
}

describe('GGUF models load as the same model as their safetensors', () => {
  it.each(CASES)('%s: config, and every weight bit for bit', async (file, folder, type) => {
    const [g, s] = await bothModels(file, folder);
    expect(g.config).toEqual(s.config);
    expect([...g.weights.keys()].sort()).toEqual([...s.weights.keys()].sort());
    const onePlus = (x: Float32Array) => x.map((v) => v + 1);
    for (const [name, w] of g.weights) {
      let want = await s.weights.get(name)!.read();
      let got = await w.read();
      if (g.config.family === 'gemma3' && name.endsWith('norm.weight')) [want, got] = [onePlus(want), onePlus(got)];
      const is2d = w.shape.length === 2;
      expect(w.dtype, name).toBe(is2d ? type : 'F32');
      expect(got, name).toEqual(is2d ? roundTo(type, want) : want);
      if (w.dtype === 'F32')
        expect(
          new Float32Array(Uint8Array.from(await w.readBytes()).buffer),
          `${name}: bytes and values agree`,
        ).toEqual(await w.read());
    }
  });

  it.each(CASES)('%s: logits bit for bit on the GPU', async (file, folder, type) => {
    const ctx = await gpu();
    const [g, s] = await bothModels(file, folder);
    // an F16 file is compared with the checkpoint stored as f16 on the GPU (the same rounding)
    const dtype = type === 'F16' ? 'f16' : 'f32';
    expect(dtype === 'f32' || ctx.hasF16, 'the loaders tests run on lavapipe, which has shader-f16').toBe(true);
    const B = 2;
    const T = 9;
    const ids = rng(11).int(B * T, g.config.vocabSize);
    const logits = async (m: ModelFiles) => {
      const model = await loadModel(ctx, m.config, m.weights, { dtype });
      const out = forwardLogits(model, null, ids, B, T);
      const v = await out.read();
      out.free();
      model.weights.free();
      return v;
    };
    const [lg, ls] = [await logits(g), await logits(s)];
    expect(lg.length).toBe(B * T * g.config.vocabSize);
    expect(lg).toEqual(ls);
  });

  it('picks the only .gguf of a folder without config.json, and asks to choose among several', async () => {
    const one = await loadModelFiles({
      id: 'mem:one',
      list: async () => ['qwen2-bias-f32.gguf', 'README.md'],
      file: (n) => dirSource(GGUF_DIR).file(n),
    });
    expect(one.config.family).toBe('qwen2');
    await expect(loadModelFiles(dirSource(GGUF_DIR))).rejects.toThrow(
      /holds 15 GGUF files \(bpe-llama3\.tokenizer\.gguf, .*\) and no config\.json; choose the GGUF file to load/,
    );
  });
});

/** A fixture GGUF with its header patched: `patch` gets the bytes and the offset right after a string. */
function patched(file: string, after: string, patch: (dv: DataView, at: number) => void): Uint8Array {
  const bytes = new Uint8Array(readFileSync(join(GGUF_DIR, file)));
  const needle = new TextEncoder().encode(after);
  let at = -1;
  for (let i = 0; i + needle.byteLength <= bytes.byteLength && at < 0; i++)
    if (needle.every((b, k) => bytes[i + k] === b)) at = i + needle.byteLength;
  if (at < 0) throw new Error(`"${after}" is not in ${file}`);
  patch(new DataView(bytes.buffer), at);
  return bytes;
}

const one = (name: string, bytes: Uint8Array) =>
  loadModelFiles({ id: 'mem:x', list: async () => [name], file: async () => bytesSource(bytes) });

describe('quantised GGUF models: Q8_0 and Q4_0 blocks as they are, others refused by name', () => {
  // qwen3-untied (hidden 32): q/k/v/gate/up, the embedding and the head are whole 32-blocks and quantised;
  // o_proj and down_proj (48 wide) stayed F16, norms F32. gemma3-final-softcap (hidden 64, tied): all seven
  // linears of its 3 layers and the embedding.
  const QUANT_CASES = [
    ['qwen3-untied-q8_0.gguf', 'qwen3-untied', 'q8', 2 * 5 + 2],
    ['qwen3-untied-q4_0.gguf', 'qwen3-untied', 'q4', 2 * 5 + 2],
    ['gemma3-final-softcap-q8_0.gguf', 'gemma3-final-softcap', 'q8', 3 * 7 + 1],
    ['gemma3-final-softcap-q4_0.gguf', 'gemma3-final-softcap', 'q4', 3 * 7 + 1],
  ] as const;

  it.each(QUANT_CASES)(
    '%s: quant() is our quantiser on the checkpoint bit for bit, and dequantises to read() exactly',
    async (file, folder, kind, count) => {
      // tools/gguf_write.py quantised with its own (numpy) copy of ggml's reference quantisers; quantize() is
      // src/gpu/quant.ts's, so equal blocks check both, the block copy and the scale packing
      const s = await loadModelFiles(dirSource(join(FIXTURES, folder)));
      const g = await loadModelFiles(dirSource(GGUF_DIR, file));
      expect(g.config).toEqual(s.config);
      const h = await readGgufHeader(bytesSource(readFileSync(join(GGUF_DIR, file))), file);
      let quantised = 0;
      for (const [name, w] of g.weights) {
        const type = h.tensors.get(w.storedName)!.type;
        expect(w.dtype, name).toBe(type === 'F32' || type === 'F16' ? type : kind === 'q8' ? 'Q8_0' : 'Q4_0');
        if (!w.quant) continue;
        quantised++;
        const [rows, cols] = w.shape;
        const qb = await w.quant();
        expect([qb.kind, qb.rows, qb.cols], name).toEqual([kind, rows, cols]);
        const ours = quantize(kind, await s.weights.get(name)!.read(), rows, cols);
        expect(qb.q, `${name}: quants`).toEqual(ours.q);
        expect(qb.scales, `${name}: scales`).toEqual(ours.scales);
        expect(dequantize(qb), `${name}: dequantize(quant()) = read()`).toEqual(await w.read());
      }
      expect(quantised, file).toBe(count);
    },
  );

  it('Q8_0 and Q4_0 values are within the quantisation step of the checkpoint', async () => {
    // Per block of 32 with a = max |w|:
    //   Q8_0  d = a/127, |deq − w| ≤ d/2 (rounding) + 127·d·2^-11 (d stored as f16)     ≤ 0.57·d
    //   Q4_0  d = a/8,   |deq − w| ≤ d (the clamp at 15) + 8·d·2^-11                     ≤ 1.01·d
    const s = await loadModelFiles(dirSource(join(FIXTURES, 'qwen3-untied')));
    for (const [file, step, slack] of [
      ['qwen3-untied-q8_0.gguf', 127, 0.57],
      ['qwen3-untied-q4_0.gguf', 8, 1.01],
    ] as const) {
      const g = await loadModelFiles(dirSource(GGUF_DIR, file));
      for (const [name, w] of g.weights) {
        if (!w.quant) continue;
        const want = await s.weights.get(name)!.read();
        const got = await w.read();
        let worst = 0;
        for (let b = 0; b < want.length; b += 32) {
          const blk = want.subarray(b, b + 32);
          const d = Math.max(...blk.map(Math.abs)) / step;
          for (let i = 0; i < 32; i++) worst = Math.max(worst, Math.abs(got[b + i] - blk[i]) / (d || 1));
        }
        expect(worst, `${name} (${w.dtype}): worst error in units of its block's step`).toBeLessThanOrEqual(slack);
        expect(got, `${name} is not simply the checkpoint`).not.toEqual(want);
      }
    }
  });

  it('llama q/k rows of blocks are un-permuted as whole rows', async () => {
    // qwen3-untied-q8_0 relabelled as llama (every "qwen3" in the header is "llama", the same length): the loader
    // now un-permutes q_proj and k_proj, whose rows are Q8_0 blocks (2 heads of D = 24 rows, 32 columns)
    const bytes = new Uint8Array(readFileSync(join(GGUF_DIR, 'qwen3-untied-q8_0.gguf')));
    const [from, to] = [new TextEncoder().encode('qwen3'), new TextEncoder().encode('llama')];
    for (let i = 0; i + 5 <= bytes.byteLength; i++) if (from.every((b, k) => bytes[i + k] === b)) bytes.set(to, i);
    const asLlama = await one('as-llama.gguf', bytes);
    const asQwen = await loadModelFiles(dirSource(GGUF_DIR, 'qwen3-untied-q8_0.gguf'));
    expect(asLlama.config.family).toBe('llama');
    for (const [proj, heads] of [
      ['q_proj', 2],
      ['k_proj', 2],
      ['v_proj', 0],
    ] as const) {
      const name = `model.layers.1.self_attn.${proj}.weight`;
      const [p, q] = [asLlama.weights.get(name)!, asQwen.weights.get(name)!];
      const [rows, cols] = p.shape;
      const [pb, qb] = [await p.quant!(), await q.quant!()];
      const [pv, qv] = [await p.read(), await q.read()];
      expect(dequantize(pb), name).toEqual(pv);
      // HF row h·D + i·D/2 + j is stored row h·D + 2j + i (the header's formula, written out again here)
      const D = heads ? rows / heads : rows;
      const stored = (r: number) =>
        heads ? Math.floor(r / D) * D + 2 * (r % (D / 2)) + Math.floor((r % D) / (D / 2)) : r;
      const bpr = cols / 32; // blocks per row
      for (let r = 0; r < rows; r++) {
        const sr = stored(r);
        expect(pv.subarray(r * cols, (r + 1) * cols), `${name} row ${r}`).toEqual(
          qv.subarray(sr * cols, (sr + 1) * cols),
        );
        expect(pb.q.subarray(r * bpr * 8, (r + 1) * bpr * 8)).toEqual(qb.q.subarray(sr * bpr * 8, (sr + 1) * bpr * 8));
      }
      if (heads) expect(pv, `${name} moved`).not.toEqual(qv);
    }
  });

  it.each(QUANT_CASES)(
    '%s: logits on the GPU equal, bit for bit, the checkpoint with its weights quantised by quantize()',
    async (file, folder, kind) => {
      const ctx = await gpu();
      const s = await loadModelFiles(dirSource(join(FIXTURES, folder)));
      const g = await loadModelFiles(dirSource(GGUF_DIR, file));
      // the checkpoint, each tensor the GGUF holds as blocks replaced by dequantize(quantize(w)), and the F16
      // ones (qwen3-untied's 48-wide o_proj and down_proj) by w rounded to f16
      const requantised = new Map(
        [...s.weights].map(([name, w]) => {
          const gw = g.weights.get(name)!;
          const [rows, cols] = w.shape;
          const read = gw.quant
            ? async () => dequantize(quantize(kind, await w.read(), rows, cols))
            : gw.dtype === 'F16'
              ? async () => roundTo('F16', await w.read())
              : () => w.read();
          return [name, { shape: w.shape, read }];
        }),
      );
      const B = 2;
      const T = 9;
      const ids = rng(12).int(B * T, g.config.vocabSize);
      const logits = async (weights: Map<string, TensorReader>) => {
        const model = await loadModel(ctx, g.config, weights, { dtype: 'f32' });
        const out = forwardLogits(model, null, ids, B, T);
        const v = await out.read();
        out.free();
        model.weights.free();
        return v;
      };
      const [lg, lq, ls] = [await logits(g.weights), await logits(requantised), await logits(s.weights)];
      expect(lg).toEqual(lq);
      let worst = 0;
      for (let i = 0; i < ls.length; i++) worst = Math.max(worst, Math.abs(lg[i] - ls[i]));
      expect(worst, 'quantisation moved the logits').toBeGreaterThan(0);
    },
  );

  it('other quantised types are refused, naming the type', async () => {
    const k = patched('qwen3-untied-f16.gguf', 'blk.0.attn_q.weight', (dv, at) => dv.setUint32(at + 20, 6, true));
    await expect(one('k.gguf', k)).rejects.toThrow(/is Q5_0\. WebLoRA reads F32, F16, BF16, Q8_0 and Q4_0 GGUF models/);
  });

  it('an architecture outside the table, and an adapter file given as a model', async () => {
    // "llama" -> "gemma": same length, so the file stays well-formed
    const gemma = patched('llama-gqa-tied-f32.gguf', 'general.architecture', (dv, at) => {
      const b = new Uint8Array(dv.buffer);
      b.set(new TextEncoder().encode('gemma'), at + 4 + 8);
    });
    await expect(one('g.gguf', gemma)).rejects.toThrow(
      /g\.gguf \(mem:x\): its architecture "gemma" \(general\.architecture\) is not supported; WebLoRA loads GGUF models of llama, qwen2, qwen3, gemma3/,
    );
    const adapter = writeGguf(
      [
        { key: 'general.architecture', type: GGUF_VALUE.STRING, value: 'llama' },
        { key: 'general.type', type: GGUF_VALUE.STRING, value: 'adapter' },
      ],
      [],
    );
    await expect(one('a.gguf', adapter)).rejects.toThrow(
      /a\.gguf \(mem:x\): is a LoRA adapter \(general\.type = adapter\), not a model/,
    );
  });
});

/** A fixture GGUF (all tensors F32) written again with its metadata edited; value types follow the values. */
async function rewritten(file: string, edit: (m: Map<string, GgufValue>) => void): Promise<Uint8Array> {
  const src = bytesSource(readFileSync(join(GGUF_DIR, file)));
  const h = await readGgufHeader(src, file);
  const meta = new Map(h.metadata);
  edit(meta);
  const typeOf = (v: GgufScalar): GgufKv['type'] =>
    typeof v === 'string'
      ? GGUF_VALUE.STRING
      : typeof v === 'boolean'
        ? GGUF_VALUE.BOOL
        : typeof v === 'bigint'
          ? GGUF_VALUE.UINT64
          : Number.isInteger(v)
            ? GGUF_VALUE.INT32
            : GGUF_VALUE.FLOAT32;
  const kvs: GgufKv[] = [...meta].map(([key, value]) =>
    Array.isArray(value)
      ? { key, type: value.length ? typeOf(value[0]) : GGUF_VALUE.INT32, value, array: true }
      : { key, type: typeOf(value), value },
  );
  const tensors = [];
  for (const t of h.tensors.values()) {
    if (t.type !== 'F32') throw new Error(`${file}: ${t.name} is ${t.type}`);
    const raw = await src.read(h.dataOffset + t.begin, h.dataOffset + t.end);
    tensors.push({
      name: t.name,
      shape: t.shape,
      type: 'F32' as const,
      data: new Float32Array(Uint8Array.from(raw).buffer),
    });
  }
  return writeGguf(kvs, tensors);
}

describe('Gemma 3 GGUF metadata', () => {
  const FILE = 'gemma3-final-softcap-f32.gguf';

  it('the metadata rewritten unchanged loads as the fixture (the helper below changes only what it edits)', async () => {
    const same = await one('same.gguf', await rewritten(FILE, () => {}));
    expect(same.config).toEqual((await loadModelFiles(dirSource(GGUF_DIR, FILE))).config);
  });

  it('layers slide as llama.cpp reads the window and its period; a window of 0 slides none', async () => {
    const period = (p: number) => async () =>
      (await one('p.gguf', await rewritten(FILE, (m) => m.set('gemma3.attention.sliding_window_pattern', p)))).config
        .slidingLayers;
    expect(await period(2)()).toEqual([true, false, true]);
    expect(await period(0)()).toEqual([true, true, true]); // llama.cpp: period 0 = every layer slides
    const noWindow = await one('w.gguf', await rewritten(FILE, (m) => m.set('gemma3.attention.sliding_window', 0)));
    expect(noWindow.config.slidingLayers).toEqual([false, false, false]);
    const defaults = await one(
      'd.gguf',
      await rewritten(FILE, (m) => m.delete('gemma3.attention.sliding_window_pattern')),
    );
    expect(defaults.config.slidingLayers).toEqual([true, true, true]); // llama.cpp's period 6: layers 0..4 slide
    const noCap = await one('c.gguf', await rewritten(FILE, (m) => m.delete('gemma3.final_logit_softcapping')));
    expect(noCap.config.finalSoftcap).toBeUndefined();
  });

  it('a missing window, a bad pattern and an attention soft cap are refused, naming the key', async () => {
    const load = (edit: (m: Map<string, GgufValue>) => void) => rewritten(FILE, edit).then((b) => one('bad.gguf', b));
    await expect(load((m) => m.delete('gemma3.attention.sliding_window'))).rejects.toThrow(
      /bad\.gguf \(mem:x\): the metadata key "gemma3\.attention\.sliding_window" is missing/,
    );
    await expect(load((m) => m.set('gemma3.attention.sliding_window_pattern', [true, true, false]))).rejects.toThrow(
      /"gemma3\.attention\.sliding_window_pattern" is an array; llama\.cpp reads Gemma 3's as one period/,
    );
    await expect(load((m) => m.set('gemma3.attention.sliding_window_pattern', 2.5))).rejects.toThrow(
      /"gemma3\.attention\.sliding_window_pattern" is 2\.5; expected a period of layers/,
    );
    await expect(load((m) => m.set('gemma3.attention.sliding_window', 'wide'))).rejects.toThrow(
      /"gemma3\.attention\.sliding_window" is wide; expected a number/,
    );
    await expect(load((m) => m.set('gemma3.attn_logit_softcapping', 50))).rejects.toThrow(
      /"gemma3\.attn_logit_softcapping" is 50, but llama\.cpp's gemma3 has no attention soft cap/,
    );
  });
});
