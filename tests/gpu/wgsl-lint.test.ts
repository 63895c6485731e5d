// WGSL lint: every kernel in shaders/ (a file with an entry point `main`; lib_*.wgsl are linted through the
// kernels that include them) is specialised with the defaults its `//! defaults: KEY=value ...` line declares
// and compiled by Dawn's null backend, which parses and validates WGSL without running anything. Each error
// is reported as `shaders/<file>.wgsl:<line>:<col>: message`, mapped back through `//#include` expansion
// and `{{KEY}}` substitution to the file and column a person edits.
//
// The pipeline is created too, on a device with WebGPU's default limits (the null adapter offers exactly
// those: 8 storage buffers per stage, 256 invocations per workgroup, 16 KiB of workgroup memory), so a kernel
// that breaks the portability rules of src/kernels/README.md fails here, on every machine.
//
// The null backend needs no driver, and the lint itself never touches one, so it passes in both vitest projects
// alike. It does coexist in one process with the project's Vulkan driver (checked by hand on lavapipe and
// SwiftShader in either order; the last test here checks null-then-driver on the project's driver).
import { describe, expect, it } from 'vitest';
import { create, globals } from 'webgpu';
import { rawShader, shaderNames, specialize, type Defines } from '../../src/gpu/shaders';
import { Tensor } from '../../src/gpu/tensor';
import { add_forward } from '../../src/kernels/add';
import { gpu } from '../helpers/gpu';

// Kept at module level: if the object create() returns is garbage-collected, Dawn crashes the process.
let nullGpu: GPU | null = null;
let devicePromise: Promise<GPUDevice> | null = null;

function nullDevice(): Promise<GPUDevice> {
  if (!devicePromise) {
    devicePromise = (async () => {
      Object.assign(globalThis, globals);
      nullGpu = create(['backend=null']) as GPU;
      const adapter = await nullGpu.requestAdapter();
      if (!adapter) throw new Error("Dawn's null backend gave no adapter (create(['backend=null']))");
      // Default limits on purpose (see above); f16 so that an `enable f16;` variant can be linted.
      const features: GPUFeatureName[] = adapter.features.has('shader-f16') ? ['shader-f16'] : [];
      return adapter.requestDevice({ requiredFeatures: features });
    })();
  }
  return devicePromise;
}

/** The defines of a `//! defaults: KEY=value KEY2=value` line (a value may be empty: `ENABLE_F16=`), or null if there is none. */
export function parseDefaults(src: string): Defines | null {
  const m = /^\/\/!\s*defaults:(.*)$/m.exec(src);
  if (!m) return null;
  const defines: Defines = {};
  for (const tok of m[1].trim().split(/\s+/).filter(Boolean)) {
    const eq = tok.indexOf('=');
    if (eq <= 0) throw new Error(`malformed defaults entry '${tok}' (want KEY=value)`);
    defines[tok.slice(0, eq)] = tok.slice(eq + 1);
  }
  return defines;
}

/** Where a line of the specialised text came from, and the placeholders on it (to map columns back). */
interface LineOrigin {
  file: string;
  line: number; // 1-based, in `file`
  subs: { at: number; from: number; to: number }[]; // 0-based column in the output, original and new lengths
}

/**
 * The text `specialize()` produces, line by line with origins: `//#include lib_x` lines are replaced by
 * lib_x's lines (once per name, like specialize), then `{{KEY}}` by defines[KEY]. `read` gives a file's raw text.
 */
export function expandWithOrigins(
  name: string,
  defines: Defines,
  read: (name: string) => string,
): { text: string; origins: LineOrigin[] } {
  const lines: string[] = [];
  const origins: LineOrigin[] = [];
  const seen = new Set<string>();
  const walk = (file: string) => {
    let skipBlank = false;
    read(file)
      .split('\n')
      .forEach((line, i) => {
        // specialize()'s include pattern ends in `\s*$` (multiline), which also swallows the blank lines after
        // an include line: drop them here too, or every later line number would be off.
        if (skipBlank && /^\s*$/.test(line)) return;
        skipBlank = false;
        const inc = /^\/\/#include\s+(\w+)\s*$/.exec(line);
        if (inc) {
          skipBlank = true;
          if (!seen.has(inc[1])) {
            seen.add(inc[1]);
            walk(inc[1]);
          } else {
            lines.push('');
            origins.push({ file, line: i + 1, subs: [] });
          }
          return;
        }
        const subs: LineOrigin['subs'] = [];
        let shift = 0;
        const out = line.replace(/\{\{(\w+)\}\}/g, (whole: string, key: string, at: number) => {
          if (!(key in defines))
            throw new Error(`shaders/${file}.wgsl:${i + 1}:${at + 1}: no value for {{${key}}} in the defaults line`);
          const v = defines[key];
          const s = typeof v === 'boolean' ? (v ? 'true' : 'false') : String(v);
          subs.push({ at: at + shift, from: whole.length, to: s.length });
          shift += s.length - whole.length;
          return s;
        });
        lines.push(out);
        origins.push({ file, line: i + 1, subs });
      });
  };
  walk(name);
  return { text: lines.join('\n'), origins };
}

/** Maps a 1-based (line, col) of the specialised text back to `shaders/<file>.wgsl:<line>:<col>`. */
function locate(origins: LineOrigin[], line: number, col: number): string {
  const o = origins[line - 1];
  if (!o) return `<specialised text>:${line}:${col}`;
  let c = col - 1;
  let back = 0;
  for (const s of o.subs) {
    if (c >= s.at + s.to) back += s.to - s.from;
    else if (c >= s.at) {
      c = s.at + back;
      back = 0;
      break;
    } // inside a substituted value: point at its {{KEY}}
  }
  return `shaders/${o.file}.wgsl:${o.line}:${c - back + 1}`;
}

/** Compiles WGSL on the null device: the errors as `shaders/<file>.wgsl:<line>:<col>: message`, then pipeline errors. */
export async function lintWgsl(text: string, origins: LineOrigin[], label: string): Promise<string[]> {
  const device = await nullDevice();
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: text, label });
  const info = await module.getCompilationInfo();
  const errors = info.messages
    .filter((m) => m.type === 'error')
    .map((m) => `${locate(origins, m.lineNum, m.linePos)}: ${m.message}`);
  if (errors.length === 0) {
    try {
      await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label });
    } catch (e) {
      errors.push(`shaders/${label}.wgsl: pipeline (default WebGPU limits): ${(e as Error).message.split('\n')[0]}`);
    }
  }
  await device.popErrorScope(); // the module's own error is already in `errors`
  return errors;
}

/** Lints kernel `name` of shaders/: its messages (empty = clean). */
export async function lintShader(name: string, read: (name: string) => string = rawShader): Promise<string[]> {
  const src = read(name);
  const defaults = parseDefaults(src);
  if (!defaults) {
    const ph = /\{\{(\w+)\}\}/.exec(src);
    if (ph) {
      return [
        `shaders/${name}.wgsl: has placeholders ({{${ph[1]}}}) but no '//! defaults: KEY=value ...' line, so it cannot be linted`,
      ];
    }
  }
  let expanded: { text: string; origins: LineOrigin[] };
  try {
    expanded = expandWithOrigins(name, defaults ?? {}, read);
    // Included libs may use placeholders too; the defaults must cover them.
  } catch (e) {
    return [(e as Error).message];
  }
  return lintWgsl(expanded.text, expanded.origins, name);
}

const kernels = shaderNames().filter((n) => !n.startsWith('lib_') && /\bfn\s+main\s*\(/.test(rawShader(n)));

describe('WGSL lint (Dawn null backend, default limits)', () => {
  it('finds the kernels', () => {
    expect(kernels.length).toBeGreaterThan(5);
    expect(kernels).toContain('add');
  });

  it.each(kernels)('shaders/%s.wgsl compiles with its defaults', async (name) => {
    const errors = await lintShader(name);
    if (errors.length) throw new Error(`WGSL lint:\n${errors.join('\n')}`);
    // The line map must reproduce specialize() exactly, or the positions reported would be wrong.
    const defaults = parseDefaults(rawShader(name)) ?? {};
    expect(expandWithOrigins(name, defaults, rawShader).text).toBe(specialize(name, defaults));
  });

  it('every lib_*.wgsl is included by some kernel (so it is linted)', () => {
    for (const lib of shaderNames().filter((n) => n.startsWith('lib_'))) {
      const users = kernels.filter((k) => new RegExp(`^//#include\\s+${lib}\\s*$`, 'm').test(rawShader(k)));
      expect(users, `shaders/${lib}.wgsl is included by no kernel`).not.toEqual([]);
    }
  });
});

describe('WGSL lint: self-test', () => {
  const fake: Record<string, string> = {
    broken: [
      '// a kernel with a type error on line 4, column 18',
      '@group(0) @binding(0) var<storage, read_write> a: array<f32>;',
      '@compute @workgroup_size(1) fn main() {',
      '  let x: u32 = 1.5;',
      '  a[0] = f32(x);',
      '}',
    ].join('\n'),
    noDefaults: ['@compute @workgroup_size({{WG}}) fn main() {}'].join('\n'),
    placeholderError: [
      '//! defaults: WG=64 T=f32',
      '//#include lib_fake',
      '@group(0) @binding(0) var<storage, read_write> a: array<{{T}}>;',
      '@compute @workgroup_size({{WG}}) fn main() { a[0] = {{T}}(lib_one()) + nope; }',
    ].join('\n'),
    lib_fake: ['// a library', 'fn lib_one() -> f32 {', '  return 1.0;', '}'].join('\n'),
    libError: ['//#include lib_bad', '@compute @workgroup_size(1) fn main() { _ = lib_two(); }'].join('\n'),
    lib_bad: ['fn lib_two() -> f32 {', '  return 2u;', '}'].join('\n'),
    tooWide: ['@compute @workgroup_size(512) fn main() {}'].join('\n'),
  };
  const read = (n: string) => {
    if (!(n in fake)) throw new Error(`no fake shader ${n}`);
    return fake[n];
  };

  it('a broken WGSL string gives an error with its line and column', async () => {
    const errors = await lintShader('broken', read);
    expect(errors.length).toBe(1);
    expect(errors[0]).toMatch(/^shaders\/broken\.wgsl:4:16: .*abstract-float.*u32/);
  });

  it('a shader with placeholders but no defaults line fails with a clear message', async () => {
    const errors = await lintShader('noDefaults', read);
    expect(errors).toEqual([
      "shaders/noDefaults.wgsl: has placeholders ({{WG}}) but no '//! defaults: KEY=value ...' line, so it cannot be linted",
    ]);
  });

  it('columns are mapped back through {{KEY}} substitution, lines through //#include', async () => {
    // `nope` sits at column 72 of line 4 in the source; after {{T}} -> f32 it is at column 70.
    const line4 = fake.placeholderError.split('\n')[3];
    const errors = await lintShader('placeholderError', read);
    expect(errors.length).toBe(1);
    expect(errors[0]).toBe(
      `shaders/placeholderError.wgsl:4:${line4.indexOf('nope') + 1}: ${errors[0].split(': ').slice(1).join(': ')}`,
    );
    expect(errors[0]).toMatch(/unresolved value 'nope'/);
  });

  it('an error inside an included lib names the lib and its own line', async () => {
    const errors = await lintShader('libError', read);
    expect(errors.length).toBe(1);
    expect(errors[0]).toMatch(/^shaders\/lib_bad\.wgsl:2:3: return statement type must match/);
  });

  it('a kernel over the default limits (256 invocations) fails at pipeline creation', async () => {
    const errors = await lintShader('tooWide', read);
    expect(errors.length).toBe(1);
    expect(errors[0]).toMatch(/^shaders\/tooWide\.wgsl: pipeline .*workgroup_size\(512/);
  });

  it('a defaults line that misses a key is reported at the placeholder', async () => {
    const errors = await lintShader('x', (n) =>
      n === 'x' ? '//! defaults: A=1\nconst B = {{B}}u;\n@compute @workgroup_size(1) fn main() {}' : read(n),
    );
    expect(errors).toEqual(['shaders/x.wgsl:2:11: no value for {{B}} in the defaults line']);
  });
});

describe('WGSL lint: the null backend next to the real driver', () => {
  it('a null-backend device and the project driver work in one process', async () => {
    const nullDev = await nullDevice();
    const ctx = await gpu(); // WEBLORA_DRIVER's adapter, created after the null one
    const a = Tensor.from(ctx, [1, 2, 3], [3]),
      b = Tensor.from(ctx, [10, 20, 30], [3]);
    const c = add_forward(a, b);
    expect(Array.from(await c.read())).toEqual([11, 22, 33]);
    expect((await lintShader('add')).length).toBe(0); // and the null device still answers afterwards
    expect(nullDev.limits.maxStorageBuffersPerShaderStage).toBe(8);
    [a, b, c].forEach((t) => t.free());
  });
});
