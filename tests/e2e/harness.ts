// End-to-end rig: builds the studio with vite (once per change), serves the static build under a
// sub-path (so relative URLs are checked too), and drives it in Debian's Chromium with SwiftShader
// WebGPU through playwright-core, as docs/webgpu-on-software-drivers.md describes.
// A missing browser or WebGPU adapter fails the test with that reason; nothing is skipped.

import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, expect } from 'vitest';
import { HUB_ORIGINS_ENV } from '../../src/util/csp';

export const ROOT = resolve(__dirname, '../..');
export const ARTIFACTS = join(ROOT, 'test-artifacts');
const DIST = join(ARTIFACTS, 'dist');
const STAMP = join(DIST, '.built-at');
/** The build is served here, not at '/': the page must use relative URLs only. */
export const BASE_PATH = '/studio/sub/';
export const CHROMIUM = '/usr/lib/chromium/chromium';
/**
 * The e2e build's Content-Security-Policy lets the page reach Hub-shaped test servers on this machine
 * (any port, so each test can take a free one) besides the default Hub: the build-time setting a user
 * with a Hub mirror would make (docs/security.md).
 */
export const TEST_HUB_ORIGINS = 'http://127.0.0.1:*';
process.env[HUB_ORIGINS_ENV] = TEST_HUB_ORIGINS;
const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan,WebGPUService',
  '--use-webgpu-adapter=swiftshader',
  '--use-angle=swiftshader',
  '--ignore-gpu-blocklist',
  '--disable-gpu-sandbox',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let t = st.mtimeMs;
  for (const name of readdirSync(path)) t = Math.max(t, newestMtime(join(path, name)));
  return t;
}

/** Builds the site into test-artifacts/dist unless a build newer than every source is there. */
async function ensureBuilt(): Promise<void> {
  const sources = ['src', 'shaders', 'public', 'index.html', 'vite.config.ts', 'package.json']
    .map((p) => join(ROOT, p))
    .filter(existsSync);
  const newest = Math.max(...sources.map(newestMtime));
  if (existsSync(STAMP) && statSync(STAMP).mtimeMs > newest) return;
  const t0 = Date.now();
  await build({
    root: ROOT,
    configFile: join(ROOT, 'vite.config.ts'),
    logLevel: 'warn',
    build: { outDir: DIST, emptyOutDir: true },
  });
  writeFileSync(STAMP, new Date().toISOString());
  console.log(`[e2e] vite build in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

export interface Studio {
  url: string;
  /** The path of every request the server answered, in order (to compare with what the browser asked). */
  served: string[];
  close(): Promise<void>;
}

/** Builds (if needed) and serves the studio on 127.0.0.1 at a free port, under BASE_PATH. */
export async function serveStudio(): Promise<Studio> {
  await ensureBuilt();
  const server: PreviewServer = await preview({
    root: ROOT,
    configFile: join(ROOT, 'vite.config.ts'),
    base: BASE_PATH,
    logLevel: 'warn',
    build: { outDir: DIST },
    preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false },
  });
  const addr = server.httpServer.address();
  if (!addr || typeof addr === 'string') throw new Error(`vite preview gave no TCP address (${String(addr)})`);
  const served: string[] = [];
  // First in line: vite's own handler rewrites req.url (the base path, index.html) as it serves.
  server.httpServer.prependListener('request', (req: { url?: string }) => served.push(req.url ?? ''));
  return {
    url: `http://127.0.0.1:${addr.port}${BASE_PATH}`,
    served,
    close: () => server.close(),
  };
}

/** Launches Chromium; `webgpu: false` leaves WebGPU off, to check what the page says without it. */
export async function launchChromium(opts: { webgpu?: boolean } = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: install it with 'apt-get install -y chromium' (or run 'bash tools/setup.sh test')`,
    );
  const args =
    opts.webgpu === false ? CHROMIUM_ARGS.filter((a) => !a.includes('webgpu') && !a.includes('WebGPU')) : CHROMIUM_ARGS;
  return chromium.launch({
    executablePath: CHROMIUM,
    args,
    env: { ...process.env, XDG_RUNTIME_DIR: join(ROOT, '.cache/xdg') },
  });
}

export interface OpenPage {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught exceptions of the page and its workers, as they happened. */
  errors: string[];
}

/** A fresh browser profile (own IndexedDB) with the studio open; console errors are collected. */
export async function openStudio(browser: Browser, url: string, context?: BrowserContext): Promise<OpenPage> {
  const ctx = context ?? (await browser.newContext({ acceptDownloads: true, viewport: { width: 1366, height: 900 } }));
  const page = await ctx.newPage();
  const errors: string[] = [];
  const onConsole = (where: string) => (m: ConsoleMessage) => {
    if (m.type() === 'error') errors.push(`${where} console.error: ${m.text()}`);
  };
  page.on('console', onConsole('page'));
  page.on('pageerror', (e) => errors.push(`page exception: ${e.message}`));
  page.on('worker', (w) => w.on('console', onConsole(`worker ${w.url().replace(/^.*\//, '')}`)));
  page.on('crash', () => errors.push('the page crashed'));
  await page.goto(url);
  return { context: ctx, page, errors };
}

/** Prints what the browser complained about, so it shows in the test output. */
export function reportConsole(name: string, errors: string[]): void {
  if (errors.length) console.log(`[e2e] ${name}: ${errors.length} browser console error(s):\n  ${errors.join('\n  ')}`);
  else console.log(`[e2e] ${name}: no browser console errors`);
}

/** Saves a PNG of the page or of one element to test-artifacts/<name>.png. */
export async function screenshot(page: Page, name: string, selector?: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  if (selector) await page.locator(selector).screenshot({ path });
  else await page.screenshot({ path, fullPage: true });
  return path;
}

/** Fails with the page's own words if WebGPU did not come up (the banner), rather than timing out. */
export async function expectEngineUp(page: Page, timeout = 60_000): Promise<string> {
  // The status line reads 'GPU: <adapter> …' once the engine is up, 'GPU: not available' (and a banner) if not.
  const up = page.getByRole('status').filter({ hasText: /^GPU: (?!not available$)/ });
  const banner = page.locator('.banner');
  try {
    await up.or(banner).first().waitFor({ timeout });
  } catch {
    const line = await page.getByRole('status').filter({ hasText: /^GPU:/ }).allTextContents();
    throw new Error(`the engine did not start within ${timeout / 1000} s (status line: ${line.join(' ') || 'none'})`);
  }
  if (await up.count()) return (await up.textContent()) ?? '';
  throw new Error(`the studio reports no working WebGPU engine: ${await banner.textContent()}`);
}

/** Waits for the bundled model to load; on failure says what the model panel says and saves a screenshot. */
export async function expectBundledModel(page: Page, timeout = 120_000): Promise<void> {
  await expectEngineUp(page);
  try {
    await page
      .locator('#model-panel')
      .getByText(/^Loaded .*weblora-llama-1m/)
      .waitFor({ timeout });
  } catch (e) {
    const status = await page.locator('#model-panel .status').first().textContent();
    await screenshot(page, 'failure-bundled-model').catch(() => undefined);
    throw new Error(`the bundled model did not load within ${timeout / 1000} s; the model panel says: ${status}`);
  }
}

/** Once the chosen dataset is read, fills in a small run: rank `rank`, batch 1 × 16 tokens, no warmup, `steps`
 * steps, no evaluation or samples, and a checkpoint every `checkpointEvery` steps when given. */
export async function fillSmallRun(
  page: Page,
  o: { rank: number; steps: number; checkpointEvery?: number },
): Promise<void> {
  await page
    .locator('#dataset-panel')
    .getByText(/examples, .* tokens\.$/)
    .waitFor({ timeout: 60_000 });
  for (const [label, value] of [
    ['Rank (r)', String(o.rank)],
    ['Batch size', '1'],
    ['Sequence length', '16'],
    ['Warmup steps', '0'],
  ] as const)
    await page.getByLabel(label).fill(value);
  await page.getByLabel('Steps', { exact: true }).fill(String(o.steps));
  await page.locator('#train details').evaluate((d) => ((d as HTMLDetailsElement).open = true));
  await page.getByLabel('Evaluate every').fill('0');
  await page.getByLabel('Sample every').fill('0');
  if (o.checkpointEvery !== undefined) await page.getByLabel('Checkpoint every').fill(String(o.checkpointEvery));
}

/** Clicks Start training once it is enabled. */
export async function startTraining(page: Page, timeout = 120_000): Promise<void> {
  const button = page.getByRole('button', { name: 'Start training' });
  await expect.poll(() => button.isEnabled(), { timeout }).toBe(true);
  await button.click();
}

/**
 * One test file's studio: serves the built site, launches Chromium and opens the page before the file's
 * tests (handing the page to `onOpen`), and reports console errors and closes everything after them.
 */
export function useStudioPage(name: string, onOpen: (page: Page) => void): void {
  let studio: Studio | undefined;
  let browser: Browser | undefined;
  let open: OpenPage | undefined;
  beforeAll(async () => {
    studio = await serveStudio();
    browser = await launchChromium();
    open = await openStudio(browser, studio.url);
    onOpen(open.page);
  });
  afterAll(async () => {
    if (open) reportConsole(name, open.errors);
    await browser?.close();
    await studio?.close();
  });
}
