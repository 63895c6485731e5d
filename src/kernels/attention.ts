// Causal self-attention with grouped-query heads, flash style: the forward keeps an online softmax per
// query row and stores only lse (log-sum-exp of the scaled scores); the backward recomputes the
// probabilities from lse in two passes, one over query rows (dq) and one over key rows (dk, dv, summed over
// the query heads of each kv head without atomics). Shaders: shaders/attention_*.wgsl. CPU twin:
// attention.cpu.ts.
import type { DispatchCost } from '../gpu/context';
import { Tensor } from '../gpu/tensor';

export interface AttentionOpts {
  heads: number; // Hq, query heads
  kvHeads: number; // Hkv, divides Hq; query head h reads kv head floor(h / (Hq / Hkv))
  headDim: number; // D
  seqLen: number; // Tq, query rows per batch element
  kvLen?: number; // Tk keys per batch element actually used (default: Tq)
  kvCapacity?: number; // rows per batch element in the k/v buffers (default: kvLen)
  scale?: number; // default 1/sqrt(D)
}

export const ATTENTION_MAX_HEAD_DIM = 128;
// Invocations per workgroup: one query row (forward, dq) or one key row (dk, dv) each. A workgroup walks
// keys up to its last row, so the causal triangle inside a block (~WG²/2 pairs) is masked work: 32 keeps
// that small while the lanes still share every key load. 16, 32, 64 were within noise on lavapipe and
// SwiftShader (B=1, T=256, Hq=4, D=32); 128 was 2-3x slower.
const WG = 32;
const TILE = 16; // keys per online-softmax step in the forward

export interface Geometry {
  B: number;
  Tq: number;
  Tk: number;
  cap: number;
  Hq: number;
  Hkv: number;
  D: number;
  scale: number;
}

/** Checks shapes and fills defaults. q is (B, Tq, Hq, D) in any row-major shape, k/v (B, kvCap, Hkv, D). */
export function attentionGeometry(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOpts): Geometry {
  const { heads: Hq, kvHeads: Hkv, headDim: D, seqLen: Tq } = opts;
  const Tk = opts.kvLen ?? Tq;
  const cap = opts.kvCapacity ?? Tk;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const fail = (why: string) => {
    throw new Error(`attention: ${why} (q [${q.shape}], k [${k.shape}], v [${v.shape}], opts ${JSON.stringify(opts)})`);
  };
  for (const [name, n] of Object.entries({
    heads: Hq,
    kvHeads: Hkv,
    headDim: D,
    seqLen: Tq,
    kvLen: Tk,
    kvCapacity: cap,
  })) {
    if (!Number.isInteger(n) || n < 1) fail(`${name} must be a positive integer`);
  }
  if (Hq % Hkv !== 0) fail('kvHeads must divide heads');
  if (D > ATTENTION_MAX_HEAD_DIM) fail(`headDim over ${ATTENTION_MAX_HEAD_DIM}`);
  if (Tk < Tq) fail('kvLen must be at least seqLen (the query rows are the last kvLen positions)');
  if (cap < Tk) fail('kvCapacity must be at least kvLen');
  const B = q.numel / (Tq * Hq * D);
  if (!Number.isInteger(B) || B < 1) fail('q does not hold B·seqLen·heads·headDim values');
  if (k.numel !== B * cap * Hkv * D || v.numel !== k.numel)
    fail(`k and v must hold B·kvCapacity·kvHeads·headDim = ${B * cap * Hkv * D} values`);
  if (q.dtype !== 'f32' || k.dtype !== 'f32' || v.dtype !== 'f32') fail('q, k, v must be f32');
  if (B * Math.max(Hq, Hkv) > q.ctx.limits.maxComputeWorkgroupsPerDimension)
    fail('B·heads over the workgroups per dimension');
  return { B, Tq, Tk, cap, Hq, Hkv, D, scale };
}

/** Query-key pairs inside the causal mask of one (batch, head): row i (position Tk - Tq + i) sees i + 1 + Tk - Tq keys. */
const causalPairs = (g: Geometry) => g.Tq * (g.Tk - g.Tq) + (g.Tq * (g.Tq + 1)) / 2;

/** Paper costs of the three attention kernels (useful work inside the causal mask; the masked lanes of a
 * block's diagonal are not counted). Per pair: forward s = q·k and o += p·v (4D) plus the online softmax;
 * dq pass: s, dp = dO·v, dq += ds·k (6D); dk/dv pass: s, dp, dv += p·dO, dk += ds·q (8D). The longest
 * loop: a query row walks Tk keys; a key row walks the Tq rows of each of the Hq/Hkv query heads sharing it. */
export function attentionCost(g: Geometry, pass: 'forward' | 'dq' | 'dkdv'): DispatchCost {
  const pairs = g.B * g.Hq * causalPairs(g);
  const qElems = g.B * g.Tq * g.Hq * g.D; // q, o, dout, dq
  const kvElems = g.B * g.Tk * g.Hkv * g.D; // k, v, dk, dv (the kvLen valid rows)
  const rows = g.B * g.Hq * g.Tq; // lse, delta
  if (pass === 'forward')
    return {
      flops: pairs * (4 * g.D + 4),
      bytesRead: 4 * (qElems + 2 * kvElems),
      bytesWritten: 4 * (qElems + rows),
      serialLoop: g.Tk,
    };
  if (pass === 'dq')
    return {
      flops: pairs * (6 * g.D + 4) + 2 * qElems,
      bytesRead: 4 * (3 * qElems + 2 * kvElems + rows),
      bytesWritten: 4 * (qElems + rows),
      serialLoop: g.Tk,
    };
  return {
    flops: pairs * (8 * g.D + 4),
    bytesRead: 4 * (2 * qElems + 2 * kvElems + 2 * rows),
    bytesWritten: 4 * 2 * kvElems,
    serialLoop: (g.Hq / g.Hkv) * g.Tq,
  };
}

const params = (g: Geometry) => ({ u32: [g.Tq, g.Tk, g.cap, g.Hq, g.Hkv], f32: [g.scale] });

/** q is (B, Tq, Hq, D); k, v are (B, kvCap, Hkv, D).
 * Returns o, shaped like q, and lse (B, Hq, Tq), the log-sum-exp of each row's scaled scores. */
export function attention_forward(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOpts): { o: Tensor; lse: Tensor } {
  const g = attentionGeometry(q, k, v, opts);
  const ctx = q.ctx;
  const o = Tensor.empty(ctx, q.shape, 'attention.o');
  const lse = Tensor.empty(ctx, [g.B, g.Hq, g.Tq], 'attention.lse');
  ctx.dispatch('attention_forward', {
    defines: { HEAD_DIM: g.D, TILE, WG },
    bindings: [q.buf, k.buf, v.buf, o.buf, lse.buf],
    ...params(g),
    workgroups: [Math.ceil(g.Tq / WG), g.B * g.Hq],
    cost: attentionCost(g, 'forward'),
  });
  return { o, lse };
}

/** dout, q, o are (B, Tq, Hq, D); k, v are (B, kvCap, Hkv, D); lse is (B, Hq, Tq) from the forward.
 * Returns dq shaped like q, and dk, dv for the kvLen valid rows: shaped like k when kvLen = kvCapacity,
 * else (B, kvLen, Hkv, D). dk, dv sum over the query heads that share each kv head. */
export function attention_backward(
  dout: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: Tensor,
  lse: Tensor,
  opts: AttentionOpts,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const g = attentionGeometry(q, k, v, opts);
  if (dout.numel !== q.numel || o.numel !== q.numel)
    throw new Error('attention_backward: dout and o must be shaped like q');
  if (lse.numel !== g.B * g.Hq * g.Tq) throw new Error('attention_backward: lse must be (B, Hq, Tq)');
  const ctx = q.ctx;
  const dq = Tensor.empty(ctx, q.shape, 'attention.dq');
  const kvShape = g.Tk === g.cap ? k.shape : [g.B, g.Tk, g.Hkv, g.D];
  const dk = Tensor.empty(ctx, kvShape, 'attention.dk');
  const dv = Tensor.empty(ctx, kvShape, 'attention.dv');
  const delta = Tensor.empty(ctx, [g.B, g.Hq, g.Tq], 'attention.delta'); // rowsum(dO ⊙ O)
  ctx.dispatch('attention_backward_dq', {
    defines: { HEAD_DIM: g.D, WG },
    bindings: [q.buf, k.buf, v.buf, dout.buf, o.buf, lse.buf, dq.buf, delta.buf],
    ...params(g),
    workgroups: [Math.ceil(g.Tq / WG), g.B * g.Hq],
    cost: attentionCost(g, 'dq'),
  });
  ctx.dispatch('attention_backward_dkdv', {
    defines: { HEAD_DIM: g.D, WG },
    bindings: [q.buf, k.buf, v.buf, dout.buf, lse.buf, delta.buf, dk.buf, dv.buf],
    ...params(g),
    workgroups: [Math.ceil(g.Tk / WG), g.B * g.Hkv],
    cost: attentionCost(g, 'dkdv'),
  });
  delta.free(); // a later kernel that reuses the buffer runs after this one in the same queue
  return { dq, dk, dv };
}
