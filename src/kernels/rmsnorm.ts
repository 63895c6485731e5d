// RMSNorm over the last dimension (Llama, Qwen2), forward and backward for x. The weight is frozen under
// LoRA, so there is no dw. Shaders: shaders/rmsnorm_{forward,backward}.wgsl. CPU twin: rmsnorm.cpu.ts.
import { grid1d } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { rowCost } from './cost';

/** Invocations per row for a row reduction over C values: 32 (a warp per row, as llm.c does) while each
 * sums at most 64 values, doubling for longer rows up to 256 (SwiftShader's limit). A power of two (tree).
 * Measured with N = 1024, C = 576 and 2048 (ms per rmsnorm forward / layernorm backward): 32 beat 64, 128
 * and 256 on lavapipe (8-31 vs 18-109) and by 6-24x on SwiftShader (34-253 vs 940-2370), where each of the
 * log2(WG) barrier rounds switches every fiber of the workgroup. */
export function rowWorkgroupSize(C: number): number {
  let wg = 32;
  while (wg < 256 && wg * 64 < C) wg *= 2;
  return wg;
}

/** Rows and columns of x viewed as (N, C), C being the last dimension and the length of the weight. */
export function rowsOf(what: string, x: Tensor, C: number): number {
  const N = x.numel / C;
  if (!Number.isInteger(C) || C < 1 || !Number.isInteger(N) || N < 1 || x.shape[x.shape.length - 1] !== C) {
    throw new Error(`${what}: x [${x.shape}] does not end in C = ${C} (the length of the weight)`);
  }
  if (x.dtype !== 'f32') throw new Error(`${what}: x must be f32, got ${x.dtype}`);
  return N;
}

function checkVec(what: string, name: string, t: Tensor, C: number): void {
  if (t.numel !== C || t.dtype !== 'f32')
    throw new Error(`${what}: ${name} must be (${C},) f32, got [${t.shape}] ${t.dtype}`);
}

/** x is (N, C) (any shape ending in C), w is (C,). y = x / sqrt(mean(x²) + eps) · w, computed in f32 like
 * Hugging Face LlamaRMSNorm. Returns y shaped like x and rstd (N,) = 1 / sqrt(mean(x²) + eps). With `residual`
 * (shaped like x): y = residual + the norm, added as y is stored (a residual connection after a norm). */
export function rmsnorm_forward(x: Tensor, w: Tensor, eps: number, residual?: Tensor): { y: Tensor; rstd: Tensor } {
  const C = w.numel;
  const N = rowsOf('rmsnorm_forward', x, C);
  checkVec('rmsnorm_forward', 'w', w, C);
  if (residual && (residual.numel !== x.numel || residual.dtype !== 'f32'))
    throw new Error(`rmsnorm_forward: residual [${residual.shape}] and x [${x.shape}] differ`);
  const ctx = x.ctx;
  const y = Tensor.empty(ctx, x.shape, 'rmsnorm.y');
  const rstd = Tensor.empty(ctx, [N], 'rmsnorm.rstd');
  ctx.dispatch('rmsnorm_forward', {
    defines: { WG: rowWorkgroupSize(C), RESID: !!residual },
    bindings: [x.binding, w.binding, y.binding, rstd.binding, (residual ?? x).binding], // without one, x stands in unread
    u32: [N, C],
    f32: [eps],
    workgroups: grid1d(N, 1),
    cost: rowCost(N, C, rowWorkgroupSize(C), {
      flops: residual ? 5 : 4,
      reads: residual ? 2 : 1,
      writes: 1,
      vecReads: 1,
      rowWrites: 1,
    }),
  });
  return { y, rstd };
}

/** dy, x are (N, C); w is (C,); rstd is (N,) from the forward. Returns dx shaped like x, or, given `into` (shaped
 * like x), adds dx into it and returns it. */
export function rmsnorm_backward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, into?: Tensor): Tensor {
  const C = w.numel;
  const N = rowsOf('rmsnorm_backward', x, C);
  checkVec('rmsnorm_backward', 'w', w, C);
  checkVec('rmsnorm_backward', 'rstd', rstd, N);
  if (dy.numel !== x.numel) throw new Error(`rmsnorm_backward: dy [${dy.shape}] and x [${x.shape}] differ`);
  const ctx = x.ctx;
  if (into && into.numel !== x.numel)
    throw new Error(`rmsnorm_backward: into [${into.shape}] and x [${x.shape}] differ`);
  const dx = into ?? Tensor.empty(ctx, x.shape, 'rmsnorm.dx');
  ctx.dispatch('rmsnorm_backward', {
    defines: { WG: rowWorkgroupSize(C), ACCUM: !!into },
    bindings: [dy.binding, x.binding, w.binding, rstd.binding, dx.binding],
    u32: [N, C],
    workgroups: grid1d(N, 1),
    cost: rowCost(N, C, rowWorkgroupSize(C), {
      flops: into ? 8 : 7,
      reads: into ? 3 : 2,
      writes: 1,
      vecReads: 1,
      rowReads: 1,
    }),
  });
  return dx;
}
