// src/gpu/quant.ts against llama.cpp's reference quantizers as tools/quant_golden.py reimplements them in
// NumPy (tests/fixtures/quant/{q8,q4}.json): every f16 scale, every block byte and every dequantized value
// bit for bit, on inputs chosen to be awkward (ties at .5, a zero block, negative extremes, Q4_0's clamp to
// 15, f16-subnormal and underflowing scales, scales near f16's largest). The same bytes laid out as a GGUF
// file stores them (fromGgmlBlocks) give the same blocks.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dequantize, fromGgmlBlocks, QUANT_BLOCK, quantize, type QuantKind } from '../../src/gpu/quant';
import { FIXTURES } from '../helpers/fixtures';

interface Case {
  name: string;
  kind: QuantKind;
  rows: number;
  cols: number;
  x: number[];
  scales: number[];
  quants: number[];
  dequant: number[];
}

const load = (kind: QuantKind): Case[] =>
  JSON.parse(readFileSync(join(FIXTURES, 'quant', `${kind}.json`), 'utf8')).cases;

/** The scale bits of every block, one number each. */
const scaleBits = (scales: Uint32Array, blocks: number) =>
  Array.from({ length: blocks }, (_, b) => (scales[b >>> 1] >>> (b & 1 ? 16 : 0)) & 0xffff);

describe('quantizers vs tools/quant_golden.py (llama.cpp reference, NumPy)', () => {
  for (const kind of ['q8', 'q4'] as const) {
    const cases = load(kind);
    it(`${kind}: ${cases.length} cases, scales, bytes and dequantized values bit for bit`, () => {
      for (const c of cases) {
        const blocks = (c.rows * c.cols) / QUANT_BLOCK;
        const qb = quantize(kind, Float32Array.from(c.x), c.rows, c.cols);
        expect(scaleBits(qb.scales, blocks), `${c.name}: scales`).toEqual(c.scales);
        expect(Array.from(new Uint8Array(qb.q.buffer)), `${c.name}: bytes`).toEqual(c.quants);
        expect(Array.from(dequantize(qb)), `${c.name}: dequantized`).toEqual(c.dequant);
        // GGUF's layout of the same blocks: 2 bytes of scale, then the quants, block after block.
        const qBytes = kind === 'q8' ? 32 : 16;
        const raw = new Uint8Array(blocks * (2 + qBytes));
        for (let b = 0; b < blocks; b++) {
          raw[b * (2 + qBytes)] = c.scales[b] & 0xff;
          raw[b * (2 + qBytes) + 1] = c.scales[b] >>> 8;
          raw.set(c.quants.slice(b * qBytes, (b + 1) * qBytes), b * (2 + qBytes) + 2);
        }
        const fromFile = fromGgmlBlocks(kind === 'q8' ? 'Q8_0' : 'Q4_0', raw, c.rows, c.cols);
        expect(fromFile, `${c.name}: from GGUF bytes`).toEqual(qb);
      }
    });

    it(`${kind}: the fixture holds what it claims (a zero scale, an f16-subnormal scale, ties, q4's clamp)`, () => {
      const by = new Map(cases.map((c) => [c.name, c]));
      // q4's zero block has d = 0 / -8 = -0: f16 0x8000, as llama.cpp stores it (both sides agree on the sign).
      expect(by.get('zero-block')!.scales).toEqual([kind === 'q8' ? 0 : 0x8000]);
      expect(by.get('underflow-scale')!.scales[0] & 0x7fff).toBe(0); // d below half the smallest subnormal
      const sub = by.get('subnormal-scale')!.scales[0];
      expect(sub & 0x7c00).toBe(0); // exponent bits 0 ...
      expect(sub & 0x3ff).not.toBe(0); // ... and a mantissa: subnormal
      if (kind === 'q8') {
        // d = 1: 0.5 -> 1, -0.5 -> -1, 2.5 -> 3 (half away from zero, not to even)
        expect(by.get('ties')!.quants.slice(1, 7)).toEqual([1, 255, 2, 254, 3, 253]);
      } else {
        const c = by.get('positive-clamped')!; // max -3, d 0.375: x[31] = +3 -> 16.5 -> clamped to 15
        expect(c.quants[15] >>> 4).toBe(15);
        expect(c.dequant[31]).toBe(0.375 * -7 * -1); // f16(d) = -0.375 · (15 - 8)
      }
    });
  }
});
