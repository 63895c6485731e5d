// The quantized block formats (src/gpu/quant.ts): quantize -> dequantize error bounds, ggml's block bytes
// copied as they are, and a quantized Tensor's upload and readback on the GPU.
import { describe, expect, it } from 'vitest';
import { f16BitsToF32, f32ToF16Bits } from '../../src/gpu/f16';
import {
  QUANT_BLOCK,
  blockScale,
  dequantize,
  fromGgmlBlocks,
  quantLayout,
  quantize,
  type QuantKind,
} from '../../src/gpu/quant';
import { Tensor } from '../../src/gpu/tensor';
import { gpu, rng } from '../helpers/gpu';

const KINDS: QuantKind[] = ['q8', 'q4'];

describe('quantized blocks', () => {
  for (const kind of KINDS) {
    it(`${kind}: every value is within half a step of its block's scale (q4: a step on the clipped side)`, () => {
      const rows = 7;
      const cols = 96;
      const x = rng(1).normal(rows * cols, 0.5);
      x[5] = 0; // a block with a zero still works
      for (let j = 64; j < 96; j++) x[j] = 0; // an all-zero block: scale 0, values 0
      const qb = quantize(kind, x, rows, cols);
      const y = dequantize(qb);
      for (let b = 0; b < (rows * cols) / QUANT_BLOCK; b++) {
        const d = Math.abs(blockScale(qb, b));
        let amax = 0;
        for (let j = 0; j < QUANT_BLOCK; j++) amax = Math.max(amax, Math.abs(x[b * QUANT_BLOCK + j]));
        // the step is d; q4 spans -8d .. 7d, so the side opposite the extreme clips by up to one step.
        // Slack for the scale's own f16 rounding.
        const bound = (kind === 'q4' ? 1 : 0.5) * d + amax * 2 ** -10 + 1e-12;
        for (let j = 0; j < QUANT_BLOCK; j++) {
          const i = b * QUANT_BLOCK + j;
          expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(bound);
        }
        if (b === 2) expect(d).toBe(0);
      }
      for (let j = 64; j < 96; j++) expect(y[j] === 0).toBe(true); // q4 gives -0 (d = -0 / 8, as llama.cpp)
    });
  }

  it('q4 maps the block extreme to -8 · d (so its sign picks the scale sign)', () => {
    const x = new Float32Array(32).fill(0.25);
    x[3] = -2;
    const qb = quantize('q4', x, 1, 32);
    expect(blockScale(qb, 0)).toBe(f16BitsToF32(f32ToF16Bits(2 / 8)));
    expect(dequantize(qb)[3]).toBe(-2);
  });

  it('ggml Q8_0 / Q4_0 block bytes come in as they are', () => {
    for (const [type, kind] of [
      ['Q8_0', 'q8'],
      ['Q4_0', 'q4'],
    ] as const) {
      const rows = 3;
      const cols = 64;
      const qb = quantize(kind, rng(2).normal(rows * cols), rows, cols);
      // write ggml's blocks: f16 d then the quants
      const qBytes = kind === 'q8' ? 32 : 16;
      const nb = (rows * cols) / 32;
      const raw = new Uint8Array(nb * (2 + qBytes));
      const qs = new Uint8Array(qb.q.buffer);
      for (let b = 0; b < nb; b++) {
        const w = qb.scales[b >> 1];
        const h = b & 1 ? w >>> 16 : w & 0xffff;
        raw[b * (2 + qBytes)] = h & 255;
        raw[b * (2 + qBytes) + 1] = h >> 8;
        raw.set(qs.subarray(b * qBytes, (b + 1) * qBytes), b * (2 + qBytes) + 2);
      }
      const back = fromGgmlBlocks(type, raw, rows, cols);
      expect(back.q).toEqual(qb.q);
      expect(back.scales).toEqual(qb.scales);
      expect(() => fromGgmlBlocks(type, raw.subarray(1), rows, cols)).toThrow(/bytes for 3 × 64/);
    }
  });

  it('refuses a row that is not whole blocks', () => {
    expect(() => quantLayout('q8', 2, 40)).toThrow(/multiple of 32 columns, got 40/);
  });

  it('a quantized tensor uploads as one buffer and reads back its blocks', async () => {
    const ctx = await gpu();
    for (const kind of KINDS) {
      const qb = quantize(kind, rng(3).normal(5 * 160), 5, 160);
      const t = Tensor.fromQuant(ctx, qb, 'w');
      const l = quantLayout(kind, 5, 160);
      expect(t.bytes).toBe(l.bytes);
      expect(l.scalesOffset % 256).toBe(0);
      expect(t.quantParts.scales).toMatchObject({ offset: l.scalesOffset, size: l.scalesBytes });
      const back = await t.readQuant();
      expect(back.q).toEqual(qb.q);
      expect(back.scales).toEqual(qb.scales);
      expect(await t.read()).toEqual(dequantize(qb));
      t.free();
    }
  });
});
