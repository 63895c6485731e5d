// A model at real per-tensor shapes in the studio: Qwen3 0.6B's config, tensors and real tokenizer
// (tests/helpers/real-shapes.ts; random F16 weights written to a temp dir in the test), loaded by repo id
// from a Hub-shaped local server and trained for one step, in Chromium on SwiftShader WebGPU.
//
// With 2 of its 28 layers. At full depth the checkpoint is 1.11 GiB of F16, and SwiftShader has no
// shader-f16, so the studio holds the weights in f32: 2.2 GiB on a software GPU inside the browser plus
// the download and its copies, more than this test machine gives a browser; the Node test
// tests/models/real-shapes.test.ts runs the full-depth model (and Llama 3.2 1B) on lavapipe instead.
// Every tensor the browser sees has the real model's shape: the 151,936 x 1,024 embedding (tied LM head),
// 16 q / 8 kv heads of 128 with q/k norms, the 3,072-wide MLP.

import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fmtBytes } from '../../src/util/format';
import { REAL_SHAPES, serveHubRepos, writeRealShapeFolder, type WrittenCheckpoint } from '../helpers/real-shapes';
import { expectBundledModel, screenshot, useStudioPage } from './harness';

const SHAPE = REAL_SHAPES['qwen3-0.6b'];
const LAYERS = 2;

let page: Page;
let ckpt: WrittenCheckpoint;
let hub: Awaited<ReturnType<typeof serveHubRepos>>;

beforeAll(async () => {
  ckpt = writeRealShapeFolder(SHAPE, { layers: LAYERS });
  console.log(
    `[e2e] ${SHAPE.repo} with ${LAYERS} layers: ${(ckpt.params / 1e6).toFixed(1)} M parameters, ${fmtBytes(ckpt.bytes)} of F16 written in ${ckpt.seconds.toFixed(1)} s`,
  );
  hub = await serveHubRepos({ [SHAPE.repo]: ckpt.dir });
});
afterAll(async () => {
  await hub?.close();
  ckpt?.remove();
});
useStudioPage('real-shape model', (p) => (page = p));

/** The value next to a term in one of the page's fact lists (<dt>term</dt><dd>value</dd>). */
async function fact(scope: string, term: string): Promise<string> {
  const dd = page
    .locator(`${scope} dt`, { hasText: new RegExp(`^${term}$`) })
    .first()
    .locator('xpath=following-sibling::dd[1]');
  return (await dd.textContent()) ?? '';
}

describe('studio page, Qwen3 0.6B shapes from a Hub-shaped server', () => {
  let loadS = 0;
  let estimate = '';

  it('loads the model by repo id: real layer shapes, the real tokenizer', async () => {
    await expectBundledModel(page);
    await page.getByText('Load a different model', { exact: true }).click();
    await page.getByLabel('Hugging Face repo id').fill(SHAPE.repo);
    await page.getByLabel('Hub base URL').fill(hub.url);
    const t0 = Date.now();
    await page.getByRole('button', { name: 'Load from Hugging Face' }).click();
    try {
      await page
        .locator('#model-panel')
        .getByText(`Loaded ${SHAPE.repo}`, { exact: false })
        .waitFor({ timeout: 1_500_000 });
    } catch {
      await screenshot(page, 'failure-real-shape-load').catch(() => undefined);
      throw new Error(
        `the model did not load; the model panel says: ${await page.locator('#model-panel .status').first().textContent()}`,
      );
    }
    loadS = (Date.now() - t0) / 1000;
    expect(await fact('#model-panel', 'Layers')).toBe(String(LAYERS));
    console.log(`[e2e] loaded in ${loadS.toFixed(0)} s; vocabulary ${await fact('#model-panel', 'Vocabulary')}`);
    estimate = await fact('#model-panel', 'Total');
  }, 1_800_000);

  it('trains one LoRA step on a sample dataset: the loss is near ln V', async () => {
    // A plain-text sample, tokenised by the real Qwen3 tokenizer the repo ships.
    await page.getByLabel('Sample dataset').selectOption({ index: 1 });
    await page
      .locator('#dataset-panel')
      .getByText(/examples, .* tokens\.$/)
      .waitFor({ timeout: 120_000 });
    await page.getByLabel('Rank (r)').fill('4');
    await page.getByLabel('Alpha').fill('8');
    await page.getByLabel('Batch size').fill('1');
    await page.getByLabel('Sequence length').fill('32');
    await page.getByLabel('Steps', { exact: true }).fill('1');
    await page.getByLabel('Warmup steps').fill('0');
    await page.getByText('Evaluation, samples and checkpoints').click();
    await page.getByLabel('Evaluate every').fill('0');
    await page.getByLabel('Sample every').fill('0');
    const start = page.getByRole('button', { name: 'Start training' });
    await expect.poll(() => start.isEnabled(), { timeout: 60_000, message: 'Start stays disabled' }).toBe(true);
    expect(await page.locator('#train [aria-invalid="true"]').count()).toBe(0);
    const t1 = Date.now();
    await start.click();
    await page
      .locator('#train .status')
      .getByText(/^Finished: 1 step/)
      .waitFor({ timeout: 600_000 });
    const stepS = (Date.now() - t1) / 1000;
    const loss = Number(await fact('#train', 'Loss'));
    const memory = await fact('#train', 'GPU memory');
    console.log(
      `[e2e] ${SHAPE.repo} (${LAYERS} layers) in the studio: loaded in ${loadS.toFixed(0)} s, memory estimate ${estimate}; ` +
        `one step in ${stepS.toFixed(0)} s, loss ${loss} (ln V = ${Math.log(151936).toFixed(3)}), GPU memory ${memory}`,
    );
    expect(Number.isFinite(loss)).toBe(true);
    expect(Math.abs(loss - Math.log(151936))).toBeLessThan(1);
    expect(memory).toMatch(/live, .* peak$/);
    await screenshot(page, 'real-shape-qwen3', '#train');
  }, 900_000);
});
