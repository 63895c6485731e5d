// The studio's main flow in a real browser (Chromium, SwiftShader WebGPU), driven as a person would:
// the bundled model loads, a sample dataset is chosen, a short run trains with pause and resume, the
// exported zip is a PEFT adapter, the saved adapter survives a reload, and Try shows its effect.
// Steps share one page and run in order (each `it` builds on the one before). A test's time limit is the sum of
// its waits, so a wait that runs out says what it waited for.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { parseSafetensorsHeader } from '../../src/loaders/safetensors';
import { FAMILIES } from '../../src/models/families';
import { ROOT, expectBundledModel, expectEngineUp, screenshot, useStudioPage } from './harness';
import { bytesSource } from '../../src/loaders/byte-source';
import { readGgufHeader } from '../../src/loaders/gguf';

// Small enough for SwiftShader on 2 cores; a high learning rate so a few steps change the model.
const RUN = {
  rank: '4',
  alpha: '16',
  batch: '1',
  seqLen: '32',
  steps: '6',
  warmup: '0',
  lr: '0.05',
  evalEvery: '3',
  sampleEvery: '3',
  sampleTokens: '8',
};

let page: Page;

function sampleDatasets(): { name: string; file: string; format: string }[] {
  const path = join(ROOT, 'public/datasets/index.json');
  const json = JSON.parse(readFileSync(path, 'utf8'));
  return Array.isArray(json) ? json : json.datasets;
}

/** The value next to a term in one of the page's fact lists (<dt>term</dt><dd>value</dd>). */
async function fact(scope: string, term: string): Promise<string> {
  const dd = page
    .locator(`${scope} dt`, { hasText: new RegExp(`^${term}$`) })
    .first()
    .locator('xpath=following-sibling::dd[1]');
  return (await dd.textContent()) ?? '';
}

useStudioPage('studio flow', (p) => (page = p));

describe('studio page, main flow', () => {
  it('loads the bundled model at start and shows its shape and memory estimate', async () => {
    await expectBundledModel(page);
    expect(Number.parseFloat(await fact('#model-panel', 'Parameters'))).toBeGreaterThan(0);
    expect(Number(await fact('#model-panel', 'Layers'))).toBeGreaterThan(0);
    expect(await fact('#model-panel', 'Total')).toMatch(/\d.* (KB|MB|GB)$/);
    // The settings form shows the llama family's modules with PEFT's defaults ticked.
    await expect.poll(() => page.getByRole('checkbox', { name: 'q_proj' }).isChecked()).toBe(true);
    expect(await page.getByRole('checkbox', { name: 'down_proj' }).isChecked()).toBe(false);
  }, 190_000);

  it('lists every registered model family next to the Hub repo field, as the engine reports them', async () => {
    // The page cannot import the registry (tests/tooling/layers.test.ts): the list can only come from the
    // engine, through the worker's 'families' request.
    await expectEngineUp(page); // the list is asked for once the engine is up
    await page.locator('#model-panel details.other-model > summary').click();
    const list = page.getByRole('group', { name: 'Supported model families' });
    await list.locator('li').first().waitFor({ timeout: 60_000 });
    const specs = Object.values(FAMILIES);
    expect(await list.locator('li').count()).toBe(specs.length);
    for (const spec of specs) {
      const li = list.locator(`li[data-family="${spec.family}"]`);
      const text = (await li.textContent()) ?? '';
      expect(text).toContain(spec.name);
      for (const a of spec.architectures) expect(text).toContain(a);
      expect(await li.getByRole('button').allTextContents()).toEqual(spec.examples);
    }
    // An example fills the repo field (nothing is loaded until the form is sent).
    const example = FAMILIES.qwen3.examples[0];
    await list.getByRole('button', { name: example, exact: true }).click();
    expect(await page.getByLabel('Hugging Face repo id').inputValue()).toBe(example);
    await page.getByLabel('Hugging Face repo id').fill('');
    await screenshot(page, 'area1-model-families', '#model-panel');
  });

  it('reads a sample dataset and shows its format, preview, tokens and split', async () => {
    const sample = sampleDatasets()[0];
    expect(sample, 'public/datasets/index.json lists no dataset').toBeTruthy();
    await page.getByLabel('Sample dataset').selectOption({ label: `${sample.name} (${sample.format})` });
    await page
      .locator('#dataset-panel')
      .getByText(/examples, .* tokens\.$/)
      .waitFor({ timeout: 60_000 });
    expect(Number.parseFloat(await fact('#dataset-panel', 'Tokens'))).toBeGreaterThan(0);
    expect(Number(await fact('#dataset-panel', 'Training sequences'))).toBeGreaterThan(0);
    expect(await fact('#dataset-panel', 'Format')).not.toBe('');
    expect(await page.locator('#dataset-panel table tbody tr').count()).toBeGreaterThan(0);
    await screenshot(page, 'area1-model-and-data', '#data');
  });

  it('shows invalid settings inline and blocks Start until they are fixed', async () => {
    const lr = page.getByLabel('Learning rate', { exact: true });
    await lr.fill('0');
    const start = page.getByRole('button', { name: 'Start training' });
    await expect.poll(() => lr.getAttribute('aria-invalid'), { timeout: 20_000 }).toBe('true');
    expect(await start.isDisabled()).toBe(true);
    const err = await page.locator('#train .field-error', { hasText: /learning rate/i }).textContent();
    expect(err).toMatch(/learning rate must be above 0/i);
    await screenshot(page, 'area2-invalid-setting', '#train');
  });

  // The waits below are the whole budget: each says what it waits for when it runs out, and with the 2 s look while
  // paused they add up to the test's limit (20 + 40 + 180 + 120 + 240 + 2 s). Each waits for the page to change (a
  // button enabled, a text shown), not for a time.
  it('trains a few steps: progress, statistics and the loss chart update; pause and resume work', async () => {
    await page.getByLabel('Rank (r)').fill(RUN.rank);
    await page.getByLabel('Alpha').fill(RUN.alpha);
    await page.getByLabel('Batch size').fill(RUN.batch);
    await page.getByLabel('Sequence length').fill(RUN.seqLen);
    await page.getByLabel('Steps', { exact: true }).fill(RUN.steps);
    await page.getByLabel('Warmup steps').fill(RUN.warmup);
    await page.getByLabel('Learning rate', { exact: true }).fill(RUN.lr);
    await page.getByText('Evaluation, samples and checkpoints').click();
    await page.getByLabel('Evaluate every').fill(RUN.evalEvery);
    await page.getByLabel('Sample every').fill(RUN.sampleEvery);
    await page.getByLabel('Sample tokens').fill(RUN.sampleTokens);
    const start = page.getByRole('button', { name: 'Start training' });
    const pause = page.getByRole('button', { name: 'Pause' });
    const resume = page.getByRole('button', { name: 'Resume', exact: true });
    const enabled = (name: string, exact = false) => page.getByRole('button', { name, exact, disabled: false });
    await enabled('Start training').waitFor({ timeout: 20_000 });
    expect(await page.locator('#train [aria-invalid="true"]').count()).toBe(0);

    await start.click();
    await enabled('Pause').waitFor({ timeout: 40_000 }); // the worker says 'training'
    expect(await start.isDisabled()).toBe(true);
    const progressText = page.locator('#train .progress-text');
    await progressText.getByText(/^Step [1-9]\d* of 6$/).waitFor({ timeout: 180_000 });
    expect(await fact('#train', 'Tokens/s')).toMatch(/^\d+$/);
    expect(await fact('#train', 'GPU memory')).toMatch(/live, .* peak$/);

    // Pause: Resume is enabled when the worker says 'paused', which it says only once the loop has stopped
    // between steps, after the step in flight (and any evaluation or sample due) has landed and been reported.
    await pause.click();
    await enabled('Resume', true).waitFor({ timeout: 120_000 });
    expect(await pause.isDisabled()).toBe(true);
    const pausedAt = await progressText.textContent();
    expect(pausedAt).toMatch(/^Step [1-5] of 6$/);
    // Nothing lands while paused (one look after 2 s: a step takes well under that once the kernels are built).
    await page.waitForTimeout(2000);
    expect(await progressText.textContent()).toBe(pausedAt);
    expect(await resume.isEnabled()).toBe(true);
    await screenshot(page, 'area2-train-paused', '#train');

    await resume.click();
    await page
      .locator('#train .status')
      .getByText(/^Finished: 6 steps/)
      .waitFor({ timeout: 240_000 });
    expect(await progressText.textContent()).toBe('Step 6 of 6');
    expect(await start.isEnabled()).toBe(true);
    expect(await pause.isDisabled()).toBe(true);
    expect(await resume.isDisabled()).toBe(true);
    // One chart point per step; validation and sample generations arrived on their schedule.
    expect(Number(await page.locator('.loss-chart').getAttribute('data-points'))).toBe(6);
    expect(await page.locator('.loss-chart canvas').count()).toBeGreaterThan(0);
    expect(await page.getByRole('list', { name: 'Sample generations' }).locator('li').count()).toBeGreaterThan(0);
    await screenshot(page, 'area2-train-finished', '#train');
  }, 602_000);

  it('exports the adapter for llama.cpp as GGUF', async () => {
    // the run of the previous test must have finished (the export buttons wait for it)
    await page
      .locator('#train .status')
      .getByText(/^Finished: 6 steps/)
      .waitFor({ timeout: 100_000 });
    const layers = Number(await fact('#model-panel', 'Layers'));
    const downloadP = page.waitForEvent('download', { timeout: 60_000 });
    await page.getByRole('button', { name: 'Export for llama.cpp (GGUF)' }).click();
    const download = await downloadP;
    expect(download.suggestedFilename()).toMatch(/\.gguf$/);
    const bytes = new Uint8Array(readFileSync(await download.path()));
    const h = await readGgufHeader(bytesSource(bytes), download.suggestedFilename());
    expect(h.metadata.get('general.type')).toBe('adapter');
    expect(h.metadata.get('adapter.type')).toBe('lora');
    expect(h.metadata.get('adapter.lora.alpha')).toBe(Number(RUN.alpha));
    // q_proj and v_proj of every layer, A and B each
    expect(h.tensors.size).toBe(layers * 2 * 2);
    expect(h.tensors.get('blk.0.attn_q.weight.lora_a')?.shape[0]).toBe(Number(RUN.rank));
  });

  it('exports a zip that is a valid PEFT LoRA adapter', async () => {
    const hidden = Number(await fact('#model-panel', 'Hidden size'));
    const layers = Number(await fact('#model-panel', 'Layers'));
    const downloadP = page.waitForEvent('download', { timeout: 60_000 });
    await page.getByRole('button', { name: 'Export adapter' }).click();
    const download = await downloadP;
    expect(download.suggestedFilename()).toMatch(/\.zip$/);
    const zip = readFileSync(await download.path());
    const files = unzipSync(new Uint8Array(zip));
    const names = Object.keys(files).map((p) => p.split('/').pop());
    expect(names).toContain('adapter_config.json');
    expect(names).toContain('adapter_model.safetensors');
    const get = (n: string) => files[Object.keys(files).find((p) => p.endsWith(n))!];

    const cfg = JSON.parse(new TextDecoder().decode(get('adapter_config.json')));
    for (const k of [
      'peft_type',
      'r',
      'lora_alpha',
      'target_modules',
      'base_model_name_or_path',
      'task_type',
      'lora_dropout',
      'bias',
      'fan_in_fan_out',
    ])
      expect(cfg, `adapter_config.json lacks ${k}`).toHaveProperty(k);
    expect(cfg.peft_type).toBe('LORA');
    expect(cfg.task_type).toBe('CAUSAL_LM');
    expect(cfg.r).toBe(Number(RUN.rank));
    expect(cfg.lora_alpha).toBe(Number(RUN.alpha));
    expect([...cfg.target_modules].sort()).toEqual(['q_proj', 'v_proj']);

    const header = parseSafetensorsHeader(get('adapter_model.safetensors'), 'adapter_model.safetensors');
    const r = Number(RUN.rank);
    const names2 = [...header.tensors.keys()];
    expect(names2.length).toBe(layers * 2 * 2); // layers x (q, v) x (A, B)
    for (let i = 0; i < layers; i++) {
      for (const m of ['q_proj', 'v_proj']) {
        const A = header.tensors.get(`base_model.model.model.layers.${i}.self_attn.${m}.lora_A.weight`);
        const B = header.tensors.get(`base_model.model.model.layers.${i}.self_attn.${m}.lora_B.weight`);
        expect(A, `layer ${i} ${m} lora_A missing; tensors: ${names2.slice(0, 4).join(', ')}…`).toBeTruthy();
        expect(B, `layer ${i} ${m} lora_B missing`).toBeTruthy();
        expect(A!.shape).toEqual([r, hidden]);
        expect(B!.shape[1]).toBe(r);
        expect(m === 'q_proj' ? B!.shape[0] === hidden : hidden % B!.shape[0] === 0).toBe(true);
      }
    }
  });

  it('saves the adapter to the gallery, and it is still there after a reload', async () => {
    const name = page.getByLabel('Adapter name');
    await name.fill('e2e-adapter');
    await page.getByRole('button', { name: 'Save to gallery' }).click();
    await page.locator('#run-adapter').getByText('Saved "e2e-adapter" to the gallery.').waitFor({ timeout: 60_000 });

    await page.reload();
    await expectBundledModel(page);
    const card = page.getByRole('list', { name: 'Adapters' }).getByRole('article', { name: 'e2e-adapter' });
    await card.waitFor({ timeout: 30_000 });
    expect(await card.textContent()).toContain(`${RUN.rank} / ${RUN.alpha}`);
    expect(await card.textContent()).toContain('q_proj, v_proj');
    await screenshot(page, 'area3-gallery', '#gallery');
  }, 280_000);

  it('Try gives different continuations with and without the adapter', async () => {
    await page.getByLabel('Adapter', { exact: true }).selectOption({ label: 'e2e-adapter' });
    await page.getByLabel('Prompt', { exact: true }).fill('Once upon a time');
    await page.getByLabel('Max tokens').fill('16');
    await page.getByLabel('Temperature').fill('0');
    await page.getByLabel('Adapter strength').fill('2');
    const go = page.getByRole('button', { name: 'Generate with and without the adapter' });
    await expect.poll(() => go.isEnabled(), { timeout: 30_000 }).toBe(true);
    await go.click();
    const status = page.locator('#try .status');
    await expect
      .poll(async () => (await status.getAttribute('data-level')) ?? '', { timeout: 180_000 })
      .toMatch(/^(ok|error)$/);
    expect(await status.getAttribute('data-level'), (await status.textContent()) ?? '').toBe('ok');
    const base = await page.getByRole('figure', { name: 'Base model output' }).locator('.continuation').textContent();
    const lora = await page.getByRole('figure', { name: 'Adapter output' }).locator('.continuation').textContent();
    console.log(`[e2e] Try: base ${JSON.stringify(base)}\n      adapter ${JSON.stringify(lora)}`);
    expect(base).toBeTruthy();
    expect(lora).toBeTruthy();
    expect(lora).not.toBe(base);
    await screenshot(page, 'area3-try', '#try');
    await screenshot(page, 'studio-full');
  }, 220_000);
});
