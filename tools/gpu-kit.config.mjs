// vite build config of tools/gpu-kit.sh: bench/main.ts as one ESM file for Node (the shaders, which
// src/gpu/shaders.ts imports with import.meta.glob, inlined), with only the `webgpu` package left outside.
// The bundle sits at .gpu/kit/.gpu/bench/main.mjs so that, like bench/main.ts, it finds the repo root two folders up.
export default {
  publicDir: false,
  logLevel: 'warn',
  build: {
    ssr: 'bench/main.ts',
    outDir: '.gpu/kit/.gpu/bench',
    emptyOutDir: true,
    target: 'node20',
    rollupOptions: {
      external: ['webgpu', /^node:/],
      output: { format: 'esm', entryFileNames: 'main.mjs', inlineDynamicImports: true },
    },
  },
  ssr: { noExternal: true, external: ['webgpu'] },
};
