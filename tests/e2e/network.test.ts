// What the studio asks the network for: on a fresh load, and through a whole run (the bundled model, a
// sample dataset, a few training steps, an export), every request goes to the page's own origin; none
// to analytics, fonts or any CDN. The browser's view (page and worker requests) is checked against
// what the server answered, so a request the browser did not report would show up as a difference.

import type { Request } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { expectBundledModel, launchChromium, openStudio, reportConsole, serveStudio } from './harness';

/** Hosts of trackers, font services and script CDNs a page might reach without being asked. */
const THIRD_PARTY =
  /analytics|googletagmanager|doubleclick|fonts\.|gstatic|cdn|jsdelivr|unpkg|cloudflare|sentry|segment/i;

interface Seen {
  url: string;
  type: string;
}

/** The requests of one phase, grouped: same-origin by resource type, local (blob:, data:) and other origins. */
function summary(seen: Seen[], origin: string) {
  const same = seen.filter((r) => r.url.startsWith(`${origin}/`));
  const local = seen.filter((r) => /^(blob|data):/.test(r.url));
  const other = seen.filter((r) => !same.includes(r) && !local.includes(r));
  const byType: Record<string, number> = {};
  for (const r of same) byType[r.type] = (byType[r.type] ?? 0) + 1;
  return { same, local, other, byType };
}

describe('network requests', () => {
  it('a fresh load and a whole run ask only the page’s own origin', async () => {
    const studio = await serveStudio();
    const browser = await launchChromium();
    const origin = new URL(studio.url).origin;
    try {
      const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1366, height: 900 } });
      const seen: Seen[] = [];
      // Context-wide: the page's requests and its worker's (model files, gallery) alike.
      context.on('request', (r: Request) => seen.push({ url: r.url(), type: r.resourceType() }));
      const served0 = studio.served.length;
      const o = await openStudio(browser, studio.url, context);
      const { page } = o;

      // A fresh load: the page, the engine, the bundled model, the sample list and the gallery.
      await expectBundledModel(page, 240_000);
      await page.getByRole('list', { name: 'Adapters' }).getByRole('article').first().waitFor({ timeout: 60_000 });
      const sampleSelect = page.getByLabel('Sample dataset');
      await expect.poll(() => sampleSelect.locator('option').count(), { timeout: 30_000 }).toBeGreaterThan(1);
      await page.waitForTimeout(1000); // let any late request (favicon) land in this phase
      const load = seen.splice(0);
      const servedLoad = studio.served.slice(served0);

      // A whole run: a sample dataset, two training steps, an export.
      await sampleSelect.selectOption({ index: 1 });
      await page
        .locator('#dataset-panel')
        .getByText(/examples, .* tokens\.$/)
        .waitFor({ timeout: 120_000 });
      await page.getByLabel('Batch size').fill('1');
      await page.getByLabel('Sequence length').fill('32');
      await page.getByLabel('Steps', { exact: true }).fill('2');
      await page.getByLabel('Warmup steps').fill('0');
      const start = page.getByRole('button', { name: 'Start training' });
      await expect.poll(() => start.isEnabled(), { timeout: 30_000 }).toBe(true);
      await start.click();
      await page
        .locator('#train .status')
        .getByText(/^Finished: 2 steps/)
        .waitFor({ timeout: 300_000 });
      const download = page.waitForEvent('download', { timeout: 60_000 });
      await page.getByRole('button', { name: 'Export adapter' }).click();
      expect((await download).suggestedFilename()).toMatch(/\.zip$/);
      await page.waitForTimeout(1000);
      const run = seen.splice(0);
      const servedRun = studio.served.slice(served0 + servedLoad.length);

      for (const [phase, requests, served] of [
        ['fresh load', load, servedLoad],
        ['whole run', run, servedRun],
      ] as const) {
        const s = summary(requests, origin);
        const types = Object.entries(s.byType)
          .map(([t, n]) => `${t} ${n}`)
          .join(', ');
        console.log(
          `[e2e] network, ${phase}: ${requests.length} requests: ${s.same.length} same-origin (${types}), ` +
            `${s.local.length} local (blob:/data:), ${s.other.length} to other origins; the server answered ${served.length}`,
        );
        console.log(`      ${s.same.map((r) => r.url.slice(studio.url.length) || './').join(' ')}`);
        expect(s.other.map((r) => r.url)).toEqual([]);
        expect(requests.filter((r) => THIRD_PARTY.test(new URL(r.url).hostname)).map((r) => r.url)).toEqual([]);
        // Everything the server answered, the browser reported (worker requests included).
        const reported = new Set(s.same.map((r) => new URL(r.url).pathname + new URL(r.url).search));
        for (const path of served) expect(reported, `the browser did not report ${path}`).toContain(path);
      }
      expect(load.length).toBeGreaterThan(0);
      reportConsole('network', o.errors);
      expect(o.errors).toEqual([]);
    } finally {
      await browser.close();
      await studio.close();
    }
  }, 900_000);
});
