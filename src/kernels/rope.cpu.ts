// CPU twin of shaders/rope.wgsl in float64. x is (N, H, D), row n at position posOffset + n % seqLen.
// angles 'f64':    angle = pos · inv_freq[i], inv_freq = theta^(-2i/D) scaled by rope_scaling (linear /
//                  llama3, see rope.ts), all in float64 (the exact maths).
// angles 'hf-f32': angle = f32(pos · inv_freq_f32[i]), rounded exactly as Hugging Face (and the kernel)
//                  computes it, then sin/cos and the rotation in float64: isolates the kernel's sin/cos.
import { rope_inv_freq, type RopeOpts, type RopeScaling } from './rope';

/** The inverse frequencies in float64: theta^(-2i/D), then rope_scaling's formula without rounding. */
export function rope_inv_freq_f64(headDim: number, theta: number, scaling: RopeScaling | null = null): Float64Array {
  const inv = Float64Array.from({ length: headDim / 2 }, (_, i) => Math.pow(theta, (-2 * i) / headDim));
  if (!scaling) return inv;
  if (scaling.type === 'linear') return inv.map((x) => x / scaling.factor);
  const { factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: old } = scaling;
  return inv.map((x) => {
    const wavelen = (2 * Math.PI) / x;
    if (wavelen < old / high) return x;
    if (wavelen > old / low) return x / factor;
    const s = (old / wavelen - low) / (high - low);
    return ((1 - s) * x) / factor + s * x;
  });
}

export type RopeAngles = 'f64' | 'hf-f32';

function rotate_cpu(x: ArrayLike<number>, o: RopeOpts, sign: number, angles: RopeAngles): Float64Array {
  const { heads: H, headDim: D, seqLen: T } = o;
  const off = o.posOffset ?? 0;
  const half = D / 2;
  const N = x.length / (H * D);
  const freq = angles === 'f64' ? rope_inv_freq_f64(D, o.theta, o.scaling) : rope_inv_freq(D, o.theta, o.scaling);
  const out = new Float64Array(x.length);
  for (let n = 0; n < N; n++) {
    const pos = off + (n % T);
    for (let i = 0; i < half; i++) {
      const a = angles === 'f64' ? pos * freq[i] : Math.fround(pos * freq[i]);
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
