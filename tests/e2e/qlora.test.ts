// QLoRA in the studio (Chromium, SwiftShader WebGPU): the "Weights" select beside the model shows each
// choice's memory before loading, picking int4 loads the bundled model again quantized, a short run trains on
// it, and both adapter formats export (PEFT zip, llama.cpp GGUF). SwiftShader has no shader-f16: the int4
// kernels read their f16 scales with core WGSL, and the bundled model's down_proj (cols 344) stays f32.

import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { bytesSource } from '../../src/loaders/byte-source';
import { readGgufHeader } from '../../src/loaders/gguf';
import { parseSafetensorsHeader } from '../../src/loaders/safetensors';
import { expectBundledModel, fillSmallRun, screenshot, startTraining, useStudioPage } from './harness';

let page: Page;

useStudioPage('qlora flow', (p) => (page = p));

describe('studio page, int4 base (QLoRA)', () => {
  it('shows every weights choice with its memory, and loads the bundled model as int4', async () => {
    await expectBundledModel(page);
    // A dataset chosen before the weights change is read again with the reloaded model (the engine drops it on
    // every load); the run below trains on it without choosing it again.
    await page.getByLabel('Sample dataset').selectOption({ index: 1 });
    await page
      .locator('#dataset-panel')
      .getByText(/examples, .* tokens\.$/)
      .waitFor({ timeout: 60_000 });
    const select = page.getByLabel('Weights', { exact: true });
    const options = await select.locator('option').allTextContents();
    expect(options.map((o) => o.split(' ')[0])).toEqual(['f32', 'f16', 'int8', 'int4']);
    // figures from the inspect before the bundled model loaded: int4 holds the fewest bytes
    const weightsOf = (o: string) => Number.parseFloat(/weights ([\d.]+)/.exec(o)![1]);
    expect(options.every((o) => /weights [\d.]+ \w+, total [\d.]+ \w+/.test(o))).toBe(true);
    expect(weightsOf(options[3])).toBeLessThan(weightsOf(options[0]));
    await select.selectOption('int4');
    await page
      .locator('#model-panel')
      .getByText(/^Loaded .*weblora-llama-1m \(int4 weights\)\. .*down_proj/)
      .waitFor({ timeout: 120_000 });
    await screenshot(page, 'qlora-weights-choice', '#model-panel');
  });

  it('trains 3 steps on the int4 base and exports the PEFT zip and the llama.cpp GGUF adapter', async () => {
    // the dataset chosen on f32 weights, read again after the int4 reload
    await fillSmallRun(page, { rank: 4, steps: 3 });
    await startTraining(page, 20_000);
    await page
      .locator('#train .status')
      .getByText(/^Finished: 3 steps/)
      .waitFor({ timeout: 240_000 });

    const gguf = page.waitForEvent('download', { timeout: 60_000 });
    await page.getByRole('button', { name: 'Export for llama.cpp (GGUF)' }).click();
    const g = await gguf;
    const h = await readGgufHeader(bytesSource(new Uint8Array(readFileSync(await g.path()))), g.suggestedFilename());
    expect(h.metadata.get('adapter.type')).toBe('lora');
    expect(h.tensors.get('blk.0.attn_q.weight.lora_a')?.shape[0]).toBe(4);

    const zipP = page.waitForEvent('download', { timeout: 60_000 });
    await page.getByRole('button', { name: 'Export adapter' }).click();
    const zip = await zipP;
    const files = unzipSync(new Uint8Array(readFileSync(await zip.path())));
    const byName = new Map(Object.entries(files).map(([p, b]) => [p.split('/').pop()!, b]));
    const cfg = JSON.parse(new TextDecoder().decode(byName.get('adapter_config.json')!));
    expect([cfg.peft_type, cfg.r]).toEqual(['LORA', 4]);
    const st = parseSafetensorsHeader(byName.get('adapter_model.safetensors')!, 'adapter_model.safetensors');
    expect([...st.tensors.keys()].some((n) => n.endsWith('q_proj.lora_B.weight'))).toBe(true);
  });
});
