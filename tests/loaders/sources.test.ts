// The three sources against real transports: a node:http server on 127.0.0.1 for the Hub and the bundled
// folder, File objects for picked files, and a temp directory for the Node helper.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadModelFiles } from '../../src/loaders/model-files';
import {
  bundledSource,
  filesSource,
  hubSource,
  memoryBlobCache,
  ModelLoadError,
  type FileProgress,
} from '../../src/loaders/sources';
import { dirSource } from '../../src/loaders/sources.node';
import { expectedTensors } from '../../src/models/config';
import { writeSafetensors } from '../../src/loaders/safetensors';
import { fakeCheckpoint, fakeValues, serveFolder, serveHubRepo, tinyModelFolder } from './fixtures';

const REPO = 'tiny-org/tiny-llama';
const PREFIX = `${REPO}/resolve/main/`;
let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.map((c) => c()));
  closers = [];
});
async function serve(files: Map<string, Uint8Array<ArrayBuffer>>, prefix: string, opts = {}) {
  const s = await serveFolder(files, prefix, opts);
  closers.push(s.close);
  return s;
}

/** Reads every weight and compares with the values the fixture wrote. */
async function expectWeightsIntact(weights: Awaited<ReturnType<typeof loadModelFiles>>['weights']) {
  for (const [name, w] of weights) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    expect(Array.from(await w.read()), name).toEqual(Array.from(fakeValues(name, n)));
  }
}

describe('hubSource against a local HTTP server', () => {
  it('loads a model folder with byte-level progress, and the second load comes from the cache', async () => {
    const files = tinyModelFolder('llama');
    const api = { id: REPO, siblings: [...files.keys()].map((rfilename) => ({ rfilename })) };
    const server = await serve(files, PREFIX, {
      chunk: 1024,
      extra: new Map([[`/api/models/${REPO}/revision/main`, new TextEncoder().encode(JSON.stringify(api))]]),
    });
    const cache = memoryBlobCache();
    const events: FileProgress[] = [];
    const m = await loadModelFiles(hubSource(REPO, { baseUrl: server.url, cache }), (p) => events.push(p));
    expect(m.config.family).toBe('llama');
    expect(m.weights.size).toBe(expectedTensors(m.config).size);
    await expectWeightsIntact(m.weights);
    expect(m.tokenizer.encode('Hi', true)).toEqual([257, 72, 105]);
    expect(m.generationConfig).toMatchObject({ max_new_tokens: 20 });

    const size = files.get('model.safetensors')!.byteLength;
    const st = events.filter((e) => e.file === 'model.safetensors');
    // The server sends 1 KiB chunks 1 ms apart; reads may still merge a few, so ask for a third of them.
    expect(st.length).toBeGreaterThan(size / 1024 / 3);
    expect(st.every((e) => e.total === size)).toBe(true);
    expect(st[0].loaded).toBe(0);
    expect(st.at(-1)!.loaded).toBe(size);
    for (let i = 1; i < st.length; i++) expect(st[i].loaded).toBeGreaterThanOrEqual(st[i - 1].loaded);
    expect(cache.entries.size).toBe(5); // config, tokenizer, tokenizer_config, generation_config, weights

    const before = server.requests.length;
    const again = await loadModelFiles(hubSource(REPO, { baseUrl: server.url, cache }));
    await expectWeightsIntact(again.weights);
    const second = server.requests.slice(before);
    // Files that exist are not requested again, and the absent optional ones are not requested at all:
    // only the Hub's file list is asked.
    expect(second).toEqual([`/api/models/${REPO}/revision/main`]);
  });

  it('revalidates by commit: an unchanged repo is not downloaded again, a pushed one is, and offline the last commit loads', async () => {
    const v1 = tinyModelFolder('llama');
    const hub = await serveHubRepo(REPO, v1);
    closers.push(hub.close);
    const sha1 = (
      JSON.parse(await (await fetch(`${hub.url}/api/models/${REPO}/revision/main`)).text()) as { sha: string }
    ).sha;
    hub.requests.length = 0;
    const cache = memoryBlobCache();
    // an entry an older version cached under the branch name, before it knew commits: stale, and dropped
    cache.entries.set(`${hub.url}/${REPO}/resolve/main/config.json`, new TextEncoder().encode('{"stale": true}'));
    const names = [
      'config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'generation_config.json',
      'model.safetensors',
    ];
    const info = `/api/models/${REPO}/revision/main`;
    const at = (sha: string) => names.map((n) => `/${REPO}/resolve/${sha}/${n}`).sort();

    const first = await loadModelFiles(hubSource(REPO, { baseUrl: hub.url, cache }));
    await expectWeightsIntact(first.weights);
    expect(first.config.family).toBe('llama');
    expect(hub.requests.sort()).toEqual([info, ...at(sha1)].sort()); // the files at the commit the info named
    expect([...cache.entries.keys()].sort()).toEqual([`${hub.url}${info}`, ...at(sha1).map((p) => hub.url + p)].sort());

    // Unchanged: only the info is asked; nothing is downloaded twice.
    hub.requests.length = 0;
    await expectWeightsIntact((await loadModelFiles(hubSource(REPO, { baseUrl: hub.url, cache }))).weights);
    expect(hub.requests).toEqual([info]);

    // A push: new weights (every value negated) and a new generation config. The next load downloads the new
    // commit's files and uses their bytes; the old commit's files leave the cache.
    const v2 = new Map(v1);
    v2.set(
      'model.safetensors',
      writeSafetensors(
        fakeCheckpoint('llama').map((t) => ({ ...t, data: t.data.map((x) => -x) })),
        { format: 'pt' },
      ),
    );
    v2.set(
      'generation_config.json',
      new TextEncoder().encode(JSON.stringify({ eos_token_id: 256, max_new_tokens: 33 })),
    );
    const sha2 = hub.push(v2);
    hub.requests.length = 0;
    const second = await loadModelFiles(hubSource(REPO, { baseUrl: hub.url, cache }));
    expect(hub.requests.sort()).toEqual([info, ...at(sha2)].sort());
    expect(second.generationConfig).toMatchObject({ max_new_tokens: 33 });
    const negated = async (m: typeof second) => {
      for (const [name, w] of m.weights) {
        const want = fakeValues(
          name,
          w.shape.reduce((a, b) => a * b, 1),
        ).map((x) => -x);
        expect(Array.from(await w.read()), name).toEqual(Array.from(want));
      }
    };
    await negated(second);
    expect([...cache.entries.keys()].filter((k) => k.includes(sha1))).toEqual([]);
    expect(cache.entries.size).toBe(names.length + 1);

    // Offline (every request fails): the cached info names the last commit, whose files are all cached.
    const offline = async () => Promise.reject(new TypeError('fetch failed'));
    const third = await loadModelFiles(hubSource(REPO, { baseUrl: hub.url, cache, fetch: offline }));
    expect(third.generationConfig).toMatchObject({ max_new_tokens: 33 });
    await negated(third);
  });

  it('a cache that refuses a file (quota, a browser error) does not fail the load', async () => {
    const files = tinyModelFolder('llama');
    const server = await serve(files, PREFIX);
    const refused: string[] = [];
    const cache = {
      get: async () => null,
      deletePrefix: async () => {},
      put: async (key: string) => {
        refused.push(key);
        throw new Error("Failed to execute 'put' on 'Cache': Unexpected internal error.");
      },
    };
    try {
      const m = await loadModelFiles(hubSource(REPO, { baseUrl: server.url, cache }));
      await expectWeightsIntact(m.weights);
      expect(refused.some((k) => k.endsWith('/model.safetensors'))).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('a connection dropped halfway through the weights: clear error, nothing partial cached', async () => {
    const files = tinyModelFolder('llama');
    const size = files.get('model.safetensors')!.byteLength;
    const server = await serve(files, PREFIX, {
      dropAfter: { file: 'model.safetensors', bytes: Math.floor(size / 2) },
    });
    const cache = memoryBlobCache();
    const err = await loadModelFiles(hubSource(REPO, { baseUrl: server.url, cache })).catch((e) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(/model\.safetensors from tiny-org\/tiny-llama/);
    expect(err.message).toMatch(/retry/);
    expect([...cache.entries.keys()].some((k) => k.endsWith('model.safetensors'))).toBe(false);
    expect(cache.entries.size).toBe(4); // the small files that did complete

    // Same drop with chunked transfer (no Content-Length): the stream itself fails.
    const chunked = await serve(files, PREFIX, {
      noLength: true,
      dropAfter: { file: 'model.safetensors', bytes: 100 },
    });
    const cache2 = memoryBlobCache();
    await expect(loadModelFiles(hubSource(REPO, { baseUrl: chunked.url, cache: cache2 }))).rejects.toThrow(
      /model\.safetensors.*interrupted.*retry/,
    );
    expect([...cache2.entries.keys()].some((k) => k.endsWith('model.safetensors'))).toBe(false);
  });

  it('a body shorter than its Content-Length is an error, and is not cached', async () => {
    const liar = async () => new Response(new Uint8Array(10), { headers: { 'content-length': '100' } });
    const cache = memoryBlobCache();
    await expect(hubSource(REPO, { fetch: liar, cache }).file('model.safetensors')).rejects.toThrow(
      /model\.safetensors from tiny-org\/tiny-llama.*ended after 10 of 100 bytes.*retry/,
    );
    expect(cache.entries.size).toBe(0);
  });

  it('an access token goes only over https or to this machine', () => {
    const token = 'hf_secret';
    expect(() => hubSource(REPO, { baseUrl: 'http://mirror.example', token })).toThrow(
      /access token is sent only over https.*http:\/\/mirror\.example is plain http/,
    );
    expect(() => hubSource(REPO, { baseUrl: 'http://mirror.example' })).not.toThrow(); // no token: fine
    for (const ok of ['https://mirror.example', 'http://127.0.0.1:8080', 'http://localhost:3000', 'http://[::1]:1'])
      expect(() => hubSource(REPO, { baseUrl: ok, token })).not.toThrow();
  });

  it('a 404 on a required file names the file and the repo', async () => {
    const files = tinyModelFolder('llama');
    files.delete('tokenizer.json');
    const server = await serve(files, PREFIX);
    await expect(loadModelFiles(hubSource(REPO, { baseUrl: server.url }))).rejects.toThrow(
      /tokenizer\.json was not found in hf:tiny-org\/tiny-llama@main/,
    );
    await expect(loadModelFiles(hubSource('tiny-org/other', { baseUrl: server.url }))).rejects.toThrow(
      /config\.json was not found in hf:tiny-org\/other@main/,
    );
    files.delete('model.safetensors');
    files.set('tokenizer.json', tinyModelFolder('llama').get('tokenizer.json')!);
    await expect(loadModelFiles(hubSource(REPO, { baseUrl: server.url }))).rejects.toThrow(
      /neither model\.safetensors nor model\.safetensors\.index\.json was found in hf:tiny-org\/tiny-llama@main\. Pick/,
    );
  });

  it('lists the repo through the Hub API to explain a .bin-only checkpoint', async () => {
    const files = tinyModelFolder('llama');
    files.delete('model.safetensors');
    const api = { id: REPO, siblings: [...files.keys(), 'pytorch_model.bin'].map((rfilename) => ({ rfilename })) };
    const server = await serve(files, PREFIX, {
      extra: new Map([[`/api/models/${REPO}/revision/main`, new TextEncoder().encode(JSON.stringify(api))]]),
    });
    await expect(loadModelFiles(hubSource(REPO, { baseUrl: server.url }))).rejects.toThrow(
      /there is pytorch_model\.bin, but WebLoRA reads safetensors and GGUF only/,
    );
    expect(await hubSource('tiny-org/unknown', { baseUrl: server.url }).list!()).toEqual([]);
  });

  it('a network error (nothing listening) names the file and says to retry', async () => {
    const server = await serve(new Map(), PREFIX);
    await server.close();
    closers = [];
    await expect(loadModelFiles(hubSource(REPO, { baseUrl: server.url }))).rejects.toThrow(
      /config\.json from tiny-org\/tiny-llama.*network error.*retry/,
    );
  });

  it('other HTTP errors are errors (401 says gated or private), not "absent"', async () => {
    const fetch401 = async () => new Response('no', { status: 401, statusText: 'Unauthorized' });
    await expect(hubSource(REPO, { fetch: fetch401 }).file('config.json')).rejects.toThrow(
      /HTTP 401.*gated or private/,
    );
    const urls: string[] = [];
    const seen = async (u: string) => (urls.push(u), new Response('{}'));
    await hubSource('gpt2', { fetch: seen, revision: 'refs/pr/1' }).file('sub dir/config.json');
    // the model info first (its answer names no commit here, so the file is read at the revision)
    expect(urls).toEqual([
      'https://huggingface.co/api/models/gpt2/revision/refs%2Fpr%2F1',
      'https://huggingface.co/gpt2/resolve/refs%2Fpr%2F1/sub%20dir/config.json',
    ]);
    expect(() => hubSource('not a repo!')).toThrow(/not a Hugging Face repository id/);
  });

  it('a gated repo: the token goes in the Authorization header only; a refused model info names the repo', async () => {
    const seen: { url: string; auth: string | null }[] = [];
    const gate = (ok: string) => async (u: string, init?: RequestInit) => {
      const auth = new Headers(init?.headers).get('authorization');
      seen.push({ url: u, auth });
      return auth === `Bearer ${ok}`
        ? new Response(u.includes('/api/models/') ? '{"siblings": []}' : '{}')
        : new Response('restricted', { status: 401, statusText: 'Unauthorized' });
    };
    const src = hubSource('meta-llama/Llama-3.2-1B', { fetch: gate('hf_secret'), token: 'hf_secret' });
    expect(await src.list!()).toEqual([]);
    expect(await src.file('config.json')).not.toBeNull();
    expect(seen.map((r) => r.auth)).toEqual(['Bearer hf_secret', 'Bearer hf_secret']);
    expect(seen.some((r) => r.url.includes('hf_secret'))).toBe(false);
    await expect(hubSource('meta-llama/Llama-3.2-1B', { fetch: gate('hf_secret') }).list!()).rejects.toThrow(
      /meta-llama\/Llama-3\.2-1B .*HTTP 401 Unauthorized, without an access token\. .*accept its licence on the Hub and give an access token/,
    );
    await expect(
      hubSource('meta-llama/Llama-3.2-1B', { fetch: gate('hf_secret'), token: 'hf_other' }).file('config.json'),
    ).rejects.toThrow(/HTTP 401 Unauthorized, with the access token given/);
  });

  it('loads a sharded checkpoint through model.safetensors.index.json', async () => {
    const files = tinyModelFolder('qwen2', { shards: 3 });
    expect([...files.keys()].filter((f) => f.includes('-of-')).length).toBe(3);
    const server = await serve(files, PREFIX);
    const m = await loadModelFiles(hubSource(REPO, { baseUrl: server.url, cache: memoryBlobCache() }));
    expect(new Set([...m.weights.values()].map((w) => w.file)).size).toBe(3);
    expect(m.weights.has('lm_head.weight')).toBe(true); // qwen2 tiny config is untied
    await expectWeightsIntact(m.weights);
    expect(server.requests).not.toContain(`/${PREFIX}model.safetensors`);
  });
});

describe('bundledSource', () => {
  it('loads from a served folder and treats a dev server HTML fallback as absent', async () => {
    const files = tinyModelFolder('gpt2');
    const server = await serve(files, 'models/tiny-gpt2/', { htmlFallback: true });
    const m = await loadModelFiles(bundledSource(`${server.url}/models/tiny-gpt2`));
    expect(m.config.family).toBe('gpt2');
    expect(m.chatTemplate).toContain('messages'); // from tokenizer_config: chat_template.jinja was "absent"
    await expectWeightsIntact(m.weights);
  });
});

describe('filesSource with File objects', () => {
  const asFiles = (files: Map<string, Uint8Array<ArrayBuffer>>, dir = '') =>
    [...files].map(([name, bytes]) => {
      const f = new File([bytes], name);
      if (dir) Object.defineProperty(f, 'webkitRelativePath', { value: `${dir}/${name}` });
      return f;
    });

  it('loads picked files matched by base name, reading weights by range', async () => {
    const m = await loadModelFiles(filesSource(asFiles(tinyModelFolder('gpt2', { dtype: 'F16' }))));
    expect(m.weights.get('transformer.h.1.attn.c_attn.weight')!.dtype).toBe('F16');
    await expectWeightsIntact(m.weights); // the fixture values are exact in f16
  });

  it('prefers the shallowest of same-named files in a folder pick, and refuses a true ambiguity', async () => {
    const top = asFiles(tinyModelFolder('llama'), 'model');
    const nested = new File(['{"architectures": ["BertModel"]}'], 'config.json');
    Object.defineProperty(nested, 'webkitRelativePath', { value: 'model/old/config.json' });
    const m = await loadModelFiles(filesSource([nested, ...top]));
    expect(m.config.family).toBe('llama');
    const twin = new File(['{}'], 'config.json');
    await expect(loadModelFiles(filesSource([...asFiles(tinyModelFolder('llama')), twin]))).rejects.toThrow(
      /config\.json: 2 picked files have this name/,
    );
  });

  it('says that .bin checkpoints need converting when there is no safetensors file', async () => {
    const files = tinyModelFolder('llama');
    files.delete('model.safetensors');
    files.set('pytorch_model.bin', new Uint8Array(16));
    await expect(loadModelFiles(filesSource(asFiles(files)))).rejects.toThrow(
      /pytorch_model\.bin, but WebLoRA reads safetensors and GGUF only/,
    );
  });
});

describe('dirSource (Node)', () => {
  it('loads a model folder from disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weblora-model-'));
    try {
      for (const [name, bytes] of tinyModelFolder('qwen2')) writeFileSync(join(dir, name), bytes);
      const m = await loadModelFiles(dirSource(dir));
      expect(m.config.family).toBe('qwen2');
      await expectWeightsIntact(m.weights);
      expect(await dirSource(dir).file('missing.json')).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
