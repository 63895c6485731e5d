// Area 1b: the dataset. A bundled sample (public/datasets/index.json) or the user's own file; the
// engine detects the format (overridable), tokenizes it and splits it into training and validation.

import type { DatasetSummary } from '../worker/protocol';
import { StatusLine, append, couldNot, defList, errorText, fmtCount, h, newId, setChildren } from './dom';
import type { Studio } from './state';

export interface SampleDataset {
  name: string;
  file: string;
  format: string;
  description: string;
  licence: string;
}

/** Formats the page offers as overrides; a format the engine reports that is not here is added. */
const FORMATS = ['text', 'jsonl', 'json', 'csv', 'tsv'];
const PREVIEW_ROWS = 5;
const PREVIEW_CHARS = 240;

/** The format override and, for CSV/TSV, the column to train on. */
function formatControls() {
  const formatId = newId('format');
  const columnId = newId('column');
  const formatSelect = h(
    'select',
    { id: formatId },
    h('option', { value: '', text: 'Detect automatically' }),
    ...FORMATS.map((f) => h('option', { value: f, text: f })),
  );
  const columnSelect = h('select', { id: columnId });
  const columnField = h(
    'div',
    { class: 'field' },
    h('label', { for: columnId, text: 'Text column' }),
    columnSelect,
    h('small', { text: 'The CSV/TSV column to train on.' }),
  );
  columnField.hidden = true;
  const el = h(
    'div',
    { class: 'row' },
    h(
      'div',
      { class: 'field' },
      h('label', { for: formatId, text: 'Format' }),
      formatSelect,
      h('small', { text: 'Override the detected format if it is wrong.' }),
    ),
    columnField,
  );

  /** Shows the format the engine found and, when the data has columns, the column in use. */
  function show(d: DatasetSummary): void {
    if (!FORMATS.includes(d.format) && ![...formatSelect.options].some((o) => o.value === d.format)) {
      append(formatSelect, h('option', { value: d.format, text: d.format }));
    }
    formatSelect.options[0].textContent = `Detect automatically (found: ${d.format})`;
    if (d.columns?.length) {
      const chosen = d.column ?? '';
      setChildren(columnSelect, ...d.columns.map((c) => h('option', { value: c, text: c })));
      columnSelect.value = chosen;
      columnField.hidden = false;
    } else {
      setChildren(columnSelect);
      columnField.hidden = true;
    }
  }
  return { el, formatSelect, columnSelect, show };
}

/** The dataset's facts as a definition list. */
function datasetFacts(d: DatasetSummary): HTMLElement {
  return defList([
    ['Dataset', d.name],
    ['Format', d.format + (d.column ? ` (column ${d.column})` : '')],
    ['Examples', String(d.examples)],
    ['Tokens', fmtCount(d.tokens)],
    ['Training sequences', String(d.trainSequences)],
    ['Validation sequences', String(d.valSequences)],
  ]);
}

/** The first examples, clipped: prompt and completion columns, or one text column. */
function previewTable(d: DatasetSummary): HTMLTableElement {
  const clip = (s: string) => (s.length > PREVIEW_CHARS ? `${s.slice(0, PREVIEW_CHARS)}…` : s);
  const rows = d.preview.slice(0, PREVIEW_ROWS);
  const hasPrompt = rows.some((r) => r.prompt);
  return h(
    'table',
    { class: 'preview-table' },
    h('caption', { text: `First ${rows.length} examples` }),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        hasPrompt && h('th', { scope: 'col', text: 'Prompt' }),
        h('th', { scope: 'col', text: hasPrompt ? 'Completion' : 'Text' }),
      ),
    ),
    h(
      'tbody',
      {},
      ...rows.map((r) =>
        h('tr', {}, hasPrompt && h('td', { text: clip(r.prompt) }), h('td', { text: clip(r.completion) })),
      ),
    ),
  );
}

/** Tokenizing progress, shown while `active` (a dataset of this panel is being read). */
function tokenizeProgress(studio: Studio) {
  const progress = h('progress', { max: 1, value: 0, 'aria-label': 'Tokenizing progress' });
  const row = h('div', { class: 'progress-row' }, progress);
  row.hidden = true;
  const state = { active: false };
  studio.client.on((e) => {
    if (e.type !== 'progress' || e.phase !== 'tokenize' || !state.active) return;
    row.hidden = false;
    progress.max = e.total ?? 1;
    progress.value = e.loaded;
  });
  return { row, state };
}

/** Resolves true once a model is loaded (waiting for one that is loading), false when there is none. */
async function waitForModel(studio: Studio, status: StatusLine): Promise<boolean> {
  if (studio.model && !studio.modelLoading) return true;
  if (!studio.modelLoading) return false;
  status.set('Waiting for the model to load (its tokenizer reads the dataset)…', 'busy');
  await new Promise<void>((resolve) => {
    const check = () => {
      if (!studio.modelLoading) resolve();
    };
    studio.on('model', check);
  });
  return !!studio.model;
}

/** The bundled samples (public/datasets/index.json): choosing one downloads it. */
function sampleChooser(status: StatusLine, choose: (name: string, text: string) => void) {
  const sampleId = newId('sample');
  const select = h('select', { id: sampleId }, h('option', { value: '', text: 'Loading the list…' }));
  const info = h('p', { class: 'hint' });
  let samples: SampleDataset[] = [];
  select.addEventListener('change', async () => {
    const s = samples.find((x) => x.file === select.value);
    if (!s) return;
    info.textContent = `${s.description} Licence: ${s.licence}.`;
    status.set(`Downloading ${s.name}…`, 'busy');
    try {
      const r = await fetch(`datasets/${s.file}`);
      if (!r.ok) throw new Error(`HTTP ${r.status} for datasets/${s.file}`);
      choose(s.name, await r.text());
    } catch (e) {
      status.set(`Could not download the sample ${s.name}: ${errorText(e)}`, 'error');
    }
  });
  // The sample list: relative URL, so the built site works under any path.
  void (async () => {
    try {
      const r = await fetch('datasets/index.json');
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const json = (await r.json()) as SampleDataset[] | { datasets: SampleDataset[] };
      samples = Array.isArray(json) ? json : json.datasets;
      setChildren(
        select,
        h('option', { value: '', text: 'Choose a sample…' }),
        ...samples.map((s) => h('option', { value: s.file, text: `${s.name} (${s.format})` })),
      );
    } catch (e) {
      setChildren(select, h('option', { value: '', text: 'No samples available' }));
      info.textContent = `The sample list could not be read (${errorText(e)}); use your own file.`;
    }
  })();
  const el = h('div', { class: 'field' }, h('label', { for: sampleId, text: 'Sample dataset' }), select, info);
  return {
    el,
    /** A file of the user's replaces the sample choice. */
    clear(): void {
      select.value = '';
      info.textContent = '';
    },
  };
}

/** The user's own file, picked or dropped on the box. */
function fileDrop(onFile: (f: File) => void): HTMLElement {
  const fileId = newId('dataset-file');
  const fileInput = h('input', { id: fileId, type: 'file', accept: '.txt,.md,.jsonl,.json,.csv,.tsv' });
  fileInput.addEventListener('change', () => {
    const f = fileInput.files?.[0];
    fileInput.value = '';
    if (f) onFile(f);
  });
  const drop = h(
    'div',
    { class: 'dropzone' },
    h('label', { for: fileId, text: 'Your own file' }),
    fileInput,
    h('small', { text: 'Plain text, JSONL, CSV or TSV; or drop a file on this box.' }),
  );
  drop.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const f = ev.dataTransfer?.files?.[0];
    if (f) onFile(f);
  });
  return drop;
}

export function datasetPanel(studio: Studio): HTMLElement {
  const status = new StatusLine();
  const format = formatControls();
  const summary = h('div', { class: 'dataset-summary', 'aria-live': 'polite' });
  const preview = h('div', { class: 'preview' });
  const progress = tokenizeProgress(studio);
  // The current text, kept so a format or column change re-parses it without reading the file again.
  let current: { name: string; text: string } | null = null;
  // The model whose tokenizer read it. Loading a model (another one, or the same with other weights) drops the
  // engine's dataset, so the text is read again with the new model's tokenizer once it has loaded.
  let readWith: unknown = null;
  let reading = false;
  studio.on('model', () => {
    if (current && !reading && !studio.modelLoading && studio.model && studio.model !== readWith) void load();
  });

  async function load(): Promise<void> {
    if (!current) return;
    reading = true;
    try {
      await read(current);
    } finally {
      reading = false;
    }
  }

  async function read(chosen: { name: string; text: string }): Promise<void> {
    if (!(await waitForModel(studio, status))) {
      status.set('Load a model first: the dataset is tokenized with its tokenizer.', 'error');
      return;
    }
    const { name, text } = chosen;
    progress.state.active = true;
    status.set(`Reading ${name}…`, 'busy');
    try {
      const req = {
        type: 'loadDataset' as const,
        name,
        text,
        format: format.formatSelect.value || undefined,
        column: format.columnSelect.value || undefined,
      };
      const d = await studio.client.request(req);
      if (current?.name !== name) return; // another dataset was chosen meanwhile
      readWith = studio.model;
      studio.dataset = d;
      format.show(d);
      setChildren(summary, datasetFacts(d));
      setChildren(preview, previewTable(d));
      status.set(`${d.name}: ${d.examples} examples, ${fmtCount(d.tokens)} tokens.`, 'ok');
    } catch (e) {
      status.set(
        `${couldNot('read', name, e)}${studio.dataset ? ` The dataset in use is still ${studio.dataset.name}.` : ''}`,
        'error',
      );
    } finally {
      progress.state.active = false;
      progress.row.hidden = true;
      studio.emit('dataset');
    }
  }

  function choose(name: string, text: string): void {
    current = { name, text };
    format.formatSelect.value = '';
    setChildren(format.columnSelect);
    void load();
  }

  const samples = sampleChooser(status, choose);
  async function readFile(f: File): Promise<void> {
    if (f.size > 200 * 1024 * 1024) {
      status.set(
        `${f.name} is ${Math.round(f.size / 1048576)} MB; datasets over 200 MB are not supported in the browser.`,
        'error',
      );
      return;
    }
    samples.clear();
    choose(f.name, await f.text());
  }
  format.formatSelect.addEventListener('change', () => {
    setChildren(format.columnSelect);
    void load();
  });
  format.columnSelect.addEventListener('change', () => void load());

  return h(
    'div',
    { class: 'panel', id: 'dataset-panel' },
    h('h3', { text: 'Dataset' }),
    samples.el,
    fileDrop((f) => void readFile(f)),
    format.el,
    status.el,
    progress.row,
    summary,
    preview,
  );
}
