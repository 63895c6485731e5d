// Node only: a model folder on the local disk as a ModelSource (tests, bench, tools). Reads byte ranges
// with positioned reads, so a large checkpoint is never loaded whole.

import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ByteSource } from './byte-source';
import type { ModelSource } from './sources';

export function fileByteSource(path: string, size: number): ByteSource {
  return {
    size,
    async read(begin, end) {
      if (!(Number.isInteger(begin) && Number.isInteger(end) && 0 <= begin && begin <= end && end <= size)) {
        throw new RangeError(`byte range [${begin}, ${end}) is outside ${path} (${size} bytes)`);
      }
      const fh = await open(path, 'r');
      try {
        const out = new Uint8Array(end - begin);
        let at = 0;
        while (at < out.byteLength) {
          const { bytesRead } = await fh.read(out, at, out.byteLength - at, begin + at);
          if (bytesRead === 0) throw new Error(`${path} shrank while being read`);
          at += bytesRead;
        }
        return out;
      } finally {
        await fh.close();
      }
    },
  };
}

/** A folder on disk; `gguf` names the GGUF file in it to load (see ModelSource.gguf). */
export function dirSource(dir: string, gguf?: string): ModelSource {
  return {
    id: `dir:${dir}`,
    ...(gguf ? { gguf } : {}),
    async list() {
      return readdir(dir);
    },
    async file(name, onProgress) {
      const path = join(dir, name);
      let size: number;
      try {
        const s = await stat(path);
        if (!s.isFile()) return null;
        size = s.size;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
      onProgress?.({ file: name, loaded: size, total: size });
      return fileByteSource(path, size);
    },
  };
}
