// Faults in a real browser (issue 12), in one browser profile:
// - the GPU device is lost mid-run (the test hook destroys it, as a driver reset would): the page says what
//   happened, offers "Resume run from step N", and the resumed run, on a new device, finishes;
// - checkpoint writes fail half-way (the test hook's full-store fault): training goes on, the page says the
//   checkpoint was not saved, and after the tab dies the previous checkpoint is offered and finishes the run;
// - the same with Chromium's real IndexedDB quota (DevTools' Storage.overrideQuotaForOrigin), no test hook:
//   the previous checkpoint stays whole and resumes once there is space again, and no adapter is lost;
// - a checkpoint and a gallery entry damaged in IndexedDB: each gives a clear error where it is shown, every
//   other adapter stays listed and usable, and the damaged ones can be discarded / deleted;
// - two tabs: while one trains, the other cannot (Web Locks) and says why; once the first stops, it can.
// The hook is on only because the page is opened with ?test-hooks.

import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectBundledModel,
  fillSmallRun,
  launchChromium,
  openStudio,
  reportConsole,
  screenshot,
  startTraining,
  serveStudio,
  type OpenPage,
  type Studio,
} from './harness';

let studio: Studio;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let context: BrowserContext;
let page: Page;
const opened: [string, OpenPage][] = [];

beforeAll(async () => {
  studio = await serveStudio();
  browser = await launchChromium();
  const o = await openStudio(browser, `${studio.url}?test-hooks`);
  opened.push(['faults, first tab', o]);
  ({ context, page } = o);
});

afterAll(async () => {
  for (const [name, o] of opened) reportConsole(name, o.errors);
  await browser?.close();
  await studio?.close();
});

const inject = (p: Page, fault: 'device-lost' | 'checkpoint-quota' | 'none') =>
  p.evaluate(
    (f) => (window as unknown as { webloraTest: { fault(f: string): Promise<unknown> } }).webloraTest.fault(f),
    fault,
  );

/** Loads the bundled model and the first sample dataset, and fills in a small run. */
async function prepareRun(p: Page, steps: number, checkpointEvery: number): Promise<void> {
  await expectBundledModel(p, 300_000); // slow on a busy machine
  await p.getByLabel('Sample dataset').selectOption({ index: 1 });
  await fillSmallRun(p, { rank: 2, steps, checkpointEvery });
}

const start = (p: Page) => startTraining(p);

/** Waits until the run's status line matches `re`; a timeout shows what it said instead. */
async function runSays(p: Page, re: RegExp, timeout: number): Promise<string> {
  const line = p.locator('#train .run-status');
  await expect.poll(async () => (await line.textContent()) ?? '', { timeout, interval: 500 }).toMatch(re);
  return (await line.textContent())!;
}
const offerButton = (p: Page) => p.getByRole('button', { name: /^Resume run from step \d+$/ });
const stepOf = async (l: ReturnType<Page['locator']>) => Number(((await l.textContent()) ?? '').match(/\d+/)![0]);

/** Changes one stored value of the studio's IndexedDB (idb-keyval's 'weblora' / 'kv') in the page. */
async function damage(p: Page, what: 'checkpoint' | { adapterNamed: string }): Promise<string> {
  return p.evaluate(async (what) => {
    const db = await new Promise<IDBDatabase>((ok, no) => {
      const r = indexedDB.open('weblora');
      r.onsuccess = () => ok(r.result);
      r.onerror = () => no(r.error);
    });
    const req = <T>(r: IDBRequest<T>) =>
      new Promise<T>((ok, no) => ((r.onsuccess = () => ok(r.result)), (r.onerror = () => no(r.error))));
    const kv = () => db.transaction('kv', 'readwrite').objectStore('kv');
    const keys = (await req(kv().getAllKeys())).map(String);
    let key: string;
    if (what === 'checkpoint') key = (await req(kv().get('checkpoint:current'))).key;
    else {
      const found = [];
      for (const k of keys.filter((k) => k.startsWith('adapter:')))
        if ((await req(kv().get(k))).meta.name === what.adapterNamed) found.push(k);
      key = found[0];
    }
    const v = await req(kv().get(key));
    if (what === 'checkpoint') {
      const name = Object.keys(v.lora)[0];
      v.lora[name].A = v.lora[name].A.slice(0, 3); // truncated
    } else v.files['adapter_model.safetensors'] = v.files['adapter_model.safetensors'].slice(0, 100);
    await req(kv().put(v, key));
    db.close();
    return key;
  }, what);
}

/** What the studio keeps in IndexedDB: the step the checkpoint pointer names, the checkpoint data keys, and
 * the gallery's keys (sorted). */
function stored(p: Page): Promise<{ pointerStep: number | undefined; checkpoints: string[]; adapters: string[] }> {
  return p.evaluate(async () => {
    const db = await new Promise<IDBDatabase>((ok, no) => {
      const r = indexedDB.open('weblora');
      r.onsuccess = () => ok(r.result);
      r.onerror = () => no(r.error);
    });
    const req = <T>(r: IDBRequest<T>) =>
      new Promise<T>((ok, no) => ((r.onsuccess = () => ok(r.result)), (r.onerror = () => no(r.error))));
    const kv = db.transaction('kv', 'readonly').objectStore('kv');
    const keys = (await req(kv.getAllKeys())).map(String).sort();
    const pointer = await req(kv.get('checkpoint:current'));
    db.close();
    return {
      pointerStep: pointer?.step,
      checkpoints: keys.filter((k) => k.startsWith('checkpoint:data:')),
      adapters: keys.filter((k) => k.startsWith('adapter:')),
    };
  });
}

describe('studio page, faults', () => {
  it('a GPU device lost mid-run: the page says so, offers the last checkpoint, and the resumed run finishes', async () => {
    await prepareRun(page, 10, 2);
    await start(page);
    const note = page.locator('#train').getByText(/^Checkpoint saved at step \d+\.$/);
    await note.waitFor({ timeout: 180_000 });
    await inject(page, 'device-lost');

    const banner = page.locator('.banner');
    await banner.getByText(/The GPU device was lost \(destroyed/).waitFor({ timeout: 60_000 });
    await runSays(page, /^Training failed: Training stopped at step \d+: the GPU device was lost/, 60_000);
    const offer = offerButton(page);
    await offer.waitFor({ timeout: 30_000 });
    const from = await stepOf(offer);
    expect(from % 2).toBe(0);
    expect(from).toBeGreaterThanOrEqual(2);
    expect(await page.getByRole('region', { name: 'Saved run' }).textContent()).toMatch(
      /^The GPU device was lost during the run\. A run was saved at step \d+ of 10/,
    );
    console.log(`[e2e] device lost; offered step ${from}`);
    await screenshot(page, 'fault-device-lost', '#train');
    await offer.click();
    await runSays(page, /^Finished: 10 steps/, 240_000);
    expect(await page.locator('#train .progress-text').textContent()).toBe('Step 10 of 10');

    // The adapter of the resumed run is on the new device: save it twice for the gallery test below.
    for (const name of ['keep-me', 'break-me']) {
      await page.getByLabel('Adapter name').fill(name);
      await page.getByRole('button', { name: 'Save to gallery' }).click();
      await page.locator('#run-adapter').getByText(`Saved "${name}" to the gallery.`).waitFor({ timeout: 60_000 });
    }
  }, 600_000);

  it('checkpoint writes that fail half-way: training goes on, and the previous checkpoint resumes the run', async () => {
    await page.getByLabel('Steps', { exact: true }).fill('16');
    await start(page); // a checkpoint every 2 steps, as above
    await page
      .locator('#train')
      .getByText(/^Checkpoint saved at step \d+\.$/)
      .waitFor({ timeout: 180_000 });
    await inject(page, 'checkpoint-quota');
    const failed = page.locator('#train').getByText(/storage is full, so the checkpoint at step \d+ was not saved/);
    await failed.waitFor({ timeout: 120_000 });
    const text = (await failed.textContent())!;
    const notSaved = Number(text.match(/checkpoint at step (\d+) was not saved/)![1]);
    expect(text).toMatch(/The checkpoint at step \d+ is still the latest\. Training goes on\.$/);
    console.log(`[e2e] quota: ${text}`);
    // Paused (its checkpoint fails too), so the run cannot finish and drop its checkpoint before the tab dies.
    await page.getByRole('button', { name: 'Pause' }).click();
    await page
      .locator('#train')
      .getByText(/^Paused after step/)
      .waitFor({ timeout: 60_000 });

    // The tab dies mid-run (its worker and the injected fault with it); the checkpoint before the failure is offered.
    await page.reload();
    await expectBundledModel(page, 300_000);
    const offer = offerButton(page);
    await offer.waitFor({ timeout: 30_000 });
    const from = await stepOf(offer);
    expect(from).toBeLessThan(notSaved);
    expect(from).toBeGreaterThanOrEqual(2);
    await offer.click();
    await runSays(page, /^Finished: 16 steps/, 240_000);
  }, 600_000);

  it("Chromium's real IndexedDB quota runs out mid-run: the previous checkpoint stays whole and resumes; no adapter is lost", async () => {
    const cards = page.getByRole('list', { name: 'Adapters' });
    const galleryNames = () => cards.getByRole('article').evaluateAll((els) => els.map((e) => e.ariaLabel).sort());
    const before = { names: await galleryNames(), stored: await stored(page) };
    expect(before.stored.adapters.length).toBeGreaterThanOrEqual(2); // keep-me and break-me, from the first test

    await prepareRun(page, 1000, 2);
    await start(page);
    await page
      .locator('#train')
      .getByText(/^Checkpoint saved at step \d+\.$/)
      .waitFor({ timeout: 180_000 });
    // The origin's quota becomes what it already uses: the next write that needs space is refused by the
    // browser itself. Chromium lets IndexedDB spend space it was granted up to 30 s earlier
    // (BucketContext::kBucketSpaceCacheTimeLimit), so a checkpoint or two still land before one fails.
    const cdp = await context.newCDPSession(page);
    const origin = new URL(studio.url).origin;
    const { usage } = await cdp.send('Storage.getUsageAndQuota', { origin });
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage });
    const failed = page.locator('#train').getByText(/storage is full, so the checkpoint at step \d+ was not saved/);
    await failed.waitFor({ timeout: 180_000 });
    const text = (await failed.textContent())!;
    console.log(`[e2e] real quota (${usage} B): ${text}`);
    expect(text).toMatch(
      /^The browser's storage is full, so the checkpoint at step \d+ was not saved\. Delete adapters you no longer need from the gallery \(or export them first\), then try again\. Nothing already saved was changed\. The checkpoint at step \d+ is still the latest\. Training goes on\.$/,
    );
    const latest = Number(text.match(/The checkpoint at step (\d+) is still the latest/)![1]);
    await page.getByRole('button', { name: 'Stop' }).click(); // its checkpoint is refused too
    await runSays(page, /^Stopped at step \d+/, 120_000);
    // In IndexedDB: the pointer still names that checkpoint, no half-written one is left, every adapter is there.
    const during = await stored(page);
    expect(during.pointerStep).toBe(latest);
    expect(during.checkpoints).toHaveLength(1);
    expect(during.adapters).toEqual(before.stored.adapters);

    // Space again (as after deleting adapters): the reloaded page offers that checkpoint, lists every adapter
    // whole, and the resumed run goes on and saves checkpoints.
    await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    await page.reload();
    await expectBundledModel(page, 300_000);
    const offer = offerButton(page);
    await offer.waitFor({ timeout: 30_000 });
    expect(await stepOf(offer)).toBe(latest);
    await expect.poll(galleryNames, { timeout: 30_000 }).toEqual(before.names);
    expect(await cards.locator('li.damaged').count()).toBe(0);
    await offer.click();
    const saved = page.locator('#train').getByText(/^Checkpoint saved at step \d+\.$/);
    await saved.waitFor({ timeout: 180_000 });
    expect(await stepOf(saved)).toBeGreaterThan(latest);
    await page.getByRole('button', { name: 'Stop' }).click();
    await runSays(page, /^Stopped at step \d+/, 120_000);
  }, 600_000);

  it('a damaged checkpoint and a damaged adapter each say so; every other adapter stays listed and usable', async () => {
    await prepareRun(page, 50, 1);
    await start(page);
    await page
      .locator('#train')
      .getByText(/^Checkpoint saved at step \d+\.$/)
      .waitFor({ timeout: 180_000 });
    await page.getByRole('button', { name: 'Stop' }).click();
    await runSays(page, /^Stopped at step \d+/, 120_000);
    await damage(page, 'checkpoint');
    await damage(page, { adapterNamed: 'break-me' });

    await page.reload();
    await expectBundledModel(page, 300_000);
    const saved = page.getByRole('region', { name: 'Saved run' });
    await saved
      .getByText(/^Could not read the saved run: The saved checkpoint at step \d+ is damaged .*Discard it/)
      .waitFor({ timeout: 30_000 });
    expect(await offerButton(page).count()).toBe(0);

    const cards = page.getByRole('list', { name: 'Adapters' });
    const broken = cards.getByRole('article', { name: 'break-me (damaged)' });
    await broken.waitFor({ timeout: 30_000 });
    expect(await broken.getByRole('alert').textContent()).toMatch(
      /^The adapter 'break-me' \(.*\) in the gallery is damaged \(its weights differ from what was saved: truncated or corrupted\)\. Delete it/,
    );
    const good = cards.getByRole('article', { name: 'keep-me', exact: true });
    await good.waitFor();
    await screenshot(page, 'fault-damaged-entries');
    // The good adapter is whole: its export reads it back and checks its weights.
    const download = page.waitForEvent('download');
    await good.getByRole('button', { name: 'Export keep-me' }).click();
    expect((await download).suggestedFilename()).toBe('keep-me.zip');
    await good.getByText('Downloaded keep-me.zip.').waitFor({ timeout: 30_000 });

    // The damaged entries go: Delete the adapter, Discard the checkpoint.
    await broken.getByRole('button', { name: 'Delete break-me' }).click();
    await cards.getByRole('button', { name: 'Yes, delete' }).click();
    await broken.waitFor({ state: 'detached', timeout: 30_000 });
    await saved.getByRole('button', { name: 'Discard' }).click();
    await saved.waitFor({ state: 'hidden', timeout: 30_000 });
    expect(await cards.locator('li.damaged').count()).toBe(0);
    await good.waitFor();
  }, 600_000);

  it('a second tab cannot train while the first does, and says why; it can once the first stops', async () => {
    await prepareRun(page, 400, 0);
    await start(page);
    await page
      .locator('#train .progress-text')
      .getByText(/^Step \d+ of 400$/)
      .waitFor({ timeout: 180_000 });

    const second = await openStudio(browser, studio.url, context);
    opened.push(['faults, second tab', second]);
    const other = second.page;
    await prepareRun(other, 5, 0);
    await start(other);
    await runSays(
      other,
      /^Training failed: Another tab of the studio is training right now\..*pause or stop the run in that tab/,
      60_000,
    );
    await screenshot(other, 'fault-second-tab', '#train');
    expect(await page.getByRole('button', { name: 'Stop' }).isEnabled()).toBe(true); // the first tab trains on

    await page.getByRole('button', { name: 'Stop' }).click();
    await runSays(page, /^Stopped at step \d+/, 120_000);
    await start(other);
    await runSays(other, /^Finished: 5 steps/, 240_000);
  }, 600_000);
});
