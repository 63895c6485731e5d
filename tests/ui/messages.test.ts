// The page's failure sentences (src/ui/dom.ts couldNot): the engine's errors already name the file or
// repository they are about, and the page must not say it twice.

import { describe, expect, it } from 'vitest';
import { couldNot } from '../../src/ui/dom';

describe('failure messages', () => {
  it('names the thing once, whether or not the error names it', () => {
    expect(couldNot('read', 'broken.jsonl', new Error('"broken.jsonl", line 2: not valid JSON'))).toBe(
      'Could not read: "broken.jsonl", line 2: not valid JSON.',
    );
    expect(couldNot('load', 'model.safetensors', new Error('model.safetensors: the header is not JSON'))).toBe(
      'Could not load: model.safetensors: the header is not JSON.',
    );
    expect(couldNot('load', 'owner/name', new Error('config.json: HTTP 500'))).toBe(
      'Could not load owner/name: config.json: HTTP 500.',
    );
    expect(couldNot('import', 'a.zip', 'a.zip is not a valid zip (invalid zip data); export the adapter again')).toBe(
      'Could not import: a.zip is not a valid zip (invalid zip data); export the adapter again.',
    );
  });
});
