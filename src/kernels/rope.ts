// Rotary position embedding (Llama, Qwen2/3, SmolLM3) in Hugging Face's rotate_half layout, and its backward
// (the inverse rotation). Shaders: shaders/rope.wgsl (one tensor), shaders/rope_qk.wgsl (q and k in one dispatch),
// both rotating with shaders/lib_rope.wgsl. CPU twin: rope.cpu.ts.
//
// The kernel reads a table of inverse frequencies computed here on the CPU exactly as transformers'
// modeling_rope_utils.py does in float32:
//   default  inv_freq[i] = 1 / theta^(2i/D)
//   linear   inv_freq[i] / factor
//   llama3   (_compute_llama3_parameters) with wavelen = 2π / inv_freq[i], lw = old / low_freq_factor,
//            hw = old / high_freq_factor (old = original_max_position_embeddings):
//              wavelen < hw           inv_freq                      (high frequencies: unchanged)
//              wavelen > lw           inv_freq / factor             (low frequencies: interpolated)
//              otherwise              (1 - s) · inv_freq / factor + s · inv_freq,
//                                     s = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
import { grid1d } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { elementwiseCost } from './cost';

/** rope_scaling of Llama 3.x ('llama3') and linear position interpolation ('linear'); null = plain RoPE. */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface RopeOpts {
  heads: number; // H, heads in this tensor (query heads for q, kv heads for k)
  headDim: number; // D, even
  theta: number; // rope_theta
  /** rope_scaling (absent or null: plain RoPE); used when invFreq is not given. */
  scaling?: RopeScaling | null;
  /** T: rows per sequence. x holds B·T rows (N = numel / (H·D)); row n sits at position posOffset + n % T. */
  seqLen: number;
  /** Position of each sequence's first row (the KV-cache length during generation). Default 0. */
  posOffset?: number;
  /** inv_freq from rope_inv_freq_tensor, to reuse across calls; when absent each call uploads its own. */
  invFreq?: Tensor;
}

/** inv_freq[i] = 1 / theta^(2i / D) for i < D/2, rounded to f32 at each step as Hugging Face computes it
 * (torch.arange(0, D, 2).float() / D, then theta ** that and 1.0 / that, all in float32), then scaled as
 * rope_scaling says (see the header), each operation rounded to f32 as torch does on a float32 tensor. */
export function rope_inv_freq(headDim: number, theta: number, scaling: RopeScaling | null = null): Float32Array {
  const f = Math.fround;
  const inv = Float32Array.from({ length: headDim / 2 }, (_, i) => f(1 / f(Math.pow(f(theta), f((2 * i) / headDim)))));
  if (!scaling) return inv;
  const factor = f(scaling.factor);
  if (scaling.type === 'linear') return inv.map((x) => f(x / factor));
  const { lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: old } = scaling;
  const lowWavelen = old / low; // Python floats (double), compared against f32 tensors
  const highWavelen = old / high;
  const twoPi = f(2 * Math.PI);
  // torch evaluates `scalar / tensor` as tensor.reciprocal() * scalar: two roundings, not one
  const rdiv = (a: number, x: number) => f(f(1 / x) * f(a));
  return inv.map((x) => {
    const wavelen = rdiv(twoPi, x);
    const scaled = wavelen > lowWavelen ? f(x / factor) : x; // inv_freq_llama
    if (wavelen < highWavelen || wavelen > lowWavelen) return scaled;
    const smooth = f(f(rdiv(old, wavelen) - f(low)) / f(high - low));
    return f(f(f(f(1 - smooth) * scaled) / factor) + f(smooth * scaled));
  });
}

/** rope_inv_freq as a (D/2,) tensor that callers may keep and pass as opts.invFreq (they own it). */
export function rope_inv_freq_tensor(
  ctx: Tensor['ctx'],
  headDim: number,
  theta: number,
  scaling: RopeScaling | null = null,
): Tensor {
  return Tensor.from(ctx, rope_inv_freq(headDim, theta, scaling), [headDim / 2], 'rope.inv_freq');
}

function geometry(what: string, x: Tensor, o: RopeOpts) {
  const { heads: H, headDim: D, seqLen: T } = o;
  const off = o.posOffset ?? 0;
  const fail = (why: string) => {
    throw new Error(`${what}: ${why} (x [${x.shape}], heads ${H}, headDim ${D}, seqLen ${T}, posOffset ${off})`);
  };
  if (!Number.isInteger(H) || H < 1) fail('heads must be a positive integer');
  if (!Number.isInteger(D) || D < 2 || D % 2 !== 0) fail('headDim must be a positive even integer');
  if (!Number.isInteger(T) || T < 1) fail('seqLen must be a positive integer');
  if (!Number.isInteger(off) || off < 0) fail('posOffset must be a non-negative integer');
  if (off + T > 2 ** 24) fail('positions must stay below 2^24 (exact in f32)');
  if (!(o.theta > 0)) fail('theta must be positive');
  const N = x.numel / (H * D);
  if (!Number.isInteger(N) || N < 1) fail('x does not hold N·heads·headDim values');
  if (N % T !== 0) fail('the rows N = numel / (heads·headDim) are not a whole number of sequences of seqLen');
  if (x.dtype !== 'f32') fail('x must be f32');
  if (o.invFreq && (o.invFreq.numel !== D / 2 || o.invFreq.dtype !== 'f32')) fail('invFreq must be (headDim/2,) f32');
  return { N, H, D, T, off };
}

function rotate(what: string, x: Tensor, o: RopeOpts, sign: 1 | -1): Tensor {
  const g = geometry(what, x, o);
  const ctx = x.ctx;
  const out = Tensor.empty(ctx, x.shape, `${what}.out`);
  const invFreq = o.invFreq ?? rope_inv_freq_tensor(ctx, g.D, o.theta, o.scaling ?? null);
  const pairs = (g.N * g.H * g.D) / 2;
  ctx.dispatch('rope', {
    bindings: [x.buf, invFreq.buf, out.buf],
    u32: [pairs, g.H, g.D / 2, g.T, g.off],
    f32: [sign],
    workgroups: grid1d(pairs, 256),
    cost: elementwiseCost(pairs, 6, 2, 2), // a 2-D rotation per pair (cos/sin of one angle)
  });
  // Safe before the kernel runs: a later write into a reused buffer flushes this kernel first (ctx.write).
  if (!o.invFreq) invFreq.free();
  return out;
}

/** x is (B·T, H·D) or (B, T, H, D); returns x rotated by RoPE, same shape. */
export function rope_forward(x: Tensor, opts: RopeOpts): Tensor {
  return rotate('rope_forward', x, opts, 1);
}

/** dy shaped like the forward's x; returns dx = the inverse rotation of dy (RoPE is orthogonal). */
export function rope_backward(dy: Tensor, opts: RopeOpts): Tensor {
  return rotate('rope_backward', dy, opts, -1);
}

/** RoPE of q (N, Hq·D) and k (N, Hk·D) in one dispatch: o is q's geometry (o.heads = Hq), kHeads is Hk; sign 1
 * rotates (forward), -1 rotates back (backward). Returns the two rotated tensors. */
function rotatePair(what: string, q: Tensor, k: Tensor, o: RopeOpts, kHeads: number, sign: 1 | -1) {
  const gq = geometry(what, q, o);
  const gk = geometry(what, k, { ...o, heads: kHeads });
  if (gk.N !== gq.N) throw new Error(`${what}: q has ${gq.N} rows and k ${gk.N}`);
  const ctx = q.ctx;
  const [outQ, outK] = [Tensor.empty(ctx, q.shape, `${what}.q`), Tensor.empty(ctx, k.shape, `${what}.k`)];
  const invFreq = o.invFreq ?? rope_inv_freq_tensor(ctx, gq.D, o.theta, o.scaling ?? null);
  const [pq, pk] = [(gq.N * gq.H * gq.D) / 2, (gk.N * gk.H * gk.D) / 2];
  ctx.dispatch('rope_qk', {
    bindings: [q.binding, k.binding, invFreq.binding, outQ.binding, outK.binding],
    u32: [pq, pk, gq.H, gk.H, gq.D / 2, gq.T, gq.off],
    f32: [sign],
    workgroups: grid1d(pq + pk, 256),
    cost: elementwiseCost(pq + pk, 6, 2, 2),
  });
  if (!o.invFreq) invFreq.free();
  return { q: outQ, k: outK };
}

/** rope_forward of q and of k (kHeads heads, the rest of o alike) in one dispatch. */
export function rope_qk_forward(q: Tensor, k: Tensor, o: RopeOpts, kHeads: number): { q: Tensor; k: Tensor } {
  return rotatePair('rope_qk_forward', q, k, o, kHeads, 1);
}

/** rope_backward of dq and dk in one dispatch. */
export function rope_qk_backward(dq: Tensor, dk: Tensor, o: RopeOpts, kHeads: number): { q: Tensor; k: Tensor } {
  return rotatePair('rope_qk_backward', dq, dk, o, kHeads, -1);
}
