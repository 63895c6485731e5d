// `npm run bench`: loads bench/main.ts through vite's module runner (TypeScript, and the shaders that
// src/gpu/shaders.ts imports with import.meta.glob), then runs it. Node 20 has no TypeScript of its own.
// Usage: node bench/run.mjs [section ...]   (WEBLORA_DRIVER=lavapipe by default; also swiftshader)
// With no section every one runs and bench/results/<driver>.{json,md} are written anew; naming sections runs
// those alone and replaces only their figures there (bench/main.ts).
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runnerImport } from 'vite';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.env.WEBLORA_DRIVER ??= 'lavapipe';
const { module } = await runnerImport(resolve(root, 'bench/main.ts'), { root, configFile: false, logLevel: 'error' });
await module.main(process.argv.slice(2));
// Dawn keeps handles open; the figures are written, so leave now.
process.exit(0);
