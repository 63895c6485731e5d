// The benchmark: a list of named sections, each returning rows; printed, and written to
// bench/results/<driver>.json and bench/results/<driver>.md, each section with the run it came from (date,
// commit, load). Naming sections runs only those and replaces only their figures in the results. Figures
// from a software driver are ratios measured in one run, not speeds to quote. Add a section by appending it
// to SECTIONS.
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { calmDawnPolling, createNodeContext, nodeDriver } from '../src/gpu/node';
import type { Row, Section } from './harness';
import { matmulSection, matmulTilesSection, matmulVariantsSection } from './sections/matmul';
import { loraBackwardSection, loraForwardSection } from './sections/lora';
import { trainingSection } from './sections/training';
import { peersSection } from './sections/peers';
import { shapesSection } from './sections/shapes';
import { steptimeSection } from './sections/steptime';
import { headSection } from './sections/head';
import { soakSection } from './sections/soak';
import { memorySection } from './sections/memory';

const SECTIONS: Section[] = [
  matmulSection,
  matmulTilesSection,
  matmulVariantsSection,
  loraForwardSection,
  loraBackwardSection,
  trainingSection,
  headSection,
  peersSection,
  shapesSection,
  steptimeSection,
  memorySection,
  soakSection,
];

/** One section's figures, and the run they came from: sections run alone replace only their own. */
interface SectionResult {
  name: string;
  title: string;
  rows: Row[];
  seconds: number;
  date: string;
  /** `git rev-parse --short HEAD` at the run, "+dirty" when the work tree had changes */
  commit: string;
  node: string;
  adapter: string;
  /** the machine's 1-minute load average at the start and at the end of the section, and its CPU count */
  load: string;
}

interface Results {
  driver: string;
  /** the adapter of the latest run (each section also names its own) */
  adapter: string;
  hasF16: boolean;
  sections: SectionResult[];
}

export async function main(args: string[]): Promise<void> {
  const only = args.filter((a) => !a.startsWith('-'));
  const unknown = only.filter((n) => !SECTIONS.some((s) => s.name === n));
  if (unknown.length)
    throw new Error(`unknown section(s) ${unknown.join(', ')}; have ${SECTIONS.map((s) => s.name).join(', ')}`);
  const driver = nodeDriver();
  calmDawnPolling(); // before any GPU promise, for every variant alike
  const ctx = await createNodeContext();
  const commit = gitCommit();
  // the machine's load (other processes on the same cores) makes software-driver timings noisy: record it
  const load = () => loadavg()[0].toFixed(1);
  console.log(
    `WebLoRA bench on ${ctx.adapterName} (${driver}), ${new Date().toISOString()}, commit ${commit}, ${cpus().length} CPUs, load ${load()}`,
  );
  const ran: SectionResult[] = [];
  const t0 = performance.now();
  for (const s of SECTIONS) {
    if (only.length && !only.includes(s.name)) continue;
    console.log(`\n## ${s.title}`);
    const [ts, date, loadStart] = [performance.now(), new Date().toISOString(), load()];
    const rows = await s.run(ctx);
    for (const r of rows)
      console.log(`  ${r.name.padEnd(44)} ${fmt(r.value).padStart(8)} ${r.unit}${r.note ? `   (${r.note})` : ''}`);
    ran.push({
      name: s.name,
      title: s.title,
      rows,
      seconds: (performance.now() - ts) / 1000,
      date,
      commit,
      node: process.version,
      adapter: ctx.adapterName,
      load: `${loadStart} at start, ${load()} at end (1-minute load average, ${cpus().length} CPUs)`,
    });
  }
  console.log(`\ntotal ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  // The sections that ran replace theirs in bench/results/<driver>.{json,md}; the others stay as they were
  // (a full run replaces them all). Sections are kept in SECTIONS' order; one no longer in SECTIONS is dropped.
  const dir = resolve(dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  // software drivers by name; a real GPU (driver 'system') by its adapter, e.g. nvidia-h200.json
  const name = driver === 'system' ? adapterFileName(ctx.adapterName) : driver;
  const jsonPath = resolve(dir, `${name}.json`);
  const kept = only.length ? readResults(jsonPath) : [];
  const sections = SECTIONS.map((s) => ran.find((r) => r.name === s.name) ?? kept.find((r) => r.name === s.name));
  const out: Results = {
    driver,
    adapter: ctx.adapterName,
    hasF16: ctx.hasF16,
    sections: sections.filter((s): s is SectionResult => s !== undefined),
  };
  writeFileSync(jsonPath, JSON.stringify(out, null, 2) + '\n');
  writeFileSync(resolve(dir, `${name}.md`), markdown(out));
  console.log(
    `wrote bench/results/${name}.json and .md: ${only.length ? `replaced ${ran.map((r) => r.name).join(', ')}, kept the other sections` : 'every section'}`,
  );
  await ctx.sync();
  ctx.destroy();
}

/** A results file's name for a real GPU's adapter: "NVIDIA H200 (Vulkan)" -> "nvidia-h200-vulkan". */
export function adapterFileName(adapter: string): string {
  return (
    adapter
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60) || 'gpu'
  );
}

/** The commit the figures come from: WEBLORA_COMMIT where there is no git (tools/gpu-kit.sh's kit), else git's. */
function gitCommit(): string {
  if (process.env.WEBLORA_COMMIT) return process.env.WEBLORA_COMMIT;
  const git = (cmd: string) => execSync(`git ${cmd}`, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const dirty = git('status --porcelain --untracked-files=no').trim() !== '';
    return git('rev-parse --short HEAD').trim() + (dirty ? '+dirty' : '');
  } catch {
    return 'unknown (no git)';
  }
}

/** The sections of an earlier results file. Files written before sections carried their own run figures
 * give each section the whole run's date, load and adapter, and commit "not recorded". */
function readResults(path: string): SectionResult[] {
  if (!existsSync(path)) return [];
  const old = JSON.parse(readFileSync(path, 'utf8'));
  return (old.sections ?? []).map((s: Partial<SectionResult>) => ({
    ...s,
    date: s.date ?? old.date,
    commit: s.commit ?? 'not recorded',
    node: s.node ?? old.node,
    adapter: s.adapter ?? old.adapter,
    load: s.load ?? old.load,
  }));
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return ''; // information rows carry only a note
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function markdown(o: Results): string {
  const lines = [
    `# WebLoRA benchmark: ${o.driver}`,
    '',
    `Adapter: ${o.adapter} (shader-f16: ${o.hasF16 ? 'yes' : 'no'}). Each section names the run it comes from (date, commit,`,
    'its run time, the 1-minute load average of the machine at its start and end): `node bench/run.mjs <section>`',
    'replaces one section and keeps the others.',
    '',
    'Warm medians (the tile table: minima), variants interleaved in one run; each note also gives the ratio of minima,',
    'the better guide when other processes shared the cores. On a software driver only the ratios mean something.',
  ];
  for (const s of o.sections) {
    const adapter = s.adapter === o.adapter ? '' : ` Adapter: ${s.adapter}.`;
    lines.push(
      '',
      `## ${s.title}`,
      '',
      `Run ${s.date}, commit ${s.commit}, Node ${s.node}, ${s.seconds.toFixed(0)} s, load ${s.load}.${adapter}`,
      '',
      '| what | value | unit | note |',
      '|---|---:|---|---|',
    );
    for (const r of s.rows) lines.push(`| ${r.name} | ${fmt(r.value)} | ${r.unit} | ${r.note ?? ''} |`);
  }
  return lines.join('\n') + '\n';
}
