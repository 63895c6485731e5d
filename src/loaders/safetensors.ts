// safetensors: 8-byte little-endian header length N, N bytes of JSON header, then the raw little-endian
// tensor data. The header maps each tensor name to { dtype, shape, data_offsets: [begin, end] } (offsets
// relative to the start of the data section) and may hold "__metadata__", a string -> string map.
// Reference: huggingface/safetensors (safetensors/src/tensor.rs), whose checks this mirrors, except that
// gaps between tensors and trailing bytes are tolerated (they hold no tensor, so they cannot mislead).

import { decodeFloatBytes, f32ToF16Bits } from '../gpu/f16';
import { bytesSource, type ByteSource } from './byte-source';

export { blobSource, bytesSource, type ByteSource } from './byte-source';

/** Bytes per element of every dtype the format defines (sub-byte F4/F6 types are not supported). */
export const DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;
export type Dtype = keyof typeof DTYPE_SIZES;

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** Byte offsets relative to the start of the data section: data is [begin, end). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Absolute file offset of the data section (8 + header length). */
  dataOffset: number;
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

/** Same limit as the reference implementation: a larger header is a corrupt or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * At most this many tensors in one file. Real checkpoints hold hundreds to a few thousand per file; a
 * header of a million tiny entries would stall the page for minutes in JSON.parse, so it is refused
 * (counted cheaply before parsing) with the figures.
 */
export const MAX_TENSORS = 50_000;

const REEXPORT = 'Re-export it with the safetensors library (safetensors.torch.save_file) or re-download it.';

function fail(fileName: string, problem: string, advice = REEXPORT): never {
  throw new SafetensorsError(`${fileName}: ${problem}. ${advice}`);
}

/** Reads the header length from the first 8 bytes; checks it fits in a file of `fileSize` bytes. */
function headerLength(first8: Uint8Array, fileSize: number, fileName: string): number {
  if (fileSize < 8)
    fail(
      fileName,
      `is ${fileSize} bytes, too short to be a safetensors file (needs at least the 8-byte header length)`,
    );
  const dv = new DataView(first8.buffer, first8.byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (n > MAX_HEADER_BYTES)
    fail(
      fileName,
      `declares a ${n}-byte header, more than the ${MAX_HEADER_BYTES}-byte limit: this is not a safetensors file or it is corrupt`,
    );
  if (8 + n > fileSize)
    fail(
      fileName,
      `declares a ${n}-byte header but the file is only ${fileSize} bytes: the file is truncated (an interrupted download?) or not safetensors`,
      'Download it again.',
    );
  if (n < 2) fail(fileName, `declares a ${n}-byte header, too short for a JSON object`);
  return n;
}

/**
 * Parses and validates the header of a safetensors file. `bytes` is the whole file, or at least its
 * first 8 + N bytes when `fileSize` (the whole file's size) is given.
 */
export function parseSafetensorsHeader(
  bytes: ArrayBuffer | Uint8Array,
  fileName: string,
  fileSize?: number,
): SafetensorsHeader {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const size = fileSize ?? u8.byteLength;
  if (u8.byteLength < 8)
    fail(
      fileName,
      `is ${u8.byteLength} bytes, too short to be a safetensors file (needs at least the 8-byte header length)`,
    );
  const n = headerLength(u8.subarray(0, 8), size, fileName);
  if (u8.byteLength < 8 + n)
    fail(
      fileName,
      `header needs ${8 + n} bytes but only ${u8.byteLength} were given`,
      'Pass the first 8 + N bytes of the file.',
    );
  return parseHeaderJson(u8.subarray(8, 8 + n), size - 8 - n, fileName);
}

function parseHeaderJson(headerBytes: Uint8Array, dataBytes: number, fileName: string): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    fail(fileName, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{'))
    fail(
      fileName,
      `header does not start with '{' (starts with ${JSON.stringify(text.slice(0, 16))}): this is not a safetensors file`,
    );
  let entries = 0;
  for (let at = text.indexOf('"data_offsets"'); at >= 0; at = text.indexOf('"data_offsets"', at + 14)) entries++;
  if (entries > MAX_TENSORS)
    fail(
      fileName,
      `header declares ${entries} tensors, more than the ${MAX_TENSORS} WebLoRA reads from one file: this is not a model checkpoint or it is corrupt`,
    );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(fileName, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(fileName, 'header is not a JSON object');

  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(entry, fileName);
      continue;
    }
    tensors.set(name, parseEntry(name, entry, dataBytes, fileName));
  }
  checkNoOverlap(tensors, fileName);
  return { tensors, metadata, dataOffset: 8 + headerBytes.byteLength };
}

function parseMetadata(entry: unknown, fileName: string): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
    fail(fileName, '__metadata__ must be a JSON object of strings');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
    if (typeof v !== 'string')
      fail(fileName, `__metadata__["${k}"] is ${JSON.stringify(v)}, but metadata values must be strings`);
    out[k] = v;
  }
  return out;
}

function parseEntry(name: string, entry: unknown, dataBytes: number, fileName: string): TensorInfo {
  const where = `tensor "${name}"`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
    fail(fileName, `${where} is not a JSON object`);
  const e = entry as Record<string, unknown>;
  const dtype = e.dtype;
  if (typeof dtype !== 'string' || !(dtype in DTYPE_SIZES)) {
    fail(
      fileName,
      `${where} has unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_SIZES).join(', ')})`,
    );
  }
  const shape = e.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(fileName, `${where} has shape ${JSON.stringify(shape)}; a shape must be a list of non-negative integers`);
  }
  const offs = e.data_offsets;
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    fail(
      fileName,
      `${where} has data_offsets ${JSON.stringify(offs)}; expected [begin, end] with non-negative integers`,
    );
  }
  const [begin, end] = offs as [number, number];
  if (begin > end) fail(fileName, `${where} has data_offsets [${begin}, ${end}] with begin > end`);
  if (end > dataBytes)
    fail(
      fileName,
      `${where} has data_offsets [${begin}, ${end}] past the end of the ${dataBytes}-byte data section: the file is truncated or corrupt`,
      'Download it again.',
    );
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const expectBytes = elements * DTYPE_SIZES[dtype as Dtype];
  if (end - begin !== expectBytes) {
    fail(
      fileName,
      `${where} (${dtype}, shape [${(shape as number[]).join(', ')}]) needs ${expectBytes} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  }
  return { dtype: dtype as Dtype, shape: [...(shape as number[])], begin, end };
}

function checkNoOverlap(tensors: Map<string, TensorInfo>, fileName: string): void {
  // Empty tensors (begin == end) own no bytes and cannot overlap anything.
  const spans = [...tensors].filter(([, t]) => t.end > t.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < spans.length; i++) {
    const [pn, p] = spans[i - 1];
    const [cn, c] = spans[i];
    if (c.begin < p.end)
      fail(fileName, `tensors "${pn}" [${p.begin}, ${p.end}) and "${cn}" [${c.begin}, ${c.end}) overlap`);
  }
}

/** Reads and validates the header from a ByteSource, touching only its first 8 + N bytes. */
export async function readSafetensorsHeader(src: ByteSource, fileName: string): Promise<SafetensorsHeader> {
  if (src.size < 8)
    fail(
      fileName,
      `is ${src.size} bytes, too short to be a safetensors file (needs at least the 8-byte header length)`,
    );
  const n = headerLength(await src.read(0, 8), src.size, fileName);
  return parseHeaderJson(await src.read(8, 8 + n), src.size - 8 - n, fileName);
}

/** The raw little-endian bytes of one tensor. */
export function readTensorBytes(src: ByteSource, header: SafetensorsHeader, name: string): Promise<Uint8Array> {
  const t = header.tensors.get(name);
  if (!t) throw new SafetensorsError(`no tensor "${name}" in this safetensors file`);
  return src.read(header.dataOffset + t.begin, header.dataOffset + t.end);
}

/** Decodes F32 / F16 / BF16 bytes to float32; any other dtype is refused naming it. */
export function decodeFloat(dtype: Dtype, bytes: Uint8Array, what = 'tensor'): Float32Array {
  if (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16') return decodeFloatBytes(dtype, bytes);
  throw new SafetensorsError(
    `${what} has dtype ${dtype}; only F32, F16 and BF16 can be read as floats. Convert the checkpoint to one of those.`,
  );
}

/** One tensor as float32, from an F32, F16 or BF16 entry. */
export async function readTensorF32(src: ByteSource, header: SafetensorsHeader, name: string): Promise<Float32Array> {
  const t = header.tensors.get(name);
  if (!t) throw new SafetensorsError(`no tensor "${name}" in this safetensors file`);
  return decodeFloat(t.dtype, await readTensorBytes(src, header, name), `tensor "${name}"`);
}

/** A parsed in-memory safetensors file: header plus readers. */
export async function openSafetensors(bytes: ArrayBuffer | Uint8Array | ByteSource, fileName: string) {
  const src = 'read' in bytes ? bytes : bytesSource(bytes);
  const header = await readSafetensorsHeader(src, fileName);
  return {
    header,
    bytes: (name: string) => readTensorBytes(src, header, name),
    f32: (name: string) => readTensorF32(src, header, name),
  };
}

export interface TensorToWrite {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16';
  shape: number[];
  /** F32: Float32Array. F16: Float32Array (converted, round to nearest even) or Uint16Array of f16 bits. BF16: Uint16Array of bits. */
  data: Float32Array | Uint16Array;
}

/**
 * Serialises tensors as a safetensors file. Header keys are sorted with `__metadata__` first, data laid
 * out in that order, and the header padded with spaces to a multiple of 8 bytes as the reference does.
 */
export function writeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Uint8Array<ArrayBuffer> {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw new SafetensorsError(`metadata["${k}"] must be a string`);
    header.__metadata__ = metadata;
  }
  const payloads: Uint8Array[] = [];
  let offset = 0;
  const seen = new Set<string>();
  for (const t of sorted) {
    if (t.name === '__metadata__' || seen.has(t.name))
      throw new SafetensorsError(`tensor name "${t.name}" is reserved or repeated`);
    seen.add(t.name);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new SafetensorsError(`tensor "${t.name}": bad shape [${t.shape.join(', ')}]`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n)
      throw new SafetensorsError(
        `tensor "${t.name}": shape [${t.shape.join(', ')}] has ${n} elements but data has ${t.data.length}`,
      );
    let bytes: Uint8Array;
    if (t.dtype === 'F32') {
      if (!(t.data instanceof Float32Array))
        throw new SafetensorsError(`tensor "${t.name}": F32 data must be a Float32Array`);
      bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    } else if (t.dtype === 'F16') {
      const bits = t.data instanceof Uint16Array ? t.data : Uint16Array.from(t.data, f32ToF16Bits);
      bytes = new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
    } else {
      if (!(t.data instanceof Uint16Array))
        throw new SafetensorsError(`tensor "${t.name}": BF16 data must be a Uint16Array of bfloat16 bits`);
      bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    payloads.push(bytes);
    offset += bytes.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.byteLength % 8)) % 8;
  if (pad) {
    const padded = new Uint8Array(json.byteLength + pad).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let at = 8 + json.byteLength;
  for (const p of payloads) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
