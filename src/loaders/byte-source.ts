// A file we can read byte ranges from without holding all of it: an ArrayBuffer already in memory, or a
// browser Blob/File (a 1 GB checkpoint picked from disk is read header first, then tensor by tensor).

export interface ByteSource {
  /** Total length in bytes. */
  size: number;
  /** Bytes [begin, end) as a fresh Uint8Array (callers may keep or mutate it). */
  read(begin: number, end: number): Promise<Uint8Array>;
}

function checkRange(size: number, begin: number, end: number): void {
  if (!(Number.isInteger(begin) && Number.isInteger(end) && 0 <= begin && begin <= end && end <= size)) {
    throw new RangeError(`byte range [${begin}, ${end}) is outside a source of ${size} bytes`);
  }
}

export function bytesSource(bytes: ArrayBuffer | Uint8Array): ByteSource {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return {
    size: u8.byteLength,
    async read(begin, end) {
      checkRange(u8.byteLength, begin, end);
      return u8.slice(begin, end);
    },
  };
}

export function blobSource(blob: Blob): ByteSource {
  return {
    size: blob.size,
    async read(begin, end) {
      checkRange(blob.size, begin, end);
      return new Uint8Array(await blob.slice(begin, end).arrayBuffer());
    },
  };
}

/** The whole source as one Uint8Array. */
export function readAll(src: ByteSource): Promise<Uint8Array> {
  return src.read(0, src.size);
}

/** The whole source decoded as UTF-8 text (fatal on invalid UTF-8). */
export async function readText(src: ByteSource): Promise<string> {
  return new TextDecoder('utf-8', { fatal: true }).decode(await readAll(src));
}
