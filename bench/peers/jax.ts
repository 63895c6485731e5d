// jax-js (npm @jax-js/jax) on its WebGPU device, as a jax-js user writes it. Imported only after
// navigator.gpu exists (installNavigatorGpu); init('webgpu') then asks that GPU for the same adapter.
// Synchronised by jax.blockUntilReady(outputs): jax-js dispatches lazily; this submits the pending kernels
// and maps a staging buffer copied after them, so it resolves when they have run. (dataSync() fails in Node.)
// Arrays are reference-counted: every use consumes one reference, `.ref` adds one.
import type { Array as JaxArray } from '@jax-js/jax';
import { installNavigatorGpu, installedVersion, requirePackage, type LoraData, type Peer, type Workload } from './peer';

type Jax = typeof import('@jax-js/jax');
type Outs = JaxArray[];

export async function jaxPeer(gpu: GPU): Promise<Peer> {
  installNavigatorGpu(gpu);
  const jax = requirePackage('@jax-js/jax') as Jax;
  const got = await jax.init('webgpu');
  if (!got.includes('webgpu')) throw new Error(`jax-js init('webgpu') gave only [${got.join(', ')}]`);
  jax.defaultDevice('webgpu');
  const np = jax.numpy;
  const device = jax.getWebGPUDevice();
  const put = (data: Float32Array, shape: number[]) => np.array(data).reshape(shape);

  function workload(inputs: JaxArray[], run: () => Outs, dispose?: () => void): Workload<Outs> {
    return {
      run,
      wait: async (calls) => void (await jax.blockUntilReady(calls)),
      read: (outs) => Promise.all(outs.map(async (a) => Float32Array.from(await a.ref.data()))),
      release: (outs) => outs.forEach((a) => a.dispose()),
      free: () => {
        inputs.forEach((a) => a.dispose());
        dispose?.();
      },
    };
  }

  return {
    id: 'jax-js',
    name: `jax-js ${installedVersion('@jax-js/jax')}`,
    syncs: 'jax.blockUntilReady(outputs): submit the lazy kernels, map a staging buffer copied after them',
    idle: () => device.queue.onSubmittedWorkDone(),
    matmul(a, b, n) {
      const ja = put(a, [n, n]),
        jb = put(b, [n, n]);
      return workload([ja, jb], () => [np.matmul(ja.ref, jb.ref)]);
    },
    loraStep(L: LoraData, needDx: boolean) {
      const { N, d, r, scale: s } = L;
      const inputs = () => [
        put(L.x, [N, d]),
        put(L.w0, [d, d]),
        put(L.bias, [d]),
        put(L.A, [r, d]),
        put(L.B, [d, r]),
        put(L.dy, [N, d]),
      ];
      // y (N, d) = x·W0ᵀ + bias + s·(x·Aᵀ)·Bᵀ
      const forward = (x: JaxArray, w0: JaxArray, bias: JaxArray, A: JaxArray, B: JaxArray) =>
        np
          .matmul(x.ref, w0.transpose())
          .add(bias)
          .add(np.matmul(np.matmul(x, A.transpose()).mul(s), B.transpose()));
      // jax style: the forward's vjp with cotangent dy gives dA, dB (and dx), jitted into one program
      const autodiff = jax.jit((x: JaxArray, w0: JaxArray, bias: JaxArray, A: JaxArray, B: JaxArray, dy: JaxArray) => {
        if (needDx) {
          const [y, back] = jax.vjp(
            (x2: JaxArray, A2: JaxArray, B2: JaxArray) => forward(x2, w0, bias, A2, B2),
            [x, A, B],
          );
          const [dx, dA, dB] = back(dy);
          back.dispose();
          return [y, dA, dB, dx];
        }
        const [y, back] = jax.vjp((A2: JaxArray, B2: JaxArray) => forward(x, w0, bias, A2, B2), [A, B]);
        const [dA, dB] = back(dy);
        back.dispose();
        return [y, dA, dB];
      });
      // the same products written out (src/kernels/lora.ts's order, every intermediate rank r), jitted
      const explicit = jax.jit((x: JaxArray, w0: JaxArray, bias: JaxArray, A: JaxArray, B: JaxArray, dy: JaxArray) => {
        const us = np.matmul(x.ref, A.ref.transpose()).mul(s); // (N, r) s·u
        const y = np.matmul(x.ref, w0.ref.transpose()).add(bias).add(np.matmul(us.ref, B.ref.transpose()));
        const Gs = np.matmul(dy.ref, B).mul(s); // (N, r) s·dy·B
        const dB = np.matmul(dy.ref.transpose(), us); // (d, r)
        const dA = np.matmul(Gs.ref.transpose(), x); // (r, d)
        if (!needDx) {
          [Gs, dy, w0, A].forEach((a) => a.dispose());
          return [y, dA, dB];
        }
        const dx = np.matmul(dy, w0).add(np.matmul(Gs, A)); // (N, d)
        return [y, dA, dB, dx];
      });
      const make = (f: typeof autodiff) => {
        const ins = inputs();
        return workload(
          ins,
          () => f(...(ins.map((a) => a.ref) as Parameters<typeof f>)) as Outs,
          () => f.dispose(),
        );
      };
      return { 'jit(vjp)': make(autodiff), 'jit, explicit matmuls': make(explicit) };
    },
  };
}
