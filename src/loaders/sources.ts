// Where a model's files come from: the bundled folder served with the app, the Hugging Face Hub (with a
// persistent cache so the second load does not download again), or files the user picked from disk.
// All three answer the same question: "give me file X (or null if there is none)".

import { DEFAULT_HUB } from '../util/csp';
import { blobSource, bytesSource, type ByteSource } from './byte-source';

export interface FileProgress {
  file: string;
  loaded: number;
  /** null when the server does not say how big the file is */
  total: number | null;
}
export type ProgressFn = (p: FileProgress) => void;

export interface ModelSource {
  /** Human-readable origin, used in error messages (e.g. "hf:HuggingFaceTB/SmolLM2-135M@main"). */
  id: string;
  /** File names the source knows about, when it can list them ([] when it cannot). */
  list?(): Promise<string[]>;
  /** The file, or null when the source has no such file. Throws on any other failure. */
  file(name: string, onProgress?: ProgressFn): Promise<ByteSource | null>;
  /** The GGUF file to load, when the source holds GGUF files (a Hub repo of several quantisations). */
  gguf?: string;
}

export class ModelLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelLoadError';
  }
}

/** Bytes kept across loads, keyed by URL. */
export interface BlobCache {
  get(key: string): Promise<Uint8Array | null>;
  put(key: string, bytes: Uint8Array): Promise<void>;
  /** Drops every entry whose key starts with `prefix`. */
  deletePrefix(prefix: string): Promise<void>;
}

/** In-memory cache (tests, or a session without Cache Storage). */
export function memoryBlobCache(): BlobCache & { entries: Map<string, Uint8Array> } {
  const entries = new Map<string, Uint8Array>();
  return {
    entries,
    async get(key) {
      return entries.get(key) ?? null;
    },
    async put(key, bytes) {
      entries.set(key, bytes);
    },
    async deletePrefix(prefix) {
      for (const k of [...entries.keys()]) if (k.startsWith(prefix)) entries.delete(k);
    },
  };
}

/** Browser Cache Storage: survives reloads, lives on disk, keyed by the file's URL. */
export function cacheStorageBlobCache(name = 'weblora-models'): BlobCache {
  return {
    async get(key) {
      const res = await (await caches.open(name)).match(key);
      return res ? new Uint8Array(await res.arrayBuffer()) : null;
    },
    async put(key, bytes) {
      const body = bytes as Uint8Array<ArrayBuffer>; // Response copies the bytes itself; no copy of ours
      const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bytes.byteLength) };
      await (await caches.open(name)).put(key, new Response(body, { headers }));
    },
    async deletePrefix(prefix) {
      const c = await caches.open(name);
      for (const req of await c.keys()) if (req.url.startsWith(prefix)) await c.delete(req);
    },
  };
}

type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

/** A byte buffer that grows as chunks arrive; preallocated when the length is known. */
class GrowableBytes {
  private buf: Uint8Array;
  length = 0;
  constructor(capacity: number) {
    this.buf = new Uint8Array(capacity);
  }
  push(chunk: Uint8Array): void {
    if (this.length + chunk.byteLength > this.buf.byteLength) {
      const next = new Uint8Array(Math.max(this.buf.byteLength * 2, this.length + chunk.byteLength, 1 << 16));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
    }
    this.buf.set(chunk, this.length);
    this.length += chunk.byteLength;
  }
  bytes(): Uint8Array {
    return this.length === this.buf.byteLength ? this.buf : this.buf.slice(0, this.length);
  }
}

/** What to do about an HTTP error: 401 / 403 is a gated or private repository. */
function httpHint(status: number): string {
  return status === 401 || status === 403
    ? 'The repository may be gated or private: accept its licence on the Hub and give an access token, or pick another model.'
    : 'Retry later.';
}

/**
 * GETs `url` and reads the body as it streams, reporting progress. 404 -> null. Any failure before
 * the last byte (network error, connection dropped, fewer bytes than Content-Length) -> ModelLoadError
 * naming `file` and `where`.
 */
export async function downloadFile(
  fetchFn: FetchFn,
  url: string,
  file: string,
  where: string,
  onProgress?: ProgressFn,
  init?: RequestInit,
): Promise<{ bytes: Uint8Array; contentType: string | null } | null> {
  let res: Response;
  try {
    res = await fetchFn(url, init);
  } catch (e) {
    throw new ModelLoadError(
      `${file} from ${where}: network error (${(e as Error).message}). Check the connection and retry.`,
    );
  }
  if (res.status === 404) {
    await res.body?.cancel().catch(() => {});
    return null;
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new ModelLoadError(`${file} from ${where}: HTTP ${res.status} ${res.statusText}. ${httpHint(res.status)}`);
  }
  const lenHeader = res.headers.get('content-length');
  // With Content-Encoding the header counts compressed bytes, while the body arrives decompressed.
  const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
  let total: number | null = lenHeader !== null && !encoded && /^\d+$/.test(lenHeader) ? Number(lenHeader) : null;
  const buf = new GrowableBytes(total ?? 1 << 16);
  onProgress?.({ file, loaded: 0, total });
  if (res.body) {
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf.push(value);
        if (total !== null && buf.length > total) total = null; // the header was wrong; stop claiming a total
        onProgress?.({ file, loaded: buf.length, total });
      }
    } catch (e) {
      throw new ModelLoadError(
        `${file} from ${where}: the download was interrupted after ${buf.length}${total !== null ? ` of ${total}` : ''} bytes (${(e as Error).message}). Nothing was saved; retry.`,
      );
    }
  }
  if (total !== null && buf.length < total) {
    throw new ModelLoadError(
      `${file} from ${where}: the download ended after ${buf.length} of ${total} bytes. Nothing was saved; retry.`,
    );
  }
  return { bytes: buf.bytes(), contentType: res.headers.get('content-type') };
}

function encodePath(file: string): string {
  return file.split('/').map(encodeURIComponent).join('/');
}

/** The file that lists a bundled folder's files: {"files": ["config.json", ...]}. */
export const MANIFEST = 'manifest.json';

/** The names in a manifest.json; throws a ModelLoadError naming `where` when it is malformed. */
export function parseManifest(bytes: Uint8Array, where: string): string[] {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new ModelLoadError(`${MANIFEST} in ${where} is not valid JSON (${(e as Error).message})`);
  }
  const files = (json as { files?: unknown } | null)?.files;
  if (!Array.isArray(files) || !files.every((f) => typeof f === 'string' && f.length > 0))
    throw new ModelLoadError(`${MANIFEST} in ${where} has no "files" list of file names`);
  return files as string[];
}

/**
 * The model folder shipped with the app (`public/models/<name>/` is served at `<base>/models/<name>/`).
 * Its manifest.json lists the folder's files; a file not listed is absent and never requested. A folder
 * without a manifest (a test server) falls back to asking for each file. A dev server that answers a
 * missing file with its index.html (SPA fallback) counts as "absent".
 */
export function bundledSource(baseUrl: string, opts: { fetch?: FetchFn } = {}): ModelSource {
  const fetchFn = opts.fetch ?? ((u: string, i?: RequestInit) => globalThis.fetch(u, i));
  const base = baseUrl.endsWith('/') ? baseUrl : baseUrl + '/';
  const id = `bundled:${base}`;
  const get = async (name: string, onProgress?: ProgressFn) => {
    const got = await downloadFile(fetchFn, base + encodePath(name), name, id, onProgress);
    if (!got) return null;
    if (!name.endsWith('.html') && (got.contentType ?? '').startsWith('text/html')) return null;
    return got.bytes;
  };
  let manifest: Promise<string[] | null> | null = null;
  const listed = () => (manifest ??= get(MANIFEST).then((bytes) => (bytes ? parseManifest(bytes, id) : null)));
  return {
    id,
    async list() {
      return (await listed()) ?? [];
    },
    async file(name, onProgress) {
      const names = await listed();
      if (names && !names.includes(name)) return null;
      const bytes = await get(name, onProgress);
      return bytes ? bytesSource(bytes) : null;
    },
  };
}

export interface HubOptions {
  baseUrl?: string;
  revision?: string;
  cache?: BlobCache | null;
  fetch?: FetchFn;
  /** A Hugging Face access token, for gated or private repositories. */
  token?: string;
  /** The GGUF file of the repository to load (see ModelSource.gguf). */
  gguf?: string;
}

/** A full git commit hash, as the Hub reports it in `sha`. */
const COMMIT = /^[0-9a-f]{40}$/;

/** What the Hub's model info says about a revision: its files and the commit it points at (null: not said). */
interface RepoInfo {
  files: string[];
  commit: string | null;
}

function parseRepoInfo(bytes: Uint8Array): RepoInfo {
  const info = JSON.parse(new TextDecoder().decode(bytes)) as { sha?: unknown; siblings?: { rfilename?: unknown }[] };
  const siblings = Array.isArray(info?.siblings) ? info.siblings : [];
  return {
    files: siblings.map((s) => s?.rfilename).filter((f): f is string => typeof f === 'string'),
    commit: typeof info?.sha === 'string' && COMMIT.test(info.sha) ? info.sha : null,
  };
}

/**
 * A repository on the Hugging Face Hub: `${baseUrl}/${repoId}/resolve/${revision}/${file}`.
 *
 * The cache is keyed by commit. Each source asks the Hub's model info once (`/api/models/<repo>/revision/<rev>`:
 * the file list, and in `sha` the commit the revision points at now), then downloads every file at that
 * commit (`resolve/<sha>/<file>`) and caches it under that URL. An unchanged repo therefore costs one small
 * request and no download; a repo pushed to since points at a new commit, whose files are not cached yet,
 * so they are downloaded again, and the old commit's files are dropped from the cache. The model info is cached
 * too: offline (or if the Hub will not answer it) the last commit seen is used, so cached files still load.
 * A server that reports no commit at all (a plain mirror) is read at `revision` and cached under it, as
 * first downloaded: it cannot be revalidated.
 */
/** Whether a bearer token may go to `baseUrl`: https, or plain http to this machine's loopback (a local mirror). */
function tokenSafeOver(baseUrl: string): boolean {
  try {
    const u = new URL(baseUrl);
    return (
      u.protocol === 'https:' || (u.protocol === 'http:' && /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/.test(u.hostname))
    );
  } catch {
    return false;
  }
}

export function hubSource(repoId: string, opts: HubOptions = {}): ModelSource {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repoId) && !/^[\w.-]+$/.test(repoId)) {
    throw new ModelLoadError(
      `"${repoId}" is not a Hugging Face repository id; expected "owner/name", e.g. HuggingFaceTB/SmolLM2-135M`,
    );
  }
  const baseUrl = (opts.baseUrl ?? DEFAULT_HUB).replace(/\/+$/, '');
  if (opts.token && !tokenSafeOver(baseUrl))
    throw new ModelLoadError(
      `an access token is sent only over https (or to this machine); ${baseUrl} is plain http. Use an https Hub base URL, or leave the token empty for a public repo`,
    );
  const revision = opts.revision ?? 'main';
  const cache = opts.cache ?? null;
  const fetchFn = opts.fetch ?? ((u: string, i?: RequestInit) => globalThis.fetch(u, i));
  const id = `hf:${repoId}@${revision}`;
  const init: RequestInit | undefined = opts.token ? { headers: { authorization: `Bearer ${opts.token}` } } : undefined;
  const infoUrl = `${baseUrl}/api/models/${repoId}/revision/${encodeURIComponent(revision)}`;
  const resolveUrl = (rev: string) => `${baseUrl}/${repoId}/resolve/${encodeURIComponent(rev)}/`;
  /**
   * The fresh model info, or null when the Hub did not give one (network error, HTTP error, not JSON).
   * A refusal (401 / 403: gated or private, and no token or not one that may read it) is an error.
   */
  const fetchInfo = async (): Promise<{ info: RepoInfo; bytes: Uint8Array } | null> => {
    let res: Response;
    try {
      res = await fetchFn(infoUrl, init);
    } catch {
      return null;
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel().catch(() => {});
      throw new ModelLoadError(
        `${repoId} (${infoUrl}): HTTP ${res.status} ${res.statusText}${opts.token ? ', with the access token given' : ', without an access token'}. ${httpHint(res.status)}`,
      );
    }
    try {
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        return null;
      }
      const bytes = new Uint8Array(await res.arrayBuffer());
      return { info: parseRepoInfo(bytes), bytes };
    } catch {
      return null;
    }
  };
  const loadInfo = async (): Promise<RepoInfo> => {
    const fresh = await fetchInfo();
    const cachedBytes = cache ? await cache.get(infoUrl) : null;
    let cached: RepoInfo | null = null;
    try {
      cached = cachedBytes ? parseRepoInfo(cachedBytes) : null;
    } catch {
      cached = null; // unreadable: as if there were none
    }
    const info = fresh?.info ?? cached ?? { files: [], commit: null };
    if (COMMIT.test(revision)) info.commit = revision; // a commit names itself, and never changes
    if (cache && fresh && info.commit && cached?.commit !== info.commit) {
      // The revision points at a commit not seen before: what was cached for it until now is stale, under the
      // commit it pointed at, or under the revision's own name (cached before commits were known).
      if (cached?.commit) await cache.deletePrefix(resolveUrl(cached.commit));
      if (info.commit !== revision) await cache.deletePrefix(resolveUrl(revision));
      await cache.put(infoUrl, fresh.bytes);
    }
    return info;
  };
  let info: Promise<RepoInfo> | null = null;
  const repoInfo = () => (info ??= loadInfo());
  return {
    id,
    ...(opts.gguf ? { gguf: opts.gguf } : {}),
    /**
     * The repo's file names from the Hub API, asked once per source; [] if unavailable. Loaders ask it
     * before fetching optional files, so absent ones are not requested.
     */
    async list() {
      return (await repoInfo()).files;
    },
    async file(name, onProgress) {
      const { commit } = await repoInfo();
      const url = resolveUrl(commit ?? revision) + encodePath(name);
      const cached = cache ? await cache.get(url) : null;
      if (cached) {
        onProgress?.({ file: name, loaded: cached.byteLength, total: cached.byteLength });
        return bytesSource(cached);
      }
      const got = await downloadFile(fetchFn, url, name, `${repoId} (${url})`, onProgress, init);
      if (!got) return null;
      // Only a complete body reaches this point, so the cache never holds a partial file. A cache that
      // refuses the file (Chromium's Cache.put fails with "Unexpected internal error" on a 357 MiB body
      // when storage is short) costs the next load a download, not this load.
      if (cache) {
        try {
          await cache.put(url, got.bytes);
        } catch (e) {
          console.warn(`${name} from ${repoId} was loaded but could not be cached: ${(e as Error).message}`);
        }
      }
      return bytesSource(got.bytes);
    },
  };
}

/**
 * Files picked from disk (a folder or single files), matched by base name; shallowest path wins. `gguf`
 * names the GGUF file to load when several were picked.
 */
export function filesSource(files: File[], gguf?: string): ModelSource {
  const byName = new Map<string, File[]>();
  for (const f of files) {
    const list = byName.get(f.name) ?? [];
    list.push(f);
    byName.set(f.name, list);
  }
  const depth = (f: File) =>
    ((f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name).split('/').length;
  const id = `files:${files.length} picked file${files.length === 1 ? '' : 's'}`;
  return {
    id,
    ...(gguf ? { gguf } : {}),
    async list() {
      return [...byName.keys()];
    },
    async file(name, onProgress) {
      const base = name.split('/').pop()!;
      const candidates = (byName.get(base) ?? []).slice().sort((a, b) => depth(a) - depth(b));
      if (candidates.length === 0) return null;
      if (candidates.length > 1 && depth(candidates[0]) === depth(candidates[1])) {
        throw new ModelLoadError(
          `${base}: ${candidates.length} picked files have this name; pick only one model folder`,
        );
      }
      const f = candidates[0];
      onProgress?.({ file: name, loaded: f.size, total: f.size });
      return blobSource(f);
    },
  };
}
