// Fuzzing PEFT adapter import (src/adapters/peft.ts) through to the GPU: adapter_config.json mutations,
// adapter_model.safetensors mutations, and zip containers (mutated bytes, truncated, zip bombs, '../'
// paths, duplicate entries, many entries). Each case unzips, imports against a tiny Llama, uploads the
// LoRA weights and frees them. Seeded and reproducible.

import { Zip, ZipPassThrough, zipSync, strToU8 } from 'fflate';
import { describe, it } from 'vitest';
import { exportAdapter, importAdapter, unzipAdapter, zipAdapter, type AdapterFiles } from '../../src/adapters/peft';
import { parseConfig } from '../../src/models/config';
import { LoraState } from '../../src/models/lora';
import type { GpuContext } from '../../src/gpu/context';
import { gpu } from '../helpers/gpu';
import { TINY_CONFIGS } from '../loaders/fixtures';
import { enc, mutateBytes, mutateJson, prng, report, runCase, tally } from './harness';

const SEED = 0xada9;
const ZIP = 'fuzz-adapter.zip';
const cfg = parseConfig(TINY_CONFIGS.llama);

function validAdapter(): AdapterFiles {
  const lc = { r: 4, alpha: 8, useRslora: false, dropout: 0, targets: ['q_proj', 'v_proj'] };
  const arrays = new Map(
    [0, 1].flatMap((l) =>
      ['q_proj', 'v_proj'].map((p) => {
        const out = p === 'q_proj' ? cfg.numHeads * cfg.headDim : cfg.numKvHeads * cfg.headDim;
        return [
          `model.layers.${l}.self_attn.${p}`,
          {
            A: Float32Array.from({ length: 4 * cfg.hiddenSize }, (_, i) => Math.sin(i + l)),
            B: Float32Array.from({ length: out * 4 }, (_, i) => Math.cos(i * (l + 1))),
          },
        ] as const;
      }),
    ),
  );
  const card = { name: 'f', baseModel: 'tiny', dataset: 'd', settings: {}, trainLoss: 1, valLoss: 1, sample: null };
  return exportAdapter(cfg, lc, new Map(arrays), card);
}

/** Import and upload, as the studio does with an uploaded adapter; frees what it uploaded. */
function importAndUpload(ctx: GpuContext, files: Partial<AdapterFiles>): void {
  const imp = importAdapter(files, cfg, 'tiny');
  LoraState.fromArrays(ctx, cfg, imp.lora, imp.arrays).free();
}

/** A zip whose entries are given in order (names may repeat), stored or deflated. */
function zipEntries(entries: [string, Uint8Array][]): Uint8Array {
  const parts: Uint8Array[] = [];
  const z = new Zip((err, chunk) => {
    if (err) throw err;
    parts.push(chunk);
  });
  for (const [name, data] of entries) {
    const f = new ZipPassThrough(name);
    z.add(f);
    f.push(data, true);
  }
  z.end();
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.byteLength) - p.byteLength);
  return out;
}

describe('fuzz: PEFT adapters', () => {
  it('adapter_config.json, adapter_model.safetensors and zip containers', async () => {
    const ctx = await gpu();
    const r = prng(SEED);
    const t = tally('PEFT adapters');
    const base = validAdapter();
    // A hang bound, not a speed test: ~1 s quiet for the largest (10,000-entry) zip; 4 s seen on a loaded 2-core machine.
    const spec = (label: string, file: string | string[]) => ({ label, file, boundMs: 10000, ctx });

    const cfgJson = JSON.parse(base['adapter_config.json']);
    for (let i = 0; i < 60; i++) {
      const m = mutateJson(r, cfgJson, [
        'r',
        'lora_alpha',
        'peft_type',
        'target_modules',
        'use_dora',
        'bias',
        'modules_to_save',
        'rank_pattern',
        'alpha_pattern',
        'fan_in_fan_out',
        'use_rslora',
        'lora_dropout',
        'layers_to_transform',
      ]);
      const files = { ...base, 'adapter_config.json': JSON.stringify(m.json) };
      await runCase(t, spec(`seed ${SEED} config #${i}: ${m.what}`, 'adapter_config.json'), () =>
        importAndUpload(ctx, files),
      );
    }
    for (let i = 0; i < 60; i++) {
      const m = mutateBytes(r, base['adapter_model.safetensors']);
      const files = { ...base, 'adapter_model.safetensors': m.bytes };
      await runCase(t, spec(`seed ${SEED} safetensors #${i}: ${m.what}`, 'adapter_model.safetensors'), () =>
        importAndUpload(ctx, files),
      );
    }
    const zip = zipAdapter(base);
    for (let i = 0; i < 60; i++) {
      const m = mutateBytes(r, zip);
      await runCase(
        t,
        spec(`seed ${SEED} zip #${i}: ${m.what}`, [ZIP, 'adapter_config.json', 'adapter_model.safetensors']),
        () => importAndUpload(ctx, unzipAdapter(m.bytes, ZIP)),
      );
    }
    const st = base['adapter_model.safetensors'];
    const cj = strToU8(base['adapter_config.json']);
    const bomb = zipSync({ 'adapter_model.safetensors': new Uint8Array(64 << 20) }, { level: 9 }); // 64 MB of zeros
    const hostile: [string, () => Uint8Array][] = [
      ['empty file', () => new Uint8Array(0)],
      ['truncated to half', () => zip.slice(0, zip.byteLength >> 1)],
      ['truncated by one byte', () => zip.slice(0, -1)],
      ['not a zip', () => enc('hello')],
      ['zip bomb: 64 MB of zeros', () => bomb],
      [
        '"../" paths',
        () =>
          zipEntries([
            ['../adapter_config.json', cj],
            ['../../adapter_model.safetensors', st],
          ]),
      ],
      [
        'absolute paths',
        () =>
          zipEntries([
            ['/adapter_config.json', cj],
            ['/etc/adapter_model.safetensors', st],
          ]),
      ],
      [
        'duplicate entries',
        () =>
          zipEntries([
            ['adapter_config.json', cj],
            ['adapter_model.safetensors', st],
            ['adapter_config.json', enc('{}')],
          ]),
      ],
      [
        'same file in two folders',
        () =>
          zipEntries([
            ['a/adapter_config.json', cj],
            ['b/adapter_config.json', cj],
            ['a/adapter_model.safetensors', st],
          ]),
      ],
      [
        '10 000 entries',
        () => zipEntries(Array.from({ length: 10_000 }, (_, i) => [`junk/${i}.txt`, enc('x')] as [string, Uint8Array])),
      ],
      ['only a README', () => zipEntries([['README.md', enc('# hi')]])],
      [
        'adapter_model.bin only',
        () =>
          zipEntries([
            ['adapter_config.json', cj],
            ['adapter_model.bin', enc('pickle')],
          ]),
      ],
      [
        'config not UTF-8',
        () =>
          zipEntries([
            ['adapter_config.json', new Uint8Array([0x7b, 0xff, 0x7d])],
            ['adapter_model.safetensors', st],
          ]),
      ],
      [
        'a folder entry named like the file',
        () =>
          zipEntries([
            ['adapter_config.json/', new Uint8Array(0)],
            ['adapter_model.safetensors', st],
          ]),
      ],
    ];
    for (const [what, make] of hostile) {
      await runCase(t, spec(`hostile zip: ${what}`, [ZIP, 'adapter_config.json', 'adapter_model.safetensors']), () =>
        importAndUpload(ctx, unzipAdapter(make(), ZIP)),
      );
    }
    report(t);
  });
});
