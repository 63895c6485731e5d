// float32 <-> float16 bit conversion on the CPU (round to nearest even), for uploading f16 weights
// and reading them back. Float16Array is not in Node 20, so it is done by hand.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> 0
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // may carry into the exponent: still correct
  return sign | h;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function toF16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return out;
}

/** Every f16 bit pattern as float32 (exact), built on first use: a lookup is ~100x cheaper than the arithmetic. */
let F16_TABLE: Float32Array | null = null;

export function fromF16(src: Uint16Array): Float32Array {
  const table = (F16_TABLE ??= Float32Array.from({ length: 65536 }, (_, h) => f16BitsToF32(h)));
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]];
  return out;
}

/** bfloat16 bits -> float32 (bf16 is the top half of an f32). */
export function fromBF16(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const o32 = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) o32[i] = src[i] << 16;
  return out;
}

/** The float kinds a checkpoint stores (safetensors' dtypes, GGUF's types of the same names). */
export type FloatKind = 'F32' | 'F16' | 'BF16';

/** Little-endian F32 / F16 / BF16 bytes -> float32 (all platforms WebGPU runs on are little-endian). The one
 * decoder of stored floats: safetensors and GGUF readers both call it. */
export function decodeFloatBytes(kind: FloatKind, bytes: Uint8Array): Float32Array {
  // typed-array views need aligned offsets; copy when the slice is not aligned
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  if (kind === 'F32') return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4).slice();
  const halves = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
  return kind === 'F16' ? fromF16(halves) : fromBF16(halves);
}
