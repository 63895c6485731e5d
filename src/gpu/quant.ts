// The quantized block formats of a frozen weight: int8 (llama.cpp's Q8_0) and int4 (Q4_0), laid out so that a
// WGSL kernel reads them with aligned u32 loads. A quantized matrix has `rows` × `cols` values, row-major like
// every weight (PyTorch's [out, in]); `cols` is a multiple of 32, and each run of 32 values along a row is one
// block with one scale d:
//
//   q8  x[i] = d · q[i]          q[i] an int8; the block's 32 bytes are 8 u32, byte i = value i
//   q4  x[j] = d · (lo(b[j]) − 8), x[j+16] = d · (hi(b[j]) − 8)   for j < 16; the block's 16 bytes b are 4 u32
//
// Byte k of a block is byte (k mod 4) of its u32 number floor(k / 4), little-endian: exactly ggml's block bytes,
// so a GGUF tensor's Q8_0/Q4_0 blocks are copied as they are, never requantized. The scales are f16 bit
// patterns, two per u32 (block 2i in the low half, 2i + 1 in the high half), so a kernel reads them with core
// WGSL's unpack2x16float and needs no shader-f16. Bytes per value: q8 1.0625, q4 0.5625 (as in GGUF).
//
// On the GPU a quantized weight is one buffer: the quants at byte 0, the scales at `scalesOffset` (a multiple
// of 256, so both parts bind as views of the one buffer). quantizeQ8 / quantizeQ4 follow llama.cpp's reference
// quantizers (quantize_row_q8_0_ref / quantize_row_q4_0_ref) step for step in float32, so a Python
// reimplementation of them agrees bit for bit.

import { f32ToF16Bits, f16BitsToF32 } from './f16';

export type QuantKind = 'q8' | 'q4';
export const QUANT_KINDS: readonly QuantKind[] = ['q8', 'q4'];

/** Values per block. */
export const QUANT_BLOCK = 32;
/** u32 words of quants per block. */
export const quantWordsPerBlock = (kind: QuantKind): number => (kind === 'q8' ? 8 : 4);

/** A quantized matrix on the CPU, as it is uploaded. */
export interface QuantBlocks {
  kind: QuantKind;
  rows: number;
  cols: number;
  /** (blocks × quantWordsPerBlock) u32: the blocks' bytes in order */
  q: Uint32Array;
  /** (ceil(blocks / 2)) u32: f16 scales, two per word */
  scales: Uint32Array;
}

const align256 = (n: number) => Math.ceil(n / 256) * 256;

/** Byte sizes of a quantized (rows, cols) matrix's two parts and of its one GPU buffer. */
export function quantLayout(kind: QuantKind, rows: number, cols: number) {
  if (cols % QUANT_BLOCK) throw new Error(`a quantized matrix needs a multiple of ${QUANT_BLOCK} columns, got ${cols}`);
  const blocks = (rows * cols) / QUANT_BLOCK;
  const quantBytes = blocks * quantWordsPerBlock(kind) * 4;
  const scalesBytes = Math.ceil(blocks / 2) * 4;
  const scalesOffset = align256(quantBytes);
  return { blocks, quantBytes, scalesOffset, scalesBytes, bytes: scalesOffset + scalesBytes };
}

/** Whether a (rows, cols) weight can be stored as blocks (its rows split into whole blocks). */
export const quantizable = (cols: number): boolean => cols > 0 && cols % QUANT_BLOCK === 0;

/** The scale of block b, as float32. */
export function blockScale(qb: QuantBlocks, b: number): number {
  const w = qb.scales[b >>> 1];
  return f16BitsToF32(b & 1 ? w >>> 16 : w & 0xffff);
}

function emptyBlocks(kind: QuantKind, rows: number, cols: number): QuantBlocks {
  const { blocks } = quantLayout(kind, rows, cols);
  return {
    kind,
    rows,
    cols,
    q: new Uint32Array(blocks * quantWordsPerBlock(kind)),
    scales: new Uint32Array(Math.ceil(blocks / 2)),
  };
}

function setScale(qb: QuantBlocks, b: number, f16: number): void {
  qb.scales[b >>> 1] |= b & 1 ? f16 << 16 : f16;
}

const fr = Math.fround;
/** C's roundf: half away from zero. */
const roundf = (x: number) => Math.sign(x) * Math.floor(Math.abs(x) + 0.5);

/** float32 values (rows × cols, row-major) -> q8 blocks, as llama.cpp's quantize_row_q8_0_ref. */
export function quantizeQ8(x: Float32Array, rows: number, cols: number): QuantBlocks {
  const qb = emptyBlocks('q8', rows, cols);
  const bytes = new Int8Array(qb.q.buffer);
  const nb = (rows * cols) / QUANT_BLOCK;
  for (let b = 0; b < nb; b++) {
    const at = b * QUANT_BLOCK;
    let amax = 0;
    for (let j = 0; j < QUANT_BLOCK; j++) amax = Math.max(amax, Math.abs(x[at + j]));
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    setScale(qb, b, f32ToF16Bits(d));
    for (let j = 0; j < QUANT_BLOCK; j++) bytes[at + j] = roundf(fr(x[at + j] * id));
  }
  return qb;
}

/** float32 values (rows × cols, row-major) -> q4 blocks, as llama.cpp's quantize_row_q4_0_ref. */
export function quantizeQ4(x: Float32Array, rows: number, cols: number): QuantBlocks {
  const qb = emptyBlocks('q4', rows, cols);
  const bytes = new Uint8Array(qb.q.buffer);
  const nb = (rows * cols) / QUANT_BLOCK;
  for (let b = 0; b < nb; b++) {
    const at = b * QUANT_BLOCK;
    let amax = 0;
    let max = 0; // the value of largest magnitude, with its sign (the first of equals)
    for (let j = 0; j < QUANT_BLOCK; j++) {
      const v = x[at + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -8);
    const id = d ? fr(1 / d) : 0;
    setScale(qb, b, f32ToF16Bits(d));
    for (let j = 0; j < QUANT_BLOCK / 2; j++) {
      const x0 = fr(x[at + j] * id);
      const x1 = fr(x[at + 16 + j] * id);
      const q0 = Math.min(15, Math.trunc(fr(x0 + 8.5)));
      const q1 = Math.min(15, Math.trunc(fr(x1 + 8.5)));
      bytes[(at >>> 1) + j] = q0 | (q1 << 4);
    }
  }
  return qb;
}

export function quantize(kind: QuantKind, x: Float32Array, rows: number, cols: number): QuantBlocks {
  return kind === 'q8' ? quantizeQ8(x, rows, cols) : quantizeQ4(x, rows, cols);
}

/** Blocks -> float32 values (rows × cols), exactly as the kernels read them (every product is exact in f32). */
export function dequantize(qb: QuantBlocks): Float32Array {
  const n = qb.rows * qb.cols;
  const out = new Float32Array(n);
  const nb = n / QUANT_BLOCK;
  if (qb.kind === 'q8') {
    const bytes = new Int8Array(qb.q.buffer, qb.q.byteOffset, qb.q.byteLength);
    for (let b = 0; b < nb; b++) {
      const d = blockScale(qb, b);
      for (let j = 0; j < QUANT_BLOCK; j++) out[b * QUANT_BLOCK + j] = d * bytes[b * QUANT_BLOCK + j];
    }
  } else {
    const bytes = new Uint8Array(qb.q.buffer, qb.q.byteOffset, qb.q.byteLength);
    for (let b = 0; b < nb; b++) {
      const d = blockScale(qb, b);
      for (let j = 0; j < 16; j++) {
        const v = bytes[b * 16 + j];
        out[b * QUANT_BLOCK + j] = d * ((v & 15) - 8);
        out[b * QUANT_BLOCK + 16 + j] = d * ((v >>> 4) - 8);
      }
    }
  }
  return out;
}

/** ggml's Q8_0 (34-byte) or Q4_0 (18-byte) blocks, as a GGUF file stores them, -> our layout (bytes copied). */
export function fromGgmlBlocks(type: 'Q8_0' | 'Q4_0', raw: Uint8Array, rows: number, cols: number): QuantBlocks {
  const kind: QuantKind = type === 'Q8_0' ? 'q8' : 'q4';
  const qb = emptyBlocks(kind, rows, cols);
  const qBytes = quantWordsPerBlock(kind) * 4;
  const blockBytes = 2 + qBytes;
  const nb = (rows * cols) / QUANT_BLOCK;
  if (raw.byteLength !== nb * blockBytes)
    throw new Error(`${type}: ${raw.byteLength} bytes for ${rows} × ${cols} values (${nb * blockBytes} expected)`);
  const out = new Uint8Array(qb.q.buffer);
  for (let b = 0; b < nb; b++) {
    const at = b * blockBytes;
    setScale(qb, b, raw[at] | (raw[at + 1] << 8));
    out.set(raw.subarray(at + 2, at + blockBytes), b * qBytes);
  }
  return qb;
}
