// The training settings form, built from DEFAULT_SETTINGS: one labelled field per setting with a
// one-line explanation and an inline error. The engine's `estimate` reply is the judge of validity;
// each of its errors names the setting (`field`) it belongs next to.

import { DEFAULT_SETTINGS, type ModelSummary, type SettingsError, type TrainSettings } from '../worker/protocol';
import { append, h, newId, setChildren } from './dom';

type Key = keyof TrainSettings;

interface FieldSpec {
  key: Key;
  label: string;
  help: string;
  kind: 'int' | 'num' | 'bool' | 'select' | 'text';
  options?: string[];
  step?: string;
  min?: number;
  max?: number;
}

const MAIN: FieldSpec[] = [
  {
    key: 'rank',
    label: 'Rank (r)',
    help: 'Size of the low-rank update; higher learns more and costs more.',
    kind: 'int',
    min: 1,
  },
  {
    key: 'alpha',
    label: 'Alpha',
    help: 'Scales the update: it is multiplied by alpha / r (or alpha / √r with rsLoRA).',
    kind: 'num',
    step: 'any',
    min: 0,
  },
  {
    key: 'useRslora',
    label: 'rsLoRA',
    help: 'Scale by alpha / √r, which keeps high ranks stable.',
    kind: 'bool',
  },
  {
    key: 'dropout',
    label: 'Dropout',
    help: 'Fraction of the adapter input zeroed during training (0 to 0.9).',
    kind: 'num',
    step: 'any',
    min: 0,
    max: 0.9,
  },
  {
    key: 'lr',
    label: 'Learning rate',
    help: 'Peak step size of AdamW; 1e-4 to 5e-3 is typical for LoRA.',
    kind: 'num',
    step: 'any',
    min: 0,
  },
  {
    key: 'warmupSteps',
    label: 'Warmup steps',
    help: 'Steps over which the learning rate rises from 0 to its peak.',
    kind: 'int',
    min: 0,
  },
  {
    key: 'decay',
    label: 'Decay',
    help: 'How the learning rate falls after warmup.',
    kind: 'select',
    options: ['cosine', 'linear', 'constant'],
  },
  {
    key: 'batchSize',
    label: 'Batch size',
    help: 'Sequences per micro-batch; memory grows with it.',
    kind: 'int',
    min: 1,
  },
  {
    key: 'gradAccum',
    label: 'Gradient accumulation',
    help: 'Micro-batches summed per update: a bigger batch at the same memory.',
    kind: 'int',
    min: 1,
  },
  {
    key: 'seqLen',
    label: 'Sequence length',
    help: 'Tokens per training sequence; memory grows with it.',
    kind: 'int',
    min: 2,
  },
  {
    key: 'steps',
    label: 'Steps',
    help: 'Number of optimizer updates in the run.',
    kind: 'int',
    min: 1,
  },
  {
    key: 'weightDecay',
    label: 'Weight decay',
    help: 'AdamW decay of the adapter weights (0 to 1).',
    kind: 'num',
    step: 'any',
    min: 0,
    max: 1,
  },
  {
    key: 'maxGradNorm',
    label: 'Gradient clipping',
    help: 'Largest gradient norm before scaling down; 0 turns clipping off.',
    kind: 'num',
    step: 'any',
    min: 0,
  },
  {
    key: 'seed',
    label: 'Seed',
    help: 'Makes initialisation, shuffling and dropout repeatable.',
    kind: 'int',
    min: 0,
  },
  {
    key: 'checkpointing',
    label: 'Activation checkpointing',
    help: 'Recompute block activations in the backward pass: less memory, ~30% slower.',
    kind: 'bool',
  },
];

const MORE: FieldSpec[] = [
  {
    key: 'minLrRatio',
    label: 'Minimum learning rate ratio',
    help: 'Where decay ends, as a fraction of the peak.',
    kind: 'num',
    step: 'any',
    min: 0,
    max: 1,
  },
  {
    key: 'epochs',
    label: 'Epochs',
    help: 'If above 0, the number of steps comes from the dataset size instead.',
    kind: 'int',
    min: 0,
  },
  {
    key: 'valFraction',
    label: 'Validation fraction',
    help: 'Share of the data held out to measure validation loss (0 to 0.5).',
    kind: 'num',
    step: 'any',
    min: 0,
    max: 0.5,
  },
  {
    key: 'evalEvery',
    label: 'Evaluate every',
    help: 'Steps between validation losses (0: never).',
    kind: 'int',
    min: 0,
  },
  {
    key: 'sampleEvery',
    label: 'Sample every',
    help: 'Steps between sample generations (0: never).',
    kind: 'int',
    min: 0,
  },
  {
    key: 'checkpointEvery',
    label: 'Checkpoint every',
    help: 'Steps between saved checkpoints you can resume from (0: never).',
    kind: 'int',
    min: 0,
  },
  {
    key: 'samplePrompt',
    label: 'Sample prompt',
    help: 'Text the samples continue (empty: the start of a validation example).',
    kind: 'text',
  },
  {
    key: 'sampleTokens',
    label: 'Sample tokens',
    help: 'Tokens generated per sample.',
    kind: 'int',
    min: 1,
  },
];

interface FieldView {
  spec: FieldSpec;
  input: HTMLInputElement | HTMLSelectElement;
  error: HTMLElement;
}

export class SettingsForm {
  readonly el: HTMLFormElement;
  private fields: FieldView[] = [];
  private targetsBox: HTMLFieldSetElement;
  private targetsError: HTMLElement;
  private targetBoxes: HTMLInputElement[] = [];
  private otherErrors: HTMLUListElement;
  private localErrors = 0;
  private family = '';

  constructor(private onChange: () => void) {
    this.targetsError = h('p', { class: 'field-error', id: newId('targets-err') });
    this.targetsBox = h(
      'fieldset',
      { class: 'targets', 'aria-describedby': this.targetsError.id },
      h('legend', { text: 'Target modules' }),
      h('p', { class: 'hint', text: 'Load a model to see its modules.' }),
    );
    this.otherErrors = h('ul', { class: 'form-errors', role: 'alert' });
    const grid = h('div', { class: 'settings-grid' });
    for (const spec of MAIN) append(grid, this.field(spec));
    const moreGrid = h('div', { class: 'settings-grid' });
    for (const spec of MORE) append(moreGrid, this.field(spec));
    this.el = h(
      'form',
      { class: 'settings', 'aria-label': 'Training settings', novalidate: true },
      grid,
      this.targetsBox,
      this.targetsError,
      h('details', {}, h('summary', { text: 'Evaluation, samples and checkpoints' }), moreGrid),
      this.otherErrors,
    );
    this.el.addEventListener('submit', (e) => e.preventDefault());
  }

  private field(spec: FieldSpec): HTMLElement {
    const id = newId(`set-${spec.key}`);
    const error = h('p', { class: 'field-error', id: `${id}-err` });
    const help = h('small', { id: `${id}-help`, text: spec.help });
    const def = DEFAULT_SETTINGS[spec.key];
    let input: HTMLInputElement | HTMLSelectElement;
    const described = `${id}-help ${id}-err`;
    if (spec.kind === 'select') {
      input = h(
        'select',
        { id, 'aria-describedby': described },
        ...spec.options!.map((o) => h('option', { value: o, text: o })),
      );
      input.value = String(def);
    } else if (spec.kind === 'bool') {
      input = h('input', { id, type: 'checkbox', 'aria-describedby': described });
      input.checked = Boolean(def);
    } else if (spec.kind === 'text') {
      input = h('input', { id, type: 'text', value: String(def), 'aria-describedby': described });
    } else {
      input = h('input', {
        id,
        type: 'number',
        inputmode: spec.kind === 'int' ? 'numeric' : 'decimal',
        step: spec.step ?? '1',
        min: spec.min,
        max: spec.max,
        value: String(def),
        'aria-describedby': described,
      });
    }
    input.addEventListener('input', () => this.onChange());
    input.addEventListener('change', () => this.onChange());
    this.fields.push({ spec, input, error });
    const label = h('label', { for: id, text: spec.label });
    return h(
      'div',
      { class: `field ${spec.kind === 'bool' ? 'check' : ''}` },
      spec.kind === 'bool' ? h('span', { class: 'check-row' }, input, label) : label,
      spec.kind === 'bool' ? null : input,
      help,
      error,
    );
  }

  /** Shows the modules the loaded model's family can adapt (from the engine), with its defaults ticked. */
  setTargets(model: Pick<ModelSummary, 'family' | 'loraTargets' | 'defaultTargets'>): void {
    const { family, loraTargets, defaultTargets } = model;
    if (family === this.family) return;
    this.family = family;
    const legend = h('legend', { text: 'Target modules' });
    if (!loraTargets.length) {
      setChildren(this.targetsBox, legend, h('p', { class: 'hint', text: `No module list for the ${family} family.` }));
      this.targetBoxes = [];
      return;
    }
    this.targetBoxes = loraTargets.map((name) => {
      const cb = h('input', { type: 'checkbox', value: name, id: newId(`target-${name}`) });
      cb.checked = defaultTargets.includes(name);
      cb.addEventListener('change', () => this.onChange());
      return cb;
    });
    setChildren(
      this.targetsBox,
      legend,
      h('p', { class: 'hint', text: 'Layers that get an adapter; attention projections (q, v) are the usual start.' }),
      h(
        'div',
        { class: 'target-list' },
        ...this.targetBoxes.map((cb) =>
          h('span', { class: 'check-row' }, cb, h('label', { for: cb.id, text: cb.value })),
        ),
      ),
    );
  }

  /** The settings as typed; fields that do not parse are reported inline and left out. */
  read(): Partial<TrainSettings> {
    const out: Record<string, unknown> = {};
    this.localErrors = 0;
    for (const { spec, input, error } of this.fields) {
      error.textContent = '';
      input.removeAttribute('aria-invalid');
      if (spec.kind === 'bool') {
        out[spec.key] = (input as HTMLInputElement).checked;
      } else if (spec.kind === 'select' || spec.kind === 'text') {
        out[spec.key] = input.value;
      } else {
        const raw = input.value.trim();
        const v = Number(raw);
        if (raw === '' || !Number.isFinite(v)) {
          this.mark(input, error, `Enter a number for ${spec.label.toLowerCase()}.`);
          this.localErrors++;
          continue;
        }
        out[spec.key] = v;
      }
    }
    if (this.targetBoxes.length) out.targets = this.targetBoxes.filter((b) => b.checked).map((b) => b.value);
    return out as Partial<TrainSettings>;
  }

  /**
   * Puts the engine's validation errors next to their fields (errors without a field, such as a failed
   * request, go in the list under the form); returns how many there are in all.
   */
  showErrors(errors: { field: SettingsError['field'] | null; message: string }[]): number {
    setChildren(this.otherErrors);
    this.targetsError.textContent = '';
    for (const { field, message } of errors) {
      const f = this.fields.find((x) => x.spec.key === field);
      if (f) this.mark(f.input, f.error, message);
      else if (field === 'targets') this.targetsError.textContent = message;
      else append(this.otherErrors, h('li', { text: message }));
    }
    return errors.length + this.localErrors;
  }

  get hasLocalErrors(): boolean {
    return this.localErrors > 0;
  }

  private mark(input: HTMLElement, error: HTMLElement, msg: string): void {
    error.textContent = error.textContent ? `${error.textContent} ${msg}` : msg;
    input.setAttribute('aria-invalid', 'true');
  }

  setDisabled(disabled: boolean): void {
    for (const el of this.el.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select'))
      el.disabled = disabled;
  }
}
