// The llama.cpp adapter GGUF (src/adapters/gguf-lora.ts), read back with our GGUF reader: the metadata
// llama.cpp's loader requires, every tensor's name, ggml shape and values, the q/k row permutation for the
// llama architecture (and none for Qwen), rsLoRA's alpha, and the families it refuses. That llama.cpp
// itself applies these files as we do is tests/llamacpp/llamacpp.test.ts.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportGgufAdapter, ggufAlpha } from '../../src/adapters/gguf-lora';
import { modelCard } from '../../src/adapters/peft';
import { bytesSource } from '../../src/loaders/byte-source';
import { readGgufHeader } from '../../src/loaders/gguf';
import { permuteRows } from '../../src/loaders/gguf-model';
import { linearModules } from '../../src/models/modules';
import type { LoraArrays, LoraConfig } from '../../src/models/lora';
import { FIXTURES, loadFixtureModel } from '../helpers/fixtures';
import { rng } from '../helpers/gpu';

const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

async function exported(folder: string, lc: LoraConfig) {
  const { config: cfg } = await loadFixtureModel(join(FIXTURES, folder));
  const g = rng(9);
  const arrays: LoraArrays = new Map();
  for (const m of linearModules(cfg).filter((m) => lc.targets.includes(m.target)))
    arrays.set(m.path, { A: g.uniform(lc.r * m.inFeatures), B: g.uniform(m.outFeatures * lc.r) });
  const bytes = exportGgufAdapter(cfg, lc, arrays, 'my adapter');
  const src = bytesSource(bytes);
  const h = await readGgufHeader(src, 'adapter.gguf');
  const tensor = async (name: string) => {
    const t = h.tensors.get(name)!;
    return new Float32Array((await src.read(h.dataOffset + t.begin, h.dataOffset + t.end)).buffer);
  };
  return { cfg, arrays, h, tensor };
}

describe('GGUF LoRA export', () => {
  it('llama: the metadata llama.cpp requires, every module as .weight.lora_a/.lora_b, q/k B permuted', async () => {
    const lc: LoraConfig = { r: 3, alpha: 5, useRslora: false, dropout: 0.1, targets: ALL };
    const { cfg, arrays, h, tensor } = await exported('llama-gqa-tied', lc);
    expect(Object.fromEntries(h.metadata)).toEqual({
      'general.architecture': 'llama',
      'general.type': 'adapter',
      'general.name': 'my adapter',
      'adapter.type': 'lora',
      'adapter.lora.alpha': 5,
    });
    expect(h.tensors.size).toBe(cfg.numLayers * ALL.length * 2);
    for (const m of linearModules(cfg)) {
      const gname = m.path.replace(/^model\.layers\.(\d+)\.(self_attn|mlp)\./, 'blk.$1.');
      const base = `${gname
        .replace('q_proj', 'attn_q')
        .replace('k_proj', 'attn_k')
        .replace('v_proj', 'attn_v')
        .replace('o_proj', 'attn_output')
        .replace('gate_proj', 'ffn_gate')
        .replace('up_proj', 'ffn_up')
        .replace('down_proj', 'ffn_down')}.weight`;
      const a = h.tensors.get(`${base}.lora_a`)!;
      const b = h.tensors.get(`${base}.lora_b`)!;
      // PyTorch order here; ggml's ne is reversed: a.ne = [IN, r], b.ne = [r, OUT]
      expect(a).toMatchObject({ shape: [lc.r, m.inFeatures], type: 'F32' });
      expect(b).toMatchObject({ shape: [m.outFeatures, lc.r], type: 'F32' });
      const want = arrays.get(m.path)!;
      expect(await tensor(`${base}.lora_a`)).toEqual(want.A);
      const heads = m.target === 'q_proj' ? cfg.numHeads : m.target === 'k_proj' ? cfg.numKvHeads : null;
      const gotB = await tensor(`${base}.lora_b`);
      if (heads === null) expect(gotB).toEqual(want.B);
      else {
        expect(gotB).not.toEqual(want.B);
        expect(gotB).toEqual(permuteRows(want.B, m.outFeatures, lc.r, heads));
      }
    }
  });

  it('qwen2: no permutation; rsLoRA alpha written as alpha·√r so that llama.cpp’s alpha/r is alpha/√r', async () => {
    const lc: LoraConfig = { r: 4, alpha: 6, useRslora: true, dropout: 0, targets: ['q_proj', 'k_proj'] };
    const { cfg, arrays, h, tensor } = await exported('qwen2-bias', lc);
    expect(h.metadata.get('general.architecture')).toBe('qwen2');
    expect(h.metadata.get('adapter.lora.alpha')).toBe(Math.fround(12));
    expect(ggufAlpha(lc) / lc.r).toBeCloseTo(lc.alpha / Math.sqrt(lc.r), 12);
    expect(h.tensors.size).toBe(cfg.numLayers * 4);
    expect(await tensor('blk.1.attn_k.weight.lora_b')).toEqual(arrays.get('model.layers.1.self_attn.k_proj')!.B);
  });

  it('gemma3: the same module names as llama.cpp’s gemma3 weights, no permutation', async () => {
    const lc: LoraConfig = { r: 2, alpha: 4, useRslora: false, dropout: 0, targets: ALL };
    const { cfg, arrays, h, tensor } = await exported('gemma3-final-softcap', lc);
    expect(h.metadata.get('general.architecture')).toBe('gemma3');
    expect(h.tensors.size).toBe(cfg.numLayers * ALL.length * 2);
    const base = readFileSync(join(FIXTURES, 'gguf', 'gemma3-final-softcap-f32.gguf'));
    const bh = await readGgufHeader(bytesSource(base), 'gemma3-final-softcap-f32.gguf');
    for (const [name, t] of h.tensors) {
      // every adapted weight exists in the base GGUF with the shapes llama.cpp checks (ne[0] of A and W: IN;
      // ne[1] of B and W: OUT)
      const w = bh.tensors.get(name.replace(/\.lora_[ab]$/, ''))!;
      expect(w, name).toBeDefined();
      if (name.endsWith('lora_a')) expect(t.shape[1]).toBe(w.shape[1]);
      else expect(t.shape[0]).toBe(w.shape[0]);
    }
    expect(await tensor('blk.2.attn_q.weight.lora_b')).toEqual(arrays.get('model.layers.2.self_attn.q_proj')!.B);
    expect(await tensor('blk.0.attn_k.weight.lora_b')).toEqual(arrays.get('model.layers.0.self_attn.k_proj')!.B);
  });

  it('refuses families it has no llama.cpp mapping for, by name', async () => {
    const { config: cfg } = await loadFixtureModel(join(FIXTURES, 'gpt2-tiny'));
    const lc: LoraConfig = { r: 2, alpha: 4, useRslora: false, dropout: 0, targets: ['c_attn'] };
    expect(() => exportGgufAdapter(cfg, lc, new Map(), 'x')).toThrow(
      /a GGUF adapter for llama\.cpp is written for llama, qwen2, qwen3, gemma3 models; GPT2LMHeadModel is not one/,
    );
  });

  it('the model card gives the llama.cpp command when there is a GGUF adapter', () => {
    const card = {
      name: 'n',
      baseModel: 'org/base',
      dataset: 'd',
      settings: {},
      trainLoss: null,
      valLoss: null,
      sample: null,
    };
    expect(modelCard({ ...card, ggufFile: 'adapter.gguf' })).toMatch(
      /## Use with llama\.cpp[\s\S]*GGUF of `org\/base`[\s\S]*llama-cli -m base\.gguf --lora adapter\.gguf/,
    );
    expect(modelCard(card)).not.toMatch(/llama\.cpp/);
  });
});
