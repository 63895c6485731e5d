// The runtime's dispatch recording (GpuContext.record) and the paper costs the launchers pass with each
// dispatch (DispatchCost), checked against hand-computed values. Kernels launched here: shaders/matmul.wgsl,
// shaders/attention_forward.wgsl, shaders/attention_backward_dq.wgsl, shaders/attention_backward_dkdv.wgsl,
// shaders/add.wgsl, shaders/rmsnorm_forward.wgsl, shaders/grad_norm_sumsq.wgsl.
import { describe, expect, it } from 'vitest';
import { workgroupThreads } from '../../src/gpu/context';
import { Tensor } from '../../src/gpu/tensor';
import { add_forward } from '../../src/kernels/add';
import { attention_backward, attention_forward } from '../../src/kernels/attention';
import { sumsq_accumulate } from '../../src/kernels/grad_norm';
import { matmul, matmulTile } from '../../src/kernels/matmul';
import { rmsnorm_forward } from '../../src/kernels/rmsnorm';
import { gpu, rng } from '../helpers/gpu';

describe('dispatch recording', () => {
  it('parses @workgroup_size literals and module constants', () => {
    expect(workgroupThreads('@compute @workgroup_size(256)\nfn main() {}')).toBe(256);
    expect(workgroupThreads('const WG_M = 8u;\nconst WG_N = 16u;\n@compute @workgroup_size(WG_N, WG_M)')).toBe(128);
    expect(workgroupThreads('const WG: u32 = 32u;\n@workgroup_size(WG, 2, 1)')).toBe(64);
    expect(() => workgroupThreads('@workgroup_size(N)')).toThrow(/cannot evaluate/);
  });

  it('records each dispatch with its grid, threads and cost, and counts submits and readbacks', async () => {
    const ctx = await gpu();
    await ctx.sync();
    const r = rng(1);
    const [M, K, N] = [37, 19, 45];
    const a = Tensor.from(ctx, r.uniform(M * K), [M, K]);
    const b = Tensor.from(ctx, r.uniform(K * N), [K, N]);
    let c: Tensor | null = null;
    let pending: Promise<Float32Array> | null = null;
    const rec = await ctx.record(async () => {
      c = matmul(a, b); // c (M, N) = a (M, K) · b (K, N)
      await c.read(); // a readback the region waits for
      const d = add_forward(c, c);
      pending = d.read().finally(() => d.free()); // one it does not wait for
    });
    await pending;
    expect(rec.dispatches.map((d) => d.name)).toEqual(['matmul', 'add']);
    const [mm, add] = rec.dispatches;
    const t = matmulTile(M, N);
    expect(mm.threads).toBe(t.wgM * t.wgN);
    expect(mm.workgroups).toEqual([Math.ceil(N / (4 * t.wgN)), Math.ceil(M / (t.tm * t.wgM)), 1]);
    expect(mm.cost).toEqual({
      flops: 2 * M * N * K,
      bytesRead: 4 * (M * K + K * N),
      bytesWritten: 4 * M * N,
      serialLoop: K,
    });
    expect(add.threads).toBe(256);
    expect(add.workgroups).toEqual([Math.ceil((M * N) / 256), 1, 1]);
    expect(add.cost).toEqual({ flops: M * N, bytesRead: 8 * M * N, bytesWritten: 4 * M * N, serialLoop: 1 });
    expect(rec.readbacks).toEqual([
      { bytes: 4 * M * N, settled: true },
      { bytes: 4 * M * N, settled: false },
    ]);
    expect(rec.submits).toBe(2); // each readback submits the work before it
    expect(rec.syncs).toBe(0);
    // outside a region nothing is recorded
    const e = add_forward(a, a);
    await ctx.sync();
    expect(rec.dispatches.length).toBe(2);
    [a, b, c!, e].forEach((x) => x.free());
  });

  it('attention, row and reduction kernels carry their hand-computed costs', async () => {
    const ctx = await gpu();
    const r = rng(2);
    const [B, T, Hq, Hkv, D] = [2, 33, 4, 2, 16];
    const q = Tensor.from(ctx, r.uniform(B * T * Hq * D), [B, T, Hq, D]);
    const k = Tensor.from(ctx, r.uniform(B * T * Hkv * D), [B, T, Hkv, D]);
    const v = Tensor.from(ctx, r.uniform(B * T * Hkv * D), [B, T, Hkv, D]);
    const x = Tensor.from(ctx, r.uniform(7 * 576), [7, 576]);
    const w = Tensor.from(ctx, r.uniform(576), [576]);
    const g = Tensor.from(ctx, r.uniform(10000), [10000]);
    const acc = Tensor.zeros(ctx, [1]);
    const opts = { heads: Hq, kvHeads: Hkv, headDim: D, seqLen: T };
    const frees: Tensor[] = [];
    const rec = await ctx.record(async () => {
      const { o, lse } = attention_forward(q, k, v, opts);
      const { dq, dk, dv } = attention_backward(o, q, k, v, o, lse, opts);
      const { y, rstd } = rmsnorm_forward(x, w, 1e-5);
      sumsq_accumulate(g, acc);
      frees.push(o, lse, dq, dk, dv, y, rstd);
    });
    const byName = Object.fromEntries(rec.dispatches.map((d) => [d.name, d]));
    const pairs = B * Hq * ((T * (T + 1)) / 2); // causal: row i sees i + 1 keys
    expect(byName.attention_forward.cost!.flops).toBe(pairs * (4 * D + 4));
    expect(byName.attention_forward.cost!.serialLoop).toBe(T);
    expect(byName.attention_backward_dkdv.cost!.flops).toBe(pairs * (8 * D + 4));
    expect(byName.attention_backward_dkdv.cost!.serialLoop).toBe((Hq / Hkv) * T);
    expect(byName.attention_backward_dkdv.cost!.bytesWritten).toBe(4 * 2 * B * T * Hkv * D);
    expect(byName.attention_backward_dq.cost!.bytesRead).toBe(
      4 * (3 * B * T * Hq * D + 2 * B * T * Hkv * D + B * Hq * T),
    );
    // rmsnorm: one workgroup per row of 576, 32 threads striding 18 values each
    expect(byName.rmsnorm_forward.workgroups).toEqual([7, 1, 1]);
    expect(byName.rmsnorm_forward.threads).toBe(32);
    expect(byName.rmsnorm_forward.cost).toEqual({
      flops: 4 * 7 * 576,
      bytesRead: 4 * (7 * 576 + 576),
      bytesWritten: 4 * (7 * 576 + 7),
      serialLoop: 18,
    });
    // Σg² over 10,000 values: stage 1 on 3 workgroups (≤ 16 values a thread), stage 2 on one
    const sumsq = rec.dispatches.filter((d) => d.name === 'grad_norm_sumsq');
    expect(sumsq.map((d) => d.workgroups[0])).toEqual([3, 1]);
    expect(sumsq[0].cost).toEqual({ flops: 2 * 10000 + 256, bytesRead: 40000, bytesWritten: 12, serialLoop: 14 });
    await ctx.sync();
    [q, k, v, x, w, g, acc, ...frees].forEach((t) => t.free());
  });
});
