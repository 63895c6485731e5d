// Autograd-lite: a tape that records the kernels of one Transformer block (micrograd-style: each op
// knows its own backward) and owns the lifetime of every intermediate GPU tensor.
//
// Lifetimes are reference counts over the tensors the tape owns. An op's output starts with one
// reference (its forward value); each op that saves a tensor for its backward adds one.
// `endForward()` drops the forward references of everything but the outputs the caller keeps, so only
// what backward needs stays on the GPU. `backward()` walks the ops in reverse: each op turns its
// outputs' gradients into its inputs' gradients; then its saved tensors and its outputs' gradients are
// released. When backward ends the tape must own nothing: a leak is an error, not a slow drift.
//
// Leaves (block inputs, frozen weights, LoRA parameters) are not owned: the tape never frees them.
// Gradients exist only for activations and LoRA parameters (Vars made with `param()`, whose gradient
// is summed into a persistent tensor so micro-batches add up).

import type { Tensor } from '../gpu/tensor';
import { add_forward } from '../kernels/add';
import { axpy_inplace } from '../kernels/axpy';

export class Var {
  grad: Tensor | null = null;
  constructor(
    public value: Tensor | null,
    readonly name: string,
    readonly requiresGrad: boolean,
    /** For a trainable parameter: the persistent tensor its gradient is summed into. */
    readonly gradAccum: Tensor | null = null,
  ) {}

  get t(): Tensor {
    if (!this.value) throw new Error(`Var '${this.name}': its value was already released`);
    return this.value;
  }
}

export interface Op {
  readonly name: string;
  readonly outputs: Var[];
  /** Tensors kept for backward (owned ones are retained by `record`). */
  readonly saved: Tensor[];
  /** Reads the outputs' grads (null where none arrived) and passes input grads to tape.addGrad. */
  backward(tape: Tape): void;
}

export class Tape {
  private ops: Op[] = [];
  private refs = new Map<Tensor, number>();
  private vars: Var[] = [];

  /** grad = false for inference and for checkpointed forwards: ops record nothing. */
  constructor(readonly grad = true) {}

  // ---- variables ----------------------------------------------------------------------------

  /** A tensor made outside the tape (a block input): never freed by the tape. */
  leaf(value: Tensor, name: string, requiresGrad = false): Var {
    return new Var(value, name, requiresGrad && this.grad);
  }

  /** A trainable parameter; its gradient is added into `gradAccum`. */
  param(value: Tensor, gradAccum: Tensor, name: string): Var {
    return new Var(value, name, this.grad, gradAccum);
  }

  /** A fresh tensor produced by an op; the tape owns it. */
  output(value: Tensor, name: string, requiresGrad: boolean): Var {
    this.adopt(value);
    const v = new Var(value, name, requiresGrad && this.grad);
    this.vars.push(v);
    return v;
  }

  /** Whether an op on these inputs must record itself for backward. */
  needsGrad(...inputs: Var[]): boolean {
    return this.grad && inputs.some((v) => v.requiresGrad);
  }

  /** Records an op that already ran (eager, like micrograd), keeping its saved tensors alive. */
  record(op: Op): void {
    if (!this.grad) throw new Error(`internal: op '${op.name}' recorded on a no-grad tape`);
    for (const t of op.saved) this.retain(t);
    this.ops.push(op);
  }

  // ---- ownership ----------------------------------------------------------------------------

  adopt(t: Tensor): Tensor {
    if (this.refs.has(t)) throw new Error('internal: tensor adopted twice');
    this.refs.set(t, 1);
    return t;
  }

  retain(t: Tensor): void {
    const n = this.refs.get(t);
    if (n !== undefined) this.refs.set(t, n + 1);
  }

  release(t: Tensor): void {
    const n = this.refs.get(t);
    if (n === undefined) return;
    if (n > 1) this.refs.set(t, n - 1);
    else {
      this.refs.delete(t);
      t.free();
    }
  }

  /**
   * Ends a forward pass: the values of `keep` are handed to the caller (who frees them, and keeps them
   * alive until this tape's backward is done); every other Var's forward reference is dropped.
   */
  endForward(keep: Var[]): Tensor[] {
    const kept = keep.map((v) => {
      const t = v.t;
      this.refs.delete(t);
      return t;
    });
    for (const v of this.vars) {
      if (!keep.includes(v) && v.value) {
        this.release(v.value);
        v.value = null;
      }
    }
    this.vars = [];
    return kept;
  }

  /** Number of tensors the tape still owns (for tests). */
  get ownedCount(): number {
    return this.refs.size;
  }

  // ---- gradients ----------------------------------------------------------------------------

  /** Adds gradient `g` (tape-owned: from `adopt`, or a shared one after `retain`) to `v`. */
  addGrad(v: Var, g: Tensor): void {
    if (!v.requiresGrad) return this.release(g);
    if (v.gradAccum) {
      axpy_inplace(v.gradAccum, g);
      return this.release(g);
    }
    if (!v.grad) {
      v.grad = g;
      return;
    }
    const sum = this.adopt(add_forward(v.grad, g));
    this.release(v.grad);
    this.release(g);
    v.grad = sum;
  }

  /**
   * The gradient of `v` that an op may add its contribution into in place, instead of handing a new tensor to
   * addGrad (which would cost an add kernel): v's gradient so far when the tape owns it alone; null when v
   * needs no gradient, is a parameter, has none yet, or shares it (then the op calls addGrad).
   */
  gradSink(v: Var): Tensor | null {
    if (!v.requiresGrad || v.gradAccum || !v.grad) return null;
    return this.refs.get(v.grad) === 1 ? v.grad : null;
  }

  /**
   * Backward from `out` with upstream gradient `dOut` (the tape takes it). Returns the gradient of each
   * Var in `wrt`, owned by the caller (null where none arrived). Everything else the tape held is freed.
   */
  backward(out: Var, dOut: Tensor, wrt: Var[]): (Tensor | null)[] {
    out.grad = this.adopt(dOut);
    for (let i = this.ops.length - 1; i >= 0; i--) {
      const op = this.ops[i];
      if (op.outputs.some((o) => o.grad)) op.backward(this);
      for (const t of op.saved) this.release(t);
      for (const o of op.outputs) {
        if (o.grad && !wrt.includes(o)) {
          this.release(o.grad);
          o.grad = null;
        }
      }
    }
    this.ops = [];
    const grads = wrt.map((v) => {
      const g = v.grad;
      v.grad = null;
      if (g) {
        if (this.refs.get(g) !== 1) throw new Error(`internal: gradient of '${v.name}' is still shared`);
        this.refs.delete(g);
      }
      return g;
    });
    if (this.refs.size) throw new Error(`internal: the tape still owns ${this.refs.size} tensor(s) after backward`);
    return grads;
  }
}
