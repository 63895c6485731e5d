// Loading a model by Hugging Face repo id, in a real browser, from a local server that lays files out
// as the Hub does (`<base>/<owner>/<name>/resolve/main/<file>`): the page shows byte-level progress,
// the model loads, and a second load comes from the browser's Cache Storage without downloading again.

import { createReadStream, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, expectBundledModel, useStudioPage } from './harness';

const REPO = 'test-org/weblora-llama-1m';
const ADAPTER_REPO = 'test-org/fortune-quips';
const GGUF_REPO = 'test-org/tiny-models-GGUF'; // several .gguf files and no config.json
const DIRS: Record<string, string> = {
  [REPO]: join(ROOT, 'public/models/weblora-llama-1m'),
  [ADAPTER_REPO]: join(ROOT, 'public/gallery/fortune-quips'),
  [GGUF_REPO]: join(ROOT, 'tests/fixtures/gguf'),
};

let page: Page;
let hub: Server;
let hubUrl: string;
const requests = new Map<string, number>();

/** A Hub-shaped file server; model.safetensors is sent slowly so progress can be seen. */
function startHub(): Promise<void> {
  hub = createServer((req, res) => {
    const m = /^\/([\w.-]+\/[\w.-]+)\/resolve\/main\/([\w.-]+)$/.exec(req.url ?? '');
    res.setHeader('access-control-allow-origin', '*');
    // The Hub API's file listing, for the GGUF repo only (the others are read without a listing).
    const api = /^\/api\/models\/([\w.-]+\/[\w.-]+)\/revision\/main$/.exec(req.url ?? '');
    if (api && api[1] === GGUF_REPO) {
      const siblings = readdirSync(DIRS[GGUF_REPO]).map((rfilename) => ({ rfilename }));
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ siblings }));
      return;
    }
    if (!m || !DIRS[m[1]]) {
      res.statusCode = 404;
      res.end('not found');
      return;
    }
    const file = m[2];
    const path = join(DIRS[m[1]], file);
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      res.statusCode = 404;
      res.end('not found');
      return;
    }
    requests.set(file, (requests.get(file) ?? 0) + 1);
    res.setHeader('content-length', String(size));
    res.setHeader('content-type', 'application/octet-stream');
    if (file !== 'model.safetensors') {
      res.end(readFileSync(path));
      return;
    }
    // ~4 MB in 64 KiB pieces every 25 ms: about 1.5 s, long enough to watch the progress bar.
    const stream = createReadStream(path, { highWaterMark: 64 * 1024 });
    stream.on('data', (chunk) => {
      stream.pause();
      res.write(chunk);
      setTimeout(() => stream.resume(), 25);
    });
    stream.on('end', () => res.end());
  });
  return new Promise((resolve) =>
    hub.listen(0, '127.0.0.1', () => {
      const a = hub.address();
      hubUrl = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
      resolve();
    }),
  );
}

beforeAll(startHub);
afterAll(() => new Promise<void>((r) => hub?.close(() => r())));
useStudioPage('hub flow', (p) => (page = p));

async function loadFromHub(): Promise<void> {
  await page.getByLabel('Hugging Face repo id').fill(REPO);
  await page.getByLabel('Hub base URL').fill(hubUrl);
  await page.getByRole('button', { name: 'Load from Hugging Face' }).click();
}

describe('studio page, a model from a Hub-shaped server', () => {
  it('shows download progress in bytes and percent, loads the model, and caches it for the next load', async () => {
    await expectBundledModel(page);
    await page.getByText('Load a different model', { exact: true }).click();
    await loadFromHub();
    // Progress: "<file>: 1.2 MB of 3.9 MB (31%)" while model.safetensors streams in.
    await page
      .locator('#model-panel .progress-text')
      .getByText(/model\.safetensors.*of .*\(\d+%\)/)
      .waitFor({ timeout: 60_000 });
    await page.locator('#model-panel').getByText(`Loaded ${REPO}`, { exact: false }).waitFor({ timeout: 120_000 });
    expect(requests.get('model.safetensors')).toBe(1);
    expect(requests.get('config.json')).toBe(1);

    // Again: every file comes from Cache Storage; the server sees no new request for any of them.
    // A mutation observer records every text the status line takes, so the test waits for this second
    // load itself (reading, then loaded) rather than seeing the first load's message.
    const before = new Map(requests);
    await page.evaluate(() => {
      const el = document.querySelector('#model-panel .status')!;
      const seen: string[] = ((window as unknown as { __statuses: string[] }).__statuses = []);
      new MutationObserver(() => seen.push(el.textContent ?? '')).observe(el, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });
    await loadFromHub();
    await expect
      .poll(() => page.evaluate(() => (window as unknown as { __statuses: string[] }).__statuses.join(' | ')), {
        timeout: 120_000,
      })
      .toMatch(new RegExp(`(Reading|Loading) .*\\|.*Loaded ${REPO}`));
    expect(requests).toEqual(before);
  });

  it('imports a PEFT adapter by its Hub repo id into the gallery, flagging the other base model id', async () => {
    await page.getByLabel('Adapter repo id').fill(ADAPTER_REPO);
    await page.getByRole('button', { name: 'Import from Hugging Face' }).click();
    await page.locator('#gallery').getByText(`Imported "${ADAPTER_REPO}".`).waitFor({ timeout: 60_000 });
    // Trained on 'weblora-llama-1m', loaded here as the Hub copy: a warning, not a refusal.
    expect(
      await page
        .locator('#gallery')
        .getByText(/made for base model 'weblora-llama-1m'/)
        .count(),
    ).toBeGreaterThan(0);
    await page
      .getByRole('list', { name: 'Adapters' })
      .getByRole('article', { name: ADAPTER_REPO })
      .waitFor({ timeout: 30_000 });
    expect(requests.get('adapter_model.safetensors')).toBe(1);
  });

  it('lists the GGUF files of a Hub repo and loads the one chosen', async () => {
    await page.getByLabel('Hugging Face repo id').fill(GGUF_REPO);
    await page.getByLabel('Hub base URL').fill(hubUrl);
    await page.getByRole('button', { name: 'List its GGUF files' }).click();
    await page
      .locator('#model-panel .status')
      .getByText(/has 11 GGUF files: bpe-llama3\.tokenizer\.gguf, bpe-qwen2\.tokenizer\.gguf, llama-gqa-tied-f16\.gguf/)
      .waitFor({ timeout: 30_000 });
    await page.getByLabel('GGUF file (optional)').fill('qwen2-bias-f32.gguf');
    await page.getByRole('button', { name: 'Load from Hugging Face' }).click();
    await page.locator('#model-panel').getByText(`Loaded ${GGUF_REPO}`, { exact: false }).waitFor({ timeout: 120_000 });
    expect(await page.locator('#model-panel').getByText('Qwen2ForCausalLM').count()).toBeGreaterThan(0);
    expect(requests.get('qwen2-bias-f32.gguf')).toBe(1);
    expect(requests.get('llama-gqa-tied-f32.gguf')).toBeUndefined();
  });
});
