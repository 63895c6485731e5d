// The studio page: model & data, training, gallery. The page only arranges controls and shows what the
// engine reports; all work (files, tokenizing, GPU) happens in the engine's Web Worker, so the main
// thread stays free. See dom.ts for why there is no UI framework.

import './style.css';
import { EngineClient } from '../worker/client';
import type { Fault } from '../worker/protocol';
import { Banner } from './banner';
import { datasetPanel } from './dataset-panel';
import { errorText, h, setChildren } from './dom';
import { galleryArea } from './gallery-panel';
import { modelPanel } from './model-panel';
import { Studio } from './state';
import { trainPanel } from './train-panel';

const NO_WEBGPU_ADVICE =
  'Use a browser with WebGPU: Chrome or Edge 113 or newer on a machine with a supported GPU, or Firefox/Safari versions that enable it. ' +
  'Check chrome://gpu if you expected it to work. Training, the gallery and Try need WebGPU; the rest of this page still works.';

function main(): void {
  const app = document.getElementById('app')!;
  const banner = new Banner();
  const engineLine = h('p', { class: 'engine-line', role: 'status', text: 'Starting the engine…' });

  let client: EngineClient;
  try {
    client = EngineClient.start();
  } catch (e) {
    banner.show(
      'The engine could not start.',
      errorText(e),
      'Reload the page; if it keeps happening, use a recent Chrome or Edge.',
    );
    setChildren(app, banner.el);
    return;
  }
  const studio = new Studio(client);
  client.on((e) => {
    if (e.type === 'fatal')
      banner.show(
        'The engine stopped.',
        e.message,
        'Reload the page to start again. Adapters in the gallery and saved checkpoints are kept.',
      );
    if (e.type === 'deviceLost')
      banner.show(
        'The GPU stopped working.',
        e.message,
        'Adapters in the gallery and the last checkpoint are kept. Resume the run from its checkpoint (area 2): a new GPU device is made for it, and the run continues exactly where the checkpoint was.',
      );
  });
  // Tests open the page with ?test-hooks: the engine then accepts injected faults (src/worker/protocol.ts).
  const testHooks = new URLSearchParams(location.search).has('test-hooks');
  if (testHooks)
    Object.assign(window, { webloraTest: { fault: (fault: Fault) => client.request({ type: 'injectFault', fault }) } });

  setChildren(
    app,
    h(
      'header',
      { class: 'top' },
      h('h1', { text: 'WebLoRA studio' }),
      h('p', {
        class: 'tagline',
        text: 'Fine-tune a language model with LoRA in your browser, on your GPU. Nothing leaves this machine.',
      }),
      engineLine,
    ),
    banner.el,
    h(
      'main',
      {},
      h(
        'section',
        { class: 'area', id: 'data', 'aria-labelledby': 'data-h' },
        h('h2', { id: 'data-h', text: '1. Model & data' }),
        h('div', { class: 'columns' }, modelPanel(studio), datasetPanel(studio)),
      ),
      trainPanel(studio),
      galleryArea(studio),
    ),
  );

  void (async () => {
    try {
      studio.engine = await client.request({ type: 'init', testHooks });
      const e = studio.engine;
      engineLine.textContent = `GPU: ${e.adapterName || 'unknown adapter'} · f16 ${e.hasF16 ? 'available' : 'not available'} · largest buffer binding ${Math.round(e.maxBindingBytes / 1048576)} MB`;
    } catch (err) {
      const msg = errorText(err);
      engineLine.textContent = 'GPU: not available';
      const noGpu = /webgpu|navigator\.gpu|adapter/i.test(msg);
      banner.show(
        noGpu ? 'WebGPU is not available, so nothing can be trained here.' : 'The engine failed to start.',
        msg,
        noGpu ? NO_WEBGPU_ADVICE : 'Reload the page; if it keeps happening, report the message above.',
      );
    }
    studio.emit('engine');
  })();
}

main();
