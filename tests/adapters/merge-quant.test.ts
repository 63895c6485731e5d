// Merging an adapter into a quantized base (src/adapters/merge.ts with an int8 / int4 GpuWeights): each merged
// weight is a new f32 tensor, dequantize(W0) + s·B·A, swapped in place of the q8 / q4 one (GpuWeights.swap takes
// a different dtype of the same shape); the merged model without LoRA computes what the quantized model with
// the LoRA branch computes; unmerging puts the blocks back bit for bit; nothing leaks. The bundled model: its
// linears have 128 columns (blocks) except down_proj (344: stays float, merged from f16 / f32 as before).
// Bound as in merge.test.ts: 2e-5·max|logit| + 1e-5 (the dequantized values are exact in f32, so the two
// orders of the same sums differ by f32 rounding only).
import { describe, expect, it } from 'vitest';
import { mergeLora, unmergeLora } from '../../src/adapters/merge';
import { isQuant } from '../../src/gpu/tensor';
import { forwardLogits } from '../../src/models/forward';
import { loadModel } from '../../src/models';
import { LoraState, type LoraArrays } from '../../src/models/lora';
import { linearModules } from '../../src/models/modules';
import type { CausalLM } from '../../src/models/model';
import { BUNDLED, loadFixtureModel } from '../helpers/fixtures';
import { gpu, rng } from '../helpers/gpu';

async function logitsOf(model: CausalLM, lora: LoraState | null, ids: Uint32Array, B: number, T: number) {
  const t = forwardLogits(model, lora, ids, B, T);
  const v = await t.read();
  t.free();
  return v;
}

const maxAbs = (x: Float32Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('merge / unmerge on a quantized base', () => {
  for (const weights of ['int8', 'int4'] as const) {
    it(`bundled model, ${weights} base: merged f32 weights = LoRA logits, unmerge restores the blocks bit for bit`, async () => {
      const ctx = await gpu();
      await ctx.sync();
      const live0 = ctx.alloc.liveBytes;
      const files = await loadFixtureModel(BUNDLED);
      const cfg = files.config;
      const model = await loadModel(ctx, cfg, files.weights, { dtype: weights });
      const mods = linearModules(cfg);
      const g = rng(11);
      const arrays: LoraArrays = new Map();
      for (const m of mods)
        arrays.set(m.path, { A: g.uniform(4 * m.inFeatures, -0.5, 0.5), B: g.uniform(m.outFeatures * 4, -0.5, 0.5) });
      const targets = [...new Set(mods.map((m) => m.target))];
      const lora = LoraState.fromArrays(ctx, cfg, { r: 4, alpha: 8, useRslora: false, dropout: 0, targets }, arrays);
      const names = mods.map((m) => `${m.path}.weight`);
      const before = new Map<string, Uint8Array>();
      let quantized = 0;
      for (const n of names) {
        const t = model.weights.get(n);
        if (isQuant(t.dtype)) quantized++;
        before.set(n, new Uint8Array(await ctx.readBytes(t.buf, t.bytes)));
      }
      expect(quantized).toBe(names.length - cfg.numLayers); // all but down_proj

      const [B, T] = [2, 9];
      const ids = g.int(B * T, cfg.vocabSize);
      const base = await logitsOf(model, null, ids, B, T);
      const want = await logitsOf(model, lora, ids, B, T);
      expect(maxDiff(base, want)).toBeGreaterThan(0.1);
      const merged = mergeLora(model.weights, lora);
      for (const n of names) expect(model.weights.get(n).dtype).toBe('f32');
      const got = await logitsOf(model, null, ids, B, T);
      const d = maxDiff(got, want);
      console.log(
        `MEASURED bundled ${weights}: max|merged - LoRA| = ${d.toExponential(3)}, max|logit| ${maxAbs(want).toFixed(3)}`,
      );
      expect(d).toBeLessThanOrEqual(2e-5 * maxAbs(want) + 1e-5);

      unmergeLora(merged);
      for (const n of names) {
        const t = model.weights.get(n);
        expect(new Uint8Array(await ctx.readBytes(t.buf, t.bytes)), n).toEqual(before.get(n));
      }
      expect(await logitsOf(model, null, ids, B, T)).toEqual(base);
      lora.free();
      model.weights.free();
      await ctx.sync();
      expect(ctx.alloc.liveBytes).toBe(live0);
    });
  }
});
