// QLoRA on the bundled model: a frozen base quantized at load to int8 / int4 (src/models/weights.ts), LoRA
// trained in f32 on top, through the same Engine the studio and the CLI use.
//
// 1. Held-out loss of the base alone (a fresh adapter, B = 0): int8 within 1 % of f32, int4 within 5 %.
// 2. The same LoRA run (fortunes, seed 7, 30 steps, r 8 on all 7 linears) on an int4 base and on an f32
//    base: the int4 run's held-out loss drop is at least 90 % of the f32 run's.
// 3. The int4-trained adapter, exported as PEFT, applied to the float base in PyTorch (tools/check_qlora.py,
//    float64, its own model code) still lowers the held-out loss. PyTorch is not in CI, so
//      WEBLORA_WRITE_FIXTURES=1 npx vitest run --project lavapipe tests/training/qlora.test.ts
//    writes tests/fixtures/qlora-int4/ (adapter/, heldout.json) and runs the script into check_qlora.txt.
//    Without the variable the test requires a PASS for exactly the committed files (hashes), this engine's
//    held-out loss of the committed adapter on the f32 base equal to PyTorch's within 1e-4 relative (f32 vs
//    float64), and the adapter trained now within 2e-3 of the committed one's loss (the run is deterministic
//    on one driver; the slack allows another Mesa build).
// The bundled model's down_proj (cols 344, not a multiple of 32) stays f16 / f32 under int8 and int4.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importAdapter, type AdapterFiles } from '../../src/adapters/peft';
import { Engine } from '../../src/engine/engine';
import { IGNORE_INDEX } from '../../src/kernels/ignore_index';
import { dirSource } from '../../src/loaders/sources.node';
import { LoraState } from '../../src/models/lora';
import type { WeightsChoice } from '../../src/models/weights';
import type { TrainSettings } from '../../src/training/settings';
import { evalLoss } from '../../src/training/step';
import type { Trainer } from '../../src/training/trainer';
import { BUNDLED, FIXTURES, ROOT } from '../helpers/fixtures';
import { gpu } from '../helpers/gpu';

const WRITE = process.env.WEBLORA_WRITE_FIXTURES === '1';
const DIR = join(FIXTURES, 'qlora-int4');
const FILES = ['adapter_model.safetensors', 'adapter_config.json', 'README.md'] as const;
const FORTUNES = readFileSync(join(ROOT, 'public/datasets/fortunes.txt'), 'utf8').slice(0, 120_000);
const SETTINGS: Partial<TrainSettings> = {
  batchSize: 4,
  seqLen: 64,
  evalEvery: 0,
  sampleEvery: 0,
  checkpointEvery: 0,
  dropout: 0,
  lr: 5e-3,
  rank: 8,
  alpha: 16,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  steps: 30,
  warmupSteps: 4,
  seed: 7,
};
const control = { paused: false, stopped: false, waitIfPaused: async () => {} };
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

async function engineOn(weights: WeightsChoice): Promise<{ e: Engine; t: Trainer }> {
  const e = new Engine(await gpu());
  await e.loadModel(dirSource(BUNDLED), weights);
  await e.loadDataset('fortunes.txt', FORTUNES, { seqLen: 64, valFraction: 0.1, seed: 7 });
  return { e, t: e.createTrainer(SETTINGS) };
}

describe('QLoRA: an int8 / int4 frozen base', () => {
  it('held-out loss of the base: int8 within 1 %, int4 within 5 % of f32', async () => {
    const loss: Partial<Record<WeightsChoice, number>> = {};
    for (const w of ['f32', 'int8', 'int4'] as const) {
      const { e, t } = await engineOn(w);
      loss[w] = (await t.validate()).valLoss; // a fresh adapter has B = 0: the base alone
      e.unloadModel();
    }
    const rel = (w: 'int8' | 'int4') => Math.abs(loss[w]! - loss.f32!) / loss.f32!;
    console.log(
      `MEASURED held-out loss, bundled model: f32 ${loss.f32!.toFixed(4)}, int8 ${loss.int8!.toFixed(4)} (${(100 * rel('int8')).toFixed(2)} %), int4 ${loss.int4!.toFixed(4)} (${(100 * rel('int4')).toFixed(2)} %)`,
    );
    expect(rel('int8')).toBeLessThan(0.01);
    expect(rel('int4')).toBeLessThan(0.05);
    expect(loss.int4).not.toBe(loss.f32); // the base really is quantized
  }, 900_000);

  it('the same LoRA run on int4 drops the held-out loss by >= 90 % of the f32 drop; PyTorch confirms the adapter on the float base', async () => {
    const drop: Partial<Record<WeightsChoice, number>> = {};
    const figures: string[] = [];
    let out: AdapterFiles | null = null;
    let heldout = '';
    for (const w of ['f32', 'int4'] as const) {
      const { e, t } = await engineOn(w);
      const before = (await t.validate()).valLoss;
      await e.run(control, { onEvent: () => {} });
      const after = (await t.validate()).valLoss;
      drop[w] = before - after;
      figures.push(`${w} ${before.toFixed(4)} -> ${after.toFixed(4)}`);
      if (w === 'int4') {
        out = await e.exportAdapter('qlora-int4');
        const rows = t.job.val.flatMap((b) =>
          Array.from({ length: b.B }, (_, i) => ({
            ids: Array.from(b.ids.subarray(i * b.T, (i + 1) * b.T)),
            targets: Array.from(b.targets.subarray(i * b.T, (i + 1) * b.T), (x) => (x === IGNORE_INDEX ? -1 : x)),
          })),
        );
        heldout =
          JSON.stringify({
            made_by: 'tests/training/qlora.test.ts (WebLoRA, int4 base, fortunes.txt held-out sequences)',
            ids: rows.map((r) => r.ids),
            targets: rows.map((r) => r.targets),
          }) + '\n';
      }
      e.unloadModel();
    }
    console.log(
      `MEASURED QLoRA held-out loss, 30 steps: ${figures.join(', ')}; int4 drop / f32 drop = ${(drop.int4! / drop.f32!).toFixed(3)}`,
    );
    expect(drop.f32).toBeGreaterThan(0.3);
    expect(drop.int4! / drop.f32!).toBeGreaterThanOrEqual(0.9);

    if (WRITE) {
      mkdirSync(join(DIR, 'adapter'), { recursive: true });
      for (const f of FILES) writeFileSync(join(DIR, 'adapter', f), out![f]);
      writeFileSync(join(DIR, 'heldout.json'), heldout);
      const args = [join(DIR, 'adapter'), BUNDLED, join(DIR, 'heldout.json')].map((p) => relative(ROOT, p));
      const report = execFileSync('/usr/bin/python3', ['tools/check_qlora.py', ...args], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      writeFileSync(
        join(DIR, 'check_qlora.txt'),
        `$ /usr/bin/python3 tools/check_qlora.py ${args.join(' ')}\n${report}`,
      );
    }

    // PyTorch's verdict on exactly the committed files.
    const report = readFileSync(join(DIR, 'check_qlora.txt'), 'utf8');
    const committed = readFileSync(join(DIR, 'adapter', 'adapter_model.safetensors'));
    expect(report).toContain(`adapter_model.safetensors sha256 ${sha256(committed)}`);
    expect(report).toContain(`(sha256 ${sha256(readFileSync(join(DIR, 'heldout.json')))})`);
    expect(report.trim().split('\n').at(-1)).toBe('PASS');
    const torchWith = Number(/with the adapter: +([\d.]+)/.exec(report)![1]);
    const torchWithout = Number(/without the adapter: +([\d.]+)/.exec(report)![1]);
    expect(torchWith).toBeLessThan(torchWithout);

    // This engine on the f32 base: the committed adapter's held-out loss = PyTorch's; the adapter trained
    // now as good as the committed one; the held-out rows as committed.
    const { e, t } = await engineOn('f32');
    const h = JSON.parse(readFileSync(join(DIR, 'heldout.json'), 'utf8'));
    expect(h.ids.flat()).toEqual(t.job.val.flatMap((b) => Array.from(b.ids)));
    const cfg = e.requireModel().files.config;
    const lossWith = async (files: Partial<AdapterFiles>) => {
      const imp = importAdapter(files, cfg, 'weblora-llama-1m');
      const lora = LoraState.fromArrays(e.ctx, cfg, imp.lora, imp.arrays);
      let sum = 0,
        n = 0;
      for (const b of t.job.val) {
        const r = await evalLoss(t.job.model, lora, b);
        sum += r.lossSum;
        n += r.count;
      }
      lora.free();
      return sum / n;
    };
    const committedFiles = Object.fromEntries(
      FILES.map((f) => [
        f,
        f === 'adapter_model.safetensors' ? committed : readFileSync(join(DIR, 'adapter', f), 'utf8'),
      ]),
    ) as Partial<AdapterFiles>;
    const ours = await lossWith(committedFiles);
    const now = await lossWith(out!);
    console.log(
      `MEASURED int4-trained adapter on the f32 base: PyTorch ${torchWithout.toFixed(4)} -> ${torchWith.toFixed(4)}; WebLoRA ${ours.toFixed(6)} (committed adapter), ${now.toFixed(6)} (trained now)`,
    );
    expect(Math.abs(ours - torchWith) / torchWith).toBeLessThan(1e-4);
    expect(Math.abs(now - ours)).toBeLessThan(2e-3);
    e.unloadModel();
  }, 900_000);
});
