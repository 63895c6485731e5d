// The layer check: imports in src/ flow one way. Each folder of src/ is a layer; a file may import its own
// layer and the layers LAYERS lists for it, nothing else. Every kind of module reference counts: static
// `import`/`export ... from`, `import type`, dynamic `import()`, type-position `import('...')`,
// `new URL('./x.ts', import.meta.url)` (a worker entry) and `import.meta.glob(...)`. A reference that
// leaves src/ must land in a layer of the table too (only shaders/ does). The table itself must have no
// cycle, and neither may the layer graph the imports draw.
//
// The order, lowest first:
//
//   util     formatting helpers with no imports, which any layer may use
//   shaders  the WGSL sources (read by gpu through import.meta.glob)
//   gpu      WebGPU runtime, allocator, tensors
//   kernels  one file per WGSL kernel and its CPU twin
//   autograd the tape and the differentiable ops on it
//   data     text -> token batches; pure CPU (it shares IGNORE_INDEX with the loss kernel, a GPU-free module)
//   models   config, families, weights, LoRA parameters, head, no-grad forward, generation, memory estimate
//   loaders  model files: config.json, safetensors, tokenizer, sources (builds a ModelConfig)
//   adapters PEFT import/export and merging (reads model files, writes safetensors)
//   training settings, schedule, the training step, AdamW, the trainer
//   storage  checkpoints and the adapter gallery (stores training settings and adapter files)
//   engine   everything the page and the CLI do, over one GPU context
//   cli      the Node command line (beside worker: it drives the engine directly)
//   worker   the Web Worker and the one protocol between it and the page
//   ui       the studio page: talks to the worker only, through the protocol and the client
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '../..');

/** Layer -> the layers it may import (besides itself). */
const LAYERS: Record<string, string[]> = {
  util: [],
  shaders: [],
  gpu: ['util', 'shaders'],
  kernels: ['util', 'gpu'],
  autograd: ['util', 'gpu', 'kernels'],
  data: ['util', 'kernels'],
  models: ['util', 'gpu', 'kernels', 'autograd'],
  loaders: ['util', 'gpu', 'models'],
  adapters: ['util', 'gpu', 'kernels', 'models', 'loaders'],
  training: ['util', 'gpu', 'kernels', 'autograd', 'data', 'models'],
  storage: ['util', 'adapters', 'training'],
  engine: ['util', 'gpu', 'kernels', 'autograd', 'data', 'models', 'loaders', 'adapters', 'training', 'storage'],
  cli: ['util', 'gpu', 'loaders', 'training', 'engine'],
  worker: ['util', 'gpu', 'data', 'models', 'loaders', 'adapters', 'training', 'storage', 'engine'],
  ui: ['util', 'worker'],
};

interface ModuleRef {
  /** The importing file, relative to the repository root. */
  file: string;
  line: number;
  /** The specifier as written. */
  spec: string;
}

/** Every module reference in a TypeScript source, by walking its syntax tree. */
function moduleRefs(file: string, text: string): ModuleRef[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: ModuleRef[] = [];
  const add = (node: ts.Node, lit: ts.Node | undefined) => {
    if (lit && ts.isStringLiteralLike(lit))
      out.push({ file, line: sf.getLineAndCharacterOfPosition(node.getStart()).line + 1, spec: lit.text });
  };
  const isImportMeta = (e: ts.Node) =>
    ts.isMetaProperty(e) && e.keywordToken === ts.SyntaxKind.ImportKeyword && e.name.text === 'meta';
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node, node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference))
      add(node, node.moduleReference.expression);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node, node.argument.literal);
    else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword) add(node, node.arguments[0]); // import('...')
      // import.meta.glob('...') / import.meta.glob(['...', '...'])
      if (ts.isPropertyAccessExpression(callee) && isImportMeta(callee.expression) && callee.name.text === 'glob') {
        const a = node.arguments[0];
        if (a && ts.isArrayLiteralExpression(a)) for (const e of a.elements) add(node, e);
        else add(node, a);
      }
    } else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'URL') {
      // new URL('./engine.worker.ts', import.meta.url): a module the bundler follows
      const [spec, base] = node.arguments ?? [];
      if (base && ts.isPropertyAccessExpression(base) && isImportMeta(base.expression)) add(node, spec);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The layer a repository path belongs to: its folder under src/, or a top-level folder of the table. */
function layerOf(repoPath: string): string | null {
  const parts = repoPath.split('/');
  // src/<layer>/file, or src/<layer> itself (an import of its index)
  if (parts[0] === 'src' && (parts.length > 2 || (parts.length === 2 && !parts[1].includes('.')))) return parts[1];
  if (parts.length > 1 && parts[0] in LAYERS) return parts[0];
  return null;
}

interface Edge {
  from: string;
  to: string;
  ref: ModuleRef;
}

/** Problems with the references of the given files: imports the table forbids, and paths outside every layer. */
function checkRefs(refs: ModuleRef[]): { problems: string[]; edges: Edge[] } {
  const problems: string[] = [];
  const edges: Edge[] = [];
  for (const ref of refs) {
    if (!ref.spec.startsWith('.')) continue; // a package (npm, node:): not a layer
    const from = layerOf(ref.file);
    const target = relative(root, resolve(root, dirname(ref.file), ref.spec))
      .split('\\')
      .join('/');
    const to = layerOf(target);
    const at = `${ref.file}:${ref.line} imports '${ref.spec}'`;
    if (from === null) problems.push(`${at}, but ${ref.file} is in no layer of the table`);
    else if (to === null) problems.push(`${at}, which is ${target}: outside every layer`);
    else if (to !== from) {
      edges.push({ from, to, ref });
      const allowed = LAYERS[from];
      if (!allowed) problems.push(`${at}: layer '${from}' is not in the table`);
      else if (!allowed.includes(to))
        problems.push(`${at}: layer '${from}' may import ${allowed.join(', ') || 'no other layer'}, not '${to}'`);
    }
  }
  return { problems, edges };
}

/** A cycle in a directed graph (layer -> layers), as the list of its nodes, or null. */
function findCycle(graph: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const dfs = (n: string): string[] | null => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === 'open') return [...stack.slice(stack.indexOf(m)), m];
      if (!state.has(m)) {
        const c = dfs(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of graph.keys()) {
    if (state.has(n)) continue;
    const c = dfs(n);
    if (c) return c;
  }
  return null;
}

/** A cycle of the layer graph that `edges` draw, each step named by one file and import, or null. */
function importCycle(edges: Edge[]): string | null {
  const graph = new Map<string, Set<string>>();
  for (const e of edges) {
    if (!graph.has(e.from)) graph.set(e.from, new Set());
    graph.get(e.from)!.add(e.to);
  }
  const cycle = findCycle(graph);
  if (!cycle) return null;
  const steps = cycle.slice(1).map((to, i) => {
    const e = edges.find((x) => x.from === cycle[i] && x.to === to)!;
    return `${e.from} -> ${e.to} (${e.ref.file}:${e.ref.line} imports '${e.ref.spec}')`;
  });
  return `cycle between layers: ${steps.join(', ')}`;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|tsx|mts|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

const tableGraph = new Map(Object.entries(LAYERS).map(([k, v]) => [k, new Set(v)]));

describe('layers', () => {
  const files = sourceFiles(join(root, 'src'));
  const refs = files.flatMap((f) => moduleRefs(relative(root, f).split('\\').join('/'), readFileSync(f, 'utf8')));

  it('the table has no cycle and names only its own layers', () => {
    expect(findCycle(tableGraph)).toBeNull();
    for (const [layer, deps] of Object.entries(LAYERS))
      for (const d of deps) expect(LAYERS, `${layer} lists unknown layer ${d}`).toHaveProperty(d);
  });

  it('every folder of src/ is a layer of the table', () => {
    const folders = readdirSync(join(root, 'src')).filter((n) => statSync(join(root, 'src', n)).isDirectory());
    expect(folders.length).toBeGreaterThan(10);
    expect(folders.filter((f) => !(f in LAYERS))).toEqual([]);
    expect(files.filter((f) => dirname(f) === join(root, 'src'))).toEqual([]); // no file outside a layer
  });

  it('every import in src/ is one the table allows', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(refs.length).toBeGreaterThan(200);
    const { problems } = checkRefs(refs);
    expect(problems).toEqual([]);
  });

  it('the imports draw no cycle between layers', () => {
    expect(importCycle(checkRefs(refs).edges)).toBeNull();
  });

  // The checker itself: each kind of reference is seen, and a forbidden one is reported with its file.
  it('sees every kind of module reference', () => {
    const text = [
      "import { a } from '../models/a';",
      "import type { B } from '../training/b';",
      "export { c } from '../engine/c';",
      "import '../ui/style.css';",
      "const d = await import('../worker/d');",
      "type E = typeof import('../storage/e');",
      "const w = new Worker(new URL('../worker/w.ts', import.meta.url));",
      "const g = import.meta.glob('../../shaders/*.wgsl');",
      "import { readFileSync } from 'node:fs';",
    ].join('\n');
    const specs = moduleRefs('src/kernels/x.ts', text).map((r) => r.spec);
    expect(specs).toEqual([
      '../models/a',
      '../training/b',
      '../engine/c',
      '../ui/style.css',
      '../worker/d',
      '../storage/e',
      '../worker/w.ts',
      '../../shaders/*.wgsl',
      'node:fs',
    ]);
    const { problems } = checkRefs(moduleRefs('src/kernels/x.ts', text));
    expect(problems).toHaveLength(8);
    expect(problems[0]).toBe(
      "src/kernels/x.ts:1 imports '../models/a': layer 'kernels' may import util, gpu, not 'models'",
    );
  });

  it('reports a path outside every layer, and a cycle with the imports that make it', () => {
    expect(checkRefs([{ file: 'src/gpu/x.ts', line: 3, spec: '../../tools/y' }]).problems).toEqual([
      "src/gpu/x.ts:3 imports '../../tools/y', which is tools/y: outside every layer",
    ]);
    const { edges } = checkRefs([
      { file: 'src/models/m.ts', line: 1, spec: '../training/t' },
      { file: 'src/training/t.ts', line: 2, spec: '../models/m' },
    ]);
    expect(importCycle(edges)).toBe(
      "cycle between layers: models -> training (src/models/m.ts:1 imports '../training/t'), " +
        "training -> models (src/training/t.ts:2 imports '../models/m')",
    );
  });
});
