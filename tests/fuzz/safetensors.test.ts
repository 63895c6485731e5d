// Fuzzing the safetensors reader (src/loaders/safetensors.ts) and a whole model load on the GPU with a
// hostile model.safetensors: mutated header bytes, mutated header JSON (lengths, offsets, dtypes,
// shapes), mutated data, and hand-built hostile files (huge declared sizes, overlapping and out-of-range
// data). Seeded: the same cases every run. Each case must finish in its bound, succeed or throw an
// error naming the file, and leave the GPU allocator's live bytes where they were.

import { describe, it } from 'vitest';
import { loadModelFiles } from '../../src/loaders/model-files';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/loaders/safetensors';
import { loadModel } from '../../src/models';
import { gpu } from '../helpers/gpu';
import { tinyModelFolder } from '../loaders/fixtures';
import { enc, mapSource, mutateBytes, mutateJson, prng, report, runCase, tally, type Prng } from './harness';

const SEED = 0x5afe;
const FILE = 'x.safetensors';

function baseFile(): Uint8Array {
  const t: TensorToWrite[] = [
    { name: 'a.weight', dtype: 'F32', shape: [3, 5], data: Float32Array.from({ length: 15 }, (_, i) => i / 7) },
    { name: 'b.bias', dtype: 'F16', shape: [7], data: Float32Array.from({ length: 7 }, (_, i) => -i) },
    { name: 'c', dtype: 'BF16', shape: [2, 2], data: new Uint16Array([0x3f80, 0x4000, 0xbf80, 0x7fc0]) },
    { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  ];
  return writeSafetensors(t, { format: 'pt' });
}

/** Splits a safetensors file into its header JSON and its data section. */
function split(file: Uint8Array): { header: Record<string, unknown>; data: Uint8Array } {
  const n = Number(new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true));
  return {
    header: JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))),
    data: file.subarray(8 + n),
  };
}

/** Header JSON + data -> a file; `declared` overrides the header length written in the first 8 bytes. */
function build(header: unknown, data: Uint8Array, declared?: bigint): Uint8Array {
  const json = typeof header === 'string' ? enc(header) : enc(header);
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

/** Parses the file and reads every tensor the way the loaders do. */
async function readEverything(bytes: Uint8Array, file = FILE): Promise<void> {
  const st = await openSafetensors(bytes, file);
  for (const [name, t] of st.header.tensors) {
    if (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16') await st.f32(name);
    else await st.bytes(name);
  }
}

/** Hand-built hostile files: each one a way a header can lie. */
function hostileFiles(r: Prng): { what: string; bytes: Uint8Array }[] {
  const { header, data } = split(baseFile());
  const h = (patch: (x: Record<string, Record<string, unknown>>) => void) => {
    const c = structuredClone(header) as Record<string, Record<string, unknown>>;
    patch(c);
    return build(c, data);
  };
  const out: { what: string; bytes: Uint8Array }[] = [
    { what: 'empty file', bytes: new Uint8Array(0) },
    { what: '7 bytes', bytes: new Uint8Array(7) },
    { what: 'header length 2^64-1', bytes: build(header, data, 2n ** 64n - 1n) },
    { what: 'header length 2^53+1', bytes: build(header, data, 2n ** 53n + 1n) },
    { what: 'header length 100 MB + 1', bytes: build(header, data, 100_000_001n) },
    { what: 'header length 0', bytes: build(header, data, 0n) },
    { what: 'header length 1', bytes: build(header, data, 1n) },
    { what: 'header length one past the file', bytes: build(header, new Uint8Array(0), 10_000n) },
    { what: 'header is a list', bytes: build('[1, 2]', data) },
    { what: 'header is a string', bytes: build('"abc"', data) },
    {
      what: 'header not UTF-8',
      bytes: build(new TextDecoder('latin1').decode(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), data),
    },
    { what: 'header is deep nesting', bytes: build('{"a":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}', data) },
    { what: 'header is NUL bytes', bytes: build('\0'.repeat(64), data) },
    { what: 'begin > end', bytes: h((x) => (x['a.weight'].data_offsets = [60, 0])) },
    { what: 'end past the data', bytes: h((x) => (x['a.weight'].data_offsets = [0, 1e9])) },
    { what: 'end = 2^53', bytes: h((x) => (x['a.weight'].data_offsets = [0, 2 ** 53])) },
    { what: 'negative begin', bytes: h((x) => (x['a.weight'].data_offsets = [-4, 56])) },
    { what: 'float offsets', bytes: h((x) => (x['a.weight'].data_offsets = [0.5, 60.5])) },
    { what: 'three offsets', bytes: h((x) => (x['a.weight'].data_offsets = [0, 60, 61])) },
    { what: 'offsets as strings', bytes: h((x) => (x['a.weight'].data_offsets = ['0', '60'])) },
    { what: 'overlapping tensors', bytes: h((x) => (x['b.bias'].data_offsets = [50, 64])) },
    { what: 'two tensors on the same bytes', bytes: h((x) => (x['c'].data_offsets = x['a.weight'].data_offsets)) },
    { what: 'shape of 2^60 elements', bytes: h((x) => (x['a.weight'].shape = [2 ** 30, 2 ** 30])) },
    { what: 'shape overflowing to Infinity', bytes: h((x) => (x['a.weight'].shape = Array(40).fill(2 ** 50))) },
    { what: 'shape with a negative', bytes: h((x) => (x['a.weight'].shape = [-3, -5])) },
    { what: 'shape with a float', bytes: h((x) => (x['a.weight'].shape = [1.5, 10])) },
    { what: 'shape not a list', bytes: h((x) => (x['a.weight'].shape = 15)) },
    { what: 'shape of 10^4 dims', bytes: h((x) => (x['a.weight'].shape = Array(10_000).fill(1))) },
    { what: 'lower-case dtype', bytes: h((x) => (x['a.weight'].dtype = 'f32')) },
    { what: 'unknown dtype', bytes: h((x) => (x['a.weight'].dtype = 'F128')) },
    { what: 'dtype toString', bytes: h((x) => (x['a.weight'].dtype = 'toString')) },
    { what: 'dtype __proto__', bytes: h((x) => (x['a.weight'].dtype = '__proto__')) },
    { what: 'F4 sub-byte dtype', bytes: h((x) => (x['a.weight'].dtype = 'F4')) },
    {
      what: 'I64 tensor read as bytes',
      bytes: h(
        (x) => (
          (x['a.weight'].dtype = 'I64'),
          (x['a.weight'].shape = [15, 1]),
          (x['a.weight'].data_offsets = [0, 120])
        ),
      ),
    },
    { what: 'entry is null', bytes: h((x) => ((x as Record<string, unknown>)['a.weight'] = null)) },
    { what: 'entry missing dtype', bytes: h((x) => delete x['a.weight'].dtype) },
    { what: '__metadata__ with a number', bytes: h((x) => (x.__metadata__ = { format: 1 } as never)) },
    { what: '__metadata__ a list', bytes: h((x) => (x.__metadata__ = [] as never)) },
    {
      what: 'tensor named __proto__',
      bytes: build('{"__proto__": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', data),
    },
    {
      what: 'duplicate tensor names',
      bytes: build(
        '{"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}',
        data,
      ),
    },
    {
      what: '100 000 empty tensors (more than MAX_TENSORS)',
      bytes: build(
        Object.fromEntries(
          Array.from({ length: 100_000 }, (_, i) => [`t${i}`, { dtype: 'F32', shape: [0], data_offsets: [0, 0] }]),
        ),
        data,
      ),
    },
  ];
  // Random data sections shorter or longer than the header says.
  for (let i = 0; i < 9; i++) {
    const n = r.int(data.byteLength * 2);
    out.push({
      what: `data section of ${n} bytes`,
      bytes: build(
        header,
        Uint8Array.from({ length: n }, () => r.int(256)),
      ),
    });
  }
  return out;
}

describe('fuzz: safetensors', () => {
  it('parser: mutated header bytes, mutated header JSON, hostile files', async () => {
    const r = prng(SEED);
    const t = tally('safetensors parser');
    const base = baseFile();
    const n = Number(new DataView(base.buffer).getBigUint64(0, true));
    for (let i = 0; i < 120; i++) {
      const m = mutateBytes(r, base, r.next() < 0.8 ? 8 + n : base.byteLength);
      await runCase(t, { label: `seed ${SEED} bytes #${i}: ${m.what}`, file: FILE, boundMs: 500 }, () =>
        readEverything(m.bytes),
      );
    }
    const { header, data } = split(base);
    for (let i = 0; i < 120; i++) {
      let json: unknown = header;
      const whats: string[] = [];
      for (let k = 1 + r.int(3); k > 0; k--) {
        const m = mutateJson(r, json, ['a.weight', 'b.bias', '__metadata__', 'dtype', 'shape', 'data_offsets']);
        json = m.json;
        whats.push(m.what);
      }
      await runCase(t, { label: `seed ${SEED} json #${i}: ${whats.join('; ')}`, file: FILE, boundMs: 500 }, () =>
        readEverything(build(json, data)),
      );
    }
    for (const h of hostileFiles(r)) {
      await runCase(t, { label: `hostile: ${h.what}`, file: FILE, boundMs: 2000 }, () => readEverything(h.bytes));
    }
    report(t);
  });

  it('model load on the GPU: a hostile model.safetensors is refused before anything stays allocated', async () => {
    const ctx = await gpu();
    const r = prng(SEED + 1);
    const t = tally('safetensors in a model load (GPU)');
    const folder = tinyModelFolder('llama');
    const st = folder.get('model.safetensors')!;
    const n = Number(new DataView(st.buffer).getBigUint64(0, true));
    const { header, data } = split(st);
    const load = async (bytes: Uint8Array) => {
      const files = new Map<string, Uint8Array>(folder);
      files.set('model.safetensors', bytes);
      const mf = await loadModelFiles(mapSource(files));
      const model = await loadModel(ctx, mf.config, mf.weights, { dtype: 'f32' });
      model.weights.free();
    };
    const spec = (label: string) => ({ label, file: 'model.safetensors', boundMs: 5000, ctx });
    for (let i = 0; i < 40; i++) {
      const m = mutateBytes(r, st, r.next() < 0.7 ? 8 + n : st.byteLength);
      await runCase(t, spec(`seed ${SEED + 1} bytes #${i}: ${m.what}`), () => load(m.bytes));
    }
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    for (let i = 0; i < 40; i++) {
      const m = mutateJson(r, header, [...names.slice(0, 8), 'dtype', 'shape', 'data_offsets']);
      await runCase(t, spec(`seed ${SEED + 1} json #${i}: ${m.what}`), () => load(build(m.json, data)));
    }
    // A source whose read fails partway through the weights (a dropped connection, a file that shrank):
    // everything uploaded before the failure is freed.
    for (let k = 1; k <= 6; k++) {
      const files = new Map<string, Uint8Array>(folder);
      const src = mapSource(files);
      let reads = 0;
      const flaky = {
        id: src.id,
        list: src.list,
        async file(name: string) {
          const s = await src.file(name);
          if (!s || name !== 'model.safetensors') return s;
          return {
            size: s.size,
            read: async (b: number, e: number) => {
              if (++reads === 2 + k * 3)
                throw new Error(`model.safetensors from ${src.id}: the read failed at byte ${b}`);
              return s.read(b, e);
            },
          };
        },
      };
      await runCase(t, spec(`read fails at read ${2 + k * 3}`), async () => {
        reads = 0;
        const mf = await loadModelFiles(flaky);
        const model = await loadModel(ctx, mf.config, mf.weights, { dtype: 'f32' });
        model.weights.free();
      });
    }
    report(t);
  });
});
