// Area 3: the gallery of adapters (built-in and the user's, kept by the engine in IndexedDB), the
// current run's adapter (save / export), importing a PEFT adapter, and the Try panel.

import { fmtBytes } from '../util/format';
import type { DamagedGalleryEntry, GalleryEntry, Request } from '../worker/protocol';
import { smallCurve } from './chart';
import { StatusLine, append, couldNot, defList, downloadBytes, errorText, h, newId, setChildren } from './dom';
import { DEFAULT_HUB } from '../util/csp';
import { hubRefusal, hubToken } from './model-panel';
import type { Studio } from './state';
import { tryPanel } from './try-panel';

/** Re-reads the gallery and redraws its cards. */
type Refresh = () => Promise<void>;

/** This run's adapter: a name, and Save to gallery / Export once a run has steps. */
function runAdapterBox(studio: Studio, refresh: Refresh): HTMLElement {
  const runStatus = new StatusLine();
  const nameId = newId('adapter-name');
  const nameInput = h('input', { id: nameId, type: 'text', value: 'my-adapter', autocomplete: 'off' });
  const saveBtn = h('button', { type: 'button', class: 'primary', text: 'Save to gallery' });
  const exportBtn = h('button', { type: 'button', text: 'Export adapter' });
  const ggufBtn = h('button', {
    type: 'button',
    text: 'Export for llama.cpp (GGUF)',
    title: 'adapter.gguf: llama-cli -m base.gguf --lora adapter.gguf',
  });
  const runHint = h('p', { class: 'hint' });
  const runBox = h(
    'div',
    { class: 'panel', id: 'run-adapter' },
    h('h3', { text: "This run's adapter" }),
    h('div', { class: 'field' }, h('label', { for: nameId, text: 'Adapter name' }), nameInput),
    h('div', { class: 'buttons' }, saveBtn, exportBtn, ggufBtn),
    runHint,
    runStatus.el,
  );

  function updateRun(): void {
    const can = studio.runSteps > 0 && (studio.trainState === 'idle' || studio.trainState === 'paused');
    saveBtn.disabled = exportBtn.disabled = !can;
    ggufBtn.disabled = !can || !studio.model?.ggufAdapter;
    ggufBtn.hidden = !!studio.model && !studio.model.ggufAdapter;
    runHint.textContent = can
      ? `The adapter after ${studio.runSteps} steps.`
      : 'Train an adapter first (area 2); then save or export it here.';
  }
  studio.on('run', () => {
    if (studio.model && studio.dataset && nameInput.dataset.touched !== 'yes')
      nameInput.value = `${studio.dataset.name.replace(/\.[a-z]+$/i, '')}-lora`;
    updateRun();
  });
  nameInput.addEventListener('input', () => (nameInput.dataset.touched = 'yes'));
  studio.on('train', updateRun);
  studio.on('model', updateRun);
  updateRun();

  const adapterName = () => nameInput.value.trim() || 'adapter';
  saveBtn.addEventListener('click', async () => {
    runStatus.set('Saving…', 'busy');
    try {
      const entry = await studio.client.request({ type: 'saveToGallery', name: adapterName() });
      runStatus.set(`Saved "${entry.name}" to the gallery.`, 'ok');
      await refresh();
    } catch (e) {
      runStatus.set(`Could not save: ${errorText(e)}`, 'error');
    }
  });
  exportBtn.addEventListener('click', async () => {
    runStatus.set('Packing the adapter…', 'busy');
    try {
      const r = await studio.client.request({ type: 'exportAdapter', name: adapterName() });
      downloadBytes(r.zip, r.fileName);
      runStatus.set(`Downloaded ${r.fileName} (${fmtBytes(r.zip.byteLength, 'short')}).`, 'ok');
    } catch (e) {
      runStatus.set(`Could not export: ${errorText(e)}`, 'error');
    }
  });
  ggufBtn.addEventListener('click', async () => {
    runStatus.set('Writing the GGUF adapter…', 'busy');
    try {
      const r = await studio.client.request({ type: 'exportGgufAdapter', name: adapterName() });
      downloadBytes(r.bytes, r.fileName);
      runStatus.set(
        `Downloaded ${r.fileName} (${fmtBytes(r.bytes.byteLength, 'short')}); use it with llama-cli -m base.gguf --lora ${r.fileName}.`,
        'ok',
      );
    } catch (e) {
      runStatus.set(`Could not export the GGUF adapter: ${errorText(e)}`, 'error');
    }
  });
  return runBox;
}

/** Importing a PEFT adapter from files or from the Hub. */
function importBox(studio: Studio, refresh: Refresh): HTMLElement {
  const importStatus = new StatusLine();
  const importId = newId('import');
  const importInput = h('input', { id: importId, type: 'file', multiple: true, accept: '.zip,.json,.safetensors,.md' });
  const warnings = h('ul', { class: 'messages' });
  async function importFrom(req: Request & { type: 'importAdapter' }, what: string): Promise<void> {
    setChildren(warnings);
    importStatus.set(`Importing ${what}…`, 'busy');
    try {
      const r = await studio.client.request(req);
      importStatus.set(`Imported "${r.name}".`, 'ok');
      for (const w of r.warnings)
        append(warnings, h('li', { 'data-level': 'warn' }, h('strong', { text: 'Warning: ' }), w));
      await refresh();
    } catch (e) {
      importStatus.set(couldNot('import', what, e), 'error');
    }
  }
  importInput.addEventListener('change', () => {
    const files = [...(importInput.files ?? [])];
    importInput.value = '';
    if (files.length) void importFrom({ type: 'importAdapter', files }, files.map((f) => f.name).join(', '));
  });
  const hubRepoId = newId('import-hub');
  const hubRepo = h('input', {
    id: hubRepoId,
    type: 'text',
    placeholder: 'owner/adapter-name',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const hubForm = h(
    'form',
    { class: 'inline-form', 'aria-label': 'Import from Hugging Face' },
    h(
      'div',
      { class: 'field' },
      h('label', { for: hubRepoId, text: 'Adapter repo id' }),
      hubRepo,
      h('small', {
        text: 'A PEFT LoRA adapter on the Hub (the Hub base URL and access token are the ones set under "Load a different model").',
      }),
    ),
    h('button', { type: 'submit', text: 'Import from Hugging Face' }),
  );
  hubForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const repo = hubRepo.value.trim();
    if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) {
      importStatus.set('Enter a repo id like owner/name.', 'error');
      return;
    }
    const base = (document.getElementById('hub-base-url') as HTMLInputElement | null)?.value.trim() || DEFAULT_HUB;
    const refused = hubRefusal(base);
    if (refused) {
      importStatus.set(refused, 'error');
      return;
    }
    void importFrom({ type: 'importAdapter', hub: { repo, baseUrl: base, ...hubToken() } }, repo);
  });
  return h(
    'div',
    { class: 'panel' },
    h('h3', { text: 'Import' }),
    h(
      'div',
      { class: 'field' },
      h('label', { for: importId, text: 'Import a PEFT adapter' }),
      importInput,
      h('small', { text: 'A zip, or adapter_config.json with adapter_model.safetensors.' }),
    ),
    hubForm,
    importStatus.el,
    warnings,
  );
}

/** Rename inline: the card's heading becomes a small form until saved or cancelled. */
function renameInline(studio: Studio, a: GalleryEntry, heading: HTMLElement, st: StatusLine, refresh: Refresh): void {
  const id = newId('rename');
  const input = h('input', { id, type: 'text', value: a.name });
  const save = h('button', { type: 'submit', text: 'Save name' });
  const cancel = h('button', { type: 'button', text: 'Cancel' });
  const f = h(
    'form',
    { class: 'rename', 'aria-label': `Rename ${a.name}` },
    h('label', { for: id, text: 'New name' }),
    input,
    save,
    cancel,
  );
  heading.replaceWith(f);
  input.focus();
  input.select();
  cancel.addEventListener('click', () => f.replaceWith(heading));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = input.value.trim();
    if (!name) {
      st.set('A name cannot be empty.', 'error');
      return;
    }
    try {
      await studio.client.request({ type: 'renameAdapter', id: a.id, name });
      await refresh();
    } catch (e) {
      st.set(`Could not rename: ${errorText(e)}`, 'error');
    }
  });
}

/** Delete asks first, inline (no native dialog): "Delete X? Yes, delete / Keep". */
function confirmDelete(
  studio: Studio,
  a: Pick<GalleryEntry, 'id' | 'name'>,
  buttons: HTMLElement,
  st: StatusLine,
  refresh: Refresh,
): void {
  const yes = h('button', { type: 'button', class: 'danger', text: 'Yes, delete' });
  const no = h('button', { type: 'button', text: 'Keep' });
  const confirmBox = h(
    'div',
    { class: 'confirm', role: 'group', 'aria-label': 'Confirm delete' },
    h('span', { text: `Delete "${a.name}"? This cannot be undone.` }),
    yes,
    no,
  );
  buttons.replaceWith(confirmBox);
  no.focus();
  no.addEventListener('click', () => confirmBox.replaceWith(buttons));
  yes.addEventListener('click', async () => {
    try {
      await studio.client.request({ type: 'deleteAdapter', id: a.id });
      await refresh();
    } catch (e) {
      confirmBox.replaceWith(buttons);
      st.set(`Could not delete: ${errorText(e)}`, 'error');
    }
  });
}

/** One adapter's card: its facts and loss curve, with Export, Rename and Delete. */
function adapterCard(studio: Studio, a: GalleryEntry, refresh: Refresh): HTMLLIElement {
  const st = new StatusLine();
  const title = h('h4', { text: a.name });
  const heading = h('div', { class: 'card-head' }, title, a.builtin && h('span', { class: 'badge', text: 'built-in' }));
  const created = new Date(a.createdAt);
  const facts = defList([
    ['Base model', a.baseModel],
    ['Dataset', a.dataset],
    ['Rank / alpha', `${a.settings.rank} / ${a.settings.alpha}`],
    ['Targets', a.settings.targets.join(', ')],
    ['Created', Number.isNaN(created.getTime()) ? a.createdAt : created.toLocaleString()],
    ['Size', fmtBytes(a.sizeBytes, 'short')],
  ]);
  const exportB = h('button', { type: 'button', text: 'Export', 'aria-label': `Export ${a.name}` });
  const renameB = h('button', { type: 'button', text: 'Rename', 'aria-label': `Rename ${a.name}` });
  const deleteB = h('button', { type: 'button', class: 'danger', text: 'Delete', 'aria-label': `Delete ${a.name}` });
  const buttons = h('div', { class: 'buttons' }, exportB, renameB, deleteB);
  const article = h(
    'article',
    { 'aria-label': a.name },
    heading,
    facts,
    smallCurve(a.lossCurve, a.valCurve, `Loss curve of ${a.name}`),
    buttons,
    st.el,
  );
  exportB.addEventListener('click', async () => {
    st.set('Packing…', 'busy');
    try {
      const r = await studio.client.request({ type: 'exportGalleryAdapter', id: a.id });
      downloadBytes(r.zip, r.fileName);
      st.set(`Downloaded ${r.fileName}.`, 'ok');
    } catch (e) {
      st.set(`Could not export: ${errorText(e)}`, 'error');
    }
  });
  renameB.addEventListener('click', () => renameInline(studio, a, heading, st, refresh));
  deleteB.addEventListener('click', () => confirmDelete(studio, a, buttons, st, refresh));
  return h('li', {}, article);
}

/** A damaged entry's card: what is wrong with it, and Delete (nothing else can use it). */
function damagedCard(studio: Studio, d: DamagedGalleryEntry, refresh: Refresh): HTMLLIElement {
  const st = new StatusLine();
  const deleteB = h('button', { type: 'button', class: 'danger', text: 'Delete', 'aria-label': `Delete ${d.name}` });
  const buttons = h('div', { class: 'buttons' }, deleteB);
  deleteB.addEventListener('click', () => confirmDelete(studio, d, buttons, st, refresh));
  return h(
    'li',
    { class: 'damaged' },
    h(
      'article',
      { 'aria-label': `${d.name} (damaged)` },
      h('div', { class: 'card-head' }, h('h4', { text: d.name }), h('span', { class: 'badge', text: 'damaged' })),
      h('p', { role: 'alert', class: 'status', 'data-level': 'error', text: d.error }),
      buttons,
      st.el,
    ),
  );
}

/** The adapters' cards, read from the engine when it starts and after each change. */
function adapterList(studio: Studio): { el: HTMLElement; refresh: Refresh } {
  const listStatus = new StatusLine();
  const cards = h('ul', { class: 'cards', 'aria-label': 'Adapters' });
  async function refresh(): Promise<void> {
    try {
      const { entries, damaged } = await studio.client.request({ type: 'listGallery' });
      studio.gallery = entries;
      setChildren(
        cards,
        ...entries.map((a) => adapterCard(studio, a, refresh)),
        ...damaged.map((d) => damagedCard(studio, d, refresh)),
      );
      if (!entries.length && !damaged.length) append(cards, h('li', { class: 'empty', text: 'No adapters yet.' }));
      listStatus.clear();
    } catch (e) {
      listStatus.set(`Could not read the gallery: ${errorText(e)}`, 'error');
    }
    studio.emit('gallery');
  }
  const el = h('div', { class: 'panel' }, h('h3', { text: 'Adapters' }), listStatus.el, cards);
  return { el, refresh };
}

export function galleryArea(studio: Studio): HTMLElement {
  const list = adapterList(studio);
  const columns = h('div', { class: 'columns' }, runAdapterBox(studio, list.refresh), importBox(studio, list.refresh));
  studio.on('engine', () => {
    if (studio.engine) void list.refresh();
  });
  return h(
    'section',
    { class: 'area', id: 'gallery', 'aria-labelledby': 'gallery-h' },
    h('h2', { id: 'gallery-h', text: '3. Gallery' }),
    columns,
    list.el,
    tryPanel(studio),
  );
}
