// The studio's Content-Security-Policy (src/util/csp.ts): what it allows, the build-time Hub setting
// refusing anything that could widen the policy, and the page's own connect-src check that explains a
// refused Hub base URL before the browser blocks it.

import { describe, expect, it } from 'vitest';
import {
  DEFAULT_HUB,
  DEFAULT_HUB_SOURCES,
  connectAllowed,
  connectSources,
  contentSecurityPolicy,
  parseHubOrigins,
} from '../../src/util/csp';

/** The policy as directive -> sources. */
function directives(policy: string): Map<string, string[]> {
  return new Map(
    policy.split(';').map((d) => {
      const [name, ...values] = d.trim().split(/\s+/);
      return [name, values];
    }),
  );
}

const PAGE = 'https://studio.example.org';

describe('content security policy', () => {
  it('allows only the page itself, plus the Hub origins for connect-src', () => {
    const meta = directives(contentSecurityPolicy(['http://127.0.0.1:*'], 'meta'));
    expect(meta.get('default-src')).toEqual(["'none'"]);
    for (const d of ['script-src', 'style-src', 'img-src', 'worker-src']) expect(meta.get(d), d).toEqual(["'self'"]);
    expect(meta.get('connect-src')).toEqual(["'self'", 'http://127.0.0.1:*']);
    expect(meta.get('object-src')).toEqual(["'none'"]);
    expect(meta.get('base-uri')).toEqual(["'none'"]);
    expect(meta.get('form-action')).toEqual(["'none'"]);
    // Nothing inline or evaluated, anywhere.
    expect(contentSecurityPolicy(DEFAULT_HUB_SOURCES, 'header')).not.toMatch(/unsafe|data:|blob:|\*(?!\.)/);
    // frame-ancestors only where browsers honour it (a header), never in a <meta>.
    expect(meta.has('frame-ancestors')).toBe(false);
    expect(directives(contentSecurityPolicy([], 'header')).get('frame-ancestors')).toEqual(["'none'"]);
  });

  it('takes Hub origins from the build setting and refuses anything that is not an origin', () => {
    expect(parseHubOrigins(undefined)).toEqual([]);
    expect(parseHubOrigins(' https://hub.example.org/, http://127.0.0.1:8080  http://localhost:* ')).toEqual([
      'https://hub.example.org',
      'http://127.0.0.1:8080',
      'http://localhost:*',
    ]);
    for (const bad of [
      "https://hub.example.org; script-src 'unsafe-inline'",
      '*',
      'https:',
      "'unsafe-eval'",
      'https://hub.example.org/path',
      'javascript:alert(1)',
      'hub.example.org',
    ])
      expect(() => parseHubOrigins(bad), bad).toThrow(/WEBLORA_HUB_ORIGINS: .* is not an origin/);
  });

  it('answers whether a URL may be fetched as a browser would for these source kinds', () => {
    const policy = contentSecurityPolicy([...DEFAULT_HUB_SOURCES, 'http://127.0.0.1:*'], 'meta');
    const allowed: [string, boolean][] = [
      [`${PAGE}/studio/models/x/config.json`, true], // 'self'
      ['https://studio.example.org:8443/x', false], // another port is another origin
      ['http://studio.example.org/x', false], // and another scheme
      [`${DEFAULT_HUB}/owner/name/resolve/main/config.json`, true],
      ['https://cdn-lfs.huggingface.co/repos/x', true],
      ['https://cas-bridge.xethub.hf.co/x', true], // *.hf.co covers deeper subdomains too
      ['https://hf.co/x', false], // *.hf.co does not cover hf.co itself
      ['http://huggingface.co/x', false], // https source: no downgrade
      ['https://huggingface.co.evil.example/x', false],
      ['http://127.0.0.1:41234/owner/name', true],
      ['http://localhost:41234/owner/name', false],
      ['https://fonts.example-cdn.com/x.woff2', false],
      ['javascript:alert(1)', false],
      ['data:text/plain,hi', false],
      ['not a url', false],
    ];
    for (const [url, want] of allowed) expect(connectAllowed(policy, url, PAGE), url).toBe(want);
    // An http source lets the page upgrade to https, and a source without a port means the default one.
    expect(connectAllowed('connect-src http://hub.example.org', 'https://hub.example.org/x', PAGE)).toBe(true);
    expect(connectAllowed('connect-src https://hub.example.org', 'https://hub.example.org:444/x', PAGE)).toBe(false);
    // default-src stands in for a missing connect-src; no policy (the dev server) allows everything.
    expect(connectAllowed("default-src 'self'", `${DEFAULT_HUB}/x`, PAGE)).toBe(false);
    expect(connectAllowed(null, `${DEFAULT_HUB}/x`, PAGE)).toBe(true);
    expect(connectSources(policy)).toEqual(["'self'", ...DEFAULT_HUB_SOURCES, 'http://127.0.0.1:*']);
  });
});
