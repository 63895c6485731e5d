// The dev server (`npm start`) next to the locked-down build: it sends no Content-Security-Policy (vite
// injects styles from script and opens a websocket for hot reload; see docs/security.md), and the studio
// works from it: the engine's worker starts on WebGPU and the bundled model loads. Hot reload is off here
// (nothing to reload, no websocket to keep open); the page is otherwise what `npm start` serves.

import { join } from 'node:path';
import { createServer } from 'vite';
import { describe, expect, it } from 'vitest';
import { ROOT, expectBundledModel, launchChromium, openStudio, reportConsole } from './harness';

describe('the dev server', () => {
  it('serves the studio without a policy, and the bundled model loads', async () => {
    const server = await createServer({
      root: ROOT,
      configFile: join(ROOT, 'vite.config.ts'),
      logLevel: 'warn',
      server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false },
    });
    await server.listen();
    const browser = await launchChromium();
    try {
      const url = server.resolvedUrls?.local[0];
      expect(url, 'the dev server has no local URL').toBeTruthy();
      const res = await fetch(url!);
      expect(res.headers.get('content-security-policy')).toBeNull();
      expect(await res.text()).not.toContain('Content-Security-Policy');
      const o = await openStudio(browser, url!);
      await expectBundledModel(o.page, 240_000);
      reportConsole('dev server', o.errors);
      expect(o.errors).toEqual([]);
    } finally {
      await browser.close();
      await server.close();
    }
  }, 400_000);
});
