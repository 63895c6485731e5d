// Ours vs two WebGPU libraries (docs/webgpu-on-software-drivers.md), side by side in one run on the same adapter:
// jax-js and tfjs (WebGPU backend) get their devices from the same Dawn GPU object as our context.
// 1. f32 matmul n x n x n at n = 256, 512, 1024: GFLOP/s, and ours / best peer (target ≥ 1.5).
// 2. The LoRA gradient step, X (256, d), r = 8, d = 256 and 512: y = x·W0ᵀ + b + s·(x·Aᵀ)·Bᵀ with dA, dB
//    for a given dy (and, as a second row, dx too): times, and ours / jax-js (target ≤ 0.33). The dx rows
//    compare with jax-js only: tfjs is far behind on every row, and its +dx variant cost ~15 s on SwiftShader.
// Each variant's warm-up outputs are checked against ours (max |Δ| / max |ours|) so the times compare the same
// maths. A peer that cannot start or run gives a row saying why; the rest of the section still runs.
import type { GpuContext } from '../../src/gpu/context';
import { nodeGpu } from '../../src/gpu/node';
import type { Row, Section, Timing } from '../harness';
import { jaxPeer } from '../peers/jax';
import { oursPeer } from '../peers/ours';
import { maxRelDiff, timeAcross, type AcrossOpts, type LoraData, type Peer, type Workload } from '../peers/peer';
import { tfjsPeer } from '../peers/tfjs';
import { benchRng } from './data';

// f32 with K ≤ 1024 and different summation orders: ~1e-6 expected; far above that means different maths
const SAME_RESULT = 1e-4;

const message = (e: unknown) => ((e as Error)?.message ?? String(e)).split('\n')[0].slice(0, 160);
const failRow = (name: string, why: string): Row => ({ name: `${name}: FAILED`, value: NaN, unit: '', note: why });

async function loadPeers(ctx: GpuContext, rows: Row[]): Promise<Peer[]> {
  const peers: Peer[] = [oursPeer(ctx)];
  const gpu = nodeGpu(); // the object our context came from: same adapter for every library
  for (const [label, load] of [
    ['jax-js', jaxPeer],
    ['tfjs webgpu', tfjsPeer],
  ] as const) {
    try {
      peers.push(await load(gpu));
    } catch (e) {
      rows.push(failRow(`${label} start`, message(e)));
    }
  }
  return peers;
}

/** Workloads of every peer, keyed by variant name; a peer that throws while uploading gets a failure row. */
function gather(
  peers: Peer[],
  rows: Row[],
  what: string,
  make: (p: Peer) => Record<string, Workload>,
): Record<string, Workload> {
  const out: Record<string, Workload> = {};
  for (const p of peers) {
    try {
      for (const [label, w] of Object.entries(make(p))) out[label ? `${p.name} ${label}` : p.name] = w;
    } catch (e) {
      rows.push(failRow(`${p.name} ${what}`, message(e)));
    }
  }
  return out;
}

async function measure(peers: Peer[], variants: Record<string, Workload>, rows: Row[], what: string, o: AcrossOpts) {
  const idleAll = async () => {
    for (const p of peers) await p.idle();
  };
  // only tfjs may be settled (not repeated once 4x behind); ours and jax-js, the target's peer, are always timed in full
  const tfjs = peers.find((p) => p.id === 'tfjs');
  const res = await timeAcross(variants, idleAll, { ...o, maySettle: (n) => !!tfjs && n.startsWith(tfjs.name) });
  for (const [n, why] of Object.entries(res.failed)) rows.push(failRow(`${n} ${what}`, why));
  Object.values(variants).forEach((w) => w.free());
  return res;
}

/** How many times a variant was timed, for a note. */
const roundsNote = (rounds: number, settled: boolean) =>
  `${rounds} rounds${settled ? ' (≥ 4x slower than the fastest: not repeated)' : ''}`;

/** The check against ours, for a note: the difference, flagged when it is not the same result. */
function checkNote(outputs: Record<string, Float32Array[]>, name: string, ours: string): string {
  if (name === ours) return 'reference';
  if (!outputs[ours] || !outputs[name]) return 'unchecked';
  try {
    const e = maxRelDiff(outputs[name], outputs[ours]);
    if (e === 0) return 'bit-identical to ours (same summation order)';
    return `max|Δ|/max|ours| ${e.toExponential(1)}${e > SAME_RESULT ? ' MISMATCH' : ''}`;
  } catch (err) {
    return `MISMATCH: ${message(err)}`;
  }
}

async function matmulRows(peers: Peer[], rows: Row[]): Promise<void> {
  for (const n of [256, 512, 1024]) {
    const R = benchRng(n);
    const a = R.uniform(n * n),
      b = R.uniform(n * n);
    const variants = gather(peers, rows, `matmul n=${n}`, (p) => ({ '': p.matmul(a, b, n) }));
    const budgetMs = { 256: 4000, 512: 6000, 1024: 12000 }[n]!;
    const res = await measure(peers, variants, rows, `matmul n=${n}`, {
      minReps: 3,
      maxReps: 7,
      budgetMs,
      inner: n <= 256 ? 4 : 1,
    });
    const flops = 2 * n ** 3;
    const gf = (ms: number) => flops / ms / 1e6;
    for (const [name, t] of Object.entries(res.timings)) {
      rows.push({
        name: `${name} A·B n=${n}`,
        value: gf(t.median),
        unit: 'GFLOP/s',
        note: `${t.median.toFixed(1)} ms; best ${gf(t.min).toFixed(2)} GFLOP/s; ${roundsNote(res.rounds[name], res.settled.includes(name))}; ${checkNote(res.outputs, name, 'ours')}`,
      });
    }
    const ours = res.timings.ours;
    const others = Object.entries(res.timings).filter(([k]) => k !== 'ours');
    if (ours && others.length) {
      const [bestName, best] = others.reduce((x, y) => (y[1].median < x[1].median ? y : x));
      const bestMin = Math.min(...others.map(([, t]) => t.min));
      rows.push({
        name: `ours / best peer, matmul n=${n}`,
        value: best.median / ours.median,
        unit: 'x',
        note: `throughput ratio vs ${bestName}; target ≥ 1.5; ratio of best times ${(bestMin / ours.min).toFixed(2)}`,
      });
    }
  }
}

function loraData(N: number, d: number, r: number): LoraData {
  const R = benchRng(1000 + d);
  return {
    N,
    d,
    r,
    scale: 2,
    x: R.uniform(N * d),
    w0: R.uniform(d * d, -0.05, 0.05),
    bias: R.uniform(d),
    A: R.uniform(r * d, -0.05, 0.05),
    B: R.uniform(d * r, -0.05, 0.05),
    dy: R.uniform(N * d),
  };
}

/** The fastest variant whose name starts with `prefix` and matches `dx`. */
function fastest(t: Record<string, Timing>, prefix: string, dx: boolean): [string, Timing] | null {
  const c = Object.entries(t).filter(([k]) => k.startsWith(prefix) && k.endsWith(' +dx') === dx);
  return c.length ? c.reduce((x, y) => (y[1].median < x[1].median ? y : x)) : null;
}

async function loraRows(peers: Peer[], rows: Row[]): Promise<void> {
  const [N, r] = [256, 8];
  for (const d of [256, 512]) {
    const L = loraData(N, d, r);
    const variants: Record<string, Workload> = {};
    for (const dx of [false, true]) {
      const which = dx ? peers.filter((p) => p.id !== 'tfjs') : peers;
      const v = gather(which, rows, `LoRA step d=${d}${dx ? ' +dx' : ''}`, (p) => p.loraStep(L, dx));
      for (const [k, w] of Object.entries(v)) variants[`${k}${dx ? ' +dx' : ''}`] = w;
    }
    const what = `LoRA step d=${d}`;
    const res = await measure(peers, variants, rows, what, { minReps: 3, maxReps: 9, budgetMs: 8000 });
    const tag = `X ${N}x${d}, r=${r}`;
    for (const [name, t] of Object.entries(res.timings)) {
      const ref = name.endsWith(' +dx') ? 'ours fused +dx' : 'ours fused';
      rows.push({
        name: `${name}, ${tag}`,
        value: t.median,
        unit: 'ms',
        note: `min ${t.min.toFixed(1)} ms; ${roundsNote(res.rounds[name], res.settled.includes(name))}; ${checkNote(res.outputs, name, ref)}`,
      });
    }
    for (const dx of [false, true]) {
      const ours = fastest(res.timings, 'ours', dx);
      for (const peer of dx ? ['jax-js'] : ['jax-js', 'tfjs']) {
        const p = fastest(res.timings, peer, dx);
        if (!ours || !p) continue;
        rows.push({
          name: `ours / ${peer}, fwd + dA, dB${dx ? ', dx' : ''}, ${tag}`,
          value: ours[1].median / p[1].median,
          unit: 'x',
          note: `time ratio vs ${p[0]} (its fastest variant)${peer === 'jax-js' ? '; target ≤ 0.33' : ''}; ratio of minima ${(ours[1].min / p[1].min).toFixed(2)}`,
        });
      }
    }
    // the brief's "our full fwd+bwd incl. dx in a third of jax-js's time", against jax-js without dx
    const oursDx = fastest(res.timings, 'ours', true),
      jaxNoDx = fastest(res.timings, 'jax-js', false);
    if (oursDx && jaxNoDx) {
      rows.push({
        name: `ours (+dx) / jax-js (fwd + dA, dB), ${tag}`,
        value: oursDx[1].median / jaxNoDx[1].median,
        unit: 'x',
        note: `ours doing more work than ${jaxNoDx[0]}; ratio of minima ${(oursDx[1].min / jaxNoDx[1].min).toFixed(2)}`,
      });
    }
  }
}

export const peersSection: Section = {
  name: 'peers',
  title:
    'Ours vs jax-js and tfjs (WebGPU), same adapter, interleaved: matmul GFLOP/s and LoRA grad-step time (ratios: warm medians)',
  async run(ctx: GpuContext): Promise<Row[]> {
    const rows: Row[] = [];
    const peers = await loadPeers(ctx, rows);
    for (const p of peers) rows.push({ name: `${p.name}: synchronised by`, value: NaN, unit: '', note: p.syncs });
    await matmulRows(peers, rows);
    await loraRows(peers, rows);
    return rows;
  },
};
