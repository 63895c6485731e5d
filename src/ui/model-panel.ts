// Area 1a: the base model. Loads the bundled model at start; a Hugging Face repo or a local folder on
// request. Shows the model's shape and the memory estimate against the GPU adapter's limits.

import {
  WEIGHTS_CHOICES,
  type FamilyInfo,
  type MemorySummary,
  type ModelSourceSpec,
  type ModelSummary,
  type WeightsChoice,
  type WeightsOption,
} from '../worker/protocol';
import { StatusLine, append, couldNot, defList, errorText, fmtCount, h, newId, setChildren } from './dom';
import { DEFAULT_HUB, HUB_ORIGINS_ENV, connectAllowed, connectSources } from '../util/csp';
import { fmtBytes } from '../util/format';
import type { Studio } from './state';

export const BUNDLED_MODEL: ModelSourceSpec = { kind: 'bundled', url: 'models/weblora-llama-1m/' };

/**
 * Why the page cannot download from the Hub at `baseUrl`, or null when it can: not an http(s) URL, or an
 * origin the page's Content-Security-Policy (the built site's <meta>, src/util/csp.ts) does not allow.
 */
export function hubRefusal(baseUrl: string): string | null {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return `The Hub base URL is not a URL; enter one like ${DEFAULT_HUB}.`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    return 'The Hub base URL must start with https:// (or http:// for a copy on this machine).';
  const policy = document.querySelector<HTMLMetaElement>('meta[http-equiv="Content-Security-Policy"]')?.content;
  if (policy && !connectAllowed(policy, url.href, location.origin)) {
    const allowed = connectSources(policy).filter((s) => s !== "'self'");
    return `This page's security policy lets it download only from ${allowed.join(', ')}, not from ${url.origin}. To use that Hub, build the studio with ${HUB_ORIGINS_ENV}=${url.origin} (see docs/security.md).`;
  }
  return null;
}

/** Download / upload progress of model files while a model loads. */
function fileProgress(studio: Studio) {
  const progress = h('progress', {
    id: newId('model-progress'),
    max: 1,
    value: 0,
    'aria-label': 'Model file progress',
  });
  const progressText = h('span', { class: 'progress-text' });
  const el = h('div', { class: 'progress-row' }, progress, progressText);
  el.hidden = true;
  studio.client.on((e) => {
    if (e.type !== 'progress' || e.phase === 'tokenize' || !studio.modelLoading) return;
    el.hidden = false;
    const what = e.phase === 'download' ? 'Downloading' : 'Reading';
    const file = e.file ? ` ${e.file}` : '';
    if (e.total) {
      progress.max = e.total;
      progress.value = e.loaded;
      progressText.textContent = `${what}${file}: ${fmtBytes(e.loaded, 'short')} of ${fmtBytes(e.total, 'short')} (${Math.floor((100 * e.loaded) / e.total)}%)`;
    } else {
      progress.removeAttribute('value'); // indeterminate
      progressText.textContent = `${what}${file}: ${fmtBytes(e.loaded, 'short')}`;
    }
  });
  return el;
}

/** The model's shape and its memory estimate; after a failed load it shows the model still in use. */
function modelView() {
  const summary = h('div', { class: 'model-summary', 'aria-live': 'polite' });
  const memory = h('div', { class: 'memory' });
  let lastGood: { m: ModelSummary; mem: MemorySummary } | null = null;

  function show(m: ModelSummary, mem: MemorySummary, when: 'estimate' | 'loaded'): void {
    setChildren(
      summary,
      h('h4', { text: m.id }),
      defList([
        ['Architecture', `${m.architecture} (${m.family})`],
        ['Parameters', fmtCount(m.params)],
        ['Layers', String(m.layers)],
        ['Hidden size', String(m.hidden)],
        ['Attention heads', m.kvHeads !== m.heads ? `${m.heads} (${m.kvHeads} key/value)` : String(m.heads)],
        ['Vocabulary', fmtCount(m.vocab)],
        ['Context length', String(m.maxPositions)],
        ['Weights', fmtBytes(m.weightBytes, 'short')],
      ]),
    );
    showMemory(
      memory,
      mem,
      when === 'estimate'
        ? 'Memory estimate before loading (default settings)'
        : 'Memory estimate, model loaded (default settings)',
    );
    if (when === 'loaded') lastGood = { m, mem };
  }

  return {
    els: [summary, memory],
    show,
    showLastGood(): void {
      if (lastGood) show(lastGood.m, lastGood.mem, 'loaded');
    },
  };
}

type Load = (source: ModelSourceSpec, label: string) => Promise<void>;

/** The access token field's id: one token for the page (the gallery's Hub import reads it too). */
const HUB_TOKEN_ID = 'hub-token';

/** { token } from the access token field, or {} when it is empty. */
export function hubToken(): { token?: string } {
  const token = (document.getElementById(HUB_TOKEN_ID) as HTMLInputElement | null)?.value.trim();
  return token ? { token } : {};
}

const WEIGHTS_WORDS: Record<WeightsChoice, string> = {
  f32: 'f32',
  f16: 'f16 (half precision)',
  int8: 'int8 (quantized at load)',
  int4: 'int4 (quantized at load, QLoRA)',
};

/**
 * The "Weights" select: how the frozen base is stored. Each option shows its memory at default settings
 * for the model last read (figures from inspectModel, before anything is loaded); changing it loads the
 * current model again with the new choice.
 */
function weightsPicker(studio: Studio, onChange: () => void) {
  const id = 'weights-choice';
  const select = h('select', { id, 'aria-describedby': `${id}-help` });
  const help = h('small', {
    id: `${id}-help`,
    text: 'int8 and int4 quantize the frozen base as it loads (llama.cpp Q8_0 / Q4_0 blocks); LoRA trains in f32 on top.',
  });
  const show = (options: WeightsOption[] | null) =>
    setChildren(
      select,
      ...WEIGHTS_CHOICES.map((c) => {
        const o = options?.find((x) => x.weights === c);
        const figure = o
          ? ` — weights ${fmtBytes(o.weightBytes, 'short')}, total ${fmtBytes(o.totalBytes, 'short')}`
          : '';
        const refused = o?.refused ? ' (does not fit here)' : '';
        return h('option', { value: c, text: `${WEIGHTS_WORDS[c]}${figure}${refused}`, title: o?.refused ?? '' });
      }),
    );
  show(null);
  select.value = studio.weightDtype;
  select.addEventListener('change', () => {
    studio.weightDtype = select.value as WeightsChoice;
    onChange();
  });
  const el = h('div', { class: 'field weights-field' }, h('label', { for: id, text: 'Weights' }), select, help);
  return {
    el,
    show(options: WeightsOption[]): void {
      show(options);
      select.value = studio.weightDtype;
    },
  };
}

/** Loading a model: inspect it (shape, memory at default settings), then load it onto the GPU. */
function modelLoader(
  studio: Studio,
  status: StatusLine,
  progressRow: HTMLElement,
  view: ReturnType<typeof modelView>,
  picker: ReturnType<typeof weightsPicker>,
  onLoaded: (source: ModelSourceSpec, label: string) => void,
): Load {
  return async (source, label) => {
    if (studio.modelLoading) {
      status.set('A model is already loading; wait for it to finish.', 'warn');
      return;
    }
    if (!studio.engine) {
      status.set(`Cannot load ${label}: the engine did not start (see the message at the top of the page).`, 'error');
      return;
    }
    studio.modelLoading = true;
    studio.emit('model');
    progressRow.hidden = true;
    try {
      status.set(`Reading ${label}…`, 'busy');
      // A model that cannot fit this GPU is refused here, from its config.json, before any weight is fetched.
      const weightDtype = studio.weightDtype;
      const inspected = await studio.client.request({ type: 'inspectModel', source, weightDtype });
      picker.show(inspected.options);
      view.show(inspected.model, inspected.memory, 'estimate');
      status.set(
        `Loading ${label} onto the GPU${weightDtype.startsWith('int') ? `, quantizing to ${weightDtype}` : ''}…`,
        'busy',
      );
      const loaded = await studio.client.request({ type: 'loadModel', source, weightDtype });
      view.show(loaded.model, loaded.memory, 'loaded');
      studio.model = loaded.model;
      onLoaded(source, label);
      status.set(
        `Loaded ${loaded.model.id} (${weightDtype} weights).${loaded.notes.map((n) => ' ' + n + '.').join('')}`,
        'ok',
      );
    } catch (e) {
      const still = studio.model ? ` The model in use is still ${studio.model.id}.` : '';
      status.set(`${couldNot('load', label, e)}${still}`, 'error');
      if (studio.model) view.showLastGood();
    } finally {
      studio.modelLoading = false;
      progressRow.hidden = true;
      studio.emit('model');
    }
  };
}

/**
 * The model families the engine loads (its registry, asked through the worker), each with its
 * config.json architectures and example repos; an example fills the repo field.
 */
function familyList(studio: Studio, status: StatusLine, repoInput: HTMLInputElement): HTMLElement {
  const list = h('ul', { class: 'families' });
  const item = (f: FamilyInfo) =>
    h(
      'li',
      { 'data-family': f.family },
      h('strong', { text: f.name }),
      ` (${f.architectures.join(', ')}), e.g. `,
      ...f.examples.flatMap((repo, i) => [
        i > 0 ? ', ' : '',
        h('button', {
          type: 'button',
          class: 'example-repo',
          text: repo,
          title: `Put ${repo} in the repo field`,
          onclick: () => {
            repoInput.value = repo;
            repoInput.focus();
          },
        }),
      ]),
    );
  studio.on('engine', async () => {
    if (!studio.engine) return;
    try {
      setChildren(list, ...(await studio.client.request({ type: 'families' })).map(item));
    } catch (e) {
      status.set(`Could not list the supported model families: ${errorText(e)}`, 'error');
    }
  });
  return h(
    'div',
    { class: 'field families-field', role: 'group', 'aria-label': 'Supported model families' },
    h('span', { class: 'label', text: 'Supported model families' }),
    list,
  );
}

/** A Hugging Face repo id and Hub base URL, next to the families WebLoRA loads, and for a repo of GGUF files the one to load. */
function hubModelForm(studio: Studio, status: StatusLine, load: Load): HTMLFormElement {
  const repoId = newId('hub-repo');
  const baseId = 'hub-base-url'; // one Hub base URL for the page: the gallery's Hub import reads it too
  const repoInput = h('input', {
    id: repoId,
    type: 'text',
    placeholder: 'HuggingFaceTB/SmolLM2-135M',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const baseInput = h('input', { id: baseId, type: 'url', value: DEFAULT_HUB });
  // The access token stays in this field (a password field the browser is asked not to save) and in the
  // requests to the worker; see HubSpec.
  const tokenInput = h('input', {
    id: HUB_TOKEN_ID,
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'hf_…',
  });
  const ggufId = newId('hub-gguf');
  const ggufList = h('datalist', { id: newId('hub-gguf-list') });
  const ggufInput = h('input', {
    id: ggufId,
    type: 'text',
    list: ggufList.id,
    placeholder: 'model-F16.gguf',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const listBtn = h('button', { type: 'button', text: 'List its GGUF files' });
  const form = h(
    'form',
    { class: 'inline-form', 'aria-label': 'Load from Hugging Face' },
    h(
      'div',
      { class: 'field' },
      h('label', { for: repoId, text: 'Hugging Face repo id' }),
      repoInput,
      h('small', {
        text: 'A public model repo of a supported family, with safetensors weights, config.json and tokenizer.json.',
      }),
    ),
    familyList(studio, status, repoInput),
    h(
      'div',
      { class: 'field' },
      h('label', { for: baseId, text: 'Hub base URL' }),
      baseInput,
      h('small', { text: 'Change it for a mirror or a local copy of the Hub.' }),
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: HUB_TOKEN_ID, text: 'Access token (gated repos)' }),
      tokenInput,
      h('small', {
        text: 'For a gated repo (Llama, Gemma): accept its licence on the Hub, then paste a read token. It is sent only to the Hub base URL above, and kept only in this page while it is open: never saved or logged.',
      }),
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: ggufId, text: 'GGUF file (optional)' }),
      ggufInput,
      ggufList,
      listBtn,
      h('small', {
        text: 'For a repo of llama.cpp GGUF files: the one to load (F32, F16, BF16, Q8_0 or Q4_0; Llama, Qwen2, Qwen3, Gemma 3). Leave empty for safetensors.',
      }),
    ),
    h('button', { type: 'submit', text: 'Load from Hugging Face' }),
  );
  /** The form's repo id and Hub base URL, or null (with the reason in the status line) when either is unusable. */
  const hubTarget = (): { repo: string; baseUrl: string } | null => {
    const repo = repoInput.value.trim();
    if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) {
      status.set('Enter a repo id like owner/name (for example HuggingFaceTB/SmolLM2-135M).', 'error');
      repoInput.focus();
      return null;
    }
    const baseUrl = baseInput.value.trim() || DEFAULT_HUB;
    const refused = hubRefusal(baseUrl);
    if (refused) {
      status.set(refused, 'error');
      baseInput.focus();
      return null;
    }
    return { repo, baseUrl };
  };
  listBtn.addEventListener('click', async () => {
    const target = hubTarget();
    if (!target) return;
    const { repo, baseUrl } = target;
    status.set(`Listing the GGUF files of ${repo}…`, 'busy');
    try {
      const { files } = await studio.client.request({ type: 'listGgufFiles', repo, baseUrl, ...hubToken() });
      setChildren(ggufList, ...files.map((f) => h('option', { value: f })));
      if (files.length === 1) ggufInput.value = files[0];
      status.set(
        files.length
          ? `${repo} has ${files.length} GGUF file${files.length > 1 ? 's' : ''}: ${files.join(', ')}`
          : `${repo} lists no GGUF files.`,
        files.length ? 'ok' : 'warn',
      );
    } catch (e) {
      status.set(`Could not list ${repo}: ${errorText(e)}`, 'error');
    }
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const target = hubTarget();
    if (!target) return;
    const { repo, baseUrl } = target;
    const gguf = ggufInput.value.trim();
    void load(
      { kind: 'hub', repo, baseUrl, ...(gguf ? { gguf } : {}), ...hubToken() },
      gguf ? `${repo}/${gguf}` : repo,
    );
  });
  return form;
}

/** A model folder, or its files one by one, from this computer. */
function localModelForm(load: Load): HTMLElement {
  const folderId = newId('model-folder');
  const filesId = newId('model-files');
  const folderInput = h('input', { id: folderId, type: 'file', multiple: true, webkitdirectory: true });
  const filesInput = h('input', {
    id: filesId,
    type: 'file',
    multiple: true,
    accept: '.json,.safetensors,.model,.txt,.gguf',
  });
  // Several GGUF files picked without a config.json: the user chooses one.
  const chooseId = newId('model-gguf');
  const choose = h('select', { id: chooseId });
  const chooseBtn = h('button', { type: 'button', text: 'Load this GGUF' });
  const chooser = h(
    'div',
    { class: 'field', hidden: true },
    h('label', { for: chooseId, text: 'GGUF file' }),
    choose,
    chooseBtn,
  );
  let picked: { files: File[]; label: string } | null = null;
  chooseBtn.addEventListener('click', () => {
    if (!picked) return;
    void load({ kind: 'files', files: picked.files, gguf: choose.value }, `${picked.label}/${choose.value}`);
  });
  const onPick = (input: HTMLInputElement) => () => {
    const files = [...(input.files ?? [])];
    input.value = ''; // the same files may be picked again after a fix
    if (!files.length) return;
    const rel = (files[0] as File & { webkitRelativePath?: string }).webkitRelativePath;
    const label = rel ? rel.split('/')[0] : files.length === 1 ? files[0].name : `${files.length} files`;
    const ggufs = files.map((f) => f.name).filter((n) => n.toLowerCase().endsWith('.gguf'));
    const hasConfig = files.some((f) => f.name === 'config.json');
    chooser.hidden = hasConfig || ggufs.length < 2;
    if (!chooser.hidden) {
      picked = { files, label };
      setChildren(choose, ...ggufs.sort().map((n) => h('option', { value: n, text: n })));
      return;
    }
    void load({ kind: 'files', files }, label);
  };
  folderInput.addEventListener('change', onPick(folderInput));
  filesInput.addEventListener('change', onPick(filesInput));
  return h(
    'div',
    { class: 'inline-form', role: 'group', 'aria-label': 'Load from this computer' },
    h(
      'div',
      { class: 'field' },
      h('label', { for: folderId, text: 'Model folder' }),
      folderInput,
      h('small', { text: 'A folder with config.json, tokenizer.json and *.safetensors.' }),
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: filesId, text: 'Model files' }),
      filesInput,
      h('small', {
        text: 'Or choose the same files one by one, or one .gguf model file (F32, F16, BF16, Q8_0 or Q4_0).',
      }),
    ),
    chooser,
  );
}

export function modelPanel(studio: Studio): HTMLElement {
  const status = new StatusLine();
  const progressRow = fileProgress(studio);
  const view = modelView();
  let current: { source: ModelSourceSpec; label: string } | null = null;
  const picker = weightsPicker(studio, () => {
    if (current) void load(current.source, current.label);
  });
  const load = modelLoader(studio, status, progressRow, view, picker, (source, label) => (current = { source, label }));
  const other = h(
    'details',
    { class: 'other-model' },
    h('summary', { text: 'Load a different model' }),
    hubModelForm(studio, status, load),
    progressRow,
    localModelForm(load),
  );
  studio.on('engine', () => {
    if (studio.engine) void load(BUNDLED_MODEL, 'the bundled model');
  });
  return h(
    'div',
    { class: 'panel', id: 'model-panel' },
    h('h3', { text: 'Model' }),
    status.el,
    picker.el,
    ...view.els,
    other,
  );
}

/** The memory estimate with its messages; each message says its level in words, not only colour. */
export function showMemory(el: HTMLElement, mem: MemorySummary, title: string): void {
  setChildren(
    el,
    h('h4', { text: title }),
    defList([
      ['Total', fmtBytes(mem.totalBytes, 'short')],
      ['Weights', fmtBytes(mem.weightBytes, 'short')],
      ['LoRA + optimizer', fmtBytes(mem.loraBytes, 'short')],
      ['Activations', fmtBytes(mem.activationBytes, 'short')],
    ]),
  );
  if (mem.messages.length) {
    const ul = h('ul', { class: 'messages' });
    for (const m of mem.messages) {
      append(
        ul,
        h(
          'li',
          { 'data-level': m.level },
          h('strong', { text: m.level === 'error' ? 'Problem: ' : m.level === 'warn' ? 'Warning: ' : 'Note: ' }),
          m.text,
        ),
      );
    }
    append(el, ul);
  }
}
