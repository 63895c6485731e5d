// Qwen3 0.6B, Llama 3.2 1B and Gemma 3 270M at their real shapes (every tensor as in the Hub checkpoint, random F16
// values; tests/helpers/real-shapes.ts), with their real tokenizers, generated on disk in the test and
// served from a Hub-shaped local server: the loader reads the repo, the F16 weights go to the GPU, and one
// LoRA step (forward, backward, AdamW) runs on lavapipe at B = 1, T = 32 on the tokens of a real sentence.
//
// With weights of standard deviation 0.02 the logits are small and nearly uniform, so the mean loss is
// about ln(V) (ln 151,936 = 11.93, ln 128,256 = 11.76): a logit is h·e with h of RMS 1 after the final norm
// and e ~ 0.02 per element, a spread of 0.02·√C (0.64 and 0.91 here), which lifts the loss above ln V by
// a fraction of a nat (measured: Qwen3 12.36, Llama 12.15). The check allows ±1.
// The memory estimate (src/models/memory.ts) and the allocator's peak for the step are printed.

import { describe, expect, it } from 'vitest';
import { loadModelFiles } from '../../src/loaders/model-files';
import { hubSource } from '../../src/loaders/sources';
import { loadModel } from '../../src/models';
import { DEFAULT_TARGETS, expectedTensors } from '../../src/models/config';
import { LoraState } from '../../src/models/lora';
import { estimateMemory } from '../../src/models/memory';
import { AdamW } from '../../src/training/optimizer';
import { forwardBackward } from '../../src/training/step';
import { fmtBytes } from '../../src/util/format';
import { gpu } from '../helpers/gpu';
import { REAL_SHAPES, serveHubRepos, writeRealShapeFolder, type RealShapeName } from '../helpers/real-shapes';

const TEXT =
  'The lighthouse keeper climbed the spiral stairs every evening at dusk, lit the great lamp, and wrote ' +
  'the weather in a leather book: wind from the west, a grey sea, three ships passing north. 灯塔守护者。';
const [B, T, R] = [1, 32, 8];

describe('real-shape checkpoints from a Hub-shaped server, one LoRA step on the GPU', () => {
  it.each(Object.keys(REAL_SHAPES) as RealShapeName[])(
    '%s',
    async (name) => {
      const shape = REAL_SHAPES[name];
      const ckpt = writeRealShapeFolder(shape);
      const server = await serveHubRepos({ [shape.repo]: ckpt.dir });
      try {
        console.log(
          `[real-shapes] ${name}: ${(ckpt.params / 1e6).toFixed(1)} M parameters, ${fmtBytes(ckpt.bytes)} of F16 safetensors written in ${ckpt.seconds.toFixed(1)} s`,
        );
        let t0 = performance.now();
        let tenth = 0;
        const m = await loadModelFiles(hubSource(shape.repo, { baseUrl: server.url }), (p) => {
          if (p.file !== 'model.safetensors' || !p.total || p.loaded < ((tenth + 1) / 10) * p.total) return;
          tenth = Math.floor((10 * p.loaded) / p.total);
          console.log(
            `[real-shapes] ${name}: ${p.file} ${tenth * 10}% after ${((performance.now() - t0) / 1000).toFixed(0)} s`,
          );
        });
        const cfg = m.config;
        expect(cfg.family).toBe(shape.tokenizer === 'llama3' ? 'llama' : shape.tokenizer);
        expect(m.weights.size).toBe(expectedTensors(cfg).size);
        // Every id the text can produce has an embedding row (Gemma 3 lists one added token past it, which
        // encode refuses: tests/loaders/tokenizer.test.ts).
        expect(m.tokenizer.embeddingRows).toBe(cfg.vocabSize);
        expect(m.tokenizer.vocabSize).toBeLessThanOrEqual(cfg.vocabSize + (shape.tokenizer === 'gemma3' ? 1 : 0));
        const fetchS = (performance.now() - t0) / 1000;

        const ctx = await gpu();
        const targets = DEFAULT_TARGETS[cfg.family];
        const est = estimateMemory(cfg, {
          weightDtype: 'f16',
          batch: B,
          seqLen: T,
          rank: R,
          targets,
          checkpointing: false,
          maxBindingBytes: ctx.limits.maxStorageBufferBindingSize,
        });
        const live0 = ctx.alloc.liveBytes;
        ctx.alloc.peakBytes = ctx.alloc.allocatedBytes; // this model's peak from here
        t0 = performance.now();
        const model = await loadModel(ctx, cfg, m.weights, { dtype: 'f16' });
        const uploadS = (performance.now() - t0) / 1000;
        console.log(
          `[real-shapes] ${name}: read from the server ${fetchS.toFixed(1)} s, upload ${uploadS.toFixed(1)} s, ${fmtBytes(model.weights.bytes)} of weights on the GPU`,
        );
        // The estimate counts every checkpoint tensor; the model also keeps RoPE's (head_dim / 2) f32 frequencies,
        // a second table for Gemma 3's sliding layers (rope_local_base_freq).
        const ropeTables = (cfg.ropeTheta > 0 ? 1 : 0) + (cfg.ropeLocalTheta ? 1 : 0);
        expect(model.weights.bytes).toBe(est.weightBytes + ropeTables * 2 * cfg.headDim);

        const lora = LoraState.init(ctx, cfg, { r: R, alpha: 2 * R, useRslora: false, dropout: 0, targets }, 7);
        const opt = new AdamW(lora, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
        const tokens = m.tokenizer.encode(TEXT, true);
        expect(tokens.length).toBeGreaterThan(B * T);
        const ids = Uint32Array.from(tokens.slice(0, B * T));
        const tgt = Uint32Array.from(tokens.slice(1, B * T + 1));
        t0 = performance.now();
        const r = await forwardBackward(model, lora, { ids, targets: tgt, B, T }, {});
        opt.apply(1e-3);
        const after = await lora.read();
        const stepS = (performance.now() - t0) / 1000;

        const loss = r.lossSum / r.count;
        expect(r.count).toBe(B * T);
        expect(Number.isFinite(loss)).toBe(true);
        expect(Math.abs(loss - Math.log(cfg.vocabSize))).toBeLessThan(1);
        // B starts at zero (PEFT's init); one AdamW step moves every B by about the learning rate.
        expect(after.size).toBe(targets.length * cfg.numLayers);
        for (const [path, { A, B: b }] of after) {
          expect(b.every((x) => Number.isFinite(x)) && b.some((x) => x !== 0), `${path}: B moved`).toBe(true);
          expect(A.every((x) => Number.isFinite(x))).toBe(true);
        }
        console.log(
          `[real-shapes] ${name}: loss ${loss.toFixed(3)} (ln V = ${Math.log(cfg.vocabSize).toFixed(3)}); ` +
            `step ${stepS.toFixed(1)} s on ${process.env.WEBLORA_DRIVER}; ` +
            `memory estimate ${fmtBytes(est.totalBytes)} (weights ${fmtBytes(est.weightBytes)}, LoRA ${fmtBytes(est.loraBytes)}, ` +
            `activations ${fmtBytes(est.activationBytes)}, logits ${fmtBytes(est.logitsBytes)}), allocator peak ${fmtBytes(ctx.alloc.peakBytes)}`,
        );
        opt.free();
        lora.free();
        model.weights.free();
        expect(ctx.alloc.liveBytes).toBe(live0);
      } finally {
        await server.close();
        ckpt.remove();
      }
    },
    2_400_000,
  );
});
