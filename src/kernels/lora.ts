// A frozen linear layer with a LoRA adapter, fused (maths and derivation: docs/lora.md):
//   y = x·W0ᵀ + bias + scale·(drop(x)·Aᵀ)·Bᵀ
// Forward: the rank-r U = drop(x)·Aᵀ first (a skinny product), then one pass over W0 whose epilogue adds
// bias and scale·U·Bᵀ (an r-term loop per output), so y is written once and B·A never exists.
// Backward: G = dy·B, dB = scale·dyᵀ·U, dA = scale·Gᵀ·drop(x), dx = dy·W0 + scale·drop'(G·A) with the
// LoRA term in the epilogue of the dx matmul. Every intermediate is rank r; W0 gets no gradient.
// The big products x·W0ᵀ and dy·W0 run on the matmul kernel (shaders/matmul.wgsl) with its epilogue/dropout
// defines; U on shaders/lora_rank.wgsl (few rows per workgroup, K split over threads); G, dA and dB together on
// shaders/lora_grad.wgsl + lora_grad_sum.wgsl (split over chunks of tokens, summed in a fixed order, and
// added straight into the gradient buffers when the caller passes them): two dispatches for all three, or one
// where the caller's GradCarry carries the sum into the next lora_grad (src/kernels/lora_grad.ts).
// W0 may be f32, f16, or q8 / q4 blocks (src/gpu/quant.ts): its type comes from the tensor, and the matmul reads
// the blocks as they are (weightB); nothing else here touches W0.
import { Tensor } from '../gpu/tensor';
import { GradCarry, lora_grad } from './lora_grad';
import { lora_rank_product } from './lora_rank';
import { matmulRaw, weightB, type MatmulDropout } from './matmul';

export interface LoraParams {
  A: Tensor /* (r, IN) f32 */;
  B: Tensor /* (OUT, r) f32 */;
  scale: number;
  dropout?: number /* p on the LoRA branch input */;
  seed?: number /* dropout stream, u32 */;
}
export interface LinearOpts {
  w0Transposed?: boolean /* GPT-2 Conv1D: w0 is (IN, OUT) */;
}
export interface ForwardOpts extends LinearOpts {
  /** (N, OUT): y = residual + the linear (a residual connection folded into the matmul's accumulate epilogue:
   * y starts as a copy of it, a buffer copy rather than an add kernel) */
  residual?: Tensor;
  /** (N, r): drop(x)·Aᵀ already computed (lora_rank_segments, for several linears at once); then the returned u
   * is null and the caller keeps this one */
  u?: Tensor;
}

interface Dims {
  N: number;
  IN: number;
  OUT: number;
  r: number;
}

function dims(x: Tensor, w0: Tensor, lora: LoraParams | null, opts: LinearOpts): Dims {
  if (x.shape.length !== 2) throw new Error(`lora: x must be (N, IN), got [${x.shape}]`);
  const [N, IN] = x.shape;
  if (w0.shape.length !== 2) throw new Error(`lora: w0 must be 2-D, got [${w0.shape}]`);
  const [OUT, IN0] = opts.w0Transposed ? [w0.shape[1], w0.shape[0]] : [w0.shape[0], w0.shape[1]];
  if (IN0 !== IN)
    throw new Error(`lora: x is [${x.shape}] but w0 is [${w0.shape}]${opts.w0Transposed ? ' (transposed)' : ''}`);
  weightB(w0); // f32, f16 (where the adapter has shader-f16), q8 or q4, else it throws
  let r = 0;
  if (lora) {
    r = lora.A.shape[0];
    if (lora.A.shape.length !== 2 || lora.A.shape[1] !== IN)
      throw new Error(`lora: A must be (r, ${IN}), got [${lora.A.shape}]`);
    if (lora.B.shape.length !== 2 || lora.B.shape[0] !== OUT || lora.B.shape[1] !== r) {
      throw new Error(`lora: B must be (${OUT}, ${r}), got [${lora.B.shape}]`);
    }
    const p = lora.dropout ?? 0;
    if (!(p >= 0 && p < 1)) throw new Error(`lora: dropout must be in [0, 1), got ${p}`);
  }
  return { N, IN, OUT, r };
}

const dropoutOf = (lora: LoraParams, IN: number, on: MatmulDropout['on']): MatmulDropout => ({
  seed: lora.seed ?? 0,
  p: lora.dropout ?? 0,
  dropLd: IN,
  on,
});

/** x is (N, IN); w0 is (OUT, IN), or (IN, OUT) when w0Transposed, f32, f16, q8 or q4; bias is (OUT,) or null.
 * Returns y (N, OUT) (plus opts.residual when given) and u = drop(x)·Aᵀ (N, r), kept for the backward (null
 * without lora). */
export function lora_forward(
  x: Tensor,
  w0: Tensor,
  bias: Tensor | null,
  lora: LoraParams | null,
  opts: ForwardOpts = {},
): { y: Tensor; u: Tensor | null } {
  const ctx = x.ctx;
  const { N, IN, OUT, r } = dims(x, w0, lora, opts);
  if (bias && bias.numel !== OUT) throw new Error(`lora: bias must be (${OUT},), got [${bias.shape}]`);
  let u: Tensor | null = null;
  if (lora && opts.u && opts.u.numel !== N * r) throw new Error(`lora: u must be (${N}, ${r}), got [${opts.u.shape}]`);
  if (lora && !opts.u) {
    // u (N, r) = drop(x) (N, IN) · Aᵀ, A is (r, IN)
    u = lora_rank_product(x, lora.A, { dropout: lora.dropout, seed: lora.seed });
  }
  const uIn = opts.u ?? u;
  const res = opts.residual;
  if (res && (res.numel !== N * OUT || res.dtype !== 'f32'))
    throw new Error(`lora: residual must be (${N}, ${OUT}) f32, got [${res.shape}] ${res.dtype}`);
  // y (N, OUT) = x · W0ᵀ + bias + scale · u · Bᵀ [+ residual], B is (OUT, r)
  const y = Tensor.empty(ctx, [N, OUT], 'lora.y');
  if (res) ctx.copy(res.buf, 0, y.buf, 0, y.bytes);
  matmulRaw(
    ctx,
    {
      ...weightB(w0),
      a: x.buf,
      c: y.buf,
      accumulate: !!res,
      bias: bias?.buf,
      M: N,
      N: OUT,
      K: IN,
      lda: IN,
      ldb: opts.w0Transposed ? OUT : IN,
      ldc: OUT,
      transA: false,
      transB: !opts.w0Transposed,
    },
    lora && uIn ? { u: uIn.binding, v: lora.B.binding, R: r, ldv: r, vT: false, lscale: lora.scale } : undefined,
  );
  return { y, u };
}

/** The gradient buffers lora_backward adds dA and dB into (gradients summed over micro-batches), and optionally
 * their owner's GradCarry: then the sum into them waits there (complete after its flush). */
export interface LoraGradInto {
  dA: Tensor /* (r, IN) */;
  dB: Tensor /* (OUT, r) */;
  carry?: GradCarry;
}

/** dy is (N, OUT); x (N, IN) and u (N, r) are the forward's input and saved u. Returns dA (r, IN) and dB (OUT, r)
 * (null without lora, and null when opts.gradInto is given: then they are added into gradInto.dA / .dB), and
 * dx (N, IN) = dy·w0 + scale·drop'((dy·B)·A), or null when !needDx or when opts.dxInto is given: then dx is added
 * into it (the matmul's accumulate epilogue). With opts.G (N, r), dy·B already computed and dA, dB already taken
 * care of (lora_grad_segments, for several linears at once), only dx is computed. With gradInto.carry, dA and dB
 * are in gradInto after that carry's flush; otherwise when this returns. */
export function lora_backward(
  dy: Tensor,
  x: Tensor,
  u: Tensor | null,
  w0: Tensor,
  lora: LoraParams | null,
  opts: LinearOpts & { needDx: boolean; gradInto?: LoraGradInto; dxInto?: Tensor; G?: Tensor },
): { dA: Tensor | null; dB: Tensor | null; dx: Tensor | null } {
  const ctx = x.ctx;
  const { N, IN, OUT, r } = dims(x, w0, lora, opts);
  if (dy.shape.length !== 2 || dy.shape[0] !== N || dy.shape[1] !== OUT)
    throw new Error(`lora: dy must be (${N}, ${OUT}), got [${dy.shape}]`);
  if (lora && (!u || u.numel !== N * r)) throw new Error(`lora: u must be the forward's (${N}, ${r}) output`);
  let dA: Tensor | null = null,
    dB: Tensor | null = null,
    G: Tensor | null = null;
  if (lora && opts.G && opts.G.numel !== N * r) throw new Error(`lora: G must be (${N}, ${r}), got [${opts.G.shape}]`);
  // dA and dB's stage 2 waits on the owner's carry, or on one of this call's own, flushed below
  const carry = opts.gradInto?.carry ?? new GradCarry(ctx);
  if (lora && u && !opts.G) {
    const into = opts.gradInto;
    // G (N, r) = dy (N, OUT) · B; dA (r, IN) [+]= scale · Gᵀ · drop(x), the mask regenerated from (seed, row·IN + col);
    // dB (OUT, r) [+]= scale · dyᵀ · u, u is (N, r)
    const dAout = into?.dA ?? (dA = Tensor.empty(ctx, [r, IN], 'lora.dA'));
    const dBout = into?.dB ?? (dB = Tensor.empty(ctx, [OUT, r], 'lora.dB'));
    G = lora_grad(
      dy,
      x,
      u,
      lora.B,
      { dA: dAout, dB: dBout },
      {
        scale: lora.scale,
        accumulate: !!into,
        dropout: lora.dropout,
        seed: lora.seed,
      },
      carry,
    );
  }
  const Gin = opts.G ?? G;
  let dx: Tensor | null = null;
  if (opts.needDx) {
    // dx (N, IN) [+]= dy · W0 + scale · mask ⊙ (G · A), A is (r, IN)
    const into = opts.dxInto;
    if (into && into.numel !== N * IN) throw new Error(`lora: dxInto must be (${N}, ${IN}), got [${into.shape}]`);
    if (!into) dx = Tensor.empty(ctx, [N, IN], 'lora.dx');
    matmulRaw(
      ctx,
      {
        ...weightB(w0),
        a: dy.buf,
        c: (into ?? dx!).binding,
        accumulate: !!into,
        M: N,
        N: IN,
        K: OUT,
        lda: OUT,
        ldb: opts.w0Transposed ? OUT : IN,
        ldc: IN,
        transA: false,
        transB: !!opts.w0Transposed,
      },
      lora && Gin ? { u: Gin.binding, v: lora.A.binding, R: r, ldv: IN, vT: true, lscale: lora.scale } : undefined,
      lora ? dropoutOf(lora, IN, 'epilogue') : undefined,
    );
  }
  if (carry !== opts.gradInto?.carry) {
    carry.flush();
    carry.free(); // with G, after recording: the allocator reuses it only for later-recorded work
  }
  return { dA, dB, dx };
}
