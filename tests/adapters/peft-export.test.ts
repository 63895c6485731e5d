// Adapters exported by WebLoRA, checked by an independent reader: tools/check_peft.py loads the exported
// folder onto the base model with its own safetensors reader and float64 model code and compares the
// logits with those WebLoRA computed. One case per family and per switch of the Llama-shaped block: Llama
// (GQA, tied), GPT-2 (Conv1D), Qwen3 (q/k norms, head_dim), Llama 3.x (rope_scaling llama3 with T beyond
// original_max_position_embeddings), SmolLM3 (NoPE layers), Mistral (sliding window shorter than T). That check needs PyTorch, so it runs when the fixtures are written:
//
//   WEBLORA_WRITE_FIXTURES=1 npx vitest run --project lavapipe tests/adapters/peft-export.test.ts
//
// writes tests/fixtures/peft-export-<case>/ (adapter/ + expected.json with the ids and WebLoRA's logits)
// and runs /usr/bin/python3 tools/check_peft.py on it into check_peft.txt. Without the variable (CI)
// the test exports again and requires the same bytes (export is deterministic), logits within
// 1e-6·max|logit| of the committed ones (the kernels are deterministic on one driver; the slack only
// allows for another Mesa build), and a check_peft.txt that PASSed for exactly these files (hashes).
// Export -> import is checked bit for bit as well (tensors, config, and a re-export).

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  exportAdapter,
  importAdapter,
  unzipAdapter,
  zipAdapter,
  type AdapterFiles,
  type CardInfo,
} from '../../src/adapters/peft';
import { forwardLogits } from '../../src/models/forward';
import { loadModel } from '../../src/models';
import { LoraState, type LoraArrays, type LoraConfig } from '../../src/models/lora';
import { selectModules } from '../../src/models/modules';
import { FIXTURES, ROOT, loadFixtureModel } from '../helpers/fixtures';
import { gpu, rng } from '../helpers/gpu';

const WRITE = process.env.WEBLORA_WRITE_FIXTURES === '1';
const FILES = ['adapter_model.safetensors', 'adapter_config.json', 'README.md'] as const;

const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** B·T tokens of logits per case: 2 × 7 unless the case needs a longer sequence to exercise its feature. */
const cases: { name: string; lc: LoraConfig; seed: number; B?: number; T?: number }[] = [
  {
    name: 'llama-gqa-tied',
    lc: {
      r: 4,
      alpha: 8,
      useRslora: true,
      dropout: 0.05,
      targets: ['q_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    },
    seed: 21,
  },
  {
    name: 'gpt2-tiny',
    lc: { r: 2, alpha: 8, useRslora: false, dropout: 0, targets: ['c_attn', 'c_fc', 'c_proj'] },
    seed: 22,
  },
  { name: 'qwen3-gqa-tied', lc: { r: 4, alpha: 8, useRslora: false, dropout: 0, targets: ALL }, seed: 23 },
  {
    // T 40 > original_max_position_embeddings 28: all three llama3 bands turn by visibly different angles
    name: 'llama3-scaled',
    lc: { r: 2, alpha: 4, useRslora: false, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] },
    seed: 24,
    B: 1,
    T: 40,
  },
  {
    name: 'smollm3-nope',
    lc: { r: 3, alpha: 6, useRslora: false, dropout: 0, targets: ['q_proj', 'k_proj', 'o_proj', 'up_proj'] },
    seed: 25,
  },
  {
    // T 11 > sliding_window 4
    name: 'mistral-window',
    lc: { r: 4, alpha: 4, useRslora: true, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj'] },
    seed: 26,
    T: 11,
  },
  {
    // Qwen2's q/k/v biases, and use_sliding_window: T 9 > sliding_window 3 on layer 0 (layer_types)
    name: 'qwen2-window',
    lc: { r: 3, alpha: 6, useRslora: false, dropout: 0, targets: ALL },
    seed: 28,
    T: 9,
  },
  {
    // T 11 > sliding_window 4 on the sliding layers; both soft caps; the q/k norms and GeGLU adapted around
    name: 'gemma3-sliding-softcap',
    lc: { r: 4, alpha: 8, useRslora: false, dropout: 0, targets: ALL },
    seed: 27,
    T: 11,
  },
];

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

function card(name: string, lc: LoraConfig): CardInfo {
  return {
    name: `peft-export-${name}`,
    baseModel: name,
    dataset: 'random weights (test fixture)',
    settings: { rank: lc.r, alpha: lc.alpha, use_rslora: lc.useRslora, targets: lc.targets },
    trainLoss: null,
    valLoss: null,
    sample: null,
  };
}

function expectBitEqual(got: Float32Array, want: Float32Array, what: string) {
  expect(got.length, what).toBe(want.length);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  let firstDiff = -1;
  for (let i = 0; i < a.length && firstDiff < 0; i++) if (a[i] !== b[i]) firstDiff = i;
  expect(firstDiff, `${what}: first differing element`).toBe(-1);
}

describe('PEFT export, checked by tools/check_peft.py', () => {
  for (const c of cases) {
    it(`${c.name}: exported adapter is deterministic, checked by the PyTorch reader, and imports back bit for bit`, async () => {
      const ctx = await gpu();
      const live0 = ctx.alloc.liveBytes;
      const dir = join(FIXTURES, `peft-export-${c.name}`);
      const files = await loadFixtureModel(join(FIXTURES, c.name));
      const cfg = files.config;
      const g = rng(c.seed);
      const init: LoraArrays = new Map();
      for (const m of selectModules(cfg, c.lc.targets)) {
        init.set(m.path, {
          A: g.uniform(c.lc.r * m.inFeatures, -0.3, 0.3),
          B: g.uniform(m.outFeatures * c.lc.r, -0.3, 0.3),
        });
      }
      const model = await loadModel(ctx, cfg, files.weights, { dtype: 'f32' });
      const lora = LoraState.fromArrays(ctx, cfg, c.lc, init);
      const arrays = await lora.read(); // as the engine exports: read back from the GPU
      const out = exportAdapter(cfg, c.lc, arrays, card(c.name, c.lc));
      const B = c.B ?? 2,
        T = c.T ?? 7;
      const ids = g.int(B * T, cfg.vocabSize);
      const t = forwardLogits(model, lora, ids, B, T);
      const logits = await t.read();
      t.free();

      if (WRITE) {
        mkdirSync(join(dir, 'adapter'), { recursive: true });
        for (const f of FILES) writeFileSync(join(dir, 'adapter', f), out[f]);
        const ids2d = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * T, (b + 1) * T)));
        writeFileSync(
          join(dir, 'expected.json'),
          JSON.stringify({
            case: c.name,
            base: `tests/fixtures/${c.name}`,
            ids: ids2d,
            logits: Array.from(logits),
            made_by: 'tests/adapters/peft-export.test.ts (WebLoRA, lavapipe, f32)',
          }) + '\n',
        );
        const args = [join(dir, 'adapter'), join(FIXTURES, c.name), join(dir, 'expected.json')].map((p) =>
          relative(ROOT, p),
        );
        let report: string;
        try {
          report = execFileSync('/usr/bin/python3', ['tools/check_peft.py', ...args], { cwd: ROOT, encoding: 'utf8' });
        } catch (e) {
          throw new Error(
            `tools/check_peft.py failed: ${(e as { stdout?: string }).stdout ?? ''}${(e as Error).message}`,
          );
        }
        writeFileSync(
          join(dir, 'check_peft.txt'),
          `$ /usr/bin/python3 tools/check_peft.py ${args.join(' ')}\n${report}`,
        );
      }

      // The committed export: same bytes now, logits as committed, and the PyTorch check passed on these files.
      for (const f of FILES) {
        const committed = readFileSync(join(dir, 'adapter', f));
        expect(
          sha256(typeof out[f] === 'string' ? Buffer.from(out[f] as string) : (out[f] as Uint8Array)),
          `${f} is exported byte for byte as committed`,
        ).toBe(sha256(committed));
      }
      const expText = readFileSync(join(dir, 'expected.json'), 'utf8');
      const exp = JSON.parse(expText);
      expect(exp.ids.flat()).toEqual(Array.from(ids));
      expect(exp.logits.length).toBe(logits.length);
      let maxAbs = 0,
        worst = 0;
      for (let i = 0; i < logits.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(exp.logits[i]));
        worst = Math.max(worst, Math.abs(logits[i] - exp.logits[i]));
      }
      expect(worst).toBeLessThanOrEqual(1e-6 * maxAbs);
      const report = readFileSync(join(dir, 'check_peft.txt'), 'utf8');
      expect(report).toContain(
        `adapter_model.safetensors sha256 ${sha256(readFileSync(join(dir, 'adapter', 'adapter_model.safetensors')))}`,
      );
      expect(report).toContain(`(sha256 ${sha256(expText)})`);
      expect(report.trim().split('\n').at(-1)).toBe('PASS');

      // Export -> import, as files and through a zip: the same tensors bit for bit, the same config,
      // and exporting the imported adapter gives the same bytes again.
      for (const files2 of [out as Partial<AdapterFiles>, unzipAdapter(zipAdapter(out))]) {
        const imp = importAdapter(files2, cfg, c.name);
        expect(imp.warnings).toEqual([]);
        expect({ ...imp.lora, targets: [...imp.lora.targets].sort() }).toEqual({
          ...c.lc,
          targets: [...c.lc.targets].sort(),
        });
        expect([...imp.arrays.keys()].sort()).toEqual([...arrays.keys()].sort());
        for (const [p, a] of arrays) {
          expectBitEqual(imp.arrays.get(p)!.A, a.A, `${p}.lora_A`);
          expectBitEqual(imp.arrays.get(p)!.B, a.B, `${p}.lora_B`);
        }
        const again = exportAdapter(cfg, imp.lora, imp.arrays, card(c.name, c.lc));
        expect(sha256(again['adapter_model.safetensors'])).toBe(sha256(out['adapter_model.safetensors']));
        expect(again['adapter_config.json']).toBe(out['adapter_config.json']);
      }

      lora.free();
      model.weights.free();
      await ctx.sync();
      expect(ctx.alloc.liveBytes).toBe(live0);
    });
  }
});
