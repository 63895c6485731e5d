// TensorFlow.js (npm @tensorflow/tfjs-core + @tensorflow/tfjs-backend-webgpu) on its WebGPU backend. The
// backend is imported only after navigator.gpu exists (installNavigatorGpu), then tf.setBackend('webgpu').
// Synchronised like ours: the backend's open command encoder is ended and submitted (it batches up to 15
// dispatches before submitting on its own), then device.queue.onSubmittedWorkDone().
// The LoRA step is written as explicit matmuls: tf.grad needs the gradient registrations that only the
// @tensorflow/tfjs bundle carries (tfjs-core's Node build has none), and tf.matMul's transpose flags and
// tf.fused.matMul's bias are what a tfjs user tuning for speed writes anyway.
import type * as TF from '@tensorflow/tfjs-core';
import { installNavigatorGpu, installedVersion, requirePackage, type LoraData, type Peer, type Workload } from './peer';

type Tf = typeof TF;
type Outs = TF.Tensor[];

/** The parts of tfjs-backend-webgpu's WebGPUBackend used here (public methods, not in tfjs-core's types). */
interface WebGpuBackend {
  device: GPUDevice;
  commandEncoder: GPUCommandEncoder | null;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

export async function tfjsPeer(gpu: GPU): Promise<Peer> {
  installNavigatorGpu(gpu);
  const tf = requirePackage('@tensorflow/tfjs-core') as Tf;
  requirePackage('@tensorflow/tfjs-backend-webgpu'); // registers the 'webgpu' backend if navigator.gpu exists
  if (!(await tf.setBackend('webgpu'))) throw new Error("tf.setBackend('webgpu') returned false");
  await tf.ready();
  const be = tf.backend() as unknown as WebGpuBackend;
  const flush = () => {
    if (!be.commandEncoder) return;
    be.endComputePassEncoder();
    be.submitQueue();
  };
  const finished = async () => {
    flush();
    await be.device.queue.onSubmittedWorkDone();
  };

  function workload(inputs: TF.Tensor[], run: () => Outs): Workload<Outs> {
    return {
      run,
      wait: finished,
      read: (outs) => Promise.all(outs.map(async (t) => Float32Array.from(await t.data()))),
      release: (outs) => outs.forEach((t) => t.dispose()),
      free: () => inputs.forEach((t) => t.dispose()),
    };
  }

  return {
    id: 'tfjs',
    name: `tfjs ${installedVersion('@tensorflow/tfjs-core')} webgpu`,
    syncs: "end + submit the backend's open command encoder, await queue.onSubmittedWorkDone()",
    idle: finished,
    matmul(a, b, n) {
      const ta = tf.tensor2d(a, [n, n]),
        tb = tf.tensor2d(b, [n, n]);
      return workload([ta, tb], () => [tf.matMul(ta, tb)]);
    },
    loraStep(L: LoraData, needDx: boolean) {
      const { N, d, r, scale: s } = L;
      const x = tf.tensor2d(L.x, [N, d]),
        w0 = tf.tensor2d(L.w0, [d, d]),
        bias = tf.tensor1d(L.bias);
      const A = tf.tensor2d(L.A, [r, d]),
        B = tf.tensor2d(L.B, [d, r]),
        dy = tf.tensor2d(L.dy, [N, d]);
      const step = () =>
        tf.tidy(() => {
          const us = tf.mul(tf.matMul(x, A, false, true), s); // (N, r) s·x·Aᵀ
          const y = tf.add(tf.fused.matMul({ a: x, b: w0, transposeB: true, bias }), tf.matMul(us, B, false, true)); // (N, d)
          const Gs = tf.mul(tf.matMul(dy, B), s); // (N, r) s·dy·B
          const dB = tf.matMul(dy, us, true, false); // (d, r)
          const dA = tf.matMul(Gs, x, true, false); // (r, d)
          if (!needDx) return [y, dA, dB];
          const dx = tf.add(tf.matMul(dy, w0), tf.matMul(Gs, A)); // (N, d)
          return [y, dA, dB, dx];
        });
      return { 'explicit matmuls': workload([x, w0, bias, A, B, dy], step) };
    },
  };
}
