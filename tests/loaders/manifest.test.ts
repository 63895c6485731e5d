// No blind requests: the bundled model's manifest.json lists its files and a bundled load asks for
// exactly those it needs, once each; a Hub load asks the Hub's file list first and never requests an
// optional file the repo does not have.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadModelFiles } from '../../src/loaders/model-files';
import { bundledSource, hubSource, memoryBlobCache, parseManifest } from '../../src/loaders/sources';
import { serveFolder, tinyModelFolder } from './fixtures';

const BUNDLED = 'public/models/weblora-llama-1m';
let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.map((c) => c()));
  closers = [];
});

function folderFiles(dir: string): Map<string, Uint8Array<ArrayBuffer>> {
  return new Map(readdirSync(dir).map((n) => [n, new Uint8Array(readFileSync(join(dir, n)))]));
}

describe('bundled model manifest', () => {
  it('lists exactly the files of the folder', () => {
    const listed = parseManifest(readFileSync(join(BUNDLED, 'manifest.json')), BUNDLED);
    expect([...listed].sort()).toEqual(
      readdirSync(BUNDLED)
        .filter((n) => n !== 'manifest.json')
        .sort(),
    );
  });

  it('a bundled load requests the manifest, then only listed files, each once, and gets no 404', async () => {
    const files = folderFiles(BUNDLED);
    // htmlFallback: a missing file would answer 200 text/html as vite does; then count what was asked.
    const s = await serveFolder(files, 'models/weblora-llama-1m/', { htmlFallback: true });
    closers.push(s.close);
    const m = await loadModelFiles(bundledSource(`${s.url}/models/weblora-llama-1m/`));
    expect(m.config.family).toBe('llama');
    const asked = s.requests.map((r) => r.replace('/models/weblora-llama-1m/', ''));
    const listed = parseManifest(files.get('manifest.json')!, BUNDLED);
    expect(asked[0]).toBe('manifest.json');
    expect(new Set(asked).size).toBe(asked.length);
    for (const f of asked.slice(1)) expect(listed, f).toContain(f);
    expect(asked.sort()).toEqual(
      [
        'manifest.json',
        'config.json',
        'tokenizer.json',
        'tokenizer_config.json',
        'generation_config.json',
        'model.safetensors',
      ].sort(),
    );
  });

  it('a malformed manifest is an error naming it and the folder', async () => {
    const files = tinyModelFolder('gpt2');
    files.set('manifest.json', new TextEncoder().encode('{"files": "config.json"}'));
    const s = await serveFolder(files, 'm/');
    closers.push(s.close);
    await expect(loadModelFiles(bundledSource(`${s.url}/m/`))).rejects.toThrow(
      /manifest\.json in bundled:http:\/\/127\.0\.0\.1:\d+\/m\/ has no "files" list/,
    );
  });
});

describe('hub file list before optional files', () => {
  const REPO = 'tiny-org/tiny-llama';
  const api = (names: string[]) =>
    new Map([
      [
        `/api/models/${REPO}/revision/main`,
        new TextEncoder().encode(JSON.stringify({ id: REPO, siblings: names.map((rfilename) => ({ rfilename })) })),
      ],
    ]);

  it('never requests a file the list does not have; a cached second load asks only the list', async () => {
    const files = tinyModelFolder('llama');
    files.delete('generation_config.json');
    const s = await serveFolder(files, `${REPO}/resolve/main/`, { extra: api([...files.keys()]) });
    closers.push(s.close);
    const cache = memoryBlobCache();
    const m = await loadModelFiles(hubSource(REPO, { baseUrl: s.url, cache }));
    expect(m.generationConfig).toBeNull();
    const names = s.requests.map((r) => r.replace(`/${REPO}/resolve/main/`, ''));
    expect(names.sort()).toEqual(
      [
        `/api/models/${REPO}/revision/main`,
        'config.json',
        'tokenizer.json',
        'tokenizer_config.json',
        'model.safetensors',
      ].sort(),
    );
    const before = s.requests.length;
    await loadModelFiles(hubSource(REPO, { baseUrl: s.url, cache }));
    expect(s.requests.slice(before)).toEqual([`/api/models/${REPO}/revision/main`]);
  });
});
