// The studio's built-in adapters (public/gallery/, built by tools/gallery/build.sh from
// tools/gallery/recipes.json): each index entry describes its files truthfully, each adapter imports
// cleanly onto the bundled model, and it visibly changes what the model writes (greedy generation from
// the recipe's prompt differs from the base model's).

import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importAdapter, type AdapterFiles } from '../../src/adapters/peft';
import { generate } from '../../src/models/generate';
import { loadModel } from '../../src/models';
import { LoraState } from '../../src/models/lora';
import type { GalleryEntry } from '../../src/worker/protocol';
import { BUNDLED, ROOT, loadFixtureModel } from '../helpers/fixtures';
import { gpu } from '../helpers/gpu';

const GALLERY = join(ROOT, 'public/gallery');
const index = JSON.parse(readFileSync(join(GALLERY, 'index.json'), 'utf8')) as (GalleryEntry & {
  path: string;
  baseWeightsHash: string;
})[];
const recipes = JSON.parse(readFileSync(join(ROOT, 'tools/gallery/recipes.json'), 'utf8')) as {
  id: string;
  samplePrompt: string;
  data: string;
}[];
const bundledHash = createHash('sha256')
  .update(readFileSync(join(BUNDLED, 'model.safetensors')))
  .digest('hex');
const FILES = ['adapter_model.safetensors', 'adapter_config.json', 'README.md'] as const;
// GalleryEntry (src/worker/protocol.ts), plus the folder and the hash of the base weights it was trained on.
const ENTRY_KEYS = [
  'id',
  'name',
  'builtin',
  'baseModel',
  'weightsHash',
  'dataset',
  'settings',
  'lossCurve',
  'valCurve',
  'createdAt',
  'sizeBytes',
  'path',
  'baseWeightsHash',
];

function adapterFiles(path: string): AdapterFiles {
  const dir = join(GALLERY, path);
  return {
    'adapter_model.safetensors': new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors'))),
    'adapter_config.json': readFileSync(join(dir, 'adapter_config.json'), 'utf8'),
    'README.md': readFileSync(join(dir, 'README.md'), 'utf8'),
  };
}

describe('built-in gallery', () => {
  it('has one entry per recipe, each describing its files', () => {
    expect(index.map((e) => e.path).sort()).toEqual(recipes.map((r) => r.id).sort());
    expect(new Set(index.map((e) => e.id)).size).toBe(index.length);
    for (const e of index) {
      expect(Object.keys(e).sort()).toEqual([...ENTRY_KEYS].sort());
      expect(e.builtin).toBe(true);
      expect(e.baseModel).toBe('weblora-llama-1m');
      expect(
        e.baseWeightsHash,
        `${e.id} was trained on other weights than the bundled model's: rebuild with bash tools/gallery/build.sh`,
      ).toBe(bundledHash);
      const f = adapterFiles(e.path);
      expect(e.weightsHash).toBe(createHash('sha256').update(f['adapter_model.safetensors']).digest('hex'));
      expect(e.sizeBytes).toBe(FILES.reduce((n, name) => n + statSync(join(GALLERY, e.path, name)).size, 0));
      const recipe = recipes.find((r) => r.id === e.path)!;
      expect(e.dataset).toBe(recipe.data.split('/').pop());
      const pc = JSON.parse(f['adapter_config.json']);
      expect(pc.base_model_name_or_path).toBe('weblora-llama-1m');
      expect(pc.r).toBe(e.settings.rank);
      expect(pc.lora_alpha).toBe(e.settings.alpha);
      expect([...pc.target_modules].sort()).toEqual([...e.settings.targets].sort());
      // Curves: one training loss per step, validation on the way, and training lowered the loss (mean of
      // the first vs the last 10 steps: 5.46 -> 4.31 for the fortunes, 3.93 -> 3.64 for the Jargon File).
      expect(e.lossCurve.length).toBe(e.settings.steps);
      expect(e.lossCurve.map((p) => p.step)).toEqual(Array.from({ length: e.settings.steps! }, (_, i) => i + 1));
      expect(e.valCurve.length).toBeGreaterThan(1);
      const head = e.lossCurve.slice(0, 10).reduce((a, p) => a + p.loss, 0) / 10;
      const tail = e.lossCurve.slice(-10).reduce((a, p) => a + p.loss, 0) / 10;
      expect(tail).toBeLessThan(head - 0.15);
      expect(e.valCurve.at(-1)!.loss).toBeLessThan(e.valCurve[0].loss);
      expect(Number.isNaN(Date.parse(e.createdAt))).toBe(false);
      expect(f['README.md']).toMatch(/^---\nlibrary_name: peft\nbase_model: "weblora-llama-1m"/);
    }
  });

  it('each adapter imports onto the bundled model and changes its greedy generation', async () => {
    const ctx = await gpu();
    const live0 = ctx.alloc.liveBytes;
    const files = await loadFixtureModel(BUNDLED);
    const cfg = files.config;
    const model = await loadModel(ctx, cfg, files.weights, { dtype: 'f32' });
    const outputs: string[] = [];
    for (const e of index) {
      const imp = importAdapter(adapterFiles(e.path), cfg, 'weblora-llama-1m');
      expect(imp.warnings).toEqual([]);
      expect(imp.lora.r).toBe(e.settings.rank);
      expect([...imp.arrays.values()].every((m) => m.B.some((x) => x !== 0))).toBe(true); // trained, not the zero init
      const lora = LoraState.fromArrays(ctx, cfg, imp.lora, imp.arrays);
      const prompt = files.tokenizer.encode(recipes.find((r) => r.id === e.path)!.samplePrompt, true);
      const opts = { maxNewTokens: 24, temperature: 0, stopAtEos: false };
      const base = await generate(model, null, prompt, opts);
      const tuned = await generate(model, lora, prompt, opts);
      const text = (ids: number[]) => JSON.stringify(files.tokenizer.decode(ids, true));
      console.log(`${e.id}\n  base:    ${text(base)}\n  adapter: ${text(tuned)}`);
      expect(tuned.length).toBe(24);
      expect(tuned).not.toEqual(base);
      outputs.push(text(tuned));
      lora.free();
    }
    expect(new Set(outputs).size).toBe(outputs.length); // the adapters differ from each other too
    model.weights.free();
    await ctx.sync();
    expect(ctx.alloc.liveBytes).toBe(live0);
  });
});
