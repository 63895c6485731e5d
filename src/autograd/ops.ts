// The differentiable ops a Transformer block is made of. Each runs its forward kernel now (eager),
// and, when a gradient is needed, records a closure that runs its backward kernel later. Closures
// capture tensors, not Vars: the tape may drop a Var's forward value while an op still saves it.

import type { Tensor } from '../gpu/tensor';
import { attention_backward, attention_forward, type AttentionOpts } from '../kernels/attention';
import { geglu_backward, geglu_forward } from '../kernels/geglu';
import { gelu_backward, gelu_forward } from '../kernels/gelu';
import { layernorm_backward, layernorm_forward } from '../kernels/layernorm';
import { lora_backward, lora_forward, type LoraParams } from '../kernels/lora';
import { lora_rank_glu, lora_rank_norm, lora_rank_segments } from '../kernels/lora_rank';
import { GradCarry, GradGroup, lora_grad_segments } from '../kernels/lora_grad';
import { rmsnorm_backward, rmsnorm_forward } from '../kernels/rmsnorm';
import { rope_backward, rope_forward, type RopeOpts } from '../kernels/rope';
import { swiglu_backward, swiglu_forward } from '../kernels/swiglu';
import { add_forward } from '../kernels/add';
import { put_cols, take_cols } from '../kernels/copy2d';
import { Tensor as T } from '../gpu/tensor';
import type { Tape, Var } from './tape';

/** A frozen linear map: w0 is (OUT, IN), or (IN, OUT) when transposed (GPT-2 Conv1D). */
export interface FrozenLinear {
  w0: Tensor;
  bias: Tensor | null;
  transposed: boolean;
}

/** The LoRA branch of one linear: A (r, IN) and B (OUT, r) as trainable Vars. */
export interface LoraBranch {
  A: Var;
  B: Var;
  scale: number;
  dropout: number;
  seed: number;
  /** The carry of the gradients' owner (src/models/lora.ts): dA and dB's sums into A's and B's persistent
   * gradients wait there to ride on the next lora_grad; the owner flushes it before they are read. */
  carry?: GradCarry;
}

/** y = x·w0ᵀ + bias + scale·(drop(x)·Aᵀ)·Bᵀ [+ residual]; x is (N, IN), y and residual are (N, OUT). The residual
 * connection costs no add kernel (the matmul accumulates onto it); its gradient is y's, passed on unchanged.
 * `made`: u = drop(x)·Aᵀ (N, r) already computed with x (gatedLinear), now the op's. */
export function linear(
  tape: Tape,
  x: Var,
  w: FrozenLinear,
  lora: LoraBranch | null,
  name: string,
  residual?: Var,
  made?: Tensor,
): Var {
  const params: LoraParams | null = lora
    ? { A: lora.A.t, B: lora.B.t, scale: lora.scale, dropout: lora.dropout, seed: lora.seed }
    : null;
  const xt = x.t;
  const fwd = lora_forward(xt, w.w0, w.bias, params, { w0Transposed: w.transposed, residual: residual?.t, u: made });
  const [y, u] = [fwd.y, made ?? fwd.u];
  const needs = tape.needsGrad(x, ...(lora ? [lora.A, lora.B] : []), ...(residual ? [residual] : []));
  const out = tape.output(y, name, needs);
  if (!needs) {
    u?.free();
    return out;
  }
  if (u) tape.adopt(u);
  tape.record({
    name,
    outputs: [out],
    saved: u ? [xt, u] : [xt],
    backward(tape) {
      // parameters with a persistent gradient get dA and dB added straight into it (no temporary, no axpy)
      const gradInto =
        lora?.A.gradAccum && lora.B.gradAccum && lora.A.requiresGrad && lora.B.requiresGrad
          ? { dA: lora.A.gradAccum, dB: lora.B.gradAccum, carry: lora.carry }
          : undefined;
      // x's gradient so far (from the other linears reading x), when the tape owns it alone, gets dx added in place
      const dxInto = tape.gradSink(x) ?? undefined;
      const r = lora_backward(out.grad!, xt, u, w.w0, params, {
        w0Transposed: w.transposed,
        needDx: x.requiresGrad,
        gradInto,
        dxInto,
      });
      if (lora && r.dA && r.dB) {
        tape.addGrad(lora.A, tape.adopt(r.dA));
        tape.addGrad(lora.B, tape.adopt(r.dB));
      }
      if (r.dx) tape.addGrad(x, tape.adopt(r.dx));
      if (residual) {
        tape.retain(out.grad!);
        tape.addGrad(residual, out.grad!);
      }
    },
  });
  if (u) tape.release(u); // the record above holds it now
  return out;
}

/** One linear of a group that reads the same input (see linears). */
export interface LinearSpec {
  w: FrozenLinear;
  lora: LoraBranch | null;
  name: string;
}

const paramsOf = (l: LoraBranch): LoraParams => ({
  A: l.A.t,
  B: l.B.t,
  scale: l.scale,
  dropout: l.dropout,
  seed: l.seed,
});

/**
 * Several linears of one input x (q, k, v of n1; gate, up of n2): the same values as `linear` on each, with one
 * dispatch for all their U = drop(x)·Aᵀ (lora_rank_segments) where 2 or 3 of them have adapters in one parameter
 * buffer; otherwise plain `linear`s. One op on the tape: its backward computes all their G, dA and dB in one
 * lora_grad (lora_grad_segments; its stage 2 on the branches' carry) where their gradients lie side by side, then
 * runs the dx matmuls last first, each dx added into x's gradient as it goes.
 */
export function linears(tape: Tape, x: Var, specs: LinearSpec[], made?: { all: Tensor; u: Tensor[] }): Var[] {
  const ls = groupOf(specs);
  if (!ls) return specs.map((s) => linear(tape, x, s.w, s.lora, s.name));
  const xt = x.t;
  // u_s (N, r) = drop_s(x) · A_sᵀ for every linear s, one dispatch (or made with x: normLinears); `all` holds them
  const { all, u } =
    made ??
    lora_rank_segments(
      xt,
      ls.map((l) => l.A.t),
      ls.map((l) => l.seed),
      ls[0].dropout,
    );
  const needs = tape.needsGrad(x, ...ls.flatMap((l) => [l.A, l.B]));
  const params = ls.map(paramsOf);
  const outs = specs.map((s, i) => {
    const { y } = lora_forward(xt, s.w.w0, s.w.bias, params[i], { w0Transposed: s.w.transposed, u: u[i] });
    return tape.output(y, s.name, needs);
  });
  if (!needs) {
    all.free();
    return outs;
  }
  tape.adopt(all);
  tape.record({
    name: specs.map((s) => s.name).join('+'),
    outputs: outs,
    saved: [xt, all],
    backward(tape) {
      // persistent gradients side by side (the flat LoRA buffer), B's in one buffer and a gradient for every output:
      // G, dA and dB of all of them in one lora_grad, whose stage 2 waits on the owner's carry (or on one of ours)
      const persistent = ls.every((l) => l.A.gradAccum && l.B.gradAccum && l.A.requiresGrad && l.B.requiresGrad);
      const group =
        persistent && outs.every((o) => o.grad) && ls.every((l) => l.B.t.base === ls[0].B.t.base)
          ? GradGroup.of(
              ls.map((l) => ({ dA: l.A.gradAccum!, dB: l.B.gradAccum! })),
              xt.shape[0],
              ls[0].scale,
            )
          : null;
      const owned = ls.every((l) => l.carry && l.carry === ls[0].carry) ? null : new GradCarry(xt.ctx);
      const carry = owned ?? ls[0].carry!;
      const G = group
        ? lora_grad_segments(
            xt,
            ls.map((l, i) => ({ dy: outs[i].grad!, u: u[i], B: l.B.t, seed: l.seed })),
            group,
            carry,
            ls[0].dropout,
          )
        : null;
      for (let i = specs.length - 1; i >= 0; i--) {
        const [s, l, dy] = [specs[i], ls[i], outs[i].grad];
        if (!dy) continue;
        const gradInto = persistent ? { dA: l.A.gradAccum!, dB: l.B.gradAccum!, carry } : undefined;
        const r = lora_backward(dy, xt, u[i], s.w.w0, params[i], {
          w0Transposed: s.w.transposed,
          needDx: x.requiresGrad,
          gradInto,
          dxInto: tape.gradSink(x) ?? undefined,
          G: G?.[i],
        });
        if (r.dA && r.dB) {
          tape.addGrad(l.A, tape.adopt(r.dA));
          tape.addGrad(l.B, tape.adopt(r.dB));
        }
        if (r.dx) tape.addGrad(x, tape.adopt(r.dx));
      }
      owned?.flush();
      owned?.free(); // with the G's, after recording: the allocator reuses it only for later-recorded work
    },
  });
  tape.release(all); // the record above holds it now
  return outs;
}

/** The branches of linears that share their U dispatch: 2 or 3 linears, all with adapters, their A's views of one
 * buffer, one dropout p; else null. */
function groupOf(specs: LinearSpec[]): LoraBranch[] | null {
  const ls = specs.map((s) => s.lora).filter((l): l is LoraBranch => !!l);
  const grouped =
    specs.length >= 2 &&
    specs.length <= 3 &&
    ls.length === specs.length &&
    ls.every((l) => l.A.t.base === ls[0].A.t.base && l.dropout === ls[0].dropout && l.A.t.view);
  return grouped ? ls : null;
}

/**
 * linears(rmsnorm(x)): the linears of one normed input (q, k, v of input_layernorm(x); gate, up of
 * post_attention_layernorm(h)), with the norm made inside their U dispatch where they are grouped (lora_rank_norm:
 * y, rstd and every U in one dispatch instead of two). The tape gets the same two ops as rmsnorm then linears, so
 * both backwards are as they were; elsewhere it is those two calls.
 */
export function normLinears(
  tape: Tape,
  x: Var,
  norm: { w: Tensor; eps: number; name: string },
  specs: LinearSpec[],
): Var[] {
  const ls = groupOf(specs);
  if (!ls) return linears(tape, rmsnorm(tape, x, norm.w, norm.eps, norm.name), specs);
  const As = ls.map((l) => l.A.t);
  const f = lora_rank_norm(
    x.t,
    norm.w,
    norm.eps,
    As,
    ls.map((l) => l.seed),
    ls[0].dropout,
  );
  const y = rmsnorm(tape, x, norm.w, norm.eps, norm.name, undefined, { y: f.y, rstd: f.rstd });
  return linears(tape, y, specs, { all: f.all, u: f.u });
}

/** RMSNorm over the last dimension; x is (N, C), w is (C,) and frozen. With `residual` (N, C), y = residual +
 * the norm (a residual connection after a norm, Gemma 3's) at no add kernel; its gradient is y's, passed on.
 * `made`: y and rstd already computed (normLinears). */
export function rmsnorm(
  tape: Tape,
  x: Var,
  w: Tensor,
  eps: number,
  name: string,
  residual?: Var,
  made?: { y: Tensor; rstd: Tensor },
): Var {
  const xt = x.t;
  const { y, rstd } = made ?? rmsnorm_forward(xt, w, eps, residual?.t);
  const needs = tape.needsGrad(x, ...(residual ? [residual] : []));
  const out = tape.output(y, name, needs);
  if (!needs) {
    rstd.free();
    return out;
  }
  tape.adopt(rstd);
  tape.record({
    name,
    outputs: [out],
    saved: [xt, rstd],
    backward(tape) {
      if (x.requiresGrad) {
        // x's gradient so far (the residual stream's), when the tape owns it alone, gets dx added in place
        const sink = tape.gradSink(x);
        const dx = rmsnorm_backward(out.grad!, xt, w, rstd, sink ?? undefined);
        if (!sink) tape.addGrad(x, tape.adopt(dx));
      }
      if (residual) {
        tape.retain(out.grad!);
        tape.addGrad(residual, out.grad!);
      }
    },
  });
  tape.release(rstd);
  return out;
}

/**
 * RMSNorm of every head (Qwen3's q_norm / k_norm): x is (N, H·D) seen as (N·H, D), w is (D,) and frozen;
 * y = x_h / sqrt(mean(x_h²) + eps) · w per head h. The (N·H, D) views share x's buffer; only x itself is
 * saved (the tape keeps it alive), the view is rebuilt for the backward.
 */
export function headRmsnorm(tape: Tape, x: Var, w: Tensor, eps: number, name: string): Var {
  const xt = x.t;
  const D = w.numel;
  const rows = [xt.numel / D, D];
  const { y, rstd } = rmsnorm_forward(xt.reshape(rows), w, eps); // y (N·H, D), rstd (N·H,)
  const out = tape.output(y.reshape(xt.shape), name, x.requiresGrad);
  if (!tape.needsGrad(x)) {
    rstd.free();
    return out;
  }
  tape.adopt(rstd);
  tape.record({
    name,
    outputs: [out],
    saved: [xt, rstd],
    backward: (tape) => {
      const dx = rmsnorm_backward(out.grad!.reshape(rows), xt.reshape(rows), w, rstd); // (N·H, D)
      tape.addGrad(x, tape.adopt(dx.reshape(xt.shape)));
    },
  });
  tape.release(rstd);
  return out;
}

/** LayerNorm over the last dimension; x is (N, C), w and b are (C,) and frozen. */
export function layernorm(tape: Tape, x: Var, w: Tensor, b: Tensor, eps: number, name: string): Var {
  const xt = x.t;
  const { y, mean, rstd } = layernorm_forward(xt, w, b, eps);
  const out = tape.output(y, name, x.requiresGrad);
  if (!tape.needsGrad(x)) {
    mean.free();
    rstd.free();
    return out;
  }
  tape.adopt(mean);
  tape.adopt(rstd);
  tape.record({
    name,
    outputs: [out],
    saved: [xt, mean, rstd],
    backward: (tape) => tape.addGrad(x, tape.adopt(layernorm_backward(out.grad!, xt, w, mean, rstd))),
  });
  tape.release(mean);
  tape.release(rstd);
  return out;
}

/** Rotary position embedding (HF rotate_half); x is (B·T, H·D). A rotation: backward rotates back. */
export function rope(tape: Tape, x: Var, o: RopeOpts, name: string): Var {
  const out = tape.output(rope_forward(x.t, o), name, x.requiresGrad);
  if (tape.needsGrad(x)) {
    tape.record({
      name,
      outputs: [out],
      saved: [],
      backward: (tape) => tape.addGrad(x, tape.adopt(rope_backward(out.grad!, o))),
    });
  }
  return out;
}

/** Causal self-attention with grouped-query heads; q is (B·T, Hq·D), k and v (B·T, Hkv·D). With o.rope, q and k
 * come before RoPE, which the kernels apply (and undo on their gradients). */
export function attention(tape: Tape, q: Var, k: Var, v: Var, o: AttentionOpts, name: string): Var {
  const [qt, kt, vt] = [q.t, k.t, v.t];
  const r = attention_forward(qt, kt, vt, o);
  const needs = tape.needsGrad(q, k, v);
  const out = tape.output(r.o, name, needs);
  if (!needs) {
    r.lse.free();
    return out;
  }
  const lse = tape.adopt(r.lse);
  const ot = out.t;
  tape.record({
    name,
    outputs: [out],
    saved: [qt, kt, vt, ot, lse],
    backward(tape) {
      const g = attention_backward(out.grad!, qt, kt, vt, ot, lse, o);
      tape.addGrad(q, tape.adopt(g.dq));
      tape.addGrad(k, tape.adopt(g.dk));
      tape.addGrad(v, tape.adopt(g.dv));
    },
  });
  tape.release(lse);
  return out;
}

/** The gated MLP activations, h = act(gate)·up: SwiGLU (act = silu, Llama) and GeGLU (act = GELU's tanh
 * approximation, Gemma). Each has its own kernels; the op around them is one. */
const GATED = {
  swiglu: { forward: swiglu_forward, backward: swiglu_backward },
  geglu: { forward: geglu_forward, backward: geglu_backward },
} as const;

/** The op h = act(gate)·up of one kind; gate, up, h are (N, F). */
function gatedActivation(kind: keyof typeof GATED) {
  const { forward, backward } = GATED[kind];
  return (tape: Tape, gate: Var, up: Var, name: string, made?: Tensor /* h already computed */): Var => {
    const [gt, ut] = [gate.t, up.t];
    const needs = tape.needsGrad(gate, up);
    const out = tape.output(made ?? forward(gt, ut), name, needs);
    if (needs) {
      tape.record({
        name,
        outputs: [out],
        saved: [gt, ut],
        backward(tape) {
          const g = backward(out.grad!, gt, ut);
          tape.addGrad(gate, tape.adopt(g.dgate));
          tape.addGrad(up, tape.adopt(g.dup));
        },
      });
    }
    return out;
  };
}

/** h = silu(gate)·up; gate, up, h are (N, F). */
export const swiglu = gatedActivation('swiglu');

/** h = gelu(gate)·up with GELU's tanh approximation (Gemma's GeGLU); gate, up, h are (N, F). */
export const geglu = gatedActivation('geglu');

/**
 * down(act(gate)·up) [+ residual]: a gated activation (SwiGLU, GeGLU) and the linear after it (down_proj), with
 * the activation made inside the linear's U dispatch where it has an adapter (lora_rank_glu: h and U in one
 * dispatch instead of two). The tape gets the same two ops as swiglu / geglu then linear, so both backwards are as
 * they were; without an adapter it is those two calls.
 */
export function gatedLinear(
  tape: Tape,
  kind: keyof typeof GATED,
  gate: Var,
  up: Var,
  actName: string,
  down: LinearSpec,
  residual?: Var,
): Var {
  const act = kind === 'swiglu' ? swiglu : geglu;
  const l = down.lora;
  if (!l) return linear(tape, act(tape, gate, up, actName), down.w, null, down.name, residual);
  const f = lora_rank_glu(kind, gate.t, up.t, l.A.t, l.seed, l.dropout);
  const h = act(tape, gate, up, actName, f.h);
  return linear(tape, h, down.w, l, down.name, residual, f.u);
}

/** GELU (tanh approximation). */
export function gelu(tape: Tape, x: Var, name: string): Var {
  const xt = x.t;
  const out = tape.output(gelu_forward(xt), name, x.requiresGrad);
  if (tape.needsGrad(x)) {
    tape.record({
      name,
      outputs: [out],
      saved: [xt],
      backward: (tape) => tape.addGrad(x, tape.adopt(gelu_backward(out.grad!, xt))),
    });
  }
  return out;
}

/** Residual add: out = a + b. The gradient flows unchanged to both. */
export function add(tape: Tape, a: Var, b: Var, name: string): Var {
  const needs = tape.needsGrad(a, b);
  const out = tape.output(add_forward(a.t, b.t), name, needs);
  if (needs) {
    tape.record({
      name,
      outputs: [out],
      saved: [],
      backward(tape) {
        const g = out.grad!;
        tape.retain(g);
        tape.addGrad(a, g);
        tape.retain(g);
        tape.addGrad(b, g);
      },
    });
  }
  return out;
}

/** Splits the columns of x (N, sum(widths)) into contiguous pieces (GPT-2's fused q, k, v). */
export function splitCols(tape: Tape, x: Var, widths: number[], names: string[]): Var[] {
  const xt = x.t;
  let col = 0;
  const outs = widths.map((w, i) => {
    const piece = take_cols(xt, col, w);
    col += w;
    return tape.output(piece, names[i], x.requiresGrad);
  });
  if (tape.needsGrad(x)) {
    const shape = xt.shape;
    tape.record({
      name: names.join('+'),
      outputs: outs,
      saved: [],
      backward(tape) {
        const dx = T.zeros(xt.ctx, shape, 'split.dx');
        let c = 0;
        outs.forEach((o, i) => {
          if (o.grad) put_cols(o.grad, dx, c);
          c += widths[i];
        });
        tape.addGrad(x, tape.adopt(dx));
      },
    });
  }
  return outs;
}
