// The repository explains itself: no file points at documents that exist only on some machine, and the
// links of the docs lead somewhere.
//
// 1. No text file of the repository (tracked, or new and not ignored; package-lock.json and binary files
//    aside) names a path into a user's or a workspace's own folders (home directories, the root user's,
//    a mounted or shared workspace), nor a relative path that climbs into a sibling `shared` folder.
//    Standard system locations the project really uses (Debian's Chromium, the system Python, the apt
//    configuration, scratch files) are not machine-specific and stay allowed.
// 2. Every relative link in README.md and docs/*.md resolves to a file or folder of the repository (with
//    its #anchor, when it points at a heading of a Markdown file), and docs/README.md links every page
//    of docs/.
import { execFileSync } from 'node:child_process';
import { lstatSync, readFileSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '../..');

/** Every tracked or new (not ignored) path of the repository, relative, with forward slashes. */
function repoFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root });
  return out.toString().split('\n').filter(Boolean);
}

/** The text of a regular file, or null for a binary one (a NUL byte), a link, or one deleted in the work tree. */
function readText(rel: string): string | null {
  const file = join(root, rel);
  try {
    if (!lstatSync(file).isFile()) return null;
  } catch {
    return null;
  }
  const bytes = readFileSync(file);
  if (bytes.includes(0)) return null;
  return bytes.toString('utf8');
}

// Absolute paths whose first folder belongs to a user or a workspace rather than to the system: a path
// there exists only on the machine that wrote it. The look-behind keeps URL paths (`host/home/...`) and
// relative paths (`a/home/b`) out.
const MACHINE_PATH =
  /(?<![\w.~/-])\/(?:work|workspace|home|root|Users|mnt|media|srv|shared)\/|(?<![\w-])[A-Za-z]:\\Users\\/;
const SHARED_SIBLING = /\.\.[/\\]shared\b/;

/** The lines of `text` that point outside the repository, as `line: text`. */
function outsidePointers(text: string): string[] {
  const hits: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (MACHINE_PATH.test(line) || SHARED_SIBLING.test(line)) hits.push(`${i + 1}: ${line.trim().slice(0, 160)}`);
  });
  return hits;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of stripCode(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) out.add(slug(m[1]));
  return out;
}

/** Markdown without fenced code blocks and inline code spans (a link there is not a link). */
function stripCode(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** The targets of inline links `[text](target)` and reference definitions `[ref]: target`. */
function linkTargets(markdown: string): string[] {
  const text = stripCode(markdown);
  const out: string[] = [];
  for (const m of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push(m[1]);
  for (const m of text.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm)) out.push(m[1]);
  return out;
}

/** Why the link `target` in the Markdown file `from` does not resolve, or null when it does. */
function brokenLink(from: string, target: string, files: Set<string>, folders: Set<string>): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return null; // https:, mailto:, ...: not a file of the repository
  const [pathPart, anchor] = target.split('#', 2);
  const rawPath = decodeURI(pathPart.split('?')[0]);
  const rel =
    rawPath === ''
      ? from
      : posix.normalize(rawPath.startsWith('/') ? rawPath.slice(1) : posix.join(posix.dirname(from), rawPath));
  if (rel.startsWith('..')) return 'leaves the repository';
  const path = rel.replace(/\/$/, '');
  if (!files.has(path) && !folders.has(path)) return 'no such file in the repository';
  if (anchor && path.endsWith('.md') && files.has(path)) {
    const text = readText(path) ?? '';
    if (!anchors(text).has(anchor)) return `no heading #${anchor} in ${path}`;
  }
  return null;
}

describe('self-contained', () => {
  const all = repoFiles();
  const texts = new Map<string, string>();
  for (const rel of all) {
    const text = readText(rel);
    if (text !== null) texts.set(rel, text);
  }
  // Regular files only: a link must lead to something git would carry (not to a symlinked .cache or node_modules).
  const files = new Set(all.filter((rel) => lstatSync(join(root, rel), { throwIfNoEntry: false })?.isFile()));
  const folders = new Set<string>();
  for (const f of files) for (let d = dirname(f); d !== '.'; d = dirname(d)) folders.add(d);

  it('the detectors catch what they are for, and nothing the project legitimately names', () => {
    // Built at run time, so this file itself never contains what it forbids.
    const slash = '/';
    for (const bad of [
      `see ${slash}work${slash}shared${slash}notes.md`,
      `(${slash}home${slash}alice${slash}x.md)`,
      `"${slash}root${slash}.cache"`,
      `at ${slash}Users${slash}bob${slash}doc`,
      `..${slash}shared${slash}notes.md`,
      `C:\\Users\\bob\\notes.md`,
    ])
      expect(outsidePointers(bad), bad).toHaveLength(1);
    for (const good of [
      `'${slash}usr${slash}lib${slash}chromium${slash}chromium'`,
      `${slash}usr${slash}bin${slash}python3 tools/golden.py`,
      `${slash}etc${slash}apt${slash}sources.list.d`,
      `${slash}tmp${slash}weblora-pretrain`,
      'https://huggingface.co/api/models/x/tree/main',
      'const BASE_PATH = "/studio/sub/"',
      'a shared compute pass; shared memory',
      'x = a / b / c',
    ])
      expect(outsidePointers(good), good).toEqual([]);
    expect(linkTargets('[a](docs/lora.md) `[b](code.md)` [c](https://x.org/y) [d](#top "t")\n[e]: ../x.md')).toEqual([
      'docs/lora.md',
      'https://x.org/y',
      '#top',
      '../x.md',
    ]);
    const link = (from: string, target: string) => brokenLink(from, target, files, folders);
    expect(link('docs/README.md', 'lora.md')).toBeNull();
    expect(link('docs/README.md', '../src/kernels/')).toBeNull();
    expect(link('README.md', 'docs/lora.md#backward')).toBeNull();
    expect(link('README.md', 'https://example.org/nowhere.md')).toBeNull();
    expect(link('docs/README.md', 'no-such-page.md')).toBe('no such file in the repository');
    expect(link('docs/README.md', '../../outside.md')).toBe('leaves the repository');
    expect(link('README.md', 'docs/lora.md#no-such-heading')).toBe('no heading #no-such-heading in docs/lora.md');
    expect(link('README.md', '.cache')).toBe('no such file in the repository'); // ignored: not part of the repository
  });

  it('no file points outside the repository (paths of one machine, a sibling shared folder)', () => {
    const found: string[] = [];
    for (const [rel, text] of texts) {
      if (rel === 'package-lock.json') continue;
      for (const hit of outsidePointers(text)) found.push(`${rel}:${hit}`);
    }
    console.log(`self-contained: ${texts.size} text files checked, ${found.length} outside pointers`);
    expect(texts.size).toBeGreaterThan(100);
    expect(found, 'write what the project needs in docs/ and point there instead').toEqual([]);
  });

  it('every relative link in README.md and docs/*.md resolves to a file of the repository', () => {
    const pages = [...files].filter((f) => f === 'README.md' || /^docs\/[^/]+\.md$/.test(f)).sort();
    expect(pages).toContain('README.md');
    expect(pages).toContain('docs/README.md');
    const broken: string[] = [];
    let links = 0;
    for (const page of pages) {
      for (const target of linkTargets(texts.get(page)!)) {
        links++;
        const why = brokenLink(page, target, files, folders);
        if (why) broken.push(`${page}: (${target}) ${why}`);
      }
    }
    console.log(`self-contained: ${pages.length} pages, ${links} links checked`);
    expect(broken).toEqual([]);
  });

  it('docs/README.md links every page of docs/', () => {
    const index = linkTargets(texts.get('docs/README.md') ?? '').map((t) =>
      posix.normalize(posix.join('docs', t.split('#')[0])),
    );
    const pages = [...files].filter((f) => /^docs\/[^/]+\.md$/.test(f) && f !== 'docs/README.md');
    expect(pages.length).toBeGreaterThan(0);
    expect(pages.filter((p) => !index.includes(p))).toEqual([]);
  });
});
