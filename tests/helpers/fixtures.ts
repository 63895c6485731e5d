// Golden fixtures written by tools/golden.py (PyTorch, float64): where they are and how to read them.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openSafetensors } from '../../src/loaders/safetensors';
import { dirSource } from '../../src/loaders/sources.node';
import { loadModelFiles } from '../../src/loaders/model-files';

export const ROOT = resolve(__dirname, '../..');
export const FIXTURES = join(ROOT, 'tests/fixtures');
export const BUNDLED = join(ROOT, 'public/models/weblora-llama-1m');

/** Cases that have a golden.json, with the folder their model lives in. */
export function goldenCases(file = 'golden.json'): { name: string; dir: string; modelDir: string }[] {
  if (!existsSync(FIXTURES)) return [];
  return readdirSync(FIXTURES)
    .filter((n) => existsSync(join(FIXTURES, n, file)))
    .map((n) => {
      const dir = join(FIXTURES, n);
      const modelDir = existsSync(join(dir, 'config.json')) ? dir : join(ROOT, 'public/models', n);
      return { name: n, dir, modelDir };
    });
}

export async function readGolden(dir: string, base = 'golden') {
  const json = JSON.parse(readFileSync(join(dir, `${base}.json`), 'utf8'));
  const st = await openSafetensors(
    new Uint8Array(readFileSync(join(dir, `${base}.safetensors`))),
    `${base}.safetensors`,
  );
  const names = [...st.header.tensors.keys()];
  const i32 = async (name: string) => {
    const b = await st.bytes(name);
    const info = st.header.tensors.get(name)!;
    if (info.dtype === 'I32') return new Int32Array(b.slice().buffer);
    if (info.dtype === 'I64') return Int32Array.from(new BigInt64Array(b.slice().buffer), (x) => Number(x));
    throw new Error(`${name} is ${info.dtype}, expected I32/I64`);
  };
  return { json, names, f32: st.f32, i32 };
}

export function loadFixtureModel(modelDir: string) {
  return loadModelFiles(dirSource(modelDir));
}
