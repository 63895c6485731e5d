// LoRA weight gradients split over tokens, deterministic (no atomics; a run is bit-identical to itself):
//   dB (OUT, r) = scale · dyᵀ · u        y = dy (N, OUT), z = u (N, r), layout 'pj': element (p, j) at p·r + j
//   dA (r, IN)  = scale · Gᵀ · drop(x)   y = x (N, IN) masked, z = G (N, r), layout 'jp': element (p, j) at j·IN + p
// i.e. out(p, j) [+]= scale · Σ_n drop(y)[n, p] · z[n, j]. Stage 1 (shaders/lora_grad.wgsl) sums chunks of CH
// token rows into a scratch (chunks, P·r); stage 2 (shaders/lora_grad_sum.wgsl) adds the chunks in order,
// scales, and stores into (or, with accumulate, adds into) the gradient buffer. One chunk (N ≤ CH): stage 1
// writes the gradient itself. CPU twin: lora_grad.cpu.ts.
import { grid1d, type DispatchCost } from '../gpu/context';
import { Tensor } from '../gpu/tensor';

export interface GradOpts {
  scale: number;
  layout: 'pj' | 'jp' /* out is (P, r) ('pj', dB) or (r, P) ('jp', dA) */;
  accumulate: boolean /* out += (gradients summed over micro-batches), else out = */;
  dropout?: number /* p of the mask on y, from lib_rng's (seed, n·P + p) */;
  seed?: number;
}

/** Token rows per chunk, and a WP x JW workgroup (thread: 4 columns of P x 4·JT of r). JT = 2 where r > 4:
 * measured on lavapipe (N = 4096, 576 x 8, busy 2-core machine), 4 x 4 per thread was 1.5-1.7x slower than
 * the 8 x 4 register blocking of the matmul it replaces; 4 x 8 loads and hashes as little per multiply-add. */
export interface GradTile {
  CH: number;
  chunks: number;
  WP: number;
  JW: number;
  JT: number;
}
const MIN_WORKGROUPS = 264; // 2 x 132 units: the shape report's floor for a dispatch above 10 MFLOP

export function gradTile(N: number, P: number, r: number): GradTile {
  const pow2 = (v: number) => 2 ** Math.ceil(Math.log2(Math.max(1, v)));
  const CH = N > 16384 ? 256 : 128; // stage 2 then loops over at most ceil(N / CH) ≤ 2048 chunks up to N = 512k
  const chunks = Math.ceil(N / CH);
  const JT = r > 4 ? 2 : 1;
  const JW = Math.ceil(r / (4 * JT));
  let WP = Math.min(2 ** Math.floor(Math.log2(256 / JW)), pow2(Math.ceil(P / 4)));
  // narrower workgroups until the grid is wide enough: 16 threads at r = 8, P = 576; 4 where P is small (192)
  while (WP * JW > 4 && WP > 1 && Math.ceil(P / (4 * WP)) * chunks < MIN_WORKGROUPS) WP /= 2;
  return { CH, chunks, WP, JW, JT };
}

/** y is (N, P), z is (N, r), f32; out is the (P, r) or (r, P) gradient (see GradOpts.layout). */
export function lora_grad_accumulate(y: Tensor, z: Tensor, out: Tensor, o: GradOpts): void {
  const ctx = y.ctx;
  if (y.shape.length !== 2 || z.shape.length !== 2) throw new Error('lora_grad: y and z must be 2-D');
  const [N, P] = y.shape;
  const r = z.shape[1];
  if (z.shape[0] !== N) throw new Error(`lora_grad: y is [${y.shape}] but z is [${z.shape}]`);
  if (r < 1 || r > 64) throw new Error(`lora_grad: rank ${r} is outside 1..64`);
  const outShape = o.layout === 'pj' ? [P, r] : [r, P];
  if (out.shape.length !== 2 || out.shape[0] !== outShape[0] || out.shape[1] !== outShape[1])
    throw new Error(`lora_grad: out must be [${outShape}], got [${out.shape}]`);
  const p = o.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw new Error(`lora_grad: dropout must be in [0, 1), got ${p}`);
  const t = gradTile(N, P, r);
  const E = P * r;
  const direct = t.chunks === 1;
  const part = direct ? null : Tensor.empty(ctx, [t.chunks, E], 'lora.grad.partials');
  const cost1: DispatchCost = {
    flops: 2 * N * P * r,
    bytesRead: 4 * (N * P + N * r + (direct && o.accumulate ? E : 0)),
    bytesWritten: 4 * t.chunks * E,
    serialLoop: Math.min(N, t.CH),
  };
  ctx.dispatch('lora_grad', {
    defines: {
      WP: t.WP,
      JW: t.JW,
      JT: t.JT,
      OUT_PJ: o.layout === 'pj',
      MASK: p > 0,
      DIRECT: direct,
      ACCUM: direct && o.accumulate,
    },
    bindings: [y.binding, z.binding, (part ?? out).binding],
    u32: [N, P, r, t.CH, (o.seed ?? 0) >>> 0],
    f32: [p, o.scale],
    workgroups: [Math.ceil(P / (4 * t.WP)), t.chunks],
    cost: cost1,
  });
  if (!part) return;
  const cost2: DispatchCost = {
    flops: E * (t.chunks + 1),
    bytesRead: 4 * (t.chunks * E + (o.accumulate ? E : 0)),
    bytesWritten: 4 * E,
    serialLoop: t.chunks,
  };
  ctx.dispatch('lora_grad_sum', {
    defines: { ACCUM: o.accumulate },
    bindings: [part.binding, out.binding],
    u32: [E, t.chunks],
    f32: [o.scale],
    workgroups: grid1d(E, 256),
    cost: cost2,
  });
  part.free(); // freed after recording: the allocator reuses it only for later-recorded work
}
