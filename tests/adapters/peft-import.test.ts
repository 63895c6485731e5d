// Importing adapters as Python PEFT writes them (fixtures from tools/make_peft_fixture.py, whose logits
// come from its own float64 model code): WebLoRA's logits with the imported adapter match the oracle's.
// Then what we refuse, each with an AdapterError that names the problem, and what only warns.
//
// Bound: max|got − want| ≤ 1e-4·max|want| + 1e-5. WebLoRA computes in f32; on these 2-layer models the
// logits differ from float64 by ~1e-6 relative (measured on lavapipe: 2.4e-5 llama, 5.6e-6 gpt2 for
// max|logit| ~11; tests/models/golden.test.ts allows 1e-3 for deeper
// cases). The adapters here move the logits by ~15, so a wrong scale (alpha/r instead of alpha/√r),
// a transposed A or B, or a skipped module is 10^4 times the bound.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdapterError, importAdapter, type AdapterFiles } from '../../src/adapters/peft';
import { forwardLogits } from '../../src/models/forward';
import { parseSafetensorsHeader, writeSafetensors } from '../../src/loaders/safetensors';
import { loadModel } from '../../src/models';
import { LoraState, loraScale } from '../../src/models/lora';
import { FIXTURES, loadFixtureModel, readGolden } from '../helpers/fixtures';
import { gpu } from '../helpers/gpu';

const REL = 1e-4;
const ABS = 1e-5;

function readAdapter(dir: string): Partial<AdapterFiles> {
  return {
    'adapter_config.json': readFileSync(join(dir, 'adapter_config.json'), 'utf8'),
    'adapter_model.safetensors': new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors'))),
  };
}

describe('PEFT adapters written by Python PEFT', () => {
  for (const name of ['llama-gqa-tied', 'gpt2-tiny']) {
    it(`${name}: imported adapter gives the float64 oracle's logits`, async () => {
      const ctx = await gpu();
      const live0 = ctx.alloc.liveBytes;
      const dir = join(FIXTURES, `peft-${name}`);
      const exp = await readGolden(dir, 'expected');
      const files = await loadFixtureModel(join(FIXTURES, name));
      const cfg = files.config;
      const imp = importAdapter(readAdapter(join(dir, 'adapter')), cfg, name);
      expect(imp.warnings).toEqual([]);
      expect(imp.baseModel).toBe(name);
      expect(imp.lora.r).toBe(exp.json.r);
      expect(imp.lora.alpha).toBe(exp.json.lora_alpha);
      expect(imp.lora.useRslora).toBe(exp.json.use_rslora);
      expect([...imp.lora.targets].sort()).toEqual(exp.json.target_modules);
      expect([...imp.arrays.keys()].sort()).toEqual(exp.json.modules);
      expect(loraScale(imp.lora)).toBeCloseTo(exp.json.scale, 12);

      const model = await loadModel(ctx, cfg, files.weights, { dtype: 'f32' });
      const lora = LoraState.fromArrays(ctx, cfg, imp.lora, imp.arrays);
      const { B, T } = exp.json;
      const ids = Uint32Array.from(await exp.i32('input_ids'));
      const t = forwardLogits(model, lora, ids, B, T);
      const got = await t.read();
      t.free();
      const want = await exp.f32('logits');
      expect(got.length).toBe(want.length);
      let maxWant = 0,
        worst = 0;
      for (let i = 0; i < want.length; i++) {
        maxWant = Math.max(maxWant, Math.abs(want[i]));
        const d = Math.abs(got[i] - want[i]);
        worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
      }
      console.log(
        `MEASURED peft-${name}: max|WebLoRA - oracle| = ${worst.toExponential(3)}, max|logit| = ${maxWant.toFixed(3)}`,
      );
      expect(worst).toBeLessThanOrEqual(REL * maxWant + ABS);
      expect(exp.json.adapter_effect).toBeGreaterThan(1000 * (REL * maxWant + ABS));
      lora.free();
      model.weights.free();
      await ctx.sync();
      expect(ctx.alloc.liveBytes).toBe(live0);
    });
  }
});

describe('PEFT adapters WebLoRA refuses, or accepts with a warning', () => {
  const dir = join(FIXTURES, 'peft-llama-gqa-tied', 'adapter');
  const good = readAdapter(dir);
  const goodCfg = JSON.parse(good['adapter_config.json']!);
  const withConfig = (patch: Record<string, unknown>): Partial<AdapterFiles> => ({
    ...good,
    'adapter_config.json': JSON.stringify({ ...goodCfg, ...patch }),
  });
  // The fixture's tensors, rewritten with one renamed or reshaped.
  const withTensors = (
    edit: (name: string, shape: number[], data: Float32Array) => { name: string; shape: number[]; data: Float32Array },
  ): Partial<AdapterFiles> => {
    const st = good['adapter_model.safetensors']!;
    const h = parseSafetensorsHeader(st, 'adapter_model.safetensors');
    const tensors = [...h.tensors].map(([name, info]) => {
      const bytes = st.slice(h.dataOffset + info.begin, h.dataOffset + info.end);
      return { ...edit(name, [...info.shape], new Float32Array(bytes.buffer)), dtype: 'F32' as const };
    });
    return { ...good, 'adapter_model.safetensors': writeSafetensors(tensors, { format: 'pt' }) };
  };
  let cfgP: ReturnType<typeof loadFixtureModel> | null = null;
  const modelCfg = async () => (await (cfgP ??= loadFixtureModel(join(FIXTURES, 'llama-gqa-tied')))).config;

  const refuse = async (files: Partial<AdapterFiles>, message: RegExp) => {
    const cfg = await modelCfg();
    let err: unknown = null;
    try {
      importAdapter(files, cfg, 'llama-gqa-tied');
    } catch (e) {
      err = e;
    }
    expect(err, 'import must fail').toBeInstanceOf(AdapterError);
    expect((err as Error).message).toMatch(message);
  };

  it('the unmodified fixture imports without warnings (the cases below differ from it in one thing)', async () => {
    expect(importAdapter(good, await modelCfg(), 'llama-gqa-tied').warnings).toEqual([]);
  });
  it('DoRA', async () => refuse(withConfig({ use_dora: true }), /DoRA \(use_dora: true\)/));
  it('another PEFT method', async () =>
    refuse(withConfig({ peft_type: 'PREFIX_TUNING' }), /peft_type "PREFIX_TUNING" \(only LORA/));
  it('modules_to_save', async () =>
    refuse(withConfig({ modules_to_save: ['lm_head'] }), /modules_to_save \["lm_head"\]/));
  it('bias training', async () => refuse(withConfig({ bias: 'all' }), /bias training \(bias: "all"\)/));
  it('a tensor whose shape does not fit the model', async () =>
    refuse(
      withTensors((name, shape, data) =>
        name === 'base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight'
          ? { name, shape: [shape[0] / 2, shape[1] * 2], data }
          : { name, shape, data },
      ),
      /'base_model\.model\.model\.layers\.1\.self_attn\.k_proj\.lora_B\.weight' has shape \[8,8\], but the loaded model needs \[16,4\]/,
    ));
  it('a tensor for a module the model lacks', async () =>
    refuse(
      withTensors((name, shape, data) => ({ name: name.replace('model.layers.1.', 'model.layers.7.'), shape, data })),
      /names module 'model\.layers\.7\.(self_attn|mlp)\.\w+_proj', which LlamaForCausalLM \(2 layers\) does not have/,
    ));
  it('another base model name is a warning, not an error', async () => {
    const imp = importAdapter(
      withConfig({ base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M' }),
      await modelCfg(),
      'llama-gqa-tied',
    );
    expect(imp.warnings).toEqual(["made for base model 'HuggingFaceTB/SmolLM2-135M', loaded on 'llama-gqa-tied'"]);
    expect(imp.arrays.size).toBe(10);
  });
});
