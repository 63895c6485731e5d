// WGSL sources from shaders/*.wgsl, loaded the same way by vite (browser, worker), vitest and the
// Node CLI/bench (through vite's module runner): as raw strings bundled at build time.
//
// Specialisation is plain text: a kernel source may use `{{NAME}}` placeholders, and a define
// value replaces each (e.g. `{{BELEM}}` -> `f16` for a variant that reads f16 weights; such a source puts
// `{{ENABLE_F16}}` on its first line, filled with `enable f16;` or nothing). Shared WGSL functions live in
// `shaders/lib_*.wgsl` and are pulled in by a line `//#include lib_name`.
// A shader lists the defines it needs for linting in a line `//! defaults: KEY=value KEY2=value`.

const sources = import.meta.glob('../../shaders/*.wgsl', {
  query: '?raw',
  import: 'default',
  eager: true,
}) as Record<string, string>;

const byName = new Map<string, string>();
for (const [path, text] of Object.entries(sources)) {
  byName.set(path.replace(/^.*\//, '').replace(/\.wgsl$/, ''), text);
}

export type Defines = Record<string, string | number | boolean>;

export function shaderNames(): string[] {
  return [...byName.keys()].sort();
}

export function rawShader(name: string): string {
  const src = byName.get(name);
  if (src === undefined) throw new Error(`no shader named '${name}' in shaders/ (have: ${shaderNames().join(', ')})`);
  return src;
}

/** The source with each `//#include lib_x` line replaced by shaders/lib_x.wgsl (once per name). */
function withIncludes(name: string, seen = new Set<string>()): string {
  return rawShader(name).replace(/^\/\/#include\s+(\w+)\s*$/gm, (_, lib: string) => {
    if (seen.has(lib)) return '';
    seen.add(lib);
    return withIncludes(lib, seen);
  });
}

/** The source of kernel `name` with includes expanded and every `{{KEY}}` replaced by defines[KEY]. */
export function specialize(name: string, defines: Defines = {}): string {
  const src = withIncludes(name);
  const out = src.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in defines)) throw new Error(`shader '${name}': no value for {{${key}}}`);
    const v = defines[key];
    return typeof v === 'boolean' ? (v ? 'true' : 'false') : String(v);
  });
  return out;
}

export function definesKey(defines: Defines): string {
  return Object.keys(defines)
    .sort()
    .map((k) => `${k}=${defines[k]}`)
    .join(',');
}
