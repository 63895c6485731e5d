// Settings validation names the setting each error is about, and the limits the dropout streams rely on
// are enforced: micro-batches per step (MAX_GRAD_ACCUM) and LoRA modules per layer (MODULE_STREAMS_PER_LAYER).
import { describe, expect, it } from 'vitest';
import { parseConfig, type Family } from '../../src/models/config';
import { MODULE_STREAMS_PER_LAYER, moduleDropoutSeed } from '../../src/models/lora';
import { linearModules } from '../../src/models/modules';
import { DEFAULT_SETTINGS, MAX_GRAD_ACCUM, resolveSettings, validateSettings } from '../../src/training/settings';
import { TINY_CONFIGS } from '../loaders/fixtures';

const llama = parseConfig(TINY_CONFIGS.llama);
const fits = { seqLen: 32 }; // the tiny model's context is 64

describe('settings validation', () => {
  it('the defaults are valid', () => {
    expect(validateSettings(resolveSettings(fits, llama), llama)).toEqual([]);
  });

  it('each error names its setting', () => {
    const s = resolveSettings(
      { ...fits, lr: 0, warmupSteps: -1, decay: 'sideways' as never, targets: ['c_attn'], weightDtype: 'f16' },
      llama,
    );
    const errors = validateSettings(s, llama, { hasF16: false });
    expect(errors.map((e) => e.field)).toEqual(['lr', 'warmupSteps', 'decay', 'weightDtype', 'targets']);
    expect(errors[0].message).toBe('learning rate must be above 0 and at most 1 (got 0)');
    expect(errors[4].message).toMatch(/^unknown target module\(s\) c_attn; LlamaForCausalLM has q_proj, /);
    expect(validateSettings({ ...DEFAULT_SETTINGS, ...fits, targets: [] }, llama)).toEqual([
      { field: 'targets', message: 'choose at least one target module' },
    ]);
  });

  it('gradient accumulation stops at MAX_GRAD_ACCUM, the stride of the dropout streams of a step', () => {
    const at = (gradAccum: number) => validateSettings(resolveSettings({ ...fits, gradAccum }, llama), llama);
    expect(at(MAX_GRAD_ACCUM)).toEqual([]);
    expect(at(MAX_GRAD_ACCUM + 1)).toEqual([
      {
        field: 'gradAccum',
        message: `gradient accumulation must be a whole number from 1 to ${MAX_GRAD_ACCUM} (got 1025)`,
      },
    ]);
  });
});

describe('LoRA dropout streams', () => {
  it.each(Object.keys(TINY_CONFIGS) as Family[])(
    '%s: each layer has fewer linear modules than MODULE_STREAMS_PER_LAYER, numbered in forward order',
    (family) => {
      const mods = linearModules(parseConfig(TINY_CONFIGS[family]));
      for (const m of mods) expect(m.slot).toBeLessThan(MODULE_STREAMS_PER_LAYER);
      const layer0 = mods.filter((m) => m.layer === 0);
      expect(layer0.map((m) => m.slot)).toEqual(layer0.map((_, i) => i));
      const seeds = new Set(mods.map((m) => moduleDropoutSeed(7, m)));
      expect(seeds.size).toBe(mods.length);
    },
  );

  it('a module past the limit is refused, not given a stream another module has', () => {
    const m = { path: 'model.layers.0.x', layer: 0, slot: MODULE_STREAMS_PER_LAYER };
    expect(() => moduleDropoutSeed(7, m)).toThrow(/dropout streams allow 16 per layer/);
  });
});
