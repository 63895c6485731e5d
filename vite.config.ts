import { defineConfig } from 'vite';

// base './': the built site works from any static host under any path.
export default defineConfig({
  base: './',
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist', assetsInlineLimit: 0 },
  server: { host: '127.0.0.1', port: 5173 },
});
