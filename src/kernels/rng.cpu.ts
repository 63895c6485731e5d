// CPU twin of shaders/lib_rng.wgsl: the same PCG hash, bit for bit.

export function pcgHash(x: number): number {
  const state = (Math.imul(x >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

export function rngUniform(seed: number, idx: number): number {
  return (pcgHash((idx ^ pcgHash(seed)) >>> 0) >>> 8) / 16777216;
}

export function dropoutMult(seed: number, idx: number, p: number): number {
  if (p <= 0) return 1;
  return rngUniform(seed, idx) >= p ? 1 / (1 - p) : 0;
}
