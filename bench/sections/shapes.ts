// The GPU shape report: how one full training step (forward, backward, AdamW: the Trainer's own step, as Engine.run drives it)
// would use a real GPU, read from the shapes of its dispatches. Nothing here is a timing.
//
// How it is measured. The step runs on a device that executes nothing (bench/record-devices.ts): every
// command goes through the real runtime, which records it (GpuContext.record), so a SmolLM2-135M step at
// B 8 x T 512, which would take minutes on lavapipe, records in seconds. Dawn's null backend would be the
// natural choice but caps its buffers at 512 MiB, less than the model's weights, so the step is recorded on a
// stub device in JS that accepts every call and allocates nothing; the bundled model is recorded on both, and the
// report fails unless the two recordings agree dispatch for dispatch. Each dispatch carries its kernel, grid,
// threads per workgroup (from the specialised shader's @workgroup_size) and the paper cost its launcher computed
// from the shapes (flops, bytes read and written once each, the longest loop one thread runs). Buffers go
// through the real allocator, so peak bytes are the product's own accounting; values read back are zeros, and
// the device has WebGPU's default limits, so kernel choices that depend on the adapter are the portable ones.
//
// The paper estimate (a roofline with an occupancy penalty), per dispatch on a spec (peak fp32 flop/s P,
// bandwidth W, compute units U):
//   t = max(flops / P, bytes / W) · max(1, 2·U / workgroups) + LAUNCH
// i.e. a kernel on fewer than two workgroups per unit runs at that fraction of the chip, and every dispatch
// pays a fixed LAUNCH of 5 µs (encoding, bind group, dispatch and barrier in a WebGPU queue). A dispatch without
// a cost counts LAUNCH only (and is listed). Buffer copies and clears in the stream (the residual connections'
// copies, gradient zeroing) are not dispatches, but their bytes are moved at the bandwidth: a copy bytes·2 / W
// (read and written), a clear bytes / W. The step estimate is the sum over dispatches and transfers: no overlap
// between them, ideal caching inside one. It is a paper estimate, not a timing.
//
// Targets (issue 10, SmolLM2-135M): <= 900 dispatches; no kernel above 10 MFLOP on fewer than 264 workgroups
// (2 x 132 H200 units); no loop over 2,048 in a kernel on fewer than 1,024 workgroups; no readback that blocks
// encoding the next step (a readback the step waited for, or a sync); H200 estimate <= 120 ms.
//
// Output: printed, the section's rows in the bench results, and bench/results/shape-report.{json,md}. When
// bench/results/shape-report-before.json exists, the headline figures are printed as before -> after.
// Run alone: node bench/run.mjs shapes (or npm run bench -- shapes).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../src/engine/engine';
import type { DispatchRecord, GpuContext, Recording } from '../../src/gpu/context';
import { LONG_LOOP, LONG_LOOP_WORKGROUPS, WIDE_GRID_MFLOP, WIDE_GRID_WORKGROUPS } from '../../src/kernels/matmul';
import { dirSource } from '../../src/loaders/sources.node';
import type { Trainer } from '../../src/training/trainer';
import type { Row, Section } from '../harness';
import { nullContext, stubContext } from '../record-devices';
import { smolLM2Trainer } from './smollm2';
import { BUNDLED_DATA, BUNDLED_MODEL, TRAINING_SETTINGS } from './training';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const OUT = resolve(root, 'bench/results/shape-report');
const BEFORE = resolve(root, 'bench/results/shape-report-before.json');

export interface Spec {
  name: string;
  flops: number /* fp32 flop/s */;
  bandwidth: number /* bytes/s */;
  units: number /* compute units (SMs, GPU cores) */;
}
export const SPECS: Spec[] = [
  { name: 'H200 class', flops: 67e12, bandwidth: 4.8e12, units: 132 },
  { name: 'M2 class', flops: 3.6e12, bandwidth: 100e9, units: 10 },
];
export const LAUNCH_S = 5e-6;
// the issue's floors, the same numbers the tile choice aims at (src/kernels/matmul.ts): a kernel above 10 MFLOP
// wants >= 264 workgroups; a loop longer than 2,048 is fine on at least 1,024 workgroups
const BIG_FLOPS = WIDE_GRID_MFLOP * 1e6;
const WIDE_GRID = LONG_LOOP_WORKGROUPS;

const groupsOf = (d: DispatchRecord) => d.workgroups[0] * d.workgroups[1] * d.workgroups[2];
const bytesOf = (d: DispatchRecord) => (d.cost ? d.cost.bytesRead + d.cost.bytesWritten : 0);

/** The paper time of one dispatch on `spec`, in seconds (see the header). */
export function dispatchSeconds(d: DispatchRecord, spec: Spec): number {
  if (!d.cost) return LAUNCH_S;
  const roof = Math.max(d.cost.flops / spec.flops, bytesOf(d) / spec.bandwidth);
  return roof * Math.max(1, (2 * spec.units) / Math.max(1, groupsOf(d))) + LAUNCH_S;
}

/** The paper time of one buffer copy or clear on `spec`, in seconds: its bytes at the bandwidth (see the header). */
export function transferSeconds(t: Recording['transfers'][number], spec: Spec): number {
  return ((t.kind === 'copy' ? 2 : 1) * t.bytes) / spec.bandwidth;
}

export interface KernelRow {
  kernel: string;
  count: number;
  gflop: number;
  mbytes: number;
  smallestGrid: number;
  longestLoop: number;
  ms: Record<string, number> /* by spec name */;
}

export interface Where {
  value: number;
  kernel: string;
  workgroups: number;
  threads: number;
  loop: number;
  mflop: number;
}

export interface StepShape {
  label: string;
  dispatches: number;
  submits: number;
  readbacks: number;
  blockingReadbacks: number /* readbacks the step waited for, plus syncs */;
  gflop: number;
  gbytes: number;
  copies: number /* copyBufferToBuffer in the stream (not dispatches) */;
  clears: number;
  transferGbytes: number /* moved by copies (read and written) and clears */;
  transferMs: Record<string, number> /* their share of the estimate, by spec name */;
  residentBytes: number;
  peakLiveBytes: number /* held by callers at once, resident included */;
  peakAllocatedBytes: number /* live + pooled for reuse */;
  smallestBigGrid: Where | null /* smallest grid among dispatches above 10 MFLOP */;
  longestLoop: Where | null;
  worstNarrowLoop: Where | null /* longest loop among dispatches on fewer than 1,024 workgroups */;
  under32Groups: number;
  uncosted: string[];
  ms: Record<string, number> /* paper estimate by spec name */;
  kernels: KernelRow[];
  topShapes: (Where & { count: number; ms: number })[] /* costliest (kernel, grid, cost) on the first spec */;
}

const where = (d: DispatchRecord, value: number): Where => ({
  value,
  kernel: d.name,
  workgroups: groupsOf(d),
  threads: d.threads,
  loop: d.cost?.serialLoop ?? 0,
  mflop: (d.cost?.flops ?? 0) / 1e6,
});

function extreme(ds: DispatchRecord[], key: (d: DispatchRecord) => number, most: boolean): Where | null {
  let best: DispatchRecord | null = null;
  for (const d of ds) if (!best || (most ? key(d) > key(best) : key(d) < key(best))) best = d;
  return best ? where(best, key(best)) : null;
}

/** The figures of one recorded step. */
export function summarise(
  label: string,
  rec: Recording,
  mem: { resident: number; peakLive: number; peakAllocated: number },
): StepShape {
  const ds = rec.dispatches;
  const loop = (d: DispatchRecord) => d.cost?.serialLoop ?? 0;
  const ms = (list: DispatchRecord[], s: Spec) => 1000 * list.reduce((t, d) => t + dispatchSeconds(d, s), 0);
  const tms = (s: Spec) => 1000 * rec.transfers.reduce((t, x) => t + transferSeconds(x, s), 0);
  const byKernel = new Map<string, DispatchRecord[]>();
  for (const d of ds) byKernel.set(d.name, [...(byKernel.get(d.name) ?? []), d]);
  const kernels: KernelRow[] = [...byKernel].map(([kernel, list]) => ({
    kernel,
    count: list.length,
    gflop: list.reduce((n, d) => n + (d.cost?.flops ?? 0), 0) / 1e9,
    mbytes: list.reduce((n, d) => n + bytesOf(d), 0) / 1e6,
    smallestGrid: Math.min(...list.map(groupsOf)),
    longestLoop: Math.max(...list.map(loop)),
    ms: Object.fromEntries(SPECS.map((s) => [s.name, ms(list, s)])),
  }));
  kernels.sort((a, b) => b.ms[SPECS[0].name] - a.ms[SPECS[0].name]);
  const shapes = new Map<string, { d: DispatchRecord; count: number }>();
  for (const d of ds) {
    const key = `${d.name}|${d.workgroups}|${d.threads}|${JSON.stringify(d.cost ?? null)}`;
    const e = shapes.get(key);
    if (e) e.count++;
    else shapes.set(key, { d, count: 1 });
  }
  const topShapes = [...shapes.values()]
    .map(({ d, count }) => ({ ...where(d, 0), count, ms: count * 1000 * dispatchSeconds(d, SPECS[0]) }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 12);
  return {
    label,
    dispatches: ds.length,
    submits: rec.submits,
    readbacks: rec.readbacks.length,
    blockingReadbacks: rec.readbacks.filter((r) => r.settled).length + rec.syncs,
    gflop: ds.reduce((n, d) => n + (d.cost?.flops ?? 0), 0) / 1e9,
    gbytes: ds.reduce((n, d) => n + bytesOf(d), 0) / 1e9,
    copies: rec.transfers.filter((t) => t.kind === 'copy').length,
    clears: rec.transfers.filter((t) => t.kind === 'clear').length,
    transferGbytes: rec.transfers.reduce((n, t) => n + (t.kind === 'copy' ? 2 : 1) * t.bytes, 0) / 1e9,
    transferMs: Object.fromEntries(SPECS.map((s) => [s.name, tms(s)])),
    residentBytes: mem.resident,
    peakLiveBytes: mem.peakLive,
    peakAllocatedBytes: mem.peakAllocated,
    smallestBigGrid: extreme(
      ds.filter((d) => (d.cost?.flops ?? 0) > BIG_FLOPS),
      groupsOf,
      false,
    ),
    longestLoop: extreme(ds, loop, true),
    worstNarrowLoop: extreme(
      ds.filter((d) => groupsOf(d) < WIDE_GRID),
      loop,
      true,
    ),
    under32Groups: ds.filter((d) => groupsOf(d) < 32).length,
    uncosted: [...new Set(ds.filter((d) => !d.cost).map((d) => d.name))],
    ms: Object.fromEntries(SPECS.map((s) => [s.name, ms(ds, s) + tms(s)])),
    kernels,
    topShapes,
  };
}

export interface Target {
  what: string;
  figure: number;
  limit: number;
  met: boolean;
  note: string;
}

/** Issue 10's targets for SmolLM2-135M, each with the figure that decides it. */
export function targets(s: StepShape): Target[] {
  const h200 = s.ms[SPECS[0].name];
  const big = s.smallestBigGrid;
  const narrow = s.worstNarrowLoop;
  const t = (what: string, figure: number, limit: number, met: boolean, note: string) => ({
    what,
    figure,
    limit,
    met,
    note,
  });
  return [
    t('dispatches per step <= 900', s.dispatches, 900, s.dispatches <= 900, `${s.submits} submits`),
    t(
      `smallest grid of a kernel > ${WIDE_GRID_MFLOP} MFLOP >= ${WIDE_GRID_WORKGROUPS} workgroups`,
      big?.value ?? Infinity,
      WIDE_GRID_WORKGROUPS,
      !big || big.value >= WIDE_GRID_WORKGROUPS,
      big ? `${big.kernel}, ${big.mflop.toFixed(0)} MFLOP, loop ${big.loop}` : 'none above 10 MFLOP',
    ),
    t(
      `longest loop on < ${LONG_LOOP_WORKGROUPS.toLocaleString('en')} workgroups <= ${LONG_LOOP.toLocaleString('en')}`,
      narrow?.value ?? 0,
      LONG_LOOP,
      !narrow || narrow.value <= LONG_LOOP,
      narrow ? `${narrow.kernel} on ${narrow.workgroups} workgroups` : '',
    ),
    t(
      'readbacks that block the next step = 0',
      s.blockingReadbacks,
      0,
      s.blockingReadbacks === 0,
      `${s.readbacks} readbacks in the step`,
    ),
    t('H200-class estimate <= 120 ms', h200, 120, h200 <= 120, 'paper estimate, not a timing'),
  ];
}

// ---- recording ---------------------------------------------------------------------------------------

/** Records one steady-state step as Engine.run drives it, with the allocator's peaks over both steps: step 1
 * is recorded outside the region (trainer.advance()), then the region is the next advance(), which records
 * step 2 and only then awaits step 1's figures (read one step late); its own figures are drained after. */
async function recordStep(
  ctx: GpuContext,
  label: string,
  trainer: Trainer,
): Promise<{ shape: StepShape; rec: Recording }> {
  await ctx.sync();
  ctx.alloc.trim();
  ctx.alloc.resetPeak();
  const resident = ctx.alloc.liveBytes;
  await trainer.advance();
  const rec = await ctx.record(async () => {
    await trainer.advance();
  });
  await trainer.drain();
  const mem = { resident, peakLive: ctx.alloc.peakLiveBytes, peakAllocated: ctx.alloc.peakBytes };
  return { shape: summarise(label, rec, mem), rec };
}

async function smolLM2Shape(ctx: GpuContext): Promise<StepShape> {
  const { trainer, free } = await smolLM2Trainer(ctx, { B: 8, T: 512 });
  try {
    return (await recordStep(ctx, 'SmolLM2-135M shapes, random weights, B 8 x T 512, r 8, all 7 targets', trainer))
      .shape;
  } finally {
    free();
  }
}

async function bundledStep(ctx: GpuContext): Promise<{ shape: StepShape; rec: Recording }> {
  const e = new Engine(ctx);
  await e.loadModel(dirSource(BUNDLED_MODEL), 'f32');
  await e.loadDataset('fortunes.txt', readFileSync(BUNDLED_DATA, 'utf8').slice(0, 200_000), {
    seqLen: TRAINING_SETTINGS.seqLen!,
    valFraction: 0.05,
    seed: 1,
  });
  const t = e.createTrainer({ ...TRAINING_SETTINGS, checkpointing: false });
  try {
    const s = TRAINING_SETTINGS;
    return await recordStep(
      ctx,
      `bundled weblora-llama-1m, B ${s.batchSize} x T ${s.seqLen}, r ${s.rank}, q_proj+v_proj (the training section's settings)`,
      t,
    );
  } finally {
    e.unloadModel();
  }
}

// ---- printing --------------------------------------------------------------------------------------------

const MiB = 1024 ** 2;
const f = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : String(v));
const grid = (w: Where | null) =>
  w ? `${w.value} (${w.kernel}, ${w.workgroups} workgroups x ${w.threads} threads, ${f(w.mflop)} MFLOP)` : 'none';

function markdown(s: StepShape, tg: Target[] | null): string[] {
  const [a, b] = SPECS.map((x) => x.name);
  const lines = [
    `## ${s.label}`,
    '',
    `- dispatches per step: ${s.dispatches} (${s.under32Groups} on fewer than 32 workgroups); submits: ${s.submits}; ` +
      `readbacks: ${s.readbacks}, of which the step waited for ${s.blockingReadbacks}`,
    `- work: ${f(s.gflop)} GFLOP, ${f(s.gbytes, 2)} GB moved (each dispatch's inputs and outputs once)`,
    `- buffer copies and clears (not dispatches): ${s.copies} copies, ${s.clears} clears, ${f(s.transferGbytes, 2)} GB ` +
      `moved; in the estimate: ${a} ${f(s.transferMs[a], 2)} ms, ${b} ${f(s.transferMs[b], 2)} ms`,
    `- smallest grid among kernels above 10 MFLOP: ${grid(s.smallestBigGrid)}`,
    `- longest per-thread loop: ${s.longestLoop ? `${s.longestLoop.value} (${s.longestLoop.kernel} on ${s.longestLoop.workgroups} workgroups)` : 'none'}`,
    `- longest loop among kernels on fewer than 1,024 workgroups: ${s.worstNarrowLoop ? `${s.worstNarrowLoop.value} (${s.worstNarrowLoop.kernel} on ${s.worstNarrowLoop.workgroups} workgroups)` : 'none'}`,
    `- memory: resident ${f(s.residentBytes / MiB)} MiB; peak live ${f(s.peakLiveBytes / MiB)} MiB; ` +
      `peak allocated (live + pooled) ${f(s.peakAllocatedBytes / MiB)} MiB`,
    `- paper estimate of the step: ${a} ${f(s.ms[a])} ms, ${b} ${f(s.ms[b])} ms` +
      ` (${f(s.gflop / s.ms[a])} TFLOP/s on ${a}, ${f((100 * s.gflop) / s.ms[a] / (SPECS[0].flops / 1e12))} % of peak)`,
    `- dispatches without a cost: ${s.uncosted.length ? s.uncosted.join(', ') : 'none'}`,
  ];
  if (tg) {
    lines.push('', '| target | figure | met | note |', '|---|---:|---|---|');
    for (const t of tg)
      lines.push(
        `| ${t.what} | ${f(t.figure, Number.isInteger(t.figure) ? 0 : 1)} | ${t.met ? 'met' : 'NOT met'} | ${t.note} |`,
      );
  }
  lines.push(
    '',
    `| kernel | count | GFLOP | MB | smallest grid | longest loop | ${a} ms | ${b} ms |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const k of s.kernels)
    lines.push(
      `| ${k.kernel} | ${k.count} | ${f(k.gflop, 2)} | ${f(k.mbytes)} | ${k.smallestGrid} | ${k.longestLoop} | ${f(k.ms[a], 2)} | ${f(k.ms[b], 2)} |`,
    );
  lines.push(
    '',
    `Costliest dispatch shapes on ${a} (same kernel, grid and cost):`,
    '',
    `| kernel | count | workgroups x threads | MFLOP each | loop | ${a} ms (all) |`,
    '|---|---:|---:|---:|---:|---:|',
  );
  for (const t of s.topShapes)
    lines.push(
      `| ${t.kernel} | ${t.count} | ${t.workgroups} x ${t.threads} | ${f(t.mflop)} | ${t.loop} | ${f(t.ms, 2)} |`,
    );
  return lines;
}

interface Report {
  date: string;
  method: string;
  model: string;
  specs: Spec[];
  launchMicroseconds: number;
  steps: StepShape[];
  targets: Target[];
}

/** before -> after of the headline figures, when a saved "before" report exists. */
function comparison(now: Report): string[] {
  if (!existsSync(BEFORE)) return [];
  const before = JSON.parse(readFileSync(BEFORE, 'utf8')) as Report;
  const lines = [
    '## Before -> after',
    '',
    `Before: ${before.date}.`,
    '',
    '| figure | before | after |',
    '|---|---:|---:|',
  ];
  for (const s of now.steps) {
    const b = before.steps.find((x) => x.label === s.label);
    if (!b) continue;
    const row = (what: string, x: number, y: number, d = 1) => lines.push(`| ${what} | ${f(x, d)} | ${f(y, d)} |`);
    const short = s.label.split(',')[0];
    row(`${short}: dispatches`, b.dispatches, s.dispatches, 0);
    row(`${short}: submits`, b.submits, s.submits, 0);
    row(`${short}: blocking readbacks`, b.blockingReadbacks, s.blockingReadbacks, 0);
    row(`${short}: smallest grid > 10 MFLOP`, b.smallestBigGrid?.value ?? NaN, s.smallestBigGrid?.value ?? NaN, 0);
    row(
      `${short}: longest loop on < 1,024 workgroups`,
      b.worstNarrowLoop?.value ?? 0,
      s.worstNarrowLoop?.value ?? 0,
      0,
    );
    row(`${short}: peak live MiB`, b.peakLiveBytes / MiB, s.peakLiveBytes / MiB);
    for (const sp of SPECS) row(`${short}: ${sp.name} estimate ms`, b.ms[sp.name], s.ms[sp.name]);
  }
  return lines;
}

/** Where two recordings differ (kernel, grid, threads, cost of each dispatch; submits; readbacks), or ''. */
function sameRecording(a: Recording, b: Recording): string {
  if (a.dispatches.length !== b.dispatches.length) return `${a.dispatches.length} vs ${b.dispatches.length} dispatches`;
  const i = a.dispatches.findIndex((d, i) => JSON.stringify(d) !== JSON.stringify(b.dispatches[i]));
  if (i >= 0) return `dispatch ${i}: ${JSON.stringify(a.dispatches[i])} vs ${JSON.stringify(b.dispatches[i])}`;
  if (a.submits !== b.submits) return `${a.submits} vs ${b.submits} submits`;
  // Whether a readback still in flight had arrived when the region ended depends on the device's latency
  // (a step's figures are read one step late), so the two devices must agree on the readbacks, not on that.
  if (JSON.stringify(a.readbacks.map((r) => r.bytes)) !== JSON.stringify(b.readbacks.map((r) => r.bytes)))
    return 'readbacks differ';
  return '';
}

export const shapesSection: Section = {
  name: 'shapes',
  title:
    'GPU shape report: one training step recorded on a device that executes nothing (a paper estimate, not a timing)',
  async run(): Promise<Row[]> {
    const stub = await stubContext();
    const smol = await smolLM2Shape(stub);
    const bundled = await bundledStep(stub);
    stub.destroy();
    const nul = await nullContext();
    const check = await bundledStep(nul);
    nul.destroy();
    const agree = sameRecording(bundled.rec, check.rec);
    if (agree)
      throw new Error(`shape report: the stub device and Dawn's null backend recorded different steps: ${agree}`);
    const steps = [smol, bundled.shape];
    const tg = targets(steps[0]);
    const report: Report = {
      date: new Date().toISOString(),
      method:
        "a stub WebGPU device that executes nothing (the bundled model's recording checked equal on Dawn's null backend); costs from each launcher's DispatchCost",
      model: `per dispatch max(flops/peak, bytes/bandwidth) x max(1, 2 x units / workgroups) + ${LAUNCH_S * 1e6} us, per buffer copy 2 x bytes/bandwidth and per clear bytes/bandwidth; summed`,
      specs: SPECS,
      launchMicroseconds: LAUNCH_S * 1e6,
      steps,
      targets: tg,
    };
    const md = [
      '# GPU shape report',
      '',
      `${report.date}. One full training step (Trainer.advance in steady state: forward, backward, AdamW; the previous step's figures read) recorded on ${report.method}.`,
      `Paper estimate, not a timing: ${report.model}. Specs: ${SPECS.map((s) => `${s.name} ${s.flops / 1e12} TFLOP/s fp32, ${s.bandwidth / 1e9} GB/s, ${s.units} units`).join('; ')}.`,
      '',
      ...markdown(steps[0], tg),
      '',
      ...markdown(steps[1], null),
      '',
      ...comparison(report),
    ].join('\n');
    console.log(md.replace(/^/gm, '  '));
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(`${OUT}.json`, JSON.stringify(report, null, 2) + '\n');
    writeFileSync(`${OUT}.md`, md + '\n');
    console.log('  wrote bench/results/shape-report.json and .md');
    const rows: Row[] = [];
    for (const s of steps) {
      const short = s.label.split(',')[0];
      rows.push(
        { name: `${short}: dispatches per step`, value: s.dispatches, unit: '', note: `${s.submits} submits` },
        { name: `${short}: readbacks the step waited for`, value: s.blockingReadbacks, unit: '', note: '' },
        { name: `${short}: peak live GPU bytes`, value: s.peakLiveBytes / MiB, unit: 'MiB', note: '' },
        ...SPECS.map((sp) => ({
          name: `${short}: ${sp.name} paper estimate`,
          value: s.ms[sp.name],
          unit: 'ms',
          note: 'not a timing',
        })),
      );
    }
    for (const t of tg)
      rows.push({
        name: `target: ${t.what}`,
        value: t.figure,
        unit: '',
        note: `${t.met ? 'met' : 'NOT met'}; ${t.note}`,
      });
    return rows;
  },
};
