import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Three projects, one `vitest run`:
//   lavapipe     every Node test on Mesa's lavapipe (has shader-f16)
//   swiftshader  the GPU runtime, kernel and autograd tests again on SwiftShader (no f16, other limits)
//   browser      end-to-end tests of the studio page in Debian's Chromium (SwiftShader WebGPU)
// The real-shape checkpoints (Qwen3 0.6B and Llama 3.2 1B at full size, gigabytes generated in the test) take
// minutes each on a software GPU, so they are their own projects, run by `npm run test:real`
// (WEBLORA_REAL_SHAPES=1), not by `npm test`.
const REAL = ['tests/models/real-shapes.test.ts', 'tests/e2e/real-shape.test.ts'];
const common = { pool: 'forks' as const, testTimeout: 120_000, hookTimeout: 120_000 };
// Node test files at once. Vitest's default, one less than the cores, is a single worker on a 2-core machine, and
// one file keeps about one core busy (lavapipe builds each pipeline on one thread, the CPU twins and parsers are
// plain JS, a file starts by importing and transforming its modules), so a second worker fills the other core.
// Every Node project gets the same count: vitest runs projects with equal counts as one pool. The browser project
// stays one file at a time (one Chromium, one build of the site), after the Node files.
const node = { ...common, maxWorkers: Math.max(2, availableParallelism() - 1) };

export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          ...node,
          name: 'lavapipe',
          include: ['tests/**/*.test.ts'],
          exclude: ['tests/e2e/**', ...REAL],
          env: { WEBLORA_DRIVER: 'lavapipe' },
        },
      },
      {
        extends: true,
        test: {
          ...node,
          name: 'swiftshader',
          include: ['tests/kernels/**/*.test.ts', 'tests/gpu/**/*.test.ts', 'tests/autograd/**/*.test.ts'],
          env: { WEBLORA_DRIVER: 'swiftshader' },
        },
      },
      {
        extends: true,
        test: {
          ...common,
          name: 'browser',
          include: ['tests/e2e/**/*.test.ts'],
          exclude: REAL,
          fileParallelism: false,
        },
      },
      ...(process.env.WEBLORA_REAL_SHAPES
        ? [
            {
              extends: true as const,
              test: { ...node, name: 'real-lavapipe', include: [REAL[0]], env: { WEBLORA_DRIVER: 'lavapipe' } },
            },
            {
              extends: true as const,
              test: { ...common, name: 'real-browser', include: [REAL[1]], fileParallelism: false },
            },
          ]
        : []),
    ],
  },
});
