// shaders/lib_rng.wgsl (through shaders/rng_fill.wgsl) against its CPU twin src/kernels/rng.cpu.ts: the hash
// bits and the uniforms must agree bit for bit (u32 arithmetic, and (h >> 8)·2^-24 is exact in f32), and the
// uniforms must look uniform. The statistical bounds are 6σ or wider: the seeds are fixed, so each check is
// deterministic, and a hash good enough for dropout passes them at any seed.
import { describe, expect, it } from 'vitest';
import { dropout_forward } from '../../src/kernels/dropout';
import { rng_fill } from '../../src/kernels/rng_fill';
import { dropoutMult, pcgHash, rngUniform } from '../../src/kernels/rng.cpu';
import { Tensor } from '../../src/gpu/tensor';
import { gpu } from '../helpers/gpu';

const N = 1 << 16;

async function fill(seed: number, n = N) {
  const ctx = await gpu();
  const { bits, uniform } = rng_fill(ctx, n, seed);
  const out = { bits: await bits.readU32(), uniform: await uniform.read() };
  bits.free();
  uniform.free();
  return out;
}

describe('lib_rng', () => {
  it.each([0, 1, 42, 0xdeadbeef, 0xffffffff])(
    'GPU hash and uniforms equal the CPU twin bit for bit, seed = %i',
    async (seed) => {
      const { bits, uniform } = await fill(seed);
      for (let i = 0; i < N; i++) {
        const h = pcgHash((i ^ pcgHash(seed)) >>> 0);
        if (bits[i] !== h || uniform[i] !== rngUniform(seed, i)) {
          throw new Error(`seed ${seed}, idx ${i}: GPU ${bits[i]} / ${uniform[i]}, CPU ${h} / ${rngUniform(seed, i)}`);
        }
      }
    },
  );

  it('the hash of a few inputs, computed by hand from the PCG-RXS-M-XS steps', () => {
    // pcg_hash(0): state = 2891336453; word = ((state >> ((state >> 28) + 4)) ^ state) · 277803737 mod 2^32;
    // result = (word >> 22) ^ word.
    const manual = (x: number) => {
      const state = Number((BigInt(x) * 747796405n + 2891336453n) % 2n ** 32n);
      const word = Number((BigInt(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0) * 277803737n) % 2n ** 32n);
      return ((word >>> 22) ^ word) >>> 0;
    };
    for (const x of [0, 1, 2, 12345, 0x7fffffff, 0xffffffff]) expect(pcgHash(x)).toBe(manual(x));
  });

  it('uniforms lie in [0, 1) and look uniform: mean, a 16-bin histogram, serial and cross-seed correlation', async () => {
    const a = (await fill(1234)).uniform,
      b = (await fill(1235)).uniform;
    expect(a.every((v) => v >= 0 && v < 1)).toBe(true);
    // Mean: σ = sqrt(1/12 / N) ≈ 0.00113; ±0.008 is 7σ.
    const mean = a.reduce((s, v) => s + v, 0) / N;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.008);
    // Histogram: 16 bins of expected N/16 = 4096, σ = sqrt(4096·15/16) ≈ 62; ±400 is 6.5σ per bin.
    const bins = new Array(16).fill(0);
    for (const v of a) bins[Math.floor(v * 16)]++;
    for (const c of bins) expect(Math.abs(c - N / 16)).toBeLessThan(400);
    // Correlation of neighbours in one stream, and of the same index in streams seed and seed + 1 (dropout
    // masks of adjacent layers): σ = 1/sqrt(N) ≈ 0.0039; |r| < 0.025 is 6σ.
    const corr = (x: ArrayLike<number>, y: ArrayLike<number>, n: number) => {
      let sxy = 0;
      for (let i = 0; i < n; i++) sxy += (x[i] - 0.5) * (y[i] - 0.5);
      return sxy / n / (1 / 12);
    };
    expect(Math.abs(corr(a, a.subarray(1), N - 1))).toBeLessThan(0.025);
    expect(Math.abs(corr(a, b, N))).toBeLessThan(0.025);
  });

  it('dropout masks from the GPU dropout kernel equal dropoutMult on the CPU', async () => {
    // Also exercises lib_rng's dropout_mult itself (not only rng_uniform): with x = 1, y is the multiplier.
    const ctx = await gpu();
    const n = 5000,
      p = 0.3,
      seed = 77;
    const x = Tensor.from(ctx, new Float32Array(n).fill(1), [n]);
    const y = dropout_forward(x, p, seed);
    const got = await y.read();
    for (let i = 0; i < n; i++) {
      const want = dropoutMult(seed, i, Math.fround(p));
      // 1/(1 - p) in f32 with WGSL's 2.5-ULP division, vs float64: within 8u.
      if ((got[i] === 0) !== (want === 0) || Math.abs(got[i] - want) > 8 * 2 ** -24 * want)
        throw new Error(`idx ${i}: GPU ${got[i]}, CPU ${want}`);
    }
    x.free();
    y.free();
  });
});
