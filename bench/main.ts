// The benchmark: a list of named sections, each returning rows; printed, and written to
// bench/results/<driver>.json and bench/results/<driver>.md. Figures from a software driver are ratios
// measured in one run, not speeds to quote. Add a section by appending it to SECTIONS.
import { mkdirSync, writeFileSync } from 'node:fs';
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
  soakSection,
];

export async function main(args: string[]): Promise<void> {
  const only = args.filter((a) => !a.startsWith('-'));
  const unknown = only.filter((n) => !SECTIONS.some((s) => s.name === n));
  if (unknown.length)
    throw new Error(`unknown section(s) ${unknown.join(', ')}; have ${SECTIONS.map((s) => s.name).join(', ')}`);
  const driver = nodeDriver();
  calmDawnPolling(); // before any GPU promise, for every variant alike
  const ctx = await createNodeContext();
  const date = new Date().toISOString();
  // the machine's load (other processes on the same cores) makes software-driver timings noisy: record it
  const load = () => loadavg()[0].toFixed(1);
  const loadStart = load();
  console.log(`WebLoRA bench on ${ctx.adapterName} (${driver}), ${date}, ${cpus().length} CPUs, load ${loadStart}`);
  const results: { name: string; title: string; rows: Row[]; seconds: number }[] = [];
  const t0 = performance.now();
  for (const s of SECTIONS) {
    if (only.length && !only.includes(s.name)) continue;
    console.log(`\n## ${s.title}`);
    const ts = performance.now();
    const rows = await s.run(ctx);
    for (const r of rows)
      console.log(`  ${r.name.padEnd(44)} ${fmt(r.value).padStart(8)} ${r.unit}${r.note ? `   (${r.note})` : ''}`);
    results.push({ name: s.name, title: s.title, rows, seconds: (performance.now() - ts) / 1000 });
  }
  const total = (performance.now() - t0) / 1000;
  console.log(`\ntotal ${total.toFixed(1)} s`);
  const dir = resolve(dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const loadavg1 = `${loadStart} at start, ${load()} at end (1-minute load average, ${cpus().length} CPUs)`;
  const out = {
    driver,
    adapter: ctx.adapterName,
    hasF16: ctx.hasF16,
    date,
    node: process.version,
    load: loadavg1,
    seconds: total,
    sections: results,
  };
  if (only.length) {
    // a partial run does not replace the full results (bench/results/*.tmp is git-ignored)
    writeFileSync(resolve(dir, `${driver}.partial.tmp`), JSON.stringify(out, null, 2) + '\n');
    console.log(`partial run: wrote bench/results/${driver}.partial.tmp`);
  } else {
    writeFileSync(resolve(dir, `${driver}.json`), JSON.stringify(out, null, 2) + '\n');
    writeFileSync(resolve(dir, `${driver}.md`), markdown(out));
    console.log(`wrote bench/results/${driver}.json and .md`);
  }
  await ctx.sync();
  ctx.destroy();
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return ''; // information rows carry only a note
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function markdown(o: {
  driver: string;
  adapter: string;
  hasF16: boolean;
  date: string;
  node: string;
  load: string;
  seconds: number;
  sections: { title: string; rows: Row[] }[];
}): string {
  const lines = [
    `# WebLoRA benchmark: ${o.driver}`,
    '',
    `Adapter: ${o.adapter} (shader-f16: ${o.hasF16 ? 'yes' : 'no'}). Date: ${o.date}. Node ${o.node}. Run time ${o.seconds.toFixed(0)} s. Load: ${o.load}.`,
    '',
    'Warm medians (the tile table: minima), variants interleaved in one run; each note also gives the ratio of minima,',
    'the better guide when other processes shared the cores. On a software driver only the ratios mean something.',
  ];
  for (const s of o.sections) {
    lines.push('', `## ${s.title}`, '', '| what | value | unit | note |', '|---|---:|---|---|');
    for (const r of s.rows) lines.push(`| ${r.name} | ${fmt(r.value)} | ${r.unit} | ${r.note ?? ''} |`);
  }
  return lines.join('\n') + '\n';
}
