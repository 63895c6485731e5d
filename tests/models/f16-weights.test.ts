// Frozen weights stored as f16 (on adapters with shader-f16, as lavapipe has): the bundled model's
// logits stay close to the f32 model's, and LoRA training runs on them.
//
// Bound: f16 keeps 11 significant bits, so each weight moves by at most 2^-11 relative; through 4
// blocks of O(1)-gain layers the logits move by a few 1e-3 of their scale. We require
// max|f16 − f32| <= 2e-2·max|logit|, and that the two agree on the top token of most positions.

import { describe, expect, it } from 'vitest';
import { forwardBackward } from '../../src/training/step';
import { forwardLogits } from '../../src/models/forward';
import { loadModelFiles } from '../../src/loaders/model-files';
import { dirSource } from '../../src/loaders/sources.node';
import { loadModel } from '../../src/models';
import { LoraState } from '../../src/models/lora';
import { f16BitsToF32, f32ToF16Bits, fromF16 } from '../../src/gpu/f16';
import { parseConfig } from '../../src/models/config';
import { fakeCheckpoint, TINY_CONFIGS } from '../loaders/fixtures';
import { BUNDLED } from '../helpers/fixtures';
import { gpu } from '../helpers/gpu';

describe('f16 weights', () => {
  it('the bundled model in f16 gives the f32 logits within the f16 bound, and trains', async () => {
    const ctx = await gpu();
    expect(ctx.hasF16).toBe(true); // lavapipe has shader-f16; the test is about that path
    const files = await loadModelFiles(dirSource(BUNDLED));
    const ids = Uint32Array.from(
      files.tokenizer.encode('Call me Ishmael. Some years ago, never mind how long precisely', true),
    );
    const T = ids.length,
      V = files.config.vocabSize;
    const m32 = await loadModel(ctx, files.config, files.weights, { dtype: 'f32' });
    const m16 = await loadModel(ctx, files.config, files.weights, { dtype: 'f16' });
    expect(m16.weights.bytes).toBeLessThan(0.6 * m32.weights.bytes);
    const l32 = forwardLogits(m32, null, ids, 1, T);
    const l16 = forwardLogits(m16, null, ids, 1, T);
    const [a, b] = [await l32.read(), await l16.read()];
    [l32, l16].forEach((t) => t.free());
    let scale = 0,
      diff = 0,
      agree = 0;
    for (let i = 0; i < a.length; i++) {
      scale = Math.max(scale, Math.abs(a[i]));
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
    }
    for (let t = 0; t < T; t++) {
      const row = (x: Float32Array) => x.subarray(t * V, (t + 1) * V);
      const arg = (x: Float32Array) => x.indexOf(Math.max(...x));
      if (arg(row(a)) === arg(row(b))) agree++;
    }
    expect(diff).toBeGreaterThan(0); // really a different storage
    expect(diff).toBeLessThanOrEqual(2e-2 * scale);
    expect(agree / T).toBeGreaterThanOrEqual(0.8);

    const lora = LoraState.init(
      ctx,
      files.config,
      { r: 4, alpha: 8, useRslora: false, dropout: 0, targets: ['q_proj', 'v_proj'] },
      1,
    );
    const targets = Uint32Array.from([...ids.subarray(1), 2]);
    const r = await forwardBackward(m16, lora, { ids, targets, B: 1, T });
    expect(Number.isFinite(r.lossSum / r.count)).toBe(true);
    const g = await lora.readGrads();
    expect([...g.values()].some((x) => x.B.some((v) => v !== 0))).toBe(true);
    lora.free();
    m32.weights.free();
    m16.weights.free();
  });

  it('fromF16 (a lookup table) gives f16BitsToF32 for all 65,536 bit patterns', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, h) => h);
    const got = fromF16(all);
    for (let h = 0; h < 65536; h++)
      expect(Object.is(got[h], Math.fround(f16BitsToF32(h))), `0x${h.toString(16)}`).toBe(true);
  });

  it('an F16 checkpoint goes to f16 weights as stored: the same GPU values as through float32', async () => {
    const ctx = await gpu();
    const cfg = parseConfig(TINY_CONFIGS.qwen3);
    // Tensors as the loader gives them: the F16 bytes, and read() decoding them (what a reader without bytes has).
    const decoded: string[] = []; // tensors the raw-bytes model still decoded to float32
    const readers = (raw: boolean) =>
      new Map(
        fakeCheckpoint('qwen3', 'F16').map((t) => {
          const bits = Uint16Array.from(t.data, (v) => f32ToF16Bits(v));
          const bytes = new Uint8Array(bits.buffer);
          const r = {
            shape: t.shape,
            read: async () => {
              if (raw) decoded.push(t.name);
              return fromF16(bits);
            },
          };
          return [t.name, raw ? { ...r, dtype: 'F16', readBytes: async () => bytes } : r];
        }),
      );
    const viaBits = await loadModel(ctx, cfg, readers(true), { dtype: 'f16' });
    const viaF32 = await loadModel(ctx, cfg, readers(false), { dtype: 'f16' });
    // Only the norm weights (kept in f32) are decoded; every f16 weight went up as its bytes.
    expect(decoded.length).toBeGreaterThan(0);
    for (const name of decoded) expect(name).toMatch(/norm\.weight$/);
    const names = [...readers(false).keys()].filter((n) => viaBits.weights.has(n));
    expect(names.length).toBeGreaterThan(10); // every weight but the two tables
    const tensors = (m: typeof viaBits) => [
      ...names.map((n) => m.weights.get(n)),
      ...m.weights.embedding.map((c) => c.table),
      ...m.weights.lmHead.map((c) => c.table),
    ];
    const [a, b] = [tensors(viaBits), tensors(viaF32)];
    expect(a.length).toBe(b.length);
    for (let i = 0; i < a.length; i++) {
      expect(a[i].dtype).toBe(b[i].dtype);
      expect(await a[i].read()).toEqual(await b[i].read());
    }
    viaBits.weights.free();
    viaF32.weights.free();
  });
});
