// GGUF, llama.cpp's file format (version 2 and 3), read and written by hand. All integers little-endian:
//
//   "GGUF"  u32 version  u64 n_tensors  u64 n_kv
//   n_kv ×      key: string   type: u32   value           string = u64 length + UTF-8 bytes (no NUL)
//   n_tensors × name: string  n_dims: u32  ne: u64[n_dims]  ggml_type: u32  offset: u64
//   padding to `general.alignment` (default 32), then the data section; each tensor's offset is relative
//   to it and a multiple of the alignment.
//
// ne is ggml's order, fastest-varying first: a PyTorch (OUT, IN) weight is ne = [IN, OUT]. `shape` below is
// always PyTorch's order (ne reversed), the one the rest of WebLoRA uses.
//
// The reader checks what the safetensors reader checks (src/loaders/safetensors.ts): every count and length
// against the bytes left in the file before anything is allocated, every tensor inside the data section,
// aligned, of the size its type and shape imply, and no two overlapping. Quantised tensor types are parsed
// (their block sizes are known) so that the error for them can name the type; decoding reads F32, F16, BF16,
// and dequantises Q8_0 and Q4_0 to float32 (ggml's dequantize_row_q8_0 / _q4_0):
//
//   Q8_0  blocks of 32: f16 scale d, 32 × int8 q            x[i] = d·q[i]
//   Q4_0  blocks of 32: f16 scale d, 16 bytes of nibbles    x[j] = d·(lo(b[j]) − 8), x[j+16] = d·(hi(b[j]) − 8)

import { decodeFloatBytes, f32ToF16Bits } from '../gpu/f16';
import { dequantize, fromGgmlBlocks, QUANT_BLOCK } from '../gpu/quant';
import type { ByteSource } from './byte-source';

export class GgufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GgufError';
  }
}

/** GGUF metadata value types (gguf.h enum gguf_type). */
export const GGUF_VALUE = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
type ValueType = (typeof GGUF_VALUE)[keyof typeof GGUF_VALUE];
/** Bytes of each fixed-size value type (strings and arrays have none). */
const VALUE_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

export type GgufScalar = number | bigint | boolean | string;
export type GgufValue = GgufScalar | GgufScalar[];

/**
 * ggml tensor types by id: name, elements per block, bytes per block (ggml.c type_traits). Ids 4 and 5
 * (Q4_2, Q4_3) were removed from ggml long ago and are absent on purpose.
 */
const GGML_TYPES: Record<number, [name: string, blockElems: number, blockBytes: number]> = {
  0: ['F32', 1, 4],
  1: ['F16', 1, 2],
  2: ['Q4_0', 32, 18],
  3: ['Q4_1', 32, 20],
  6: ['Q5_0', 32, 22],
  7: ['Q5_1', 32, 24],
  8: ['Q8_0', 32, 34],
  9: ['Q8_1', 32, 36],
  10: ['Q2_K', 256, 84],
  11: ['Q3_K', 256, 110],
  12: ['Q4_K', 256, 144],
  13: ['Q5_K', 256, 176],
  14: ['Q6_K', 256, 210],
  15: ['Q8_K', 256, 292],
  16: ['IQ2_XXS', 256, 66],
  17: ['IQ2_XS', 256, 74],
  18: ['IQ3_XXS', 256, 98],
  19: ['IQ1_S', 256, 50],
  20: ['IQ4_NL', 32, 18],
  21: ['IQ3_S', 256, 110],
  22: ['IQ2_S', 256, 82],
  23: ['IQ4_XS', 256, 136],
  24: ['I8', 1, 1],
  25: ['I16', 1, 2],
  26: ['I32', 1, 4],
  27: ['I64', 1, 8],
  28: ['F64', 1, 8],
  29: ['IQ1_M', 256, 56],
  30: ['BF16', 1, 2],
  34: ['TQ1_0', 256, 54],
  35: ['TQ2_0', 256, 66],
  39: ['MXFP4', 32, 17],
};
export const GGML_TYPE_ID = { F32: 0, F16: 1, BF16: 30 } as const;
export type GgufFloatType = keyof typeof GGML_TYPE_ID;

export interface GgufTensorInfo {
  name: string;
  /** PyTorch order (outermost first): ggml's ne reversed. */
  shape: number[];
  /** ggml type name: F32, F16, BF16, Q8_0, ... */
  type: string;
  /** Byte range relative to the data section: [begin, end). */
  begin: number;
  end: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  /** Absolute offset of the data section. */
  dataOffset: number;
}

/** Limits for hostile files: far above real models (a 256k-token vocabulary is 3 arrays of 256k entries). */
export const MAX_GGUF_TENSORS = 50_000;
export const MAX_GGUF_KV = 100_000;
export const MAX_GGUF_ARRAY = 16_000_000;
export const MAX_GGUF_STRING = 64_000_000;
export const MAX_GGUF_DIMS = 4; // GGML_MAX_DIMS

const REDOWNLOAD = 'Download it again, or convert the model again with llama.cpp (convert_hf_to_gguf.py).';

/** Reads a ByteSource front to back in chunks; every read is checked against the file's size first. */
class Cursor {
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;
  pos = 0;
  constructor(
    private readonly src: ByteSource,
    private readonly fileName: string,
  ) {}

  fail(problem: string, advice = REDOWNLOAD): never {
    throw new GgufError(`${this.fileName}: ${problem}. ${advice}`);
  }

  get left(): number {
    return this.src.size - this.pos;
  }

  /** Makes bytes [pos, pos + n) available; `what` names the field in the error for a truncated file. */
  async need(n: number, what: string): Promise<void> {
    if (n > this.left)
      this.fail(
        `${what} needs ${n} bytes at offset ${this.pos} but the file has only ${this.left} left: it is truncated (an interrupted download?) or not GGUF`,
      );
    if (this.pos + n <= this.bufStart + this.buf.byteLength) return;
    const end = Math.min(this.src.size, this.pos + Math.max(n, 1 << 20));
    this.buf = await this.src.read(this.pos, end);
    this.bufStart = this.pos;
  }

  private view(n: number): DataView {
    const at = this.pos - this.bufStart;
    this.pos += n;
    return new DataView(this.buf.buffer, this.buf.byteOffset + at, n);
  }

  async u32(what: string): Promise<number> {
    await this.need(4, what);
    return this.view(4).getUint32(0, true);
  }

  /** A u64 that must fit a JS number exactly (counts, lengths, dimensions, offsets). */
  async u64(what: string): Promise<number> {
    await this.need(8, what);
    const v = this.view(8).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is ${v}, larger than any real file can hold`);
    return Number(v);
  }

  async string(what: string): Promise<string> {
    const n = await this.u64(`the length of ${what}`);
    if (n > MAX_GGUF_STRING) this.fail(`${what} declares ${n} bytes, more than the ${MAX_GGUF_STRING}-byte limit`);
    await this.need(n, what);
    const at = this.pos - this.bufStart;
    this.pos += n;
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.buf.subarray(at, at + n));
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  async scalar(type: number, what: string): Promise<GgufScalar> {
    if (type === GGUF_VALUE.STRING) return this.string(what);
    const size = VALUE_SIZE[type];
    await this.need(size, what);
    const dv = this.view(size);
    switch (type) {
      case GGUF_VALUE.UINT8:
        return dv.getUint8(0);
      case GGUF_VALUE.INT8:
        return dv.getInt8(0);
      case GGUF_VALUE.UINT16:
        return dv.getUint16(0, true);
      case GGUF_VALUE.INT16:
        return dv.getInt16(0, true);
      case GGUF_VALUE.UINT32:
        return dv.getUint32(0, true);
      case GGUF_VALUE.INT32:
        return dv.getInt32(0, true);
      case GGUF_VALUE.FLOAT32:
        return dv.getFloat32(0, true);
      case GGUF_VALUE.BOOL: {
        const b = dv.getUint8(0);
        if (b > 1) this.fail(`${what} is a bool of value ${b}; a GGUF bool is 0 or 1`);
        return b === 1;
      }
      case GGUF_VALUE.UINT64:
        return dv.getBigUint64(0, true);
      case GGUF_VALUE.INT64:
        return dv.getBigInt64(0, true);
      default:
        return dv.getFloat64(0, true);
    }
  }
}

function knownValueType(t: number): t is ValueType {
  return Number.isInteger(t) && t >= 0 && t <= 12;
}

async function readValue(c: Cursor, key: string): Promise<GgufValue> {
  const type = await c.u32(`the type of "${key}"`);
  if (!knownValueType(type)) c.fail(`metadata "${key}" has value type ${type}, which GGUF does not define (0..12)`);
  if (type !== GGUF_VALUE.ARRAY) return c.scalar(type, `metadata "${key}"`);
  const elem = await c.u32(`the element type of "${key}"`);
  if (!knownValueType(elem) || elem === GGUF_VALUE.ARRAY)
    c.fail(`metadata "${key}" is an array of value type ${elem}; arrays hold scalars or strings`);
  const n = await c.u64(`the length of "${key}"`);
  const minBytes = elem === GGUF_VALUE.STRING ? 8 : VALUE_SIZE[elem];
  if (n > MAX_GGUF_ARRAY || n * minBytes > c.left)
    c.fail(
      `metadata "${key}" declares ${n} elements, more than ${n > MAX_GGUF_ARRAY ? `the ${MAX_GGUF_ARRAY} limit` : `the ${c.left} bytes left in the file can hold`}`,
    );
  const out: GgufScalar[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = await c.scalar(elem, `"${key}"[${i}]`);
  return out;
}

/** The number of bytes a tensor of `type` and ggml dims `ne` occupies. */
function tensorBytes(c: Cursor, name: string, typeId: number, ne: number[]): { type: string; bytes: number } {
  const t = GGML_TYPES[typeId];
  if (!t) c.fail(`tensor "${name}" has ggml type ${typeId}, which this reader does not know`);
  const [type, blockElems, blockBytes] = t;
  if (ne[0] % blockElems !== 0)
    c.fail(`tensor "${name}" (${type}) has ${ne[0]} elements per row, not a multiple of its block of ${blockElems}`);
  const elements = ne.reduce((a, b) => a * b, 1);
  return { type, bytes: (elements / blockElems) * blockBytes };
}

/** Parses and validates a GGUF file's header from any ByteSource, touching only the header's bytes. */
export async function readGgufHeader(src: ByteSource, fileName: string): Promise<GgufHeader> {
  const c: Cursor = new Cursor(src, fileName);
  if (src.size < 24)
    c.fail(
      `is ${src.size} bytes, too short to be a GGUF file (the fixed header alone is 24 bytes)`,
      'Pick a .gguf file.',
    );
  await c.need(4, 'the magic');
  const magic = new TextDecoder().decode(await src.read(0, 4));
  c.pos = 4;
  if (magic !== 'GGUF')
    c.fail(
      `starts with ${JSON.stringify(magic)}, not "GGUF": it is not a GGUF file (or a big-endian one, which WebLoRA does not read)`,
      'Pick a .gguf file made by llama.cpp.',
    );
  const version = await c.u32('the version');
  if (version !== 2 && version !== 3)
    c.fail(
      `is GGUF version ${version}; WebLoRA reads versions 2 and 3`,
      'Convert the model again with a current llama.cpp.',
    );
  const nTensors = await c.u64('the tensor count');
  const nKv = await c.u64('the metadata count');
  if (nTensors > MAX_GGUF_TENSORS)
    c.fail(`declares ${nTensors} tensors, more than the ${MAX_GGUF_TENSORS} WebLoRA reads from one file`);
  if (nKv > MAX_GGUF_KV) c.fail(`declares ${nKv} metadata entries, more than the ${MAX_GGUF_KV} limit`);

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = await c.string(`metadata key ${i}`);
    if (metadata.has(key)) c.fail(`metadata key "${key}" appears twice`);
    metadata.set(key, await readValue(c, key));
  }
  const alignValue = metadata.get('general.alignment') ?? 32;
  if (typeof alignValue !== 'number' || !Number.isInteger(alignValue) || alignValue <= 0 || alignValue % 8 !== 0)
    c.fail(`general.alignment is ${String(alignValue)}; it must be a positive multiple of 8`);
  const alignment = alignValue;

  const infos: { name: string; ne: number[]; typeId: number; offset: number }[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = await c.string(`tensor name ${i}`);
    if (seen.has(name)) c.fail(`tensor "${name}" appears twice`);
    seen.add(name);
    const nDims = await c.u32(`the dimension count of "${name}"`);
    if (nDims < 1 || nDims > MAX_GGUF_DIMS)
      c.fail(`tensor "${name}" has ${nDims} dimensions; ggml tensors have 1 to ${MAX_GGUF_DIMS}`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(await c.u64(`dimension ${d} of "${name}"`));
    const typeId = await c.u32(`the type of "${name}"`);
    const offset = await c.u64(`the offset of "${name}"`);
    infos.push({ name, ne, typeId, offset });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const dataBytes = src.size - dataOffset;
  if (dataBytes < 0 && nTensors > 0) c.fail(`the header ends at byte ${c.pos}, past the end of the file`);

  const tensors = new Map<string, GgufTensorInfo>();
  for (const { name, ne, typeId, offset } of infos) {
    if (ne.some((d) => d === 0 || !Number.isSafeInteger(d)))
      c.fail(`tensor "${name}" has dimensions [${ne.join(', ')}]; every dimension must be positive`);
    const elements = ne.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(elements))
      c.fail(`tensor "${name}" has dimensions [${ne.join(', ')}], too many elements`);
    const { type, bytes } = tensorBytes(c, name, typeId, ne);
    if (offset % alignment !== 0)
      c.fail(`tensor "${name}" starts at data offset ${offset}, not a multiple of the alignment ${alignment}`);
    if (offset + bytes > dataBytes)
      c.fail(
        `tensor "${name}" (${type}, ${bytes} bytes at data offset ${offset}) runs past the end of the ${Math.max(0, dataBytes)}-byte data section: the file is truncated`,
      );
    tensors.set(name, { name, shape: [...ne].reverse(), type, begin: offset, end: offset + bytes });
  }
  const spans = [...tensors.values()].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++)
    if (spans[i].begin < spans[i - 1].end)
      c.fail(
        `tensors "${spans[i - 1].name}" [${spans[i - 1].begin}, ${spans[i - 1].end}) and "${spans[i].name}" [${spans[i].begin}, ${spans[i].end}) overlap`,
      );
  return { version, metadata, tensors, alignment, dataOffset };
}

/** The GGUF tensor types decodeGgufFloat reads. */
export const GGUF_READABLE_TYPES = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'];

/** A tensor's F32 / F16 / BF16 / Q8_0 / Q4_0 bytes as float32; any other type is refused naming it. */
export function decodeGgufFloat(type: string, bytes: Uint8Array, what: string): Float32Array {
  switch (type) {
    case 'Q8_0':
    case 'Q4_0': {
      // ggml's blocks -> ours -> float32: one dequantizer for GGUF files and the GPU's twins
      const n = (bytes.byteLength / (type === 'Q8_0' ? 34 : 18)) * QUANT_BLOCK;
      return dequantize(fromGgmlBlocks(type, bytes, 1, n));
    }
    case 'F32':
    case 'F16':
    case 'BF16':
      return decodeFloatBytes(type, bytes);
    default:
      throw new GgufError(`${what} is ${type}; only ${GGUF_READABLE_TYPES.join(', ')} can be read as floats`);
  }
}

// ---- writing --------------------------------------------------------------------------------------------

export interface GgufKv {
  key: string;
  type: Exclude<ValueType, typeof GGUF_VALUE.ARRAY>;
  value: GgufScalar | GgufScalar[];
  /** For arrays: the element type (type is then the element type and value a list). */
  array?: boolean;
}

export interface GgufTensorToWrite {
  name: string;
  /** PyTorch order (outermost first); written as ggml's ne (reversed). */
  shape: number[];
  type: GgufFloatType;
  /** F32: Float32Array. F16: Float32Array (rounded to nearest even) or Uint16Array of bits. BF16: Uint16Array of bits. */
  data: Float32Array | Uint16Array;
}

/** Little-endian byte writer that grows as needed. */
class Writer {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.byteLength) return;
    const next = new Uint8Array(Math.max(this.buf.byteLength * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u8(v: number) {
    this.room(1);
    this.dv.setUint8(this.length, v);
    this.length += 1;
  }
  u32(v: number) {
    this.room(4);
    this.dv.setUint32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number | bigint) {
    this.room(8);
    this.dv.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  bytes(b: Uint8Array) {
    this.room(b.byteLength);
    this.buf.set(b, this.length);
    this.length += b.byteLength;
  }
  string(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.byteLength);
    this.bytes(b);
  }
  pad(alignment: number) {
    while (this.length % alignment !== 0) this.u8(0);
  }
  scalar(type: number, v: GgufScalar) {
    const num = () => {
      if (typeof v !== 'number' && typeof v !== 'bigint') throw new GgufError(`value ${String(v)} is not a number`);
      return v;
    };
    switch (type) {
      case GGUF_VALUE.STRING:
        if (typeof v !== 'string') throw new GgufError(`value ${String(v)} is not a string`);
        return this.string(v);
      case GGUF_VALUE.BOOL:
        return this.u8(v ? 1 : 0);
      case GGUF_VALUE.UINT64:
      case GGUF_VALUE.INT64: {
        this.room(8);
        const x = BigInt(num());
        if (type === GGUF_VALUE.UINT64) this.dv.setBigUint64(this.length, x, true);
        else this.dv.setBigInt64(this.length, x, true);
        this.length += 8;
        return;
      }
    }
    const size = VALUE_SIZE[type];
    this.room(size);
    const x = Number(num());
    const setters: Record<number, () => void> = {
      [GGUF_VALUE.UINT8]: () => this.dv.setUint8(this.length, x),
      [GGUF_VALUE.INT8]: () => this.dv.setInt8(this.length, x),
      [GGUF_VALUE.UINT16]: () => this.dv.setUint16(this.length, x, true),
      [GGUF_VALUE.INT16]: () => this.dv.setInt16(this.length, x, true),
      [GGUF_VALUE.UINT32]: () => this.dv.setUint32(this.length, x, true),
      [GGUF_VALUE.INT32]: () => this.dv.setInt32(this.length, x, true),
      [GGUF_VALUE.FLOAT32]: () => this.dv.setFloat32(this.length, x, true),
      [GGUF_VALUE.FLOAT64]: () => this.dv.setFloat64(this.length, x, true),
    };
    setters[type]();
    this.length += size;
  }
  result(): Uint8Array<ArrayBuffer> {
    return this.buf.slice(0, this.length);
  }
}

function tensorPayload(t: GgufTensorToWrite): Uint8Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d > 0) || t.shape.length > MAX_GGUF_DIMS)
    throw new GgufError(`tensor "${t.name}": bad shape [${t.shape.join(', ')}]`);
  if (t.data.length !== n)
    throw new GgufError(
      `tensor "${t.name}": shape [${t.shape.join(', ')}] has ${n} elements but data has ${t.data.length}`,
    );
  if (t.type === 'F32') {
    if (!(t.data instanceof Float32Array)) throw new GgufError(`tensor "${t.name}": F32 data must be a Float32Array`);
    return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  }
  if (t.type === 'BF16' && !(t.data instanceof Uint16Array))
    throw new GgufError(`tensor "${t.name}": BF16 data must be a Uint16Array of bfloat16 bits`);
  const bits = t.data instanceof Uint16Array ? t.data : Uint16Array.from(t.data, f32ToF16Bits);
  return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
}

/**
 * Serialises a GGUF version 3 file: the metadata in the given order, then the tensors in the given order,
 * each padded to `alignment` (general.alignment is written only when it is not the default 32).
 */
export function writeGguf(kvs: GgufKv[], tensors: GgufTensorToWrite[], alignment = 32): Uint8Array<ArrayBuffer> {
  const all: GgufKv[] =
    alignment === 32 ? kvs : [...kvs, { key: 'general.alignment', type: GGUF_VALUE.UINT32, value: alignment }];
  const w = new Writer();
  w.bytes(new TextEncoder().encode('GGUF'));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(all.length);
  for (const kv of all) {
    w.string(kv.key);
    if (kv.array) {
      if (!Array.isArray(kv.value)) throw new GgufError(`metadata "${kv.key}" is marked as an array but is not one`);
      w.u32(GGUF_VALUE.ARRAY);
      w.u32(kv.type);
      w.u64(kv.value.length);
      for (const v of kv.value) w.scalar(kv.type, v);
    } else {
      if (Array.isArray(kv.value)) throw new GgufError(`metadata "${kv.key}" is a list; mark it as an array`);
      w.u32(kv.type);
      w.scalar(kv.type, kv.value);
    }
  }
  const payloads = tensors.map(tensorPayload);
  let offset = 0;
  tensors.forEach((t, i) => {
    w.string(t.name);
    w.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) w.u64(d);
    w.u32(GGML_TYPE_ID[t.type]);
    w.u64(offset);
    offset += Math.ceil(payloads[i].byteLength / alignment) * alignment;
  });
  w.pad(alignment);
  for (const p of payloads) {
    w.bytes(p);
    w.pad(alignment);
  }
  return w.result();
}
