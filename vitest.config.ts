import { defineConfig } from 'vitest/config';

// Three projects, one `vitest run`:
//   lavapipe     every Node test on Mesa's lavapipe (has shader-f16)
//   swiftshader  the GPU runtime, kernel and autograd tests again on SwiftShader (no f16, other limits)
//   browser      end-to-end tests of the studio page in Debian's Chromium (SwiftShader WebGPU)
const common = { pool: 'forks' as const, testTimeout: 120_000, hookTimeout: 120_000 };

export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          ...common,
          name: 'lavapipe',
          include: ['tests/**/*.test.ts'],
          exclude: ['tests/e2e/**'],
          env: { WEBLORA_DRIVER: 'lavapipe' },
        },
      },
      {
        extends: true,
        test: {
          ...common,
          name: 'swiftshader',
          include: ['tests/kernels/**/*.test.ts', 'tests/gpu/**/*.test.ts', 'tests/autograd/**/*.test.ts'],
          env: { WEBLORA_DRIVER: 'swiftshader' },
        },
      },
      {
        extends: true,
        test: { ...common, name: 'browser', include: ['tests/e2e/**/*.test.ts'], fileParallelism: false },
      },
    ],
  },
});
