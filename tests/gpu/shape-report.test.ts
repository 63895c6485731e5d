// The GPU shape report of `npm run bench` (bench/sections/shapes.ts): its paper model on hand-computed cases,
// its targets, and the stub device it records on (bench/record-devices.ts), which must record exactly what
// Dawn's null backend records for the same work. Kernels launched: shaders/matmul.wgsl,
// shaders/attention_forward.wgsl, shaders/rmsnorm_forward.wgsl, shaders/head_dx.wgsl.
import { describe, expect, it } from 'vitest';
import { nullContext, stubContext } from '../../bench/record-devices';
import { dispatchSeconds, LAUNCH_S, SPECS, summarise, targets, transferSeconds } from '../../bench/sections/shapes';
import type { DispatchRecord, GpuContext, Recording } from '../../src/gpu/context';
import { Tensor } from '../../src/gpu/tensor';
import { attention_forward } from '../../src/kernels/attention';
import { head_dx_finish } from '../../src/kernels/head_dx';
import { matmul } from '../../src/kernels/matmul';
import { rmsnorm_forward } from '../../src/kernels/rmsnorm';

const [H200, M2] = SPECS;
const rec = (name: string, groups: number, flops: number, bytes: number, loop = 1): DispatchRecord => ({
  name,
  workgroups: [groups, 1, 1],
  threads: 64,
  cost: { flops, bytesRead: bytes, bytesWritten: 0, serialLoop: loop },
});

describe('shape report: the paper model', () => {
  it('takes the roofline, a penalty below 2 x units workgroups, and a launch cost', () => {
    // compute-bound, wide: 67 GFLOP on an H200 class is 1 ms
    expect(dispatchSeconds(rec('a', 10000, 67e9, 1e6), H200)).toBeCloseTo(1e-3 + LAUNCH_S, 12);
    // memory-bound: 4.8 GB at 4.8 TB/s is 1 ms
    expect(dispatchSeconds(rec('b', 10000, 1, 4.8e9), H200)).toBeCloseTo(1e-3 + LAUNCH_S, 12);
    // 6 workgroups on 2 x 132 slots: 44x the roofline time
    expect(dispatchSeconds(rec('c', 6, 67e9, 0), H200)).toBeCloseTo(44e-3 + LAUNCH_S, 12);
    // an M2 class (10 units) is full from 20 workgroups
    expect(dispatchSeconds(rec('d', 20, 3.6e9, 0), M2)).toBeCloseTo(1e-3 + LAUNCH_S, 12);
    // no cost: the launch only
    expect(dispatchSeconds({ name: 'e', workgroups: [1, 1, 1], threads: 1 }, H200)).toBe(LAUNCH_S);
    // a copy reads and writes its bytes, a clear writes them: 2.4 GB copied on an H200 class is 1 ms
    expect(transferSeconds({ kind: 'copy', bytes: 2.4e9 }, H200)).toBeCloseTo(1e-3, 12);
    expect(transferSeconds({ kind: 'clear', bytes: 0.1e9 }, M2)).toBeCloseTo(1e-3, 12);
  });

  it('summarises a recording and checks the targets with the deciding figures', () => {
    const r: Recording = {
      dispatches: [
        rec('matmul', 3, 20e6, 1e6, 4096), // big and narrow, with a long loop
        rec('matmul', 2000, 5e9, 1e6, 49152), // a long loop on a wide grid is fine
        rec('add', 1, 1e3, 1e3), // small: no grid target
        { name: 'nocost', workgroups: [4, 1, 1], threads: 256 },
      ],
      transfers: [
        { kind: 'copy', bytes: 9.4e6 },
        { kind: 'clear', bytes: 1e3 },
      ],
      submits: 2,
      readbacks: [
        { bytes: 4, settled: true },
        { bytes: 4, settled: false },
      ],
      syncs: 0,
    };
    const s = summarise('t', r, { resident: 1, peakLive: 2, peakAllocated: 3 });
    expect(s.dispatches).toBe(4);
    expect(s.blockingReadbacks).toBe(1);
    expect(s.smallestBigGrid).toMatchObject({ value: 3, kernel: 'matmul', loop: 4096 });
    expect(s.longestLoop).toMatchObject({ value: 49152, workgroups: 2000 });
    expect(s.worstNarrowLoop).toMatchObject({ value: 4096, workgroups: 3 });
    expect(s.uncosted).toEqual(['nocost']);
    const copyMs = (1000 * (2 * 9.4e6 + 1e3)) / H200.bandwidth;
    expect(s).toMatchObject({ copies: 1, clears: 1, transferGbytes: (2 * 9.4e6 + 1e3) / 1e9 });
    expect(s.transferMs[H200.name]).toBeCloseTo(copyMs, 12);
    const want = r.dispatches.reduce((t, d) => t + dispatchSeconds(d, H200), 0) * 1000 + copyMs;
    expect(s.ms[H200.name]).toBeCloseTo(want, 9);
    expect(s.kernels.find((k) => k.kernel === 'matmul')).toMatchObject({
      count: 2,
      smallestGrid: 3,
      longestLoop: 49152,
    });
    const tg = Object.fromEntries(targets(s).map((t) => [t.what.split(' ')[0], t]));
    expect(tg.dispatches.met).toBe(true);
    expect(tg.smallest).toMatchObject({ figure: 3, met: false });
    expect(tg.longest).toMatchObject({ figure: 4096, met: false });
    expect(tg.readbacks).toMatchObject({ figure: 1, met: false });
  });
});

/** A few launches of awkward shapes, recorded. */
async function work(ctx: GpuContext): Promise<Recording> {
  const t = (shape: number[]) => Tensor.zeros(ctx, shape);
  const [a, b, q, k, x, w, logits, stats, rows] = [
    t([37, 19]),
    t([19, 45]),
    t([1, 33, 4, 16]),
    t([1, 33, 2, 16]),
    t([7, 100]),
    t([100]),
    t([5, 1000]),
    t([5, 3]),
    t([5, 1000]),
  ];
  const tgt = Tensor.fromU32(ctx, new Uint32Array([1, 2, 3, 4, 5]), [5]);
  const out: Tensor[] = [];
  const r = await ctx.record(async () => {
    out.push(matmul(a, b), matmul(a, b, { transB: false, alpha: 2 }));
    const { o, lse } = attention_forward(q, k, k, { heads: 4, kvHeads: 2, headDim: 16, seqLen: 33 });
    const { y, rstd } = rmsnorm_forward(x, w, 1e-5);
    ctx.copy(x.buf, 0, y.buf, 0, x.bytes);
    ctx.clear(y.buf, 0, y.bytes);
    head_dx_finish(logits, tgt, stats, rows, { gradScale: 0.2, softcap: 0 });
    out.push(o, lse, y, rstd);
    await logits.read();
  });
  for (const z of [a, b, q, k, x, w, logits, stats, rows, tgt, ...out]) z.free();
  return r;
}

describe('shape report: the stub device', () => {
  it("records exactly what Dawn's null backend records, and the allocator counts the same bytes", async () => {
    const stub = await stubContext();
    const nul = await nullContext();
    try {
      const peaks: number[] = [];
      const recs: Recording[] = [];
      for (const ctx of [stub, nul]) {
        ctx.alloc.resetPeak();
        recs.push(await work(ctx));
        peaks.push(ctx.alloc.peakLiveBytes);
      }
      expect(recs[0].dispatches.length).toBe(5);
      expect(recs[0].transfers).toEqual([
        { kind: 'copy', bytes: 2800 },
        { kind: 'clear', bytes: 2800 },
      ]);
      expect(recs[0]).toEqual(recs[1]);
      expect(peaks[0]).toBe(peaks[1]);
      expect(peaks[0]).toBeGreaterThan(0);
    } finally {
      stub.destroy();
      nul.destroy();
    }
  });
});
