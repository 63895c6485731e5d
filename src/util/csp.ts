// The studio's Content-Security-Policy, in one place. vite.config.ts writes it into the built index.html
// (a <meta>, which covers the page wherever the static files are hosted) and sends it as a header from
// `vite preview` (which also covers the engine's worker: a worker's policy comes from its script's
// response headers, never from the page's <meta>). The page reads it back to refuse, with a sentence, a
// Hub base URL the policy would block. No imports: vite.config.ts, the page and the tests all use it.
//
// What the page needs and nothing more: its own scripts, stylesheet, worker, images and files ('self'),
// plus the Hub origins downloads may come from. No inline script or style, no eval, no plugins, no
// <base>, no form posts, no framing. Hub origins are fixed when the site is built (a <meta> cannot change
// at run time): the default Hub and its file hosts, plus WEBLORA_HUB_ORIGINS (see docs/security.md).

/** The Hugging Face Hub the studio and the CLI use unless told otherwise. */
export const DEFAULT_HUB = 'https://huggingface.co';

/**
 * The default Hub with the hosts its `resolve/` URLs redirect to for large files (LFS and Xet storage);
 * a redirect is checked against connect-src like the request itself.
 */
export const DEFAULT_HUB_SOURCES = [DEFAULT_HUB, 'https://*.huggingface.co', 'https://*.hf.co'];

/** The build-time setting that adds Hub origins (a mirror, a local copy) to connect-src. */
export const HUB_ORIGINS_ENV = 'WEBLORA_HUB_ORIGINS';

/** A CSP host-source this module accepts: scheme://host[:port], host may start with '*.', port may be '*'. */
const HOST_SOURCE = /^(https?):\/\/(\*\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::(\d{1,5}|\*))?\/?$/i;

/**
 * The extra Hub origins of WEBLORA_HUB_ORIGINS (space- or comma-separated), checked: each must be
 * scheme://host[:port] with nothing a policy could be split on, so a setting cannot widen other directives.
 */
export function parseHubOrigins(setting: string | undefined): string[] {
  const out: string[] = [];
  for (const s of (setting ?? '').split(/[\s,]+/).filter(Boolean)) {
    if (!HOST_SOURCE.test(s))
      throw new Error(
        `${HUB_ORIGINS_ENV}: "${s}" is not an origin like https://hub.example.org or http://127.0.0.1:8080 (a port may be *)`,
      );
    out.push(s.replace(/\/$/, ''));
  }
  return out;
}

/**
 * The policy for the studio, `hubSources` added to connect-src. `delivery: 'meta'` leaves out
 * frame-ancestors, which browsers ignore (and complain about) in a <meta>; a header carries it.
 */
export function contentSecurityPolicy(hubSources: string[], delivery: 'meta' | 'header'): string {
  const directives: [string, string[]][] = [
    ['default-src', ["'none'"]],
    ['script-src', ["'self'"]],
    ['style-src', ["'self'"]],
    ['img-src', ["'self'"]],
    ['connect-src', ["'self'", ...hubSources]],
    ['worker-src', ["'self'"]],
    ['object-src', ["'none'"]],
    ['base-uri', ["'none'"]],
    ['form-action', ["'none'"]],
  ];
  if (delivery === 'header') directives.push(['frame-ancestors', ["'none'"]]);
  return directives.map(([name, values]) => `${name} ${values.join(' ')}`).join('; ');
}

const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' };

/** One CSP source expression against a URL, for the kinds contentSecurityPolicy writes (and scheme-only ones). */
function sourceMatches(source: string, url: URL, pageOrigin: URL): boolean {
  if (source === "'self'") return url.origin === pageOrigin.origin;
  if (/^[a-z][a-z0-9+.-]*:$/i.test(source)) return url.protocol === source.toLowerCase();
  const m = /^(?:([a-z][a-z0-9+.-]*):\/\/)?(\*\.)?([^:/]+)(?::(\d+|\*))?/i.exec(source);
  if (!m || source.startsWith("'")) return false;
  const [, scheme, wildcard, host, port] = m;
  const wantScheme = scheme ? `${scheme.toLowerCase()}:` : pageOrigin.protocol;
  // CSP lets an http source match https, never the other way round.
  if (url.protocol !== wantScheme && !(wantScheme === 'http:' && url.protocol === 'https:')) return false;
  const h = url.hostname.toLowerCase();
  const want = host.toLowerCase();
  if (wildcard ? !h.endsWith(`.${want}`) : h !== want) return false;
  if (port === '*') return true;
  const urlPort = url.port || DEFAULT_PORTS[url.protocol];
  return port ? urlPort === port : urlPort === DEFAULT_PORTS[url.protocol]; // no port: the scheme's default
}

/**
 * Whether `policy` lets the page fetch `url` (connect-src, or default-src without it); true when there is
 * no policy (the dev server sends none). A URL that does not parse is not allowed.
 */
export function connectAllowed(policy: string | null | undefined, url: string, pageOrigin: string): boolean {
  if (!policy) return true;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  const directives = new Map<string, string[]>();
  for (const part of policy.split(';')) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name && !directives.has(name.toLowerCase())) directives.set(name.toLowerCase(), values);
  }
  const sources = directives.get('connect-src') ?? directives.get('default-src');
  if (!sources) return true;
  return sources.some((s) => sourceMatches(s, u, new URL(pageOrigin)));
}

/** The sources connect-src lists, as written (for messages). */
export function connectSources(policy: string): string[] {
  for (const part of policy.split(';')) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name?.toLowerCase() === 'connect-src') return values;
  }
  return [];
}
