import { describe, expect, it } from 'vitest';
import { checkFits, estimateMemory, gradWorkspaceBytes } from '../../src/models/memory';
import { selectModules } from '../../src/models/modules';
import { headChunkCols } from '../../src/models/head';
import { expectedTensors, parseConfig } from '../../src/models/config';
import { quantLayout } from '../../src/gpu/quant';

const GPT2 = parseConfig({
  architectures: ['GPT2LMHeadModel'],
  vocab_size: 50257,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_positions: 1024,
});
const SMOLLM2_JSON = {
  architectures: ['LlamaForCausalLM'],
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  tie_word_embeddings: true,
};
const SMOLLM2 = parseConfig(SMOLLM2_JSON);
const LLAMA7B = parseConfig({
  architectures: ['LlamaForCausalLM'],
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
});
// gemma-3-270m (the fields that fix its shapes and memory; its full config.json: tests/models/families.test.ts)
const GEMMA3_270M = parseConfig({
  architectures: ['Gemma3ForCausalLM'],
  vocab_size: 262144,
  hidden_size: 640,
  intermediate_size: 2048,
  num_hidden_layers: 18,
  num_attention_heads: 4,
  num_key_value_heads: 1,
  head_dim: 256,
  sliding_window: 512,
  query_pre_attn_scalar: 256,
});
const llama = { targets: ['q_proj'] };
const DEFAULT_LIMITS = { maxBufferSize: 256 * 2 ** 20, maxStorageBufferBindingSize: 128 * 2 ** 20 };
const base = { weightDtype: 'f32' as const, batch: 1, seqLen: 64, rank: 8, targets: ['c_attn'], checkpointing: false };

describe('estimateMemory', () => {
  it('counts GPT-2 small weights: f32 = 4 × 124,439,808; f16 halves the matrices, norms, biases and wpe stay f32', () => {
    expect(estimateMemory(GPT2, base).weightBytes).toBe(124_439_808 * 4);
    // 121,344 one-dimensional parameters (layer norms and biases) and wpe's 1024 × 768 learned positions stay f32.
    const f32 = 121_344 + 1024 * 768;
    expect(estimateMemory(GPT2, { ...base, weightDtype: 'f16' }).weightBytes).toBe((124_439_808 - f32) * 2 + f32 * 4);
  });

  it('int8 / int4 count each matrix by quantLayout (1.0625 / 0.5625 bytes a value, scales 256-aligned)', () => {
    // SmolLM2-135M: every matrix has cols 576 or 1536, multiples of 32, so every one is quantized.
    const f32 = estimateMemory(SMOLLM2, { ...base, ...llama });
    const matrices = [...expectedTensors(SMOLLM2)].filter(([, s]) => s.length === 2);
    const vectors = (f32.weightBytes - matrices.reduce((n, [, s]) => n + s[0] * s[1] * 4, 0)) / 4;
    for (const [weightDtype, kind] of [
      ['int8', 'q8'],
      ['int4', 'q4'],
    ] as const) {
      const e = estimateMemory(SMOLLM2, { ...base, ...llama, weightDtype });
      const want = matrices.reduce((n, [, s]) => n + quantLayout(kind, s[0], s[1]).bytes, 0) + vectors * 4;
      expect(e.weightBytes).toBe(want);
      const perValue = weightDtype === 'int8' ? 1.0625 : 0.5625;
      const values = matrices.reduce((n, [, s]) => n + s[0] * s[1], 0);
      expect(e.weightBytes / (values * perValue + vectors * 4)).toBeCloseTo(1, 3); // padding to 256 is tiny
    }
    // A matrix whose cols are not a multiple of 32 (down_proj of cols 344) stays f16, or f32 without shader-f16.
    const odd = parseConfig({ ...SMOLLM2_JSON, intermediate_size: 344 });
    const down = 576 * 344;
    const int8 = (hasF16: boolean) =>
      estimateMemory(odd, { ...base, ...llama, weightDtype: 'int8', hasF16 }).weightBytes;
    expect(int8(false) - int8(true)).toBe(30 * down * 2);
  });

  it('counts LoRA as parameters + gradients + two Adam moments in f32', () => {
    expect(estimateMemory(GPT2, base).loraBytes).toBe(294_912 * 4 * 4);
    const all = estimateMemory(SMOLLM2, {
      ...base,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    });
    // per layer: r·[(576+576) + 2(576+192) + (576+576) + 2(576+1536) + (1536+576)] = 8·10176
    expect(all.loraBytes).toBe(30 * 8 * 10176 * 16);
  });

  it('counts the saved activations the model code keeps (SmolLM2, per row and block)', () => {
    const N = 2 * 128;
    const e = estimateMemory(SMOLLM2, { ...base, batch: 2, seqLen: 128, targets: ['q_proj', 'v_proj'] });
    // x, n1, h, n2 (4·576) + q, attn out (2·576) + k, v (2·192) + gate, up, act (3·1536) + lse (9) + 2 rstd + 2 U's (2·8)
    const perRow = 4 * 576 + 2 * 576 + 2 * 192 + 3 * 1536 + 9 + 2 + 16;
    expect(e.blockActivationBytes).toBe(N * perRow * 4);
    // lora_grad's workspace: G (N·r) and the partials of q (32 chunks of 8 rows, r·(576 + 576) each) and v (r·(576 +
    // 192)) at once
    const grad = 4 * (N * 8 + 32 * 8 * (576 + 576) + 32 * 8 * (576 + 192));
    // final norm, head dx, workspace
    const tail = N * (2 * 576 + 1) * 4 + N * 576 * 4 + e.blockActivationBytes + grad;
    expect(e.activationBytes).toBe(30 * e.blockActivationBytes + tail);
    const ck = estimateMemory(SMOLLM2, {
      ...base,
      batch: 2,
      seqLen: 128,
      targets: ['q_proj', 'v_proj'],
      checkpointing: true,
    });
    expect(ck.activationBytes).toBe(30 * N * 576 * 4 + e.blockActivationBytes + tail);
    expect(ck.activationBytes).toBeLessThan(e.activationBytes / 5);
  });

  it("counts lora_grad's workspace: SmolLM2 at B 8 x T 512, r 8, all 7 targets (the shape report's step)", () => {
    const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
    const ws = gradWorkspaceBytes(selectModules(SMOLLM2, targets), 4096, 8, 128 * 2 ** 20);
    // 512 chunks each: gate and up side by side (each dA and dB padded to 64 floats: 4608 + 12288 a linear) and then
    // down (r·(1536 + 576)), the largest pair of calls in a row; three G's of 4096·8 (q, k, v)
    expect(ws).toBe(4 * (3 * 4096 * 8 + 512 * (2 * (4608 + 12288) + 8 * (1536 + 576))));
    expect(ws / 2 ** 20).toBeCloseTo(99.4, 1);
    // without k, q and v are two calls: the most G's in one call are gate and up's two; the largest pair the same
    const noK = gradWorkspaceBytes(
      selectModules(
        SMOLLM2,
        targets.filter((t) => t !== 'k_proj'),
      ),
      4096,
      8,
      128 * 2 ** 20,
    );
    expect(noK).toBe(ws - 4 * 4096 * 8);
    // a small binding: the pair is capped to what one binding holds beside the G's
    const small = gradWorkspaceBytes(selectModules(SMOLLM2, targets), 4096, 8, 80 * 2 ** 20);
    expect(small).toBeLessThanOrEqual(80 * 2 ** 20);
    expect(small).toBeGreaterThanOrEqual(4 * 512 * 2 * (4608 + 12288));
  });

  it('holds one (N, max(VC, C)) buffer for a chunk of the head logits and its (N, 3) row statistics, not (B·T, V) logits', () => {
    expect(headChunkCols(64, 128 * 2 ** 20)).toBe(4096);
    expect(estimateMemory(GPT2, base).logitsBytes).toBe(64 * 4096 * 4 + 64 * 3 * 4); // N = 64
    expect(estimateMemory(GPT2, { ...base, batch: 4, seqLen: 1024 }).logitsBytes).toBe(4096 * 4096 * 4 + 4096 * 12);
    // 16,384 rows: 1,024 columns keep the chunk at 64 MiB
    expect(estimateMemory(GPT2, { ...base, batch: 16, seqLen: 1024 }).logitsBytes).toBe(16384 * 1024 * 4 + 16384 * 12);
    // 65,536 rows: 256 columns, but the buffer also holds the (N, C = 768) target rows
    expect(estimateMemory(GPT2, { ...base, batch: 64, seqLen: 1024 }).logitsBytes).toBe(65536 * 768 * 4 + 65536 * 12);
    const e = estimateMemory(GPT2, base);
    expect(e.totalBytes).toBe(e.weightBytes + e.loraBytes + e.activationBytes + e.logitsBytes);
  });

  it('rejects nonsense sizes and unknown targets', () => {
    expect(() => estimateMemory(GPT2, { ...base, batch: 0 })).toThrow(/batch must be a positive integer/);
    expect(() => estimateMemory(GPT2, { ...base, targets: ['q_proj'] })).toThrow(/"q_proj" does not exist/);
  });
});

describe('checkFits', () => {
  it('GPT-2 small in f32: wte (154 MB) exceeds one binding, which is only info because it is split by rows', () => {
    const e = estimateMemory(GPT2, base);
    expect([e.largestTensorName, e.largestTensorBytes, e.largestIsTable]).toEqual([
      'transformer.wte.weight',
      50257 * 768 * 4,
      true,
    ]);
    const msgs = checkFits(e, DEFAULT_LIMITS);
    expect(msgs.filter((m) => m.level === 'error')).toEqual([]);
    expect(msgs.some((m) => m.level === 'info' && /transformer\.wte\.weight .*split/.test(m.message))).toBe(true);
  });

  it('a linear weight larger than one binding is an error (Llama-7B gate_proj in f32), and fits in f16', () => {
    const e = estimateMemory(LLAMA7B, { ...base, targets: ['q_proj'] });
    expect(e.largestUnsplitName).toBe('model.layers.0.mlp.gate_proj.weight');
    const errors = checkFits(e, DEFAULT_LIMITS).filter((m) => m.level === 'error');
    expect(errors.length).toBe(1);
    expect(errors[0].message).toMatch(/gate_proj\.weight needs 172\.0 MiB/);
    expect(
      checkFits(estimateMemory(LLAMA7B, { ...base, targets: ['q_proj'], weightDtype: 'f16' }), DEFAULT_LIMITS).filter(
        (m) => m.level === 'error',
      ),
    ).toEqual([]);
  });

  it('an estimate over budget suggests the next smaller weights choice, never the one in use', () => {
    const budget = (weightDtype: 'f32' | 'f16' | 'int8' | 'int4', hasF16 = true) =>
      checkFits(estimateMemory(SMOLLM2, { ...base, ...llama, weightDtype }), DEFAULT_LIMITS, 1024, hasF16).find(
        (m) => m.level === 'error',
      )!.message;
    expect(budget('f32')).toMatch(/or use f16 weights\.$/);
    expect(budget('f32', false)).toMatch(/or use int8 weights\.$/);
    expect(budget('f16')).toMatch(/or use int8 weights\.$/);
    expect(budget('int8')).toMatch(/or use int4 weights\.$/);
    expect(budget('int4')).toMatch(/turn on checkpointing\.$/);
    // A linear past one binding (Llama-7B gate_proj, 172 MiB in f32) in f16 is 86 MiB: fine; the message names f16.
    const e = checkFits(estimateMemory(LLAMA7B, { ...base, targets: ['q_proj'] }), DEFAULT_LIMITS);
    expect(e.find((m) => m.level === 'error')!.message).toMatch(/use f16 weights or a smaller model/);
  });

  it('gemma-3-270m in f16 and f32: the 262,144-row tied table is split by rows; the head holds a chunk, not B·T × V', () => {
    const opts = { ...base, batch: 4, seqLen: 256, targets: ['q_proj', 'v_proj'], checkpointing: true };
    for (const weightDtype of ['f16', 'f32'] as const) {
      const e = estimateMemory(GEMMA3_270M, { ...opts, weightDtype });
      const w = weightDtype === 'f16' ? 2 : 4;
      expect([e.largestTensorName, e.largestTensorBytes, e.largestIsTable]).toEqual([
        'model.embed_tokens.weight',
        262144 * 640 * w,
        true,
      ]);
      expect(e.largestUnsplitName).toBe('logits chunk'); // 16 MiB, above every linear weight (gate_proj: 5 MiB in f32)
      expect(e.logitsBytes).toBe(1024 * 4096 * 4 + 1024 * 12); // N = 1024 rows of one 4,096-column chunk
      const msgs = checkFits(e, DEFAULT_LIMITS);
      expect(msgs.filter((m) => m.level === 'error')).toEqual([]);
      // per row and block: 6C + 3Q + 3KV + 3I + 2Hq + Hkv + 4 (see src/models/families/gemma3.ts) + 2 U's of rank 8
      const perRow = 6 * 640 + 3 * 1024 + 3 * 256 + 3 * 2048 + 2 * 4 + 1 + 4 + 16;
      expect(e.blockActivationBytes).toBe(1024 * perRow * 4);
      const mib = (n: number) => (n / 2 ** 20).toFixed(1);
      console.log(
        `MEASURED estimate gemma-3-270m ${weightDtype}, r 8 q/v, B 4 × T 256, checkpointing: total ${mib(e.totalBytes)} MiB = weights ${mib(e.weightBytes)} + LoRA ${mib(e.loraBytes)} + activations ${mib(e.activationBytes)} + logits chunk ${mib(e.logitsBytes)}`,
      );
    }
  });

  it('compares the total with a stated budget: over is an error, close a warning, under info', () => {
    const e = estimateMemory(GPT2, { ...base, batch: 8, seqLen: 1024 });
    const level = (hint?: number) => checkFits(e, DEFAULT_LIMITS, hint).map((m) => m.level);
    expect(level(e.totalBytes * 0.5)).toContain('error');
    expect(checkFits(e, DEFAULT_LIMITS, e.totalBytes * 0.5).find((m) => m.level === 'error')!.message).toMatch(
      /over the .* budget: lower batch/,
    );
    expect(level(e.totalBytes * 1.1)).toContain('warning');
    expect(level(e.totalBytes * 3)).not.toContain('warning');
    expect(level(e.totalBytes * 3)).not.toContain('error');
    expect(checkFits(e, DEFAULT_LIMITS).at(-1)!.message).toMatch(/does not say how much the GPU has/);
  });
});
