// CPU twin of shaders/rope.wgsl in float64. x is (N, H, D), row n at position posOffset + n % seqLen.
// angles 'f64':    angle = pos · theta^(-2i/D), all in float64 (the exact maths).
// angles 'hf-f32': angle = f32(pos · inv_freq_f32[i]), rounded exactly as Hugging Face (and the kernel)
//                  computes it, then sin/cos and the rotation in float64: isolates the kernel's sin/cos.
import { rope_inv_freq, type RopeOpts } from './rope';

export type RopeAngles = 'f64' | 'hf-f32';

function rotate_cpu(x: ArrayLike<number>, o: RopeOpts, sign: number, angles: RopeAngles): Float64Array {
  const { heads: H, headDim: D, seqLen: T } = o;
  const off = o.posOffset ?? 0;
  const half = D / 2;
  const N = x.length / (H * D);
  const f32Freq = rope_inv_freq(D, o.theta);
  const out = new Float64Array(x.length);
  for (let n = 0; n < N; n++) {
    const pos = off + (n % T);
    for (let i = 0; i < half; i++) {
      const a = angles === 'f64' ? pos * Math.pow(o.theta, (-2 * i) / D) : Math.fround(pos * f32Freq[i]);
      const c = Math.cos(a),
        s = sign * Math.sin(a);
      for (let h = 0; h < H; h++) {
        const at = (n * H + h) * D + i;
        const x1 = x[at],
          x2 = x[at + half];
        out[at] = x1 * c - x2 * s;
        out[at + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

export function rope_forward_cpu(x: ArrayLike<number>, o: RopeOpts, angles: RopeAngles = 'f64'): Float64Array {
  return rotate_cpu(x, o, 1, angles);
}

/** The inverse rotation: the transpose of the forward, which is linear in x. */
export function rope_backward_cpu(dy: ArrayLike<number>, o: RopeOpts, angles: RopeAngles = 'f64'): Float64Array {
  return rotate_cpu(dy, o, -1, angles);
}
