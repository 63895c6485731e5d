// LayerNorm over the last dimension (GPT-2), forward and backward for x. The weight and bias are frozen
// under LoRA, so there are no dw, db. Shaders: shaders/layernorm_{forward,backward}.wgsl. CPU twin:
// layernorm.cpu.ts.
import { grid1d } from '../gpu/context';
import { Tensor } from '../gpu/tensor';
import { rowsOf, rowWorkgroupSize } from './rmsnorm';
import { rowCost } from './cost';

function checkVec(what: string, name: string, t: Tensor, C: number): void {
  if (t.numel !== C || t.dtype !== 'f32')
    throw new Error(`${what}: ${name} must be (${C},) f32, got [${t.shape}] ${t.dtype}`);
}

/** x is (N, C) (any shape ending in C); w, b are (C,). y = (x - mean) / sqrt(var + eps) · w + b with the
 * biased variance, as torch.nn.LayerNorm. Returns y shaped like x, and mean, rstd (N,). */
export function layernorm_forward(
  x: Tensor,
  w: Tensor,
  b: Tensor,
  eps: number,
): { y: Tensor; mean: Tensor; rstd: Tensor } {
  const C = w.numel;
  const N = rowsOf('layernorm_forward', x, C);
  checkVec('layernorm_forward', 'w', w, C);
  checkVec('layernorm_forward', 'b', b, C);
  const ctx = x.ctx;
  const y = Tensor.empty(ctx, x.shape, 'layernorm.y');
  const mean = Tensor.empty(ctx, [N], 'layernorm.mean');
  const rstd = Tensor.empty(ctx, [N], 'layernorm.rstd');
  ctx.dispatch('layernorm_forward', {
    defines: { WG: rowWorkgroupSize(C) },
    bindings: [x.buf, w.buf, b.buf, y.buf, mean.buf, rstd.buf],
    u32: [N, C],
    f32: [eps],
    workgroups: grid1d(N, 1),
    cost: rowCost(N, C, rowWorkgroupSize(C), { flops: 7, reads: 1, writes: 1, vecReads: 2, rowWrites: 2 }),
  });
  return { y, mean, rstd };
}

/** dy, x are (N, C); w is (C,); mean, rstd are (N,) from the forward. Returns dx shaped like x. */
export function layernorm_backward(dy: Tensor, x: Tensor, w: Tensor, mean: Tensor, rstd: Tensor): Tensor {
  const C = w.numel;
  const N = rowsOf('layernorm_backward', x, C);
  checkVec('layernorm_backward', 'w', w, C);
  checkVec('layernorm_backward', 'mean', mean, N);
  checkVec('layernorm_backward', 'rstd', rstd, N);
  if (dy.numel !== x.numel) throw new Error(`layernorm_backward: dy [${dy.shape}] and x [${x.shape}] differ`);
  const ctx = x.ctx;
  const dx = Tensor.empty(ctx, x.shape, 'layernorm.dx');
  ctx.dispatch('layernorm_backward', {
    defines: { WG: rowWorkgroupSize(C) },
    bindings: [dy.buf, x.buf, w.buf, mean.buf, rstd.buf, dx.buf],
    u32: [N, C],
    workgroups: grid1d(N, 1),
    cost: rowCost(N, C, rowWorkgroupSize(C), { flops: 10, reads: 2, writes: 1, vecReads: 1, rowReads: 2 }),
  });
  return dx;
}
