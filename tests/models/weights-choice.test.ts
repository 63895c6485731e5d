// The weights choice at load (src/models/weights.ts): int8 / int4 quantize every linear weight and table whose
// rows split into 32-value blocks, exactly as src/gpu/quant.ts does on the CPU; the rest stays f16 (f32 without
// shader-f16) and the load says which; the bytes on the GPU are what estimateMemory counts for each choice; a
// quantized table is cut into row chunks that each fit one binding; a GGUF tensor already in the chosen blocks
// goes up as it is, one in the other kind is requantized with a note; swap takes a float tensor in place of a
// quantized one of the same shape.
import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context';
import { dequantize, quantize, quantizeQ8, type QuantBlocks } from '../../src/gpu/quant';
import { Tensor } from '../../src/gpu/tensor';
import { expectedTensors, parseConfig, type ModelConfig } from '../../src/models/config';
import { estimateMemory } from '../../src/models/memory';
import { GpuWeights, rowsPerChunk, weightNames, WEIGHTS_CHOICES, type TensorReader } from '../../src/models/weights';
import { BUNDLED, loadFixtureModel } from '../helpers/fixtures';
import { gpu, rng } from '../helpers/gpu';

/** `ctx` with a smaller storage binding limit (everything else, the device included, is ctx's own). */
function withBinding(ctx: GpuContext, bytes: number): GpuContext {
  const limits = { ...ctx.limits, maxStorageBufferBindingSize: bytes, maxBufferSize: ctx.limits.maxBufferSize };
  return Object.create(ctx, { limits: { value: limits } }) as GpuContext;
}

/** Random weights of the shapes the config implies. */
function randomReaders(cfg: ModelConfig, seed: number): Map<string, TensorReader> {
  const g = rng(seed);
  return new Map(
    [...expectedTensors(cfg)].map(([name, shape]) => {
      const data = g.uniform(
        shape.reduce((a, b) => a * b, 1),
        -0.05,
        0.05,
      );
      return [name, { shape, read: async () => data.slice() }];
    }),
  );
}

const expectBlocks = (got: QuantBlocks, want: QuantBlocks, what: string) => {
  expect(got.kind, what).toBe(want.kind);
  expect([got.rows, got.cols], what).toEqual([want.rows, want.cols]);
  expect(Buffer.from(got.q.buffer).equals(Buffer.from(want.q.buffer)), `${what}: quants`).toBe(true);
  expect(Array.from(got.scales), `${what}: scales`).toEqual(Array.from(want.scales));
};

describe('weights choice at load', () => {
  it('bundled model: int8/int4 blocks equal the CPU quantizer; down_proj (cols 344) stays float, said in a note; bytes = estimate', async () => {
    const ctx = await gpu();
    const files = await loadFixtureModel(BUNDLED);
    const cfg = files.config;
    const names = weightNames(cfg);
    const float = ctx.hasF16 ? 'f16' : 'f32';
    const figures: string[] = [];
    for (const choice of WEIGHTS_CHOICES) {
      if (choice === 'f16' && !ctx.hasF16) continue;
      await ctx.sync();
      const live0 = ctx.alloc.liveBytes;
      let last = 0;
      const w = await GpuWeights.load(ctx, cfg, files.weights, { dtype: choice, onProgress: (d) => (last = d) });
      expect(last).toBe(names.large.length + names.small.length + names.tables.length);
      const est = estimateMemory(cfg, {
        weightDtype: choice,
        hasF16: ctx.hasF16,
        batch: 1,
        seqLen: 8,
        rank: 2,
        targets: ['q_proj'],
        checkpointing: false,
      });
      // rope.inv_freq is the model code's own (head_dim / 2 floats), not a checkpoint tensor.
      expect(w.bytes - w.get('rope.inv_freq').bytes, choice).toBe(est.weightBytes);
      expect(ctx.alloc.liveBytes - live0).toBeGreaterThanOrEqual(w.bytes);
      figures.push(`${choice} ${(w.bytes / 1024).toFixed(1)} KiB`);
      const kind = choice === 'int8' ? 'q8' : choice === 'int4' ? 'q4' : null;
      for (const name of names.large) {
        const t = w.get(name);
        const down = name.endsWith('down_proj.weight');
        expect(t.dtype, name).toBe(kind ? (down ? float : kind) : choice);
        if (kind && !down && name.includes('layers.1.')) {
          const x = await files.weights.get(name)!.read();
          expectBlocks(await t.readQuant(), quantize(kind, x, t.shape[0], t.shape[1]), name);
        }
      }
      const table = w.embedding;
      expect(table.length).toBe(1);
      expect(w.lmHead).toBe(w.embedding); // tied
      if (kind) {
        const x = await files.weights.get(names.tables[0])!.read();
        expectBlocks(await table[0].table.readQuant(), quantize(kind, x, 2048, 128), 'embed_tokens');
        expect(w.notes.length).toBe(1);
        expect(w.notes[0]).toMatch(
          new RegExp(
            `^4 of 29 weights stay ${float} under ${choice}: .*model\\.layers\\.0\\.mlp\\.down_proj\\.weight \\[128,344\\]`,
          ),
        );
      } else expect(w.notes).toEqual([]);
      w.free();
    }
    console.log(`MEASURED bundled model weights on the GPU: ${figures.join(', ')}`);
  });

  it('a quantized table is cut into row chunks of whole 64-row blocks that fit one binding (3 blocks a row, odd)', async () => {
    const ctx = await gpu();
    const cfg = parseConfig({
      architectures: ['LlamaForCausalLM'],
      vocab_size: 1000,
      hidden_size: 96,
      intermediate_size: 200,
      num_hidden_layers: 1,
      num_attention_heads: 3,
      num_key_value_heads: 1,
      head_dim: 32,
      tie_word_embeddings: false,
    });
    const readers = randomReaders(cfg, 3);
    for (const [choice, kind, rowBytes] of [
      ['int8', 'q8', 96],
      ['int4', 'q4', 48],
    ] as const) {
      const small = withBinding(ctx, 300 * rowBytes); // 300 rows of quants: chunks of 256 rows
      expect(rowsPerChunk(small, 96, kind)).toBe(256);
      const w = await GpuWeights.load(small, cfg, readers, { dtype: choice });
      for (const [chunks, name] of [
        [w.embedding, 'model.embed_tokens.weight'],
        [w.lmHead, 'lm_head.weight'],
      ] as const) {
        expect(chunks.map((c) => [c.rowStart, c.table.shape[0]])).toEqual([
          [0, 256],
          [256, 256],
          [512, 256],
          [768, 232],
        ]);
        const want = dequantize(quantize(kind, await readers.get(name)!.read(), 1000, 96));
        const got = new Float32Array(1000 * 96);
        for (const c of chunks) {
          expect(c.table.dtype).toBe(kind);
          expect(c.table.quantParts.q.size).toBeLessThanOrEqual(300 * rowBytes);
          got.set(await c.table.read(), c.rowStart * 96);
        }
        expect(got).toEqual(want);
      }
      w.free();
    }
  });

  it('GGUF blocks: Q8_0 goes up as it is under int8; under int4 it is dequantized and quantized again, with a note', async () => {
    const ctx = await gpu();
    const files = await loadFixtureModel(BUNDLED);
    const cfg = files.config;
    const stored = new Map<string, QuantBlocks>();
    let asIs = 0;
    // A GGUF-like reader: 2-D tensors whose cols split into blocks are stored as Q8_0.
    const readers = new Map<string, TensorReader>();
    for (const [name, r] of files.weights) {
      const cols = r.shape[r.shape.length - 1];
      if (r.shape.length !== 2 || cols % 32) {
        readers.set(name, r);
        continue;
      }
      const qb = quantizeQ8(await r.read(), r.shape[0], cols);
      stored.set(name, qb);
      readers.set(name, {
        shape: r.shape,
        dtype: 'Q8_0',
        read: async () => dequantize(qb),
        quant: async () => (asIs++, qb),
      });
    }
    const w8 = await GpuWeights.load(ctx, cfg, readers, { dtype: 'int8' });
    expect(asIs).toBe(stored.size);
    const q = 'model.layers.2.self_attn.q_proj.weight';
    expectBlocks(await w8.get(q).readQuant(), stored.get(q)!, q);
    expect(w8.notes.filter((n) => /stored Q8_0/.test(n))).toEqual([]);
    w8.free();
    asIs = 0;
    const w4 = await GpuWeights.load(ctx, cfg, readers, { dtype: 'int4' });
    expect(asIs).toBe(0);
    expectBlocks(await w4.get(q).readQuant(), quantize('q4', dequantize(stored.get(q)!), 128, 128), q);
    expect(w4.notes).toContain(`${q}: stored Q8_0, dequantized and quantized again as int4`);
    // swap: a float tensor of the same shape takes a q4 weight's place (a merge does this), and back.
    const f32 = Tensor.from(ctx, await w4.get(q).read(), [128, 128], 'merged');
    const old = w4.swap(q, f32);
    expect([old.dtype, w4.get(q).dtype]).toEqual(['q4', 'f32']);
    expect(w4.swap(q, old)).toBe(f32);
    expect(() => w4.swap(q, Tensor.zeros(ctx, [128, 64], 'wrong'))).toThrow(/\[128,64\]/);
    f32.free();
    w4.free();
  });
});
