// The headless trainer end to end: `npm run train` arguments in, a PEFT adapter folder out that the
// project's own importer accepts for the same base model.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { importAdapter } from '../../src/adapters/peft';
import { main, parseArgs } from '../../src/cli/train';
import { loadModelFiles } from '../../src/loaders/model-files';
import { dirSource } from '../../src/loaders/sources.node';
import { bytesSource } from '../../src/loaders/byte-source';
import { readGgufHeader } from '../../src/loaders/gguf';
import { BUNDLED, FIXTURES, ROOT } from '../helpers/fixtures';

describe('npm run train', () => {
  it('trains the bundled model on a sample dataset and writes a PEFT adapter', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'weblora-cli-')), 'fortunes');
    const data = join(mkdtempSync(join(tmpdir(), 'weblora-data-')), 'fortunes.txt');
    writeFileSync(data, readFileSync(join(ROOT, 'public/datasets/fortunes.txt'), 'utf8').slice(0, 20_000));
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let code: number;
    let log = '';
    try {
      code = await main([
        '--model',
        BUNDLED,
        '--data',
        data,
        '--out',
        out,
        '--steps',
        '3',
        '--batch',
        '2',
        '--seq-len',
        '32',
        '--rank',
        '4',
        '--alpha',
        '8',
        '--targets',
        'q_proj,v_proj',
        '--eval-every',
        '2',
        '--sample-every',
        '0',
        '--seed',
        '3',
      ]);
      log = err.mock.calls.map((c) => String(c[0])).join('');
    } finally {
      err.mockRestore();
    }
    expect(code, log).toBe(0);
    expect(log).toMatch(/step 3\/3/);
    expect(log).toMatch(/validation loss at step 2/);
    const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      peft_type: 'LORA',
      r: 4,
      lora_alpha: 8,
      target_modules: ['q_proj', 'v_proj'],
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: 'weblora-llama-1m',
    });
    expect(readFileSync(join(out, 'README.md'), 'utf8')).toMatch(/library_name: peft/);
    // adapter.gguf for llama.cpp next to the PEFT files, and the card says how to use it
    expect(readFileSync(join(out, 'README.md'), 'utf8')).toMatch(/llama-cli -m base\.gguf --lora adapter\.gguf/);
    const gguf = await readGgufHeader(bytesSource(readFileSync(join(out, 'adapter.gguf'))), 'adapter.gguf');
    expect(gguf.metadata.get('adapter.lora.alpha')).toBe(8);
    expect(gguf.tensors.size).toBe(4 * 2 * 2); // 4 layers, q_proj and v_proj, A and B
    const files = await loadModelFiles(dirSource(BUNDLED));
    const imp = importAdapter(
      {
        'adapter_config.json': JSON.stringify(cfg),
        'adapter_model.safetensors': new Uint8Array(readFileSync(join(out, 'adapter_model.safetensors'))),
      },
      files.config,
      'weblora-llama-1m',
    );
    expect(imp.arrays.size).toBe(files.config.numLayers * 2);
    expect(imp.warnings).toEqual([]);
    // Trained: B moved away from its zero initialisation.
    const anyB = [...imp.arrays.values()].some((m) => m.B.some((x) => x !== 0));
    expect(anyB).toBe(true);
  });

  it('--help lists the options; bad arguments fail with a message', async () => {
    const out = vi.spyOn(console, 'log').mockImplementation(() => {});
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      expect(await main(['--help'])).toBe(0);
      expect(String(out.mock.calls[0][0])).toMatch(/--rank <int>[\s\S]*--seq-len <int>/);
      expect(await main(['--bogus'])).toBe(2);
      expect(String(err.mock.calls.at(-1)![0])).toMatch(/unknown option '--bogus'/);
      expect(await main(['--model', 'x'])).toBe(2);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
    expect(parseArgs(['--lr', '1e-3', '--targets', 'q_proj, v_proj', '--checkpointing']).settings).toEqual({
      lr: 1e-3,
      targets: ['q_proj', 'v_proj'],
      checkpointing: true,
    });
    expect(() => parseArgs(['--lr', 'fast'])).toThrow(/needs a number/);
    expect(parseArgs(['--gpu-memory', '0.5']).gpuMemoryBytes).toBe(512 * 1024 ** 2);
    expect(() => parseArgs(['--gpu-memory', '-1'])).toThrow(/positive number of GiB/);
  });

  it('--gpu-memory below the estimate refuses the model before loading it', async () => {
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    const out = mkdtempSync(join(tmpdir(), 'weblora-cli-budget-'));
    try {
      const data = join(ROOT, 'public/datasets/fortunes.txt');
      const args = ['--model', BUNDLED, '--data', data, '--out', out, '--gpu-memory', '0.001'];
      expect(await main(args)).toBe(1);
      expect(String(err.mock.calls.at(-1)![0])).toMatch(
        /were not fetched: estimated GPU memory .* over the 1\.0\d MiB budget/,
      );
      expect(existsSync(join(out, 'adapter_model.safetensors'))).toBe(false);
    } finally {
      err.mockRestore();
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('trains a .gguf model file given as --model and writes adapter.gguf for it', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'weblora-cli-')), 'qwen2');
    const data = join(mkdtempSync(join(tmpdir(), 'weblora-data-')), 'fortunes.txt');
    writeFileSync(data, readFileSync(join(ROOT, 'public/datasets/fortunes.txt'), 'utf8').slice(0, 4_000));
    const model = join(FIXTURES, 'gguf/qwen2-bias-f32.gguf');
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let code: number;
    let log = '';
    try {
      code = await main(
        ['--model', model, '--data', data, '--out', out, '--steps', '2', '--batch', '2', '--seq-len', '16'].concat([
          '--rank',
          '2',
          '--alpha',
          '4',
          '--targets',
          'q_proj,k_proj',
          '--eval-every',
          '0',
          '--sample-every',
          '0',
        ]),
      );
      log = err.mock.calls.map((c) => String(c[0])).join('');
    } finally {
      err.mockRestore();
    }
    expect(code, log).toBe(0);
    expect(log).toMatch(/model: qwen2-bias-f32\.gguf \(Qwen2ForCausalLM, 2 layers/);
    expect(log).toMatch(/wrote .*adapter_model\.safetensors, adapter_config\.json, README\.md, adapter\.gguf/);
    const gguf = await readGgufHeader(bytesSource(readFileSync(join(out, 'adapter.gguf'))), 'adapter.gguf');
    expect(gguf.metadata.get('general.architecture')).toBe('qwen2');
    expect([...gguf.tensors.keys()].sort()).toEqual(
      [0, 1]
        .flatMap((l) => ['q', 'k'].flatMap((m) => ['a', 'b'].map((x) => `blk.${l}.attn_${m}.weight.lora_${x}`)))
        .sort(),
    );
  });

  it('sends HF_TOKEN to the Hub as a bearer token, and only there', async () => {
    const seen: (string | undefined)[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"gated"}');
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const data = join(mkdtempSync(join(tmpdir(), 'weblora-data-')), 'd.txt');
    writeFileSync(data, 'some text to train on');
    const out = join(mkdtempSync(join(tmpdir(), 'weblora-cli-')), 'o');
    const before = process.env.HF_TOKEN;
    process.env.HF_TOKEN = 'hf_test_token';
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    const log = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const code = await main(['--model', 'owner/gated', '--data', data, '--out', out, '--hub-base-url', base]);
      expect(code).not.toBe(0); // the fake Hub refuses; what matters is what it was sent
    } finally {
      err.mockRestore();
      log.mockRestore();
      if (before === undefined) delete process.env.HF_TOKEN;
      else process.env.HF_TOKEN = before;
      server.close();
    }
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((h) => h === 'Bearer hf_test_token')).toBe(true);
  });
});
