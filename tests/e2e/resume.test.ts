// A run interrupted by a page reload resumes from its checkpoint, in a real browser: the page offers
// "Resume run from step N" after the reload, and the resumed run finishes all its steps.

import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { expectBundledModel, fillSmallRun, screenshot, startTraining, useStudioPage } from './harness';

let page: Page;

useStudioPage('resume flow', (p) => (page = p));

describe('studio page, resuming after a reload', () => {
  it('offers the saved run after a reload and finishes it', async () => {
    await expectBundledModel(page);
    await page.getByLabel('Sample dataset').selectOption({ index: 1 });
    await fillSmallRun(page, { rank: 2, steps: 8, checkpointEvery: 1 });
    await startTraining(page, 20_000);
    const progressText = page.locator('#train .progress-text');
    await progressText.getByText(/^Step [3-7] of 8$/).waitFor({ timeout: 180_000 });

    // The tab is reloaded mid-run: the worker dies with it; the checkpoint stays in IndexedDB.
    await page.reload();
    await expectBundledModel(page);
    const offer = page.getByRole('button', { name: /^Resume run from step \d+$/ });
    await offer.waitFor({ timeout: 30_000 });
    const from = Number((await offer.textContent())!.match(/\d+/)![0]);
    expect(from).toBeGreaterThanOrEqual(1);
    expect(from).toBeLessThan(8);
    await screenshot(page, 'resume-offer', '#train');
    await offer.click();
    await page
      .locator('#train .status')
      .getByText(/^Finished: 8 steps/)
      .waitFor({ timeout: 240_000 });
    expect(await progressText.textContent()).toBe('Step 8 of 8');
    // A finished run leaves no checkpoint behind: after another reload nothing is offered.
    await page.reload();
    await expectBundledModel(page);
    await page.waitForTimeout(2000);
    expect(await page.getByRole('button', { name: /^Resume run from step/ }).count()).toBe(0);
  });
});
