// Loading a model by Hugging Face repo id, in a real browser, from a local server that lays files out
// as the Hub does (`<base>/api/models/<owner>/<name>/revision/main` names the commit `main` points at;
// `<base>/<owner>/<name>/resolve/<main | commit>/<file>`): the page shows byte-level progress, the model
// loads, a second load comes from the browser's Cache Storage without downloading again, and after a push
// to the repo the next load downloads the new commit and uses it. A gated repo answers 401 until the page
// sends the access token the user gave, as an Authorization header (never in a URL).

import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, expectBundledModel, useStudioPage } from './harness';

const REPO = 'test-org/weblora-llama-1m';
const ADAPTER_REPO = 'test-org/fortune-quips';
/** Each repo's commits, oldest first: [commit, folder]; `main` is the last. */
const HISTORY: Record<string, [string, string][]> = {};
function push(repo: string, dir: string): string {
  const sha = createHash('sha1').update(`${repo} ${dir}`).digest('hex');
  (HISTORY[repo] ??= []).push([sha, dir]);
  return sha;
}
const FIRST = push(REPO, join(ROOT, 'public/models/weblora-llama-1m'));
push(ADAPTER_REPO, join(ROOT, 'public/gallery/fortune-quips'));
const GGUF_REPO = 'test-org/tiny-models-GGUF'; // several .gguf files and no config.json
push(GGUF_REPO, join(ROOT, 'tests/fixtures/gguf'));
const GATED_REPO = 'test-org/gated-llama'; // 401 without `authorization: Bearer <TOKEN>`, as the Hub does
push(GATED_REPO, join(ROOT, 'tests/fixtures/llama-gqa-tied'));
const TOKEN = `hf_${createHash('sha1').update(String(process.pid)).digest('hex').slice(0, 20)}`;
/** Every request to the gated repo: its URL and Authorization header. */
const gated: { url: string; auth: string | null }[] = [];
/** Every URL the server was asked for. */
const allUrls: string[] = [];

let page: Page;
let hub: Server;
let hubUrl: string;
/** File downloads, by file name (the model info requests are counted apart). */
const requests = new Map<string, number>();
let infoRequests = 0;

/** A Hub-shaped file server; model.safetensors is sent slowly so progress can be seen. */
function startHub(): Promise<void> {
  hub = createServer((req, res) => {
    res.setHeader('access-control-allow-origin', '*');
    const url = req.url ?? '';
    allUrls.push(url);
    if (req.method === 'OPTIONS') {
      // The CORS preflight of a request with an Authorization header.
      res.setHeader('access-control-allow-headers', 'authorization');
      res.setHeader('access-control-allow-methods', 'GET');
      res.statusCode = 204;
      res.end();
      return;
    }
    if (/^\/(api\/models\/)?test-org\/gated-llama\//.test(url)) {
      const auth = req.headers.authorization ?? null;
      gated.push({ url, auth });
      if (auth !== `Bearer ${TOKEN}`) {
        res.statusCode = 401;
        res.end('Access to model test-org/gated-llama is restricted. You must have access to it and be authenticated.');
        return;
      }
    }
    const info = /^\/api\/models\/([\w.-]+\/[\w.-]+)\/revision\/main$/.exec(url);
    if (info && HISTORY[info[1]]) {
      infoRequests++;
      const [sha, dir] = HISTORY[info[1]].at(-1)!;
      const siblings = readdirSync(dir).map((rfilename) => ({ rfilename }));
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id: info[1], sha, siblings }));
      return;
    }
    const m = /^\/([\w.-]+\/[\w.-]+)\/resolve\/(main|[0-9a-f]{40})\/([\w.-]+)$/.exec(url);
    const commits = m ? HISTORY[m[1]] : undefined;
    const dir = m && commits ? (m[2] === 'main' ? commits.at(-1) : commits.find(([sha]) => sha === m[2]))?.[1] : null;
    if (!m || !dir) {
      res.statusCode = 404;
      res.end('not found');
      return;
    }
    const file = m[3];
    const path = join(dir, file);
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

/** Loads the repo again and waits for that load itself to end: a mutation observer records every text the
 * status line takes (reading, then loaded), so an earlier load's message does not count. */
async function loadFromHubAgain(): Promise<void> {
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
}

/** The URLs in the page's Cache Storage (the worker's Hub cache). */
const cachedUrls = () =>
  page.evaluate(async () => (await (await caches.open('weblora-models')).keys()).map((r) => r.url));

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

    // Again: every file comes from Cache Storage; the server sees no new request for any of them, only the
    // model info (the repo still points at the same commit).
    const before = new Map(requests);
    const infos = infoRequests;
    await loadFromHubAgain();
    expect(requests).toEqual(before);
    expect(infoRequests).toBeGreaterThan(infos);
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

  it('after a push to the repo, the next load downloads the new commit and uses it; then it is cached', async () => {
    // The bundled model's files at the first commit, in Cache Storage under it.
    const hidden = () =>
      page.evaluate(
        () =>
          [...document.querySelectorAll('#model-panel .model-summary dt')].find(
            (dt) => dt.textContent === 'Hidden size',
          )?.nextElementSibling?.textContent,
      );
    expect(await hidden()).toBe('128');
    expect((await cachedUrls()).filter((u) => u.includes(`/resolve/${FIRST}/`)).length).toBeGreaterThan(0);

    // Push: the repo now holds another model (a 2-layer Llama, hidden size 48, from the test fixtures).
    const second = push(REPO, join(ROOT, 'tests/fixtures/llama-gqa-tied'));
    const before = new Map(requests);
    await loadFromHubAgain();
    expect(await hidden()).toBe('48');
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json'])
      expect(requests.get(f), f).toBe(before.get(f)! + 1);
    const urls = await cachedUrls();
    expect(urls).toContain(`${hubUrl}/${REPO}/resolve/${second}/model.safetensors`);
    expect(urls.filter((u) => u.includes(FIRST))).toEqual([]); // the old commit's files are gone

    // Unchanged since: nothing is downloaded again.
    const after = new Map(requests);
    await loadFromHubAgain();
    expect(requests).toEqual(after);
    expect(await hidden()).toBe('48');
  });

  it('lists the GGUF files of a Hub repo and loads the one chosen', async () => {
    await page.getByLabel('Hugging Face repo id').fill(GGUF_REPO);
    await page.getByLabel('Hub base URL').fill(hubUrl);
    await page.getByRole('button', { name: 'List its GGUF files' }).click();
    await page
      .locator('#model-panel .status')
      .getByText(
        /has 15 GGUF files: bpe-llama3\.tokenizer\.gguf, bpe-qwen2\.tokenizer\.gguf, gemma3-final-softcap-f32\.gguf/,
      )
      .waitFor({ timeout: 30_000 });
    await page.getByLabel('GGUF file (optional)').fill('qwen2-bias-f32.gguf');
    await page.getByRole('button', { name: 'Load from Hugging Face' }).click();
    await page.locator('#model-panel').getByText(`Loaded ${GGUF_REPO}`, { exact: false }).waitFor({ timeout: 120_000 });
    expect(await page.locator('#model-panel').getByText('Qwen2ForCausalLM').count()).toBeGreaterThan(0);
    expect(requests.get('qwen2-bias-f32.gguf')).toBe(1);
    expect(requests.get('llama-gqa-tied-f32.gguf')).toBeUndefined();
  });

  it('a gated repo: without a token the 401 names the repo and says what to do; with the token it loads', async () => {
    const logged: string[] = [];
    page.on('console', (m) => logged.push(m.text()));
    await page.getByLabel('Hugging Face repo id').fill(GATED_REPO);
    await page.getByLabel('Hub base URL').fill(hubUrl);
    await page.getByLabel('GGUF file (optional)').fill('');
    await page.getByRole('button', { name: 'Load from Hugging Face' }).click();
    await page
      .locator('#model-panel .status')
      .getByText(
        /test-org\/gated-llama.*HTTP 401.*without an access token.*accept its licence on the Hub and give an access token/,
      )
      .waitFor({ timeout: 60_000 });
    expect(gated.length).toBeGreaterThan(0);
    expect(gated.every((r) => r.auth === null)).toBe(true);

    await page.getByLabel('Access token (gated repos)').fill(TOKEN);
    await page.getByRole('button', { name: 'Load from Hugging Face' }).click();
    await page
      .locator('#model-panel')
      .getByText(`Loaded ${GATED_REPO}`, { exact: false })
      .waitFor({ timeout: 120_000 });
    const authed = gated.filter((r) => r.auth === `Bearer ${TOKEN}`).map((r) => r.url);
    expect(authed).toContain(`/api/models/${GATED_REPO}/revision/main`);
    expect(authed.some((u) => u.endsWith('/model.safetensors'))).toBe(true);
    // The token is in no URL, no cache key, no page storage and no console message.
    expect(allUrls.filter((u) => u.includes(TOKEN))).toEqual([]);
    expect((await cachedUrls()).filter((u) => u.includes(TOKEN))).toEqual([]);
    const stored = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }]));
    expect(stored).not.toContain(TOKEN);
    expect(logged.filter((m) => m.includes(TOKEN))).toEqual([]);
  });
});
