// The last step of the chunked LM head's gradient: dx, the running Σ p·W that head_lse_grad and the chunk
// matmuls left, divided by l and less the target's table row, times gradScale.
// Shader: shaders/head_dx.wgsl. CPU twin: head_dx.cpu.ts. Used by src/models/head.ts.
import { grid1d } from '../gpu/context';
import type { Tensor } from '../gpu/tensor';

/**
 * dx is (N, C) f32, updated in place: dx[n] = gradScale·(dx[n] / l[n] − softcap'(z_t[n])·wt[n]), zero rows for
 * IGNORE_INDEX targets; targets is (N,) u32; stats is (N, 3) f32 = (m, l, z_t) after the last chunk; wt is (N, C)
 * f32 (or longer), the target rows of the table (zero for a target in no row).
 */
export function head_dx_finish(
  dx: Tensor,
  targets: Tensor,
  stats: Tensor,
  wt: Tensor,
  opts: { gradScale: number; softcap: number },
): void {
  if (dx.shape.length !== 2 || dx.dtype !== 'f32')
    throw new Error(`head_dx: dx must be (N, C) f32, got [${dx.shape}] ${dx.dtype}`);
  const [N, C] = dx.shape;
  if (targets.dtype !== 'u32' || targets.numel !== N)
    throw new Error(`head_dx: targets must be (${N},) u32, got [${targets.shape}] ${targets.dtype}`);
  if (stats.numel !== 3 * N) throw new Error(`head_dx: stats must be (${N}, 3), got [${stats.shape}]`);
  if (wt.dtype !== 'f32' || wt.numel < N * C)
    throw new Error(`head_dx: wt must hold (${N}, ${C}) f32, got [${wt.shape}] ${wt.dtype}`);
  if (!Number.isFinite(opts.gradScale)) throw new Error(`head_dx: gradScale ${opts.gradScale} is not finite`);
  if (!(opts.softcap >= 0)) throw new Error(`head_dx: softcap ${opts.softcap} must be >= 0`);
  dx.ctx.dispatch('head_dx', {
    bindings: [dx.buf, targets.buf, stats.buf, wt.buf],
    u32: [N, C],
    f32: [opts.gradScale, opts.softcap],
    workgroups: grid1d(N * C, 256),
    cost: {
      flops: N * C * 4 + N * 4, // divide, product, subtract, product; softcap' per row
      bytesRead: N * C * 8 + N * 4 + N * 12,
      bytesWritten: N * C * 4,
      serialLoop: 1,
    },
  });
}
