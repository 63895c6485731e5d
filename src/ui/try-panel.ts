// The Try panel: the same prompt, seed and sampling through the base model and through a gallery
// adapter, side by side, so the adapter's effect is visible.

import { StatusLine, errorText, h, newId, setChildren } from './dom';
import type { Studio } from './state';

export function tryPanel(studio: Studio): HTMLElement {
  const st = new StatusLine();
  const ids = {
    adapter: newId('try-adapter'),
    prompt: newId('try-prompt'),
    seed: newId('try-seed'),
    max: newId('try-max'),
    temp: newId('try-temp'),
    strength: newId('try-strength'),
  };
  const adapterSelect = h('select', { id: ids.adapter });
  const prompt = h('textarea', { id: ids.prompt, rows: 3 });
  prompt.value = 'Once upon a time';
  const seed = h('input', { id: ids.seed, type: 'number', min: 0, step: 1, value: 1 });
  const maxTokens = h('input', { id: ids.max, type: 'number', min: 1, max: 512, step: 1, value: 40 });
  const temperature = h('input', { id: ids.temp, type: 'number', min: 0, max: 2, step: 0.05, value: 0.7 });
  const strength = h('input', { id: ids.strength, type: 'range', min: 0, max: 2, step: 0.05, value: 1 });
  const strengthOut = h('output', { for: ids.strength, text: '1.00' });
  strength.addEventListener('input', () => (strengthOut.textContent = Number(strength.value).toFixed(2)));
  const mergedId = newId('try-merged');
  const merged = h('input', { id: mergedId, type: 'checkbox' });
  const go = h('button', { type: 'button', class: 'primary', text: 'Generate with and without the adapter' });

  const baseOut = h('p', { class: 'continuation', 'aria-live': 'polite' });
  const loraOut = h('p', { class: 'continuation', 'aria-live': 'polite' });
  const loraTitle = h('figcaption', { text: 'With the adapter' });
  const results = h(
    'div',
    { class: 'side-by-side' },
    h('figure', { 'aria-label': 'Base model output' }, h('figcaption', { text: 'Base model' }), baseOut),
    h('figure', { 'aria-label': 'Adapter output' }, loraTitle, loraOut),
  );

  function fillAdapters(): void {
    const keep = adapterSelect.value;
    const list = studio.gallery;
    setChildren(
      adapterSelect,
      ...list.map((a) => h('option', { value: a.id, text: `${a.name}${a.builtin ? ' (built-in)' : ''}` })),
    );
    if (!list.length) setChildren(adapterSelect, h('option', { value: '', text: 'No adapters in the gallery yet' }));
    if (list.some((a) => a.id === keep)) adapterSelect.value = keep;
    update();
  }

  let running = false;
  function update(): void {
    go.disabled =
      running || !studio.model || studio.modelLoading || !adapterSelect.value || studio.trainState !== 'idle';
  }

  go.addEventListener('click', async () => {
    const s = Number(seed.value);
    const n = Number(maxTokens.value);
    const t = Number(temperature.value);
    if (!prompt.value.trim()) return st.set('Write a prompt first.', 'error');
    if (!Number.isInteger(s) || s < 0) return st.set('The seed must be a whole number, 0 or more.', 'error');
    if (!Number.isInteger(n) || n < 1 || n > 512)
      return st.set('Max tokens must be a whole number from 1 to 512.', 'error');
    if (!Number.isFinite(t) || t < 0 || t > 2)
      return st.set('Temperature must be from 0 to 2 (0 picks the likeliest token).', 'error');
    const id = adapterSelect.value;
    const name = adapterSelect.selectedOptions[0]?.textContent ?? id;
    const k = Number(strength.value);
    running = true;
    update();
    baseOut.textContent = loraOut.textContent = '';
    loraTitle.textContent = `With ${name} (strength ${k.toFixed(2)})`;
    const common = { prompt: prompt.value, seed: s, maxTokens: n, temperature: t };
    try {
      st.set('Generating with the base model…', 'busy');
      const base = await studio.client.request({ type: 'generate', ...common, adapterId: null, strength: 0 });
      baseOut.textContent = base.text;
      st.set('Generating with the adapter…', 'busy');
      const lora = await studio.client.request({
        type: 'generate',
        ...common,
        adapterId: id,
        strength: k,
        merged: merged.checked,
      });
      loraOut.textContent = lora.text;
      st.set(
        base.text === lora.text ? 'Both continuations are the same: try a higher strength or another seed.' : 'Done.',
        'ok',
      );
    } catch (e) {
      st.set(`Could not generate: ${errorText(e)}`, 'error');
    } finally {
      running = false;
      update();
    }
  });

  studio.on('gallery', fillAdapters);
  studio.on('model', update);
  studio.on('train', update);
  fillAdapters();

  const field = (id: string, label: string, input: HTMLElement, help?: string) =>
    h('div', { class: 'field' }, h('label', { for: id, text: label }), input, help ? h('small', { text: help }) : null);
  return h(
    'div',
    { class: 'panel', id: 'try', role: 'region', 'aria-labelledby': 'try-h' },
    h('h3', { id: 'try-h', text: 'Try an adapter' }),
    h(
      'div',
      { class: 'try-grid' },
      field(ids.adapter, 'Adapter', adapterSelect),
      field(ids.prompt, 'Prompt', prompt),
      field(ids.seed, 'Seed', seed, 'Same seed, same sampling for both.'),
      field(ids.max, 'Max tokens', maxTokens),
      field(ids.temp, 'Temperature', temperature, '0 always picks the likeliest token.'),
      h(
        'div',
        { class: 'field' },
        h('label', { for: ids.strength, text: 'Adapter strength' }),
        h('span', { class: 'range-row' }, strength, strengthOut),
        h('small', { text: '0 is the base model, 1 the adapter as trained, 2 doubles it.' }),
      ),
      h(
        'div',
        { class: 'field' },
        h('span', { class: 'check-row' }, merged, h('label', { for: mergedId, text: 'Merge into the weights' })),
        h('small', {
          text: 'Fold the adapter into the base weights while generating (base-model speed); they are restored exactly afterwards.',
        }),
      ),
    ),
    go,
    st.el,
    results,
  );
}
