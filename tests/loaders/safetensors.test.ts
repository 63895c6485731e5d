import { describe, expect, it } from 'vitest';
import { f32ToF16Bits } from '../../src/gpu/f16';
import { blobSource, bytesSource, type ByteSource } from '../../src/loaders/byte-source';
import {
  decodeFloat,
  MAX_HEADER_BYTES,
  openSafetensors,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  readTensorF32,
  SafetensorsError,
  writeSafetensors,
} from '../../src/loaders/safetensors';

/** A safetensors file from a header (object or raw text) and a data section, optionally lying about N. */
function rawFile(header: unknown, data: Uint8Array | number = 0, declaredLength?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const dataBytes = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.byteLength + dataBytes.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? json.byteLength), true);
  out.set(json, 8);
  out.set(dataBytes, 8 + json.byteLength);
  return out;
}

function expectError(bytes: Uint8Array, ...fragments: (string | RegExp)[]): void {
  let err: unknown;
  try {
    parseSafetensorsHeader(bytes, 'bad.safetensors');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SafetensorsError);
  const msg = (err as Error).message;
  expect(msg).toContain('bad.safetensors');
  for (const f of fragments) expect(msg).toMatch(f);
}

const good = {
  a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
  b: { dtype: 'F16', shape: [4], data_offsets: [24, 32] },
};

describe('parseSafetensorsHeader: malformed files', () => {
  it('accepts a well-formed file (baseline for the cases below)', () => {
    const h = parseSafetensorsHeader(rawFile({ ...good, __metadata__: { format: 'pt' } }, 32), 'ok.safetensors');
    expect([...h.tensors.keys()]).toEqual(['a', 'b']);
    expect(h.tensors.get('a')).toEqual({ dtype: 'F32', shape: [2, 3], begin: 0, end: 24 });
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.dataOffset).toBe(8 + JSON.stringify({ ...good, __metadata__: { format: 'pt' } }).length);
  });

  it('rejects a file shorter than the 8-byte length', () => {
    expectError(new Uint8Array(5), /too short/);
  });

  it('rejects a header length past the end of the file (truncated)', () => {
    const f = rawFile(good, 32);
    expectError(f.subarray(0, 40), /truncated/, /Download it again/);
    expectError(rawFile(good, 32, 10_000), /10000-byte header/, /only \d+ bytes/);
  });

  it('rejects an absurd header length', () => {
    expectError(rawFile(good, 32, MAX_HEADER_BYTES + 1), /limit/);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setUint32(4, 0xffffffff, true); // 2^64-ish
    expectError(huge, /limit/);
  });

  it('rejects a header that is not JSON, not UTF-8, or not an object', () => {
    expectError(rawFile('{"a": [1, 2'), /not valid JSON/);
    expectError(rawFile('hello world!'), /does not start with '\{'/);
    expectError(rawFile('[1,2,3]'), /does not start with/);
    const bad = rawFile('{"x":"??"}');
    bad[8 + 6] = 0xff; // invalid UTF-8 byte inside the string
    expectError(bad, /UTF-8/);
  });

  it('rejects data_offsets past the end of the data section', () => {
    expectError(
      rawFile({ a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] } }, 20),
      /past the end/,
      /truncated or corrupt/,
    );
  });

  it('rejects overlapping tensors', () => {
    const h = {
      a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
      b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
    };
    expectError(rawFile(h, 16), /"a".*"b".*overlap/);
  });

  it('allows empty tensors anywhere (they own no bytes)', () => {
    const h = {
      a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
      e: { dtype: 'F32', shape: [0, 3], data_offsets: [8, 8] },
    };
    expect(parseSafetensorsHeader(rawFile(h, 16), 'ok').tensors.get('e')!.shape).toEqual([0, 3]);
  });

  it('rejects begin > end and malformed offsets', () => {
    expectError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, 16), /begin > end/);
    expectError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0] } }, 16), /data_offsets/);
    expectError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, 16), /data_offsets/);
    expectError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0.5, 4] } }, 16), /data_offsets/);
  });

  it('rejects an unknown dtype', () => {
    expectError(rawFile({ a: { dtype: 'Q4_K', shape: [4], data_offsets: [0, 4] } }, 4), /unknown dtype "Q4_K"/, /F32/);
    expectError(rawFile({ a: { shape: [4], data_offsets: [0, 4] } }, 4), /unknown dtype undefined/);
  });

  it('rejects a shape whose size disagrees with the byte length', () => {
    expectError(
      rawFile({ a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, 24),
      /needs 24 bytes/,
      /hold 20/,
    );
    expectError(rawFile({ a: { dtype: 'BF16', shape: [3], data_offsets: [0, 12] } }, 12), /needs 6 bytes/);
  });

  it('rejects a malformed shape', () => {
    expectError(rawFile({ a: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } }, 8), /non-negative integers/);
    expectError(rawFile({ a: { dtype: 'F32', shape: '2x3', data_offsets: [0, 24] } }, 24), /shape "2x3"/);
    expectError(rawFile({ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, 4), /non-negative integers/);
  });

  it('rejects bad metadata', () => {
    expectError(rawFile({ __metadata__: { format: 'pt', step: 3 } }), /__metadata__\["step"\].*strings/);
    expectError(rawFile({ __metadata__: ['pt'] }), /__metadata__ must be a JSON object/);
  });

  it('rejects entries that are not objects', () => {
    expectError(rawFile({ a: [1, 2] }), /tensor "a" is not a JSON object/);
    expectError(rawFile({ a: null }), /tensor "a" is not a JSON object/);
  });
});

describe('writeSafetensors', () => {
  it('round-trips F32 and F16 with sorted keys, metadata and 8-byte space padding', async () => {
    const a = Float32Array.from({ length: 6 }, (_, i) => i * 0.25 - 1);
    const c = Float32Array.from([1, -2.5, 65504, 1e-3]);
    const bytes = writeSafetensors(
      [
        { name: 'z.last', dtype: 'F32', shape: [2, 3], data: a },
        { name: 'a.first', dtype: 'F16', shape: [4], data: c },
        { name: 'scalar', dtype: 'F32', shape: [], data: Float32Array.of(7) },
      ],
      { format: 'pt' },
    );
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(headerText.trimEnd()).toBe(headerText.trimEnd().trim()); // padding is trailing spaces only
    expect(/ *$/.exec(headerText)![0].length).toBe(n - headerText.trimEnd().length);
    expect(Object.keys(JSON.parse(headerText))).toEqual(['__metadata__', 'a.first', 'scalar', 'z.last']);

    const st = await openSafetensors(bytes, 'rt.safetensors');
    expect(st.header.metadata).toEqual({ format: 'pt' });
    expect(st.header.tensors.get('a.first')).toMatchObject({ dtype: 'F16', shape: [4], begin: 0, end: 8 });
    expect(Array.from(await st.f32('z.last'))).toEqual(Array.from(a));
    // 1e-3 is not exact in f16: it comes back as the nearest f16 (relative error < 2^-11).
    const back = await st.f32('a.first');
    expect(Array.from(back.subarray(0, 3))).toEqual([1, -2.5, 65504]);
    expect(Math.abs(back[3] - 1e-3) / 1e-3).toBeLessThan(2 ** -11);
    expect(Array.from(await st.f32('scalar'))).toEqual([7]);
  });

  it('writes F16 bits given as Uint16Array unchanged, and refuses mismatched data', async () => {
    const bits = Uint16Array.of(0x3c00, 0xc000, 0x7bff);
    const st = await openSafetensors(writeSafetensors([{ name: 'h', dtype: 'F16', shape: [3], data: bits }]), 'h');
    expect(Array.from(new Uint16Array((await st.bytes('h')).slice().buffer))).toEqual(Array.from(bits));
    expect(() => writeSafetensors([{ name: 'x', dtype: 'F32', shape: [2, 2], data: new Float32Array(3) }])).toThrow(
      /4 elements but data has 3/,
    );
    expect(() => writeSafetensors([{ name: 'x', dtype: 'F32', shape: [1], data: new Uint16Array(1) }])).toThrow(
      /Float32Array/,
    );
    expect(() =>
      writeSafetensors([
        { name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) },
        { name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) },
      ]),
    ).toThrow(/repeated/);
  });
});

describe('decoding F16 and BF16', () => {
  it('decodes F16 exactly, including subnormals, infinities and NaN', () => {
    const bits = Uint16Array.of(0x0000, 0x8000, 0x3c00, 0xbc00, 0x3555, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x7e00);
    const out = decodeFloat('F16', new Uint8Array(bits.buffer));
    const want = [0, -0, 1, -1, 0.333251953125, 2 ** -24, 1023 * 2 ** -24, 65504, Infinity, -Infinity, NaN];
    want.forEach((w, i) => expect(Object.is(out[i], w) || (Number.isNaN(w) && Number.isNaN(out[i]))).toBe(true));
  });

  it('decodes BF16 as the top half of an f32', () => {
    const vals = Float32Array.of(1, -2, 3.140625, 1e30, -1e-30);
    const u32 = new Uint32Array(vals.buffer);
    const bits = Uint16Array.from(u32, (b) => b >>> 16); // truncation: exact for values whose low half is 0
    const out = decodeFloat('BF16', new Uint8Array(bits.buffer));
    const want = new Float32Array(new Uint32Array(Array.from(bits, (b) => b << 16)).buffer);
    expect(Array.from(out)).toEqual(Array.from(want));
    expect(Array.from(out.subarray(0, 3))).toEqual([1, -2, 3.140625]);
  });

  it('reads a BF16 tensor through the file API and refuses integer tensors as floats', async () => {
    const bits = Uint16Array.of(0x3f80, 0xc040); // 1, -3
    const file = writeSafetensors([{ name: 'w', dtype: 'BF16', shape: [2], data: bits }]);
    const st = await openSafetensors(file, 'bf');
    expect(Array.from(await st.f32('w'))).toEqual([1, -3]);
    const ints = rawFile({ i: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, 8);
    await expect(openSafetensors(ints, 'i').then((s) => s.f32('i'))).rejects.toThrow(/I64.*only F32, F16 and BF16/);
  });

  it('handles unaligned tensor data (F32 starting at an odd offset)', async () => {
    // A 2-byte F16 tensor first puts the F32 tensor at data offset 2 (not a multiple of 4).
    const h = {
      a: { dtype: 'F16', shape: [1], data_offsets: [0, 2] },
      b: { dtype: 'F32', shape: [2], data_offsets: [2, 10] },
    };
    const data = new Uint8Array(10);
    new DataView(data.buffer).setUint16(0, f32ToF16Bits(0.5), true);
    new DataView(data.buffer).setFloat32(2, 1.25, true);
    new DataView(data.buffer).setFloat32(6, -8, true);
    const st = await openSafetensors(rawFile(h, data), 'u');
    expect(Array.from(await st.f32('b'))).toEqual([1.25, -8]);
    expect(Array.from(await st.f32('a'))).toEqual([0.5]);
  });
});

describe('ByteSource: reading the header of a Blob without reading the whole file', () => {
  it('reads only the first 8 + N bytes for the header, then single tensors by range', async () => {
    const big = new Float32Array(100_000).map((_, i) => i);
    const file = writeSafetensors([
      { name: 'big', dtype: 'F32', shape: [100_000], data: big },
      { name: 'small', dtype: 'F32', shape: [2], data: Float32Array.of(3, 4) },
    ]);
    const blob = new Blob([file]);
    const reads: [number, number][] = [];
    const inner = blobSource(blob);
    const spy: ByteSource = { size: inner.size, read: (b, e) => (reads.push([b, e]), inner.read(b, e)) };
    const header = await readSafetensorsHeader(spy, 'blob.safetensors');
    const headerBytes = reads.reduce((s, [b, e]) => s + (e - b), 0);
    expect(headerBytes).toBe(header.dataOffset);
    expect(headerBytes).toBeLessThan(300);
    expect(Array.from(await readTensorF32(spy, header, 'small'))).toEqual([3, 4]);
    expect(reads.at(-1)![1] - reads.at(-1)![0]).toBe(8);
    expect((await readTensorF32(spy, header, 'big'))[99_999]).toBe(99_999);
  });

  it('gives the same header from a Blob, an ArrayBuffer and a Uint8Array view', async () => {
    const file = writeSafetensors([{ name: 'w', dtype: 'F32', shape: [3], data: Float32Array.of(1, 2, 3) }], {
      k: 'v',
    });
    const padded = new Uint8Array(file.byteLength + 16);
    padded.set(file, 16);
    const view = padded.subarray(16);
    const a = await readSafetensorsHeader(blobSource(new Blob([file])), 'f');
    const b = await readSafetensorsHeader(bytesSource(file.slice().buffer), 'f');
    const c = parseSafetensorsHeader(view, 'f');
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    await expect(bytesSource(file).read(0, file.byteLength + 1)).rejects.toThrow(RangeError);
  });

  it('reports a truncated Blob as truncated', async () => {
    const file = writeSafetensors([{ name: 'w', dtype: 'F32', shape: [64], data: new Float32Array(64) }]);
    await expect(
      readSafetensorsHeader(blobSource(new Blob([file.subarray(0, 20)])), 'cut.safetensors'),
    ).rejects.toThrow(/cut.safetensors.*truncated/);
    await expect(
      readSafetensorsHeader(blobSource(new Blob([file.subarray(0, file.byteLength - 4)])), 'cut.safetensors'),
    ).rejects.toThrow(/past the end/);
  });
});
