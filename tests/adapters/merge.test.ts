// Merging an adapter into the base weights (src/adapters/merge.ts): the merged model without LoRA
// computes what the model with the LoRA branch computes; unmerging restores the base weights bit for
// bit; the exported merged checkpoint, loaded fresh, computes the merged logits; nothing leaks.
//
// Bound, merged vs unmerged logits: both are f32. Unmerged adds s·(x·Aᵀ)·Bᵀ to x·W0ᵀ; merged
// rounds W0 + s·B·A to f32 once per element and then does one product. The two orders differ by
// ~IN·eps32·|x|·|W| per linear, growing a little through the layers: we allow
// 2e-5·max|logit| + 1e-5 (~2.5e-4 here; measured on lavapipe: 2.0e-5 gpt2-tiny, 3.0e-5 llama f32,
// 3.7e-5 llama f16, with |logit| up to ~12), far below what a wrong sign, a missing scale or a
// transposed product gives (the adapter moves these logits by > 0.1, checked).

import { copyFileSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportMergedModel, mergeLora, unmergeLora } from '../../src/adapters/merge';
import { forwardLogits } from '../../src/models/forward';
import { loadModel } from '../../src/models';
import { LoraState, type LoraArrays } from '../../src/models/lora';
import { linearModules } from '../../src/models/modules';
import type { CausalLM } from '../../src/models/model';
import { FIXTURES, loadFixtureModel } from '../helpers/fixtures';
import { gpu, rng } from '../helpers/gpu';

const REL = 2e-5;
const ABS = 1e-5;

function maxAbs(x: Float32Array): number {
  let m = 0;
  for (const v of x) m = Math.max(m, Math.abs(v));
  return m;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

async function logitsOf(
  model: CausalLM,
  lora: LoraState | null,
  ids: Uint32Array,
  B: number,
  T: number,
): Promise<Float32Array> {
  const t = forwardLogits(model, lora, ids, B, T);
  const v = await t.read();
  t.free();
  return v;
}

const cases: { fixture: string; dtype: 'f32' | 'f16'; rank: number; rslora: boolean }[] = [
  { fixture: 'gpt2-tiny', dtype: 'f32', rank: 4, rslora: false },
  { fixture: 'llama-gqa-tied', dtype: 'f32', rank: 3, rslora: true },
  { fixture: 'llama-gqa-tied', dtype: 'f16', rank: 4, rslora: false },
];

describe('merge / unmerge', () => {
  for (const c of cases) {
    it(`${c.fixture} (${c.dtype} weights, r ${c.rank}${c.rslora ? ', rsLoRA' : ''}): merged = LoRA logits, unmerge restores W0 bit for bit, merged export loads`, async () => {
      const ctx = await gpu();
      const driver = process.env.WEBLORA_DRIVER;
      if (c.dtype === 'f16') {
        // lavapipe has shader-f16 (the case must run there); SwiftShader lacks it and refuses f16 weights.
        if (driver === 'lavapipe') expect(ctx.hasF16).toBe(true);
        if (!ctx.hasF16) {
          const files = await loadFixtureModel(join(FIXTURES, c.fixture));
          await expect(loadModel(ctx, files.config, files.weights, { dtype: 'f16' })).rejects.toThrow(/shader-f16/);
          return;
        }
      }
      const live0 = ctx.alloc.liveBytes;
      const dir = join(FIXTURES, c.fixture);
      const files = await loadFixtureModel(dir);
      const cfg = files.config;
      const model = await loadModel(ctx, cfg, files.weights, { dtype: c.dtype });
      const targets = [...new Set(linearModules(cfg).map((m) => m.target))];
      const g = rng(7);
      const arrays: LoraArrays = new Map();
      for (const m of linearModules(cfg)) {
        // B nonzero and large enough that the adapter moves the logits by ~1 (a merge bug cannot hide).
        arrays.set(m.path, {
          A: g.uniform(c.rank * m.inFeatures, -0.5, 0.5),
          B: g.uniform(m.outFeatures * c.rank, -0.5, 0.5),
        });
      }
      const lora = LoraState.fromArrays(
        ctx,
        cfg,
        { r: c.rank, alpha: 2 * c.rank, useRslora: c.rslora, dropout: 0.1, targets },
        arrays,
      );
      const names = [...lora.modules.keys()].map((p) => `${p}.weight`);
      const before = new Map<string, Uint8Array>();
      for (const n of names) {
        const t = model.weights.get(n);
        expect(t.dtype).toBe(c.dtype);
        before.set(n, new Uint8Array(await ctx.readBytes(t.buf, t.bytes)));
      }

      const B = 2,
        T = 9;
      const ids = g.int(B * T, cfg.vocabSize);
      const base = await logitsOf(model, null, ids, B, T);
      const want = await logitsOf(model, lora, ids, B, T);
      expect(maxDiff(base, want), 'the adapter changes the logits').toBeGreaterThan(0.1);

      const merged = mergeLora(model.weights, lora);
      expect(merged.scale).toBe(c.rslora ? (2 * c.rank) / Math.sqrt(c.rank) : 2);
      for (const n of names) expect(model.weights.get(n).dtype).toBe('f32'); // f16 models merge into f32
      expect(() => mergeLora(model.weights, lora)).toThrow(/already holds a merged adapter/);
      const got = await logitsOf(model, null, ids, B, T);
      const d = maxDiff(got, want);
      console.log(
        `MEASURED ${c.fixture} ${c.dtype}: max|merged - LoRA| = ${d.toExponential(3)}, max|logit| = ${maxAbs(want).toFixed(3)}`,
      );
      expect(d).toBeLessThanOrEqual(REL * maxAbs(want) + ABS);

      // The merged checkpoint, written out and loaded fresh (as f32), computes the merged logits. With
      // f32 weights everything it holds is bit-identical to what is on the GPU; an f16 model's unmerged
      // tensors (embedding) are the same values read as f32, so the products may only differ in rounding.
      const out = await exportMergedModel(files, merged);
      const tmp = mkdtempSync(join(tmpdir(), 'weblora-merged-'));
      writeFileSync(join(tmp, 'model.safetensors'), out['model.safetensors']);
      writeFileSync(join(tmp, 'config.json'), out['config.json']);
      expect(JSON.parse(out['config.json'])).toEqual(files.configJson);
      for (const f of ['tokenizer.json', 'tokenizer_config.json'])
        if (existsSync(join(dir, f))) copyFileSync(join(dir, f), join(tmp, f));
      const files2 = await loadFixtureModel(tmp);
      expect([...files2.weights.keys()].sort()).toEqual([...files.weights.keys()].sort());
      for (const w of files2.weights.values()) expect(w.dtype).toBe('F32');
      const model2 = await loadModel(ctx, files2.config, files2.weights, { dtype: 'f32' });
      const fresh = await logitsOf(model2, null, ids, B, T);
      model2.weights.free();
      if (c.dtype === 'f32') expect(maxDiff(fresh, got)).toBe(0);
      else expect(maxDiff(fresh, got)).toBeLessThanOrEqual(REL * maxAbs(want) + ABS);

      unmergeLora(merged);
      for (const n of names) {
        const t = model.weights.get(n);
        expect(t.dtype).toBe(c.dtype);
        expect(new Uint8Array(await ctx.readBytes(t.buf, t.bytes))).toEqual(before.get(n));
      }
      // Back to the base model exactly: the same logits, bit for bit, with and without the adapter.
      expect(maxDiff(await logitsOf(model, null, ids, B, T), base)).toBe(0);
      expect(maxDiff(await logitsOf(model, lora, ids, B, T), want)).toBe(0);

      lora.free();
      model.weights.free();
      expect(ctx.alloc.liveBytes).toBe(live0);
    });
  }

  it('merging a part of the modules leaves the others as they were (same tensor objects)', async () => {
    const ctx = await gpu();
    const live0 = ctx.alloc.liveBytes;
    const files = await loadFixtureModel(join(FIXTURES, 'gpt2-tiny'));
    const cfg = files.config;
    const model = await loadModel(ctx, cfg, files.weights, { dtype: 'f32' });
    const g = rng(11);
    const arrays: LoraArrays = new Map();
    for (const m of linearModules(cfg).filter((x) => x.target === 'c_attn')) {
      arrays.set(m.path, { A: g.uniform(2 * m.inFeatures), B: g.uniform(m.outFeatures * 2) });
    }
    const lora = LoraState.fromArrays(
      ctx,
      cfg,
      { r: 2, alpha: 4, useRslora: false, dropout: 0, targets: ['c_attn'] },
      arrays,
    );
    const untouched = linearModules(cfg)
      .filter((m) => m.target !== 'c_attn')
      .map((m) => [m.path, model.weights.get(`${m.path}.weight`)] as const);
    const merged = mergeLora(model.weights, lora);
    expect([...merged.merged.keys()].sort()).toEqual([...arrays.keys()].map((p) => `${p}.weight`).sort());
    for (const [p, t] of untouched) expect(model.weights.get(`${p}.weight`)).toBe(t);
    unmergeLora(merged);
    lora.free();
    model.weights.free();
    await ctx.sync(); // the kernels' pending uniform block is live until submitted
    expect(ctx.alloc.liveBytes).toBe(live0);
  });
});
