// The locked-down page: the built studio is served with its Content-Security-Policy (src/util/csp.ts), it
// still works (WebGPU, the worker, a model from a Hub-shaped server), the policy is really enforced, and
// HTML and script put into every piece of metadata the page shows run nowhere and show as text.
//
// Metadata comes in the ways a user meets it: a served model's config.json (architectures, model_type,
// _name_or_path), files picked from disk (their names too), a CSV's header and rows, the sample list and
// the built-in gallery (answered here with hostile copies), an adapter from the Hub (base model id,
// model card), an uploaded zip's name, gallery names (rename), Hub repo ids and base URLs, Try's prompt.
// Every payload would set window.__injected (to where it was put) if it ever ran.

import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { zipSync, strToU8 } from 'fflate';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_HUB_SOURCES, contentSecurityPolicy, parseHubOrigins } from '../../src/util/csp';
import {
  ROOT,
  TEST_HUB_ORIGINS,
  expectBundledModel,
  launchChromium,
  openStudio,
  reportConsole,
  screenshot,
  serveStudio,
  type OpenPage,
  type Studio,
} from './harness';

const MODEL_DIR = join(ROOT, 'public/models/weblora-llama-1m');
const ADAPTER_DIR = join(ROOT, 'public/gallery/fortune-quips');
const read = (dir: string, f: string) => readFileSync(join(dir, f));

/** The payloads, each tagged with where it was put; no double quote or slash (file names, JSON.stringify). */
function payloads(where: string): { img: string; svg: string; script: string; js: string } {
  return {
    img: `<img src=x onerror=window.__injected='${where}'>`,
    svg: `<svg onload=window.__injected='${where}'>`,
    script: `<script>window.__injected='${where} script'<\u002fscript>`, // its closing tag has a slash: JSON only
    js: `javascript:window.__injected='${where}'`,
  };
}

let studio: Studio;
let browser: Browser;
let context: BrowserContext;
let open: OpenPage;
let page: Page;
let hub: Server;
let hubUrl: string;
/** What the Hub-shaped server was asked for, to show that refused URLs never left the page. */
const hubRequests: string[] = [];
/** Console lines the probes and the refusals below are expected to cause. */
const expectedConsole: RegExp[] = [];

/** The hostile Hub: `evil/model` (config.json says nothing true) and `evil/adapter` (a real adapter, lying metadata). */
function startHub(): Promise<void> {
  const p = payloads('hub config');
  const q = payloads('hub adapter');
  const files: Record<string, Buffer> = {
    'evil/model/config.json': Buffer.from(
      JSON.stringify({
        ...JSON.parse(read(MODEL_DIR, 'config.json').toString()),
        architectures: [p.img, p.script],
        model_type: p.svg,
      }),
    ),
    'evil/model/tokenizer.json': read(MODEL_DIR, 'tokenizer.json'),
    'evil/model/model.safetensors': read(MODEL_DIR, 'model.safetensors'),
    'evil/adapter/adapter_config.json': Buffer.from(
      JSON.stringify({
        ...JSON.parse(read(ADAPTER_DIR, 'adapter_config.json').toString()),
        base_model_name_or_path: q.img,
      }),
    ),
    'evil/adapter/adapter_model.safetensors': read(ADAPTER_DIR, 'adapter_model.safetensors'),
    'evil/adapter/README.md': Buffer.from(`# ${q.script}\n\n${q.svg} [home](${q.js})\n`),
  };
  hub = createServer((req, res) => {
    hubRequests.push(req.url ?? '');
    res.setHeader('access-control-allow-origin', '*');
    const m = /^\/(evil\/\w+)\/resolve\/main\/([\w.-]+)$/.exec(req.url ?? '');
    const body = m ? files[`${m[1]}/${m[2]}`] : undefined;
    if (!body) {
      res.statusCode = 404;
      res.end('not found');
      return;
    }
    res.setHeader('content-type', 'application/octet-stream');
    res.end(body);
  });
  return new Promise((resolve) =>
    hub.listen(0, '127.0.0.1', () => {
      const a = hub.address();
      hubUrl = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
      resolve();
    }),
  );
}

/** Hostile copies of the sample list and the built-in gallery, answered instead of the served ones. */
async function routeHostileLists(ctx: BrowserContext): Promise<void> {
  const s = payloads('sample list');
  await ctx.route('**/datasets/index.json', async (route) => {
    const list = JSON.parse(read(join(ROOT, 'public/datasets'), 'index.json').toString());
    list[0] = { ...list[0], name: s.img, description: s.script, licence: s.js, format: s.svg };
    await route.fulfill({ json: list });
  });
  const g = payloads('built-in gallery');
  await ctx.route('**/gallery/index.json', async (route) => {
    const list = JSON.parse(read(join(ROOT, 'public/gallery'), 'index.json').toString());
    list[0] = { ...list[0], name: g.img, baseModel: g.script, dataset: g.js, createdAt: g.svg };
    list[0].settings = { ...list[0].settings, targets: [g.svg, ...list[0].settings.targets] };
    await route.fulfill({ json: list });
  });
}

beforeAll(async () => {
  await startHub();
  studio = await serveStudio();
  browser = await launchChromium();
  context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1366, height: 900 } });
  // Runs before the page's own script, outside its policy (as a devtools script does): it only records.
  await context.addInitScript(() => {
    const w = window as unknown as { __violations: string[] };
    w.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      w.__violations.push(`${e.effectiveDirective} ${e.blockedURI || '(inline)'} ${e.sourceFile}:${e.lineNumber}`),
    );
  });
  await routeHostileLists(context);
  open = await openStudio(browser, studio.url, context);
  page = open.page;
}, 180_000);

afterAll(async () => {
  if (open) reportConsole('lockdown', open.errors);
  await browser?.close();
  await studio?.close();
  await new Promise<void>((r) => (hub ? hub.close(() => r()) : r()));
});

/** Where an injected payload ran, or null. */
const injected = () => page.evaluate(() => (window as unknown as { __injected?: string }).__injected ?? null);
const violations = () => page.evaluate(() => (window as unknown as { __violations: string[] }).__violations.slice());

/**
 * What of the page's markup could run script or show foreign content: elements that have no business in
 * the studio, event-handler attributes, javascript: URLs. [] when everything arrived as text.
 */
function dangerousMarkup(): Promise<string[]> {
  return page.evaluate(() => {
    const out: string[] = [];
    const scripts = [...document.scripts].map((s) => s.src || `inline: ${s.textContent?.slice(0, 60)}`);
    if (scripts.length !== 1 || !/\/assets\/index-[\w-]+\.js$/.test(scripts[0])) out.push(`scripts: ${scripts}`);
    for (const el of document.querySelectorAll('body *')) {
      if (/^(script|img|svg|iframe|object|embed|frame|base|link|meta|style)$/i.test(el.tagName))
        out.push(`<${el.tagName.toLowerCase()}> in the body`);
      for (const a of el.attributes) {
        if (/^on/i.test(a.name)) out.push(`${el.tagName.toLowerCase()}[${a.name}]`);
        if (/^(href|src|action|formaction|xlink:href)$/i.test(a.name) && /^\s*javascript:/i.test(a.value))
          out.push(`${el.tagName.toLowerCase()}[${a.name}=${a.value}]`);
      }
    }
    return out;
  });
}

/** After each step: nothing ran, no markup got in, and the page's text shows every payload given. */
async function expectInert(scope: string, shown: string[]): Promise<void> {
  expect(await injected(), 'an injected script ran').toBeNull();
  expect(await dangerousMarkup()).toEqual([]);
  const text = (await page.locator(scope).evaluate((el) => el.textContent)) ?? '';
  for (const s of shown) expect(text, `${scope} does not show ${s} as text`).toContain(s);
}

/**
 * The text of the first status line in `scope` once it leaves `before` (the text it had when the action
 * started) and says something at a level `levels` matches.
 */
async function statusText(scope: string | Locator, levels: RegExp, before: string | null, timeout = 120_000) {
  const line = (typeof scope === 'string' ? page.locator(scope) : scope).locator('.status').first();
  await expect
    .poll(async () => ((await line.textContent()) !== before ? ((await line.getAttribute('data-level')) ?? '') : ''), {
      timeout,
    })
    .toMatch(levels);
  return (await line.textContent()) ?? '';
}

/** The status line's text now, to wait for the next one. */
const statusNow = async (scope: string | Locator) =>
  (await (typeof scope === 'string' ? page.locator(scope) : scope).locator('.status').first().textContent()) ?? '';

const count = (text: string, needle: string) => text.split(needle).length - 1;
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('the locked-down studio', () => {
  it('is served with its policy (header and <meta>); WebGPU, the worker and the bundled model work under it', async () => {
    const want = [...DEFAULT_HUB_SOURCES, ...parseHubOrigins(TEST_HUB_ORIGINS)];
    const res = await fetch(studio.url);
    expect(res.headers.get('content-security-policy')).toBe(contentSecurityPolicy(want, 'header'));
    const metas = [...(await res.text()).matchAll(/<meta http-equiv="Content-Security-Policy" content="([^"]*)"/g)];
    expect(metas.map((m) => m[1])).toEqual([contentSecurityPolicy(want, 'meta')]);
    await expectBundledModel(page, 240_000);
    // The worker's script brings its own policy: a worker never takes the page's <meta>.
    const workers = page.workers();
    expect(workers.length).toBe(1);
    const w = await fetch(workers[0].url());
    expect(w.ok).toBe(true);
    expect(w.headers.get('content-security-policy')).toBe(contentSecurityPolicy(want, 'header'));
    expect(await violations()).toEqual([]);
  }, 300_000);

  it('uses live payloads: parsed as HTML on a page without the policy, each runs', async () => {
    const bare = await context.newPage();
    try {
      for (const kind of ['img', 'svg', 'script'] as const) {
        await bare.setContent(`<p>no policy here</p>${payloads('control')[kind]}`);
        await expect
          .poll(() => bare.evaluate(() => (window as unknown as { __injected?: string }).__injected ?? null))
          .toMatch(/^control/);
      }
    } finally {
      await bare.close();
    }
  });

  it('enforces it: an inline script, an event handler or an inline style slipped into the page is refused, and the worker reaches no other origin', async () => {
    const probe = await page.evaluate(() => {
      const w = window as unknown as { __probe?: string };
      const s = document.createElement('script');
      s.textContent = "window.__probe = 'inline script'";
      const img = document.createElement('img');
      img.setAttribute('onerror', "window.__probe = 'handler'");
      img.src = 'data:,';
      const div = document.createElement('div');
      div.setAttribute('style', 'color: rgb(255, 0, 0)');
      document.body.append(s, img, div);
      return new Promise<{ ran: string | null; color: string }>((resolve) =>
        setTimeout(() => {
          const color = getComputedStyle(div).color;
          s.remove();
          img.remove();
          div.remove();
          resolve({ ran: w.__probe ?? null, color });
        }, 500),
      );
    });
    expect(probe.ran).toBeNull();
    expect(probe.color).not.toBe('rgb(255, 0, 0)');
    const seen = (await violations()).map((v) => v.split(' ')[0]);
    for (const d of ['script-src-elem', 'script-src-attr', 'style-src-attr', 'img-src']) expect(seen).toContain(d);
    await page.evaluate(() => ((window as unknown as { __violations: string[] }).__violations.length = 0));
    expectedConsole.push(
      /(Executing inline (script|event handler)|Applying inline style|Loading the image 'data:,') violates the following Content Security Policy directive/,
    );

    // The worker does every download; its policy (the header) keeps it to the page and the Hub origins.
    const other = hubUrl.replace('127.0.0.1', 'localhost'); // the same server under a name the policy lacks
    const before = hubRequests.length;
    const fetched = await page.workers()[0].evaluate(async (u) => {
      try {
        return `fetched: HTTP ${(await fetch(u)).status}`;
      } catch (e) {
        return `refused: ${(e as Error).message}`;
      }
    }, `${other}/evil/model/resolve/main/config.json`);
    expect(fetched).toMatch(/^refused/);
    expect(hubRequests.length).toBe(before);
    expectedConsole.push(
      /Connecting to 'http:\/\/localhost:\d+\/.*' violates the following Content Security Policy directive/,
    );
  });

  it('shows model metadata from a Hub, a refused Hub and picked files as text', async () => {
    const panel = '#model-panel';
    await page.getByText('Load a different model', { exact: true }).click();
    const repo = page.getByLabel('Hugging Face repo id');
    const base = page.getByLabel('Hub base URL');
    const go = page.getByRole('button', { name: 'Load from Hugging Face' });
    const before = hubRequests.length;
    const attempt = async (repoId: string, baseUrl: string, timeout?: number) => {
      await repo.fill(repoId);
      await base.fill(baseUrl);
      const was = await statusNow(panel);
      await go.click();
      return statusText(panel, /^(ok|error)$/, was, timeout);
    };

    // A repo id with markup, and Hub base URLs the page must not fetch: refused before any request.
    expect(await attempt(`${payloads('repo id').img}/x`, hubUrl)).toMatch(/^Enter a repo id like owner\/name/);
    expect(await attempt('evil/model', payloads('hub base url').js)).toMatch(/must start with https:\/\//);
    const refusal = await attempt('evil/model', hubUrl.replace('127.0.0.1', 'localhost'));
    console.log(`[e2e] lockdown, a Hub the policy lacks: ${refusal}`);
    expect(refusal).toMatch(
      /security policy lets it download only from .*127\.0\.0\.1:\*.*WEBLORA_HUB_ORIGINS=http:\/\/localhost:\d+/,
    );
    expect(hubRequests.length).toBe(before);
    await expectInert(panel, []);

    // The hostile Hub: config.json's architectures and model_type are markup; the error quotes them as text.
    const p = payloads('hub config');
    const msg = await attempt('evil/model', hubUrl, 180_000);
    console.log(`[e2e] lockdown, a hostile config.json: ${msg}`);
    expect(msg).toMatch(/^Could not load.*config\.json.*is not supported/);
    expect(count(msg, 'evil/model')).toBe(1);
    expect(hubRequests.length).toBeGreaterThan(before);
    await expectInert(panel, [p.img, p.script]);

    // Model files picked from disk: a hostile _name_or_path becomes the model's id everywhere.
    const f = payloads('model files');
    const config = { ...JSON.parse(read(MODEL_DIR, 'config.json').toString()), _name_or_path: f.script };
    const was = await statusNow(panel);
    await page.getByLabel('Model files').setInputFiles([
      { name: 'config.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(config)) },
      { name: 'tokenizer.json', mimeType: 'application/json', buffer: read(MODEL_DIR, 'tokenizer.json') },
      { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: read(MODEL_DIR, 'model.safetensors') },
    ]);
    expect(await statusText(panel, /^(ok|error)$/, was, 240_000)).toMatch(
      new RegExp(`^Loaded ${escapeRe(f.script)} \\(f(16|32) weights\\)\\.$`),
    );
    await expectInert(panel, [f.script]);
  }, 600_000);

  it('shows dataset names, CSV headers and rows, and the sample list as text', async () => {
    const panel = '#dataset-panel';
    const s = payloads('sample list');
    const select = page.getByLabel('Sample dataset');
    await expect.poll(() => select.locator('option').count(), { timeout: 30_000 }).toBeGreaterThan(1);
    let was = await statusNow(panel);
    await select.selectOption({ index: 1 });
    expect(await statusText(panel, /^(ok|error)$/, was)).toMatch(/examples, .* tokens\.$/);
    await expectInert(panel, [s.img, s.script, s.js, s.svg]);

    // A CSV whose name, header and rows are markup. The longer second column is taken first.
    const c = payloads('csv');
    const csvName = `${payloads('csv name').img}.csv`;
    const quote = (v: string) => `"${v.replace(/"/g, '""')}"`;
    const rows = [c.js, c.svg, 'plain'].map((v, i) => `${quote(`${v} ${i}`)},${quote(`${c.img} ${c.img} ${i}`)}`);
    const csv = [`${quote(c.script)},${quote(c.svg)}`, ...rows].join('\n');
    was = await statusNow(panel);
    await page
      .getByLabel('Your own file')
      .setInputFiles({ name: csvName, mimeType: 'text/csv', buffer: Buffer.from(csv) });
    expect(await statusText(panel, /^(ok|error)$/, was)).toMatch(new RegExp(`^${escapeRe(csvName)}: 3 examples, `));
    await expectInert(panel, [csvName, c.script, c.svg, `${c.img} ${c.img} 0`]);
    // The other column, chosen by its header: its rows show as text too.
    was = await statusNow(panel);
    await page.getByLabel('Text column').selectOption({ label: c.script });
    expect(await statusText(panel, /^(ok|error)$/, was)).toMatch(/: 3 examples, /);
    await expectInert(panel, [`${c.js} 0`, `${c.svg} 1`]);
  }, 300_000);

  it('shows gallery entries, adapter metadata and upload names as text; a broken upload is named once', async () => {
    const panel = '#gallery';
    const cards = page.getByRole('list', { name: 'Adapters' });
    const importBox = page.locator('#gallery .panel', { has: page.getByRole('heading', { name: 'Import' }) });
    // The built-in entries (the hostile copy of gallery/index.json).
    const g = payloads('built-in gallery');
    await cards.getByRole('article', { name: g.img }).waitFor({ timeout: 60_000 });
    await expectInert(panel, [g.img, g.script, g.js, g.svg]);

    // From the hostile Hub: its base model id comes back in a warning; the card shows the repo id.
    await page.getByLabel('Adapter repo id').fill('evil/adapter');
    let was = await statusNow(importBox);
    await page.getByRole('button', { name: 'Import from Hugging Face' }).click();
    expect(await statusText(importBox, /^(ok|error)$/, was)).toBe('Imported "evil/adapter".');
    await expectInert(panel, [`made for base model '${payloads('hub adapter').img}'`]);

    // An uploaded zip whose name is markup: the gallery names the adapter after it.
    const u = payloads('zip name');
    const zip = zipSync({
      'adapter_model.safetensors': new Uint8Array(read(ADAPTER_DIR, 'adapter_model.safetensors')),
      'adapter_config.json': strToU8(read(ADAPTER_DIR, 'adapter_config.json').toString()),
      'README.md': strToU8(`# ${u.script}\n`),
    });
    const importInput = page.getByLabel('Import a PEFT adapter');
    was = await statusNow(importBox);
    await importInput.setInputFiles({ name: `${u.svg}.zip`, mimeType: 'application/zip', buffer: Buffer.from(zip) });
    expect(await statusText(importBox, /^(ok|error)$/, was)).toBe(`Imported "${u.svg}".`);
    await cards.getByRole('article', { name: u.svg }).waitFor({ timeout: 60_000 });
    await expectInert(panel, [u.svg]);

    // Renamed to markup.
    const n = payloads('rename');
    await cards.getByRole('button', { name: `Rename ${u.svg}` }).click();
    await page.getByLabel('New name').fill(n.script);
    await page.getByRole('button', { name: 'Save name' }).click();
    await cards.getByRole('article', { name: n.script }).waitFor({ timeout: 60_000 });
    await expectInert(panel, [n.script]);

    // A zip that is not one: the error names the file exactly once.
    was = await statusNow(importBox);
    await importInput.setInputFiles({
      name: 'broken-upload.zip',
      mimeType: 'application/zip',
      buffer: Buffer.from('PK\u0003\u0004 cut short'),
    });
    const broken = await statusText(importBox, /^(ok|error)$/, was);
    console.log(`[e2e] lockdown, a broken zip: ${broken}`);
    expect(broken).toMatch(/^Could not import: broken-upload\.zip is not a valid zip/);
    expect(count(broken, 'broken-upload.zip')).toBe(1);
  }, 300_000);

  it('shows a Try prompt and its continuations as text', async () => {
    const t = payloads('try prompt');
    await page.getByLabel('Adapter', { exact: true }).selectOption({ label: payloads('rename').script });
    await page.getByLabel('Prompt', { exact: true }).fill(`${t.img} ${t.js}`);
    await page.getByLabel('Max tokens').fill('4');
    const go = page.getByRole('button', { name: 'Generate with and without the adapter' });
    await expect.poll(() => go.isEnabled(), { timeout: 30_000 }).toBe(true);
    const was = await statusNow('#try');
    await go.click();
    expect(await statusText('#try', /^(ok|error)$/, was, 180_000)).not.toMatch(/^Could not/);
    await expectInert('#try', []);
    await screenshot(page, 'lockdown-full');
  }, 300_000);

  it('ran no injected script, met no policy violation of its own, and logged only the expected refusals', async () => {
    expect(await injected()).toBeNull();
    expect(await violations()).toEqual([]);
    const unexpected = open.errors.filter((e) => !expectedConsole.some((re) => re.test(e)));
    console.log(
      `[e2e] lockdown: injected scripts run 0; policy violations after the probes ${(await violations()).length}; ` +
        `console errors ${open.errors.length} (${open.errors.length - unexpected.length} expected refusals)`,
    );
    expect(unexpected).toEqual([]);
  });
});
