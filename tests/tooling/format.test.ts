// The formatter check: every file Prettier covers (see .prettierrc.json and .prettierignore) must be
// formatted as `npm run format` leaves it. Fix a failure with `npm run format`.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import * as prettier from 'prettier';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '../..');

/** Every tracked or new (not ignored) file of the repository. */
function repoFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root });
  return out.toString().split('\n').filter(Boolean);
}

describe('formatter', () => {
  it('every file Prettier covers is formatted (run `npm run format` to fix)', async () => {
    const ignorePath = resolve(root, '.prettierignore');
    const unformatted: string[] = [];
    let checked = 0;
    for (const rel of repoFiles()) {
      const file = resolve(root, rel);
      const info = await prettier.getFileInfo(file, { ignorePath });
      if (info.ignored || !info.inferredParser) continue;
      const options = await prettier.resolveConfig(file);
      let src: string;
      try {
        src = readFileSync(file, 'utf8');
      } catch {
        continue; // deleted in the work tree but still in the index
      }
      checked++;
      if (!(await prettier.check(src, { ...options, filepath: file }))) unformatted.push(rel);
    }
    console.log(`formatter: ${checked} files checked, ${unformatted.length} unformatted`);
    expect(checked).toBeGreaterThan(100);
    expect(unformatted).toEqual([]);
  });
});
