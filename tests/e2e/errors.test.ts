// Failure paths in a real browser: a malformed model upload and a malformed dataset each show an error
// where they happened and leave the page working; without WebGPU the page says so in a banner.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ROOT,
  expectBundledModel,
  launchChromium,
  openStudio,
  reportConsole,
  screenshot,
  serveStudio,
  type OpenPage,
  type Studio,
} from './harness';

let studio: Studio;
let browser: Browser;
const opened: [string, OpenPage][] = [];

beforeAll(async () => {
  studio = await serveStudio();
});

afterAll(async () => {
  for (const [name, o] of opened) reportConsole(name, o.errors);
  await browser?.close();
  await studio?.close();
});

/** A safetensors file whose header length is fine but whose header is not JSON. */
function brokenSafetensors(): Buffer {
  const header = Buffer.from('{"model.embed_tokens.weight": {"dtype": "F32", "shape": [16, 8], "data_off', 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, header, Buffer.alloc(512)]);
}

const TINY_LLAMA_CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 8,
  intermediate_size: 16,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 2,
  vocab_size: 2048, // the bundled tokenizer's, so the broken weights are the only problem
  max_position_embeddings: 32,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
};

describe('studio page, failures', () => {
  it('a malformed model upload shows an error in the model panel; the loaded model and the rest of the page keep working', async () => {
    browser = await launchChromium();
    const o = await openStudio(browser, studio.url);
    opened.push(['malformed uploads', o]);
    const { page } = o;
    await expectBundledModel(page);
    const modelPanel = page.locator('#model-panel');

    await page.getByText('Load a different model', { exact: true }).click();
    const tokenizer = readFileSync(join(ROOT, 'public/models/weblora-llama-1m/tokenizer.json'));
    await page.getByLabel('Model files').setInputFiles([
      { name: 'config.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(TINY_LLAMA_CONFIG)) },
      { name: 'tokenizer.json', mimeType: 'application/json', buffer: tokenizer },
      { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: brokenSafetensors() },
    ]);
    const alert = modelPanel.getByRole('alert');
    await alert.waitFor({ timeout: 60_000 });
    const text = (await alert.textContent()) ?? '';
    console.log(`[e2e] malformed model: ${text}`);
    expect(text).toMatch(/^Could not load model\.safetensors|^Could not load 3 files/);
    expect(text).toMatch(/model\.safetensors/);
    expect(text.split('model.safetensors').length - 1, 'the file is named more than once').toBe(1);
    expect(text).toContain('still');

    // The page keeps working: a dataset can still be read with the bundled model's tokenizer.
    const sampleSelect = page.getByLabel('Sample dataset');
    await expect.poll(() => sampleSelect.locator('option').count(), { timeout: 10_000 }).toBeGreaterThan(1);
    await sampleSelect.selectOption({ index: 1 });
    const datasetPanel = page.locator('#dataset-panel');
    await datasetPanel.getByText(/examples, .* tokens\.$/).waitFor({ timeout: 60_000 });

    // A malformed dataset: a JSONL file (detected from its extension) whose second line is cut off.
    await page.getByLabel('Your own file').setInputFiles({
      name: 'broken.jsonl',
      mimeType: 'application/jsonl',
      buffer: Buffer.from('{"text": "a fine first line"}\n{"text": "cut off here\n'),
    });
    const dsAlert = datasetPanel.getByRole('alert');
    await dsAlert.waitFor({ timeout: 60_000 });
    const dsText = (await dsAlert.textContent()) ?? '';
    console.log(`[e2e] malformed dataset: ${dsText}`);
    // The parser's error names the file and the line; the page does not name the file again.
    expect(dsText).toMatch(/^Could not read: "broken\.jsonl", line 2/);
    expect(dsText.split('broken.jsonl').length - 1, 'the file is named more than once').toBe(1);
    expect(dsText).toContain('still'); // says which dataset is still in use

    // Still working after both: the settings estimate answers and Start is possible.
    await expect
      .poll(() => page.getByRole('button', { name: 'Start training' }).isEnabled(), { timeout: 30_000 })
      .toBe(true);
    await screenshot(page, 'errors-malformed-uploads');
  });

  it('without WebGPU a banner says what happened and what to do; the page still lists the samples', async () => {
    const noGpu = await launchChromium({ webgpu: false });
    try {
      const o = await openStudio(noGpu, studio.url);
      opened.push(['no WebGPU', o]);
      const { page } = o;
      const banner = page.locator('.banner');
      await banner.waitFor({ state: 'visible', timeout: 30_000 });
      expect(await banner.getAttribute('role')).toBe('alert');
      const text = (await banner.textContent()) ?? '';
      console.log(`[e2e] no-WebGPU banner: ${text}`);
      expect(text).toMatch(/WebGPU is not available/);
      expect(text).toMatch(/Chrome or Edge/);
      expect(await page.getByLabel('Sample dataset').locator('option').count()).toBeGreaterThan(1);
      expect(await page.getByRole('button', { name: 'Start training' }).isDisabled()).toBe(true);
      await screenshot(page, 'errors-no-webgpu');
      // The error in the console is expected here (the engine rejects init); nothing else is.
    } finally {
      await noGpu.close();
    }
  });
});
