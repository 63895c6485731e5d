import { defineConfig, type Plugin } from 'vite';
import { DEFAULT_HUB_SOURCES, HUB_ORIGINS_ENV, contentSecurityPolicy, parseHubOrigins } from './src/util/csp.ts';

// The Hub origins downloads may come from: the default Hub, plus WEBLORA_HUB_ORIGINS at build time.
const hubSources = [...DEFAULT_HUB_SOURCES, ...parseHubOrigins(process.env[HUB_ORIGINS_ENV])];

/** The built index.html carries the policy in a <meta> right after the charset, before anything it governs. */
function cspMeta(): Plugin {
  const meta = `<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(hubSources, 'meta')}" />`;
  return {
    name: 'weblora-csp-meta',
    apply: 'build', // the dev server injects styles and opens a websocket for hot reload: no policy there
    transformIndexHtml(html) {
      const charset = /<meta charset="utf-8" \/>/;
      if (!charset.test(html)) throw new Error('index.html: no <meta charset="utf-8" /> to put the CSP after');
      return html.replace(charset, (m) => `${m}\n    ${meta}`);
    },
  };
}

// base './': the built site works from any static host under any path.
// `vite preview` sends the policy as a header too, the only way it reaches the engine's worker.
export default defineConfig({
  base: './',
  plugins: [cspMeta()],
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist', assetsInlineLimit: 0 },
  server: { host: '127.0.0.1', port: 5173 },
  preview: { headers: { 'Content-Security-Policy': contentSecurityPolicy(hubSources, 'header') } },
});
