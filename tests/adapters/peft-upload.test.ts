// An adapter the user uploads (src/adapters/peft.ts adapterFilesFromUpload, which the worker calls): a zip
// is unpacked and every error names the zip as uploaded, exactly once; loose files are taken by name.
// The bytes are not a real adapter: what they hold is checked later by importAdapter, not here.

import { strToU8, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { AdapterError, adapterFilesFromUpload, zipAdapter, type AdapterFiles } from '../../src/adapters/peft';

const FILES: AdapterFiles = {
  'adapter_model.safetensors': new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
  'adapter_config.json': '{"peft_type": "LORA"}',
  'README.md': '# a card',
};

/** A File of these bytes (typed for File's BlobPart, which wants an ArrayBuffer-backed view). */
const file = (bytes: Uint8Array | string, name: string) => new File([bytes as Uint8Array<ArrayBuffer> | string], name);

/** How many times `needle` occurs in `text`. */
const count = (text: string, needle: string) => text.split(needle).length - 1;

async function uploadError(files: File[]): Promise<string> {
  try {
    await adapterFilesFromUpload(files);
  } catch (e) {
    expect(e).toBeInstanceOf(AdapterError);
    return (e as Error).message;
  }
  throw new Error('the upload was accepted');
}

describe('adapter upload', () => {
  it('unpacks a zip with any file name into the three adapter files', async () => {
    const got = await adapterFilesFromUpload([file(zipAdapter(FILES), 'My Run (2).ZIP')]);
    expect(got).toEqual(FILES);
  });

  it('takes loose files by name and ignores the others', async () => {
    const got = await adapterFilesFromUpload([
      file(FILES['adapter_model.safetensors'], 'adapter_model.safetensors'),
      file(FILES['adapter_config.json'], 'adapter_config.json'),
      file('not an adapter file', 'notes.txt'),
    ]);
    expect(got).toEqual({
      'adapter_model.safetensors': FILES['adapter_model.safetensors'],
      'adapter_config.json': FILES['adapter_config.json'],
    });
  });

  it('names the uploaded zip once when it is not a zip', async () => {
    const msg = await uploadError([file('PK\u0003\u0004 cut short', 'broken-upload.zip')]);
    expect(msg).toMatch(/^broken-upload\.zip is not a valid zip/);
    expect(count(msg, 'broken-upload.zip')).toBe(1);
    expect(msg).not.toContain('the adapter zip');
  });

  it('names the uploaded zip once when an entry is a duplicate', async () => {
    // Two README.md at different depths: the zip holds the file twice.
    const zip = zipSync({ 'README.md': strToU8('a'), 'inner/README.md': strToU8('b') });
    const msg = await uploadError([file(zip, 'two-cards.zip')]);
    expect(msg).toMatch(/^two-cards\.zip: it holds README\.md twice/);
    expect(count(msg, 'two-cards.zip')).toBe(1);
  });
});
