// Fuzzing the GGUF reader (src/loaders/gguf.ts) and a whole GGUF model load on the GPU
// (src/loaders/gguf-model.ts): mutated bytes of a small GGUF, hand-built hostile files (absurd counts and
// lengths, bad types, dimensions, offsets and alignments, overlaps), and mutated headers of a real model
// file. Seeded: the same cases every run. Each case must finish in its bound, succeed or throw an error
// naming the file, and leave the GPU allocator's live bytes where they were.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { bytesSource } from '../../src/loaders/byte-source';
import { decodeGgufFloat, GGUF_VALUE, readGgufHeader, writeGguf } from '../../src/loaders/gguf';
import { loadModelFiles } from '../../src/loaders/model-files';
import { loadModel } from '../../src/models';
import { FIXTURES } from '../helpers/fixtures';
import { gpu } from '../helpers/gpu';
import { mapSource, mutateBytes, prng, report, runCase, tally, type Prng } from './harness';

const SEED = 0x6603;
const FILE = 'x.gguf';

function baseFile(): Uint8Array {
  return writeGguf(
    [
      { key: 'general.architecture', type: GGUF_VALUE.STRING, value: 'llama' },
      { key: 'n', type: GGUF_VALUE.UINT32, value: 7 },
      { key: 'eps', type: GGUF_VALUE.FLOAT32, value: 1e-5 },
      { key: 'big', type: GGUF_VALUE.UINT64, value: 12345678901n },
      { key: 'flag', type: GGUF_VALUE.BOOL, value: false },
      { key: 'tokens', type: GGUF_VALUE.STRING, value: ['<s>', 'a', 'bc'], array: true },
      { key: 'scores', type: GGUF_VALUE.FLOAT32, value: [0, -1, -2], array: true },
    ],
    [
      { name: 'a.weight', shape: [3, 5], type: 'F32', data: Float32Array.from({ length: 15 }, (_, i) => i / 7) },
      { name: 'b.bias', shape: [7], type: 'F16', data: Float32Array.from({ length: 7 }, (_, i) => -i) },
      { name: 'c', shape: [2, 2], type: 'BF16', data: new Uint16Array([0x3f80, 0x4000, 0xbf80, 0x7fc0]) },
    ],
  );
}

/** Parses the file and reads every float tensor, as the model loader does. */
async function readEverything(bytes: Uint8Array, file = FILE): Promise<void> {
  const src = bytesSource(bytes);
  const h = await readGgufHeader(src, file);
  for (const t of h.tensors.values())
    if (t.type === 'F32' || t.type === 'F16' || t.type === 'BF16')
      decodeGgufFloat(t.type, await src.read(h.dataOffset + t.begin, h.dataOffset + t.end), `${file} ${t.name}`);
}

/** Little-endian pieces for hand-built files. */
const u32 = (v: number) => new Uint8Array(new Uint32Array([v]).buffer);
const u64 = (v: bigint | number) => new Uint8Array(new BigUint64Array([BigInt(v)]).buffer);
const str = (s: string) => {
  const b = new TextEncoder().encode(s);
  return cat(u64(b.byteLength), b);
};
function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
const head = (nTensors: bigint | number, nKv: bigint | number, version = 3) =>
  cat(new TextEncoder().encode('GGUF'), u32(version), u64(nTensors), u64(nKv));
/** One tensor info: name, ne (ggml order), ggml type, offset. */
const info = (name: string, ne: (number | bigint)[], type: number, offset: number | bigint) =>
  cat(str(name), u32(ne.length), ...ne.map(u64), u32(type), u64(offset));
/** A whole file: header, infos, padding to 32, then `data`. */
function file(kvs: Uint8Array[], infos: Uint8Array[], data: Uint8Array, version = 3): Uint8Array {
  const pre = cat(head(infos.length, kvs.length, version), ...kvs, ...infos);
  return cat(pre, new Uint8Array((32 - (pre.byteLength % 32)) % 32), data);
}
const kv = (key: string, type: number, value: Uint8Array) => cat(str(key), u32(type), value);

function hostileFiles(r: Prng): { what: string; bytes: Uint8Array }[] {
  const f32 = new Uint8Array(64);
  return [
    { what: 'empty file', bytes: new Uint8Array(0) },
    { what: '23 bytes', bytes: head(0, 0).subarray(0, 23) },
    { what: 'safetensors bytes', bytes: cat(u64(2), new TextEncoder().encode('{}'), new Uint8Array(20)) },
    { what: 'version 1', bytes: head(0, 0, 1) },
    { what: 'version 2^32-1', bytes: head(0, 0, 0xffffffff) },
    { what: 'n_tensors 2^64-1', bytes: head(2n ** 64n - 1n, 0) },
    { what: 'n_tensors 2^53', bytes: head(2n ** 53n, 0) },
    { what: 'n_tensors 10^6', bytes: head(1_000_000, 0) },
    { what: 'n_kv 2^63', bytes: head(0, 2n ** 63n) },
    { what: 'n_kv 1 but no kv', bytes: head(0, 1) },
    { what: 'key length 2^60', bytes: cat(head(0, 1), u64(2n ** 60n)) },
    { what: 'key length past the file', bytes: cat(head(0, 1), u64(1000), new Uint8Array(10)) },
    { what: 'key not UTF-8', bytes: cat(head(0, 1), u64(2), new Uint8Array([0xff, 0xfe]), u32(4), u32(1)) },
    { what: 'value type 13', bytes: file([kv('k', 13, u32(0))], [], f32) },
    { what: 'value type 2^32-1', bytes: file([kv('k', 0xffffffff, u32(0))], [], f32) },
    { what: 'bool of value 2', bytes: file([kv('k', GGUF_VALUE.BOOL, new Uint8Array([2]))], [], f32) },
    {
      what: 'array of arrays',
      bytes: file([kv('k', GGUF_VALUE.ARRAY, cat(u32(GGUF_VALUE.ARRAY), u64(1)))], [], f32),
    },
    {
      what: 'array of 2^40 u8',
      bytes: file([kv('k', GGUF_VALUE.ARRAY, cat(u32(GGUF_VALUE.UINT8), u64(2n ** 40n)))], [], f32),
    },
    {
      what: 'array of 10^7 strings in 100 bytes',
      bytes: file([kv('k', GGUF_VALUE.ARRAY, cat(u32(GGUF_VALUE.STRING), u64(10_000_000)))], [], new Uint8Array(100)),
    },
    {
      what: 'duplicate key',
      bytes: file([kv('k', GGUF_VALUE.UINT32, u32(1)), kv('k', GGUF_VALUE.UINT32, u32(2))], [], f32),
    },
    { what: 'alignment 0', bytes: file([kv('general.alignment', GGUF_VALUE.UINT32, u32(0))], [], f32) },
    { what: 'alignment 7', bytes: file([kv('general.alignment', GGUF_VALUE.UINT32, u32(7))], [], f32) },
    { what: 'alignment a string', bytes: file([kv('general.alignment', GGUF_VALUE.STRING, str('32'))], [], f32) },
    { what: 'tensor of 0 dims', bytes: file([], [info('t', [], 0, 0)], f32) },
    { what: 'tensor of 5 dims', bytes: file([], [info('t', [1, 1, 1, 1, 1], 0, 0)], f32) },
    { what: 'tensor with a 0 dim', bytes: file([], [info('t', [4, 0], 0, 0)], f32) },
    { what: 'tensor of 2^62 elements', bytes: file([], [info('t', [2n ** 31n, 2n ** 31n], 0, 0)], f32) },
    { what: 'tensor dims overflowing', bytes: file([], [info('t', [2n ** 50n, 2n ** 50n, 2n ** 50n], 0, 0)], f32) },
    { what: 'tensor dim 2^64-1', bytes: file([], [info('t', [2n ** 64n - 1n], 0, 0)], f32) },
    { what: 'ggml type 4 (removed Q4_2)', bytes: file([], [info('t', [32], 4, 0)], f32) },
    { what: 'ggml type 2^31', bytes: file([], [info('t', [4], 2 ** 31, 0)], f32) },
    { what: 'Q8_0 row of 31', bytes: file([], [info('t', [31], 8, 0)], f32) },
    { what: 'offset not aligned', bytes: file([], [info('t', [4], 0, 4)], f32) },
    { what: 'offset past the data', bytes: file([], [info('t', [4], 0, 64)], f32) },
    { what: 'offset 2^63', bytes: file([], [info('t', [4], 0, 2n ** 63n)], f32) },
    { what: 'tensor larger than the data', bytes: file([], [info('t', [17], 0, 0)], f32) },
    { what: 'overlapping tensors', bytes: file([], [info('a', [8], 0, 0), info('b', [8], 0, 0)], f32) },
    { what: 'duplicate tensor names', bytes: file([], [info('a', [4], 0, 0), info('a', [4], 0, 32)], f32) },
    { what: 'tensor info truncated', bytes: cat(head(1, 0), str('t'), u32(2), u64(4)) },
    {
      what: 'random bytes after a valid head',
      bytes: cat(
        head(3, 5),
        Uint8Array.from({ length: 512 }, () => r.int(256)),
      ),
    },
  ];
}

/** The type field of tensor `name` in a GGUF file (after its name, n_dims and dims). */
function typeFieldAt(bytes: Uint8Array, name: string): number {
  const needle = cat(str(name), u32(2));
  outer: for (let i = 0; i + needle.byteLength < bytes.byteLength; i++) {
    for (let k = 0; k < needle.byteLength; k++) if (bytes[i + k] !== needle[k]) continue outer;
    return i + needle.byteLength + 16;
  }
  throw new Error(`no tensor info for ${name}`);
}

describe('fuzz: GGUF', () => {
  it('parser: mutated bytes, hostile files', async () => {
    const r = prng(SEED);
    const t = tally('GGUF parser');
    const base = baseFile();
    const h = await readGgufHeader(bytesSource(base), FILE);
    for (let i = 0; i < 200; i++) {
      const m = mutateBytes(r, base, r.next() < 0.85 ? h.dataOffset : base.byteLength);
      await runCase(t, { label: `seed ${SEED} bytes #${i}: ${m.what}`, file: FILE, boundMs: 500 }, () =>
        readEverything(m.bytes),
      );
    }
    for (const x of hostileFiles(r)) {
      await runCase(t, { label: `hostile: ${x.what}`, file: FILE, boundMs: 2000 }, () => readEverything(x.bytes));
    }
    report(t);
  });

  it('model load on the GPU: a hostile model GGUF is refused before anything stays allocated', async () => {
    const ctx = await gpu();
    const r = prng(SEED + 1);
    const t = tally('GGUF in a model load (GPU)');
    const name = 'qwen3-untied-f16.gguf';
    const good = new Uint8Array(readFileSync(join(FIXTURES, 'gguf', name)));
    const h = await readGgufHeader(bytesSource(good), name);
    const load = async (bytes: Uint8Array) => {
      const mf = await loadModelFiles(mapSource(new Map([[name, bytes]])));
      const model = await loadModel(ctx, mf.config, mf.weights, { dtype: 'f32' });
      model.weights.free();
    };
    const spec = (label: string) => ({ label, file: name, boundMs: 5000, ctx });
    for (let i = 0; i < 60; i++) {
      const m = mutateBytes(r, good, r.next() < 0.8 ? h.dataOffset : good.byteLength);
      await runCase(t, spec(`seed ${SEED + 1} bytes #${i}: ${m.what}`), () => load(m.bytes));
    }
    // Quantised and unknown types where a weight should be, by patching a tensor's type field: Q8_0 and
    // Q4_0 (their blocks: a 2-D F16 tensor patched to them is the wrong size), Q4_K (not read), I32 (not a float).
    for (const type of [8, 2, 12, 26]) {
      const bytes = good.slice();
      new DataView(bytes.buffer).setUint32(typeFieldAt(bytes, 'blk.0.attn_q.weight'), type, true);
      await runCase(t, spec(`blk.0.attn_q.weight as ggml type ${type}`), () => load(bytes));
    }
    report(t);
  });

  it('Gemma 3 Q8_0 model load on the GPU: mutated headers and blocks, every quantised weight read as blocks', async () => {
    const ctx = await gpu();
    const r = prng(SEED + 2);
    const t = tally('Gemma 3 Q8_0 GGUF in a model load (GPU)');
    const name = 'gemma3-final-softcap-q8_0.gguf';
    const good = new Uint8Array(readFileSync(join(FIXTURES, 'gguf', name)));
    const h = await readGgufHeader(bytesSource(good), name);
    const load = async (bytes: Uint8Array) => {
      const mf = await loadModelFiles(mapSource(new Map([[name, bytes]])));
      for (const w of mf.weights.values()) if (w.quant) await w.quant(); // the blocks path, as a quantised load reads
      const model = await loadModel(ctx, mf.config, mf.weights, { dtype: 'f32' });
      model.weights.free();
    };
    const spec = (label: string) => ({ label, file: name, boundMs: 5000, ctx });
    for (let i = 0; i < 40; i++) {
      const m = mutateBytes(r, good, r.next() < 0.8 ? h.dataOffset : good.byteLength);
      await runCase(t, spec(`seed ${SEED + 2} bytes #${i}: ${m.what}`), () => load(m.bytes));
    }
    report(t);
  });
});
