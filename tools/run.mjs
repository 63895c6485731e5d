// Runs a TypeScript entry point of this project in Node 20 through vite's module runner (TypeScript,
// and the WGSL that src/gpu/shaders.ts imports with import.meta.glob). Usage: node tools/run.mjs <file.ts> [args...]
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runnerImport } from 'vite';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  console.error('usage: node tools/run.mjs <file.ts> [args...]');
  process.exit(2);
}
process.env.WEBLORA_DRIVER ??= 'lavapipe';
const { module } = await runnerImport(resolve(process.cwd(), entry), { root, configFile: false, logLevel: 'error' });
const code = await module.main(args);
// Dawn keeps handles open after the work is done; leave explicitly.
process.exit(typeof code === 'number' ? code : 0);
