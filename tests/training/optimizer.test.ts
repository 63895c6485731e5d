// The flat LoRA storage and the whole-model optimizer on a real adapter (the bundled model's shapes, all 7 targets):
// - every A, B, gradA, gradB is a view at a 256-byte offset of one flat buffer, in layout order, not overlapping;
//   weights read back exactly, the padding stays zero, a gradient written through a view lands in its slot;
// - the optimizer's state (moments by name) round-trips through state()/restore() into a fresh optimizer;
// - an update is at most 4 dispatches for the whole model (shaders/optim_finalize.wgsl, shaders/optim_adamw.wgsl);
// - a forced non-finite gradient leaves A, B and the moments bit-identical, and zeroes the gradients.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/models/config';
import { FLAT_ALIGN, LoraState, type LoraArrays } from '../../src/models/lora';
import { AdamW } from '../../src/training/optimizer';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLED } from '../helpers/fixtures';
import { gpu, rng } from '../helpers/gpu';

const cfg = parseConfig(JSON.parse(readFileSync(join(BUNDLED, 'config.json'), 'utf8')));
const lc = {
  r: 5, // odd rank: sizes are not multiples of the 64-float padding
  alpha: 10,
  useRslora: false,
  dropout: 0,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
};
const HP = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };

function randomArrays(lora: LoraState, seed: number): LoraArrays {
  const r = rng(seed);
  const out: LoraArrays = new Map();
  for (const [path, m] of lora.modules) out.set(path, { A: r.normal(m.A.numel, 0.1), B: r.normal(m.B.numel, 0.1) });
  return out;
}

/** An adapter with random A and B (B nonzero, unlike a fresh one). */
function randomLora(ctx: Awaited<ReturnType<typeof gpu>>, seed: number): LoraState {
  const init = LoraState.init(ctx, cfg, lc, 1);
  const arrays = randomArrays(init, seed);
  init.free();
  return LoraState.fromArrays(ctx, cfg, lc, arrays);
}

async function withGrads(lora: LoraState, seed: number): Promise<LoraArrays> {
  const g = randomArrays(lora, seed);
  for (const [path, m] of lora.modules) {
    m.gradA.write(g.get(path)!.A);
    m.gradB.write(g.get(path)!.B);
  }
  return g;
}

describe('flat LoRA buffers', () => {
  it('views at 256-byte offsets in layout order; exact read back, zero padding, gradients in their slots', async () => {
    const ctx = await gpu();
    const live = ctx.alloc.liveBytes;
    const init = LoraState.init(ctx, cfg, lc, 1);
    const arrays = randomArrays(init, 2);
    init.free();
    const lora = LoraState.fromArrays(ctx, cfg, lc, arrays);
    let end = 0;
    let i = 0;
    for (const [path, m] of lora.modules) {
      for (const [t, g, slot] of [
        [m.A, m.gradA, lora.slots[i]],
        [m.B, m.gradB, lora.slots[i + 1]],
      ] as const) {
        expect(t.view && g.view).toBe(true);
        expect(t.offset % 256).toBe(0);
        expect(t.offset).toBe(g.offset);
        expect(t.offset).toBe(slot.offset * 4);
        expect(t.offset).toBeGreaterThanOrEqual(end); // no overlap with the previous tensor
        expect(slot.numel).toBe(t.numel);
        end = t.offset + t.bytes;
        expect(() => t.buf).toThrow(/view/);
      }
      expect(lora.slots[i].name).toBe(`${path}.lora_A`);
      i += 2;
    }
    expect(lora.flatNumel % FLAT_ALIGN).toBe(0);
    expect(lora.flatNumel * 4).toBeGreaterThanOrEqual(end);
    expect(await lora.read()).toEqual(arrays);
    // Padding: everything outside the slots is zero.
    const flat = await ctx.readF32(lora.params, lora.flatNumel);
    const inSlot = new Uint8Array(lora.flatNumel);
    for (const s of lora.slots) inSlot.fill(1, s.offset, s.offset + s.numel);
    expect(flat.every((x, j) => inSlot[j] || x === 0)).toBe(true);
    // A gradient written through one view is read back in its slot only.
    const [path, m] = [...lora.modules][3];
    const g = rng(3).normal(m.gradB.numel);
    m.gradB.write(g);
    const grads = await lora.readGrads();
    for (const [p, v] of grads) {
      expect(v.A.every((x) => x === 0)).toBe(true);
      if (p === path) expect(v.B).toEqual(g);
      else expect(v.B.every((x) => x === 0)).toBe(true);
    }
    lora.free();
    expect(ctx.alloc.liveBytes).toBe(live);
  });

  it('optimizer state round-trips into a fresh optimizer, which then takes the same step', async () => {
    const ctx = await gpu();
    const lora = randomLora(ctx, 4);
    const a = new AdamW(lora, HP);
    for (let s = 0; s < 2; s++) {
      await withGrads(lora, 10 + s);
      a.update(1e-2).free();
    }
    const st = await a.state();
    expect(st.step).toBe(2);
    expect(Object.keys(st.m)).toEqual(lora.slots.map((s) => s.name));
    const params = await lora.read();
    // b restores a's state; both take the same next step from the same gradients.
    const b = new AdamW(lora, HP);
    b.restore(st);
    expect(await b.state()).toEqual(st);
    await withGrads(lora, 20);
    a.update(1e-2).free();
    const afterA = await lora.read();
    const stA = await a.state();
    for (const [path, m] of lora.modules) {
      m.A.write(params.get(path)!.A);
      m.B.write(params.get(path)!.B);
    }
    await withGrads(lora, 20);
    b.update(1e-2).free();
    expect(await lora.read()).toEqual(afterA);
    expect(await b.state()).toEqual(stA);
    expect(() => b.restore({ ...st, m: {} })).toThrow(/missing or has the wrong size/);
    [a, b].forEach((o) => o.free());
    lora.free();
  });

  it('an update is at most 4 dispatches; a non-finite gradient leaves A, B and the moments bit-identical', async () => {
    const ctx = await gpu();
    const lora = randomLora(ctx, 5);
    const opt = new AdamW(lora, HP);
    await withGrads(lora, 6);
    const d0 = ctx.dispatchCount;
    opt.update(1e-2).free(); // a good step first, so the moments are not zero
    expect(ctx.dispatchCount - d0).toBeLessThanOrEqual(4);
    const before = await lora.read();
    const stBefore = await opt.state();
    expect(before).not.toEqual(randomArrays(lora, 5)); // the good step moved the weights
    await withGrads(lora, 7);
    const m = [...lora.modules.values()][5];
    const g = rng(8).normal(m.gradA.numel);
    g[17] = NaN;
    m.gradA.write(g);
    const norm = opt.update(1e-2);
    expect(Number.isNaN((await norm.read())[0])).toBe(true);
    norm.free();
    expect(await lora.read()).toEqual(before);
    expect((await opt.state()).m).toEqual(stBefore.m);
    expect((await opt.state()).v).toEqual(stBefore.v);
    for (const v of (await lora.readGrads()).values()) expect([...v.A, ...v.B].every((x) => x === 0)).toBe(true);
    // The guard is sticky until reset; then updates resume.
    await withGrads(lora, 9);
    opt.update(1e-2).free();
    expect(await lora.read()).toEqual(before);
    opt.resetGuard();
    await withGrads(lora, 9);
    opt.update(1e-2).free();
    expect(await lora.read()).not.toEqual(before);
    opt.free();
    lora.free();
  });
});
