// Area 2: training. Settings (checked by the engine's `estimate`), the run's buttons driven by the
// engine's `state` events, live progress, the loss chart and periodic samples, and the offer to resume
// a run whose checkpoint survived a reload.

import type { Replies, TrainSettings } from '../worker/protocol';
import { LossChart } from './chart';
import { StatusLine, defList, errorText, fmtCount, fmtSeconds, h, setChildren } from './dom';
import { fmtBytes } from '../util/format';
import { showMemory } from './model-panel';
import { SettingsForm } from './settings-form';
import type { Studio } from './state';

/** The settings form and what the engine's `estimate` says about them (trainable parameters, memory). */
function settingsSection(studio: Studio, onChecked: () => void) {
  const estimateStatus = new StatusLine();
  const estimateBox = h('div', { class: 'estimate', 'aria-live': 'polite' });
  const memoryBox = h('div', { class: 'memory' });
  let errors = 0;
  let estimating = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const form = new SettingsForm(() => {
    clearTimeout(timer);
    timer = setTimeout(() => void estimate(), 250);
  });

  async function estimate(): Promise<void> {
    const settings = form.read();
    if (!studio.model || studio.modelLoading) {
      errors = form.showErrors([]);
      onChecked();
      return;
    }
    const ticket = ++estimating;
    try {
      const r = await studio.client.request({ type: 'estimate', settings });
      if (ticket !== estimating) return; // a newer estimate is on its way
      estimateStatus.clear();
      errors = form.showErrors(r.errors);
      setChildren(
        estimateBox,
        defList([
          ['Trainable parameters', `${fmtCount(r.trainableParams)} (${(100 * r.share).toFixed(2)}% of the model)`],
          ['Settings', r.errors.length || form.hasLocalErrors ? `${errors} to fix` : 'valid'],
        ]),
      );
      if (r.memory) showMemory(memoryBox, r.memory, 'Memory estimate for these settings');
      else setChildren(memoryBox);
    } catch (e) {
      if (ticket !== estimating) return;
      // A failed estimate still blocks Start: its message goes in the form's list of errors.
      const msg = errorText(e);
      errors = form.showErrors([{ field: null, message: msg }]);
      estimateStatus.set(`Could not check the settings: ${msg}`, 'error');
    }
    onChecked();
  }

  const el = h(
    'div',
    { class: 'panel' },
    h('h3', { text: 'Settings' }),
    form.el,
    estimateStatus.el,
    estimateBox,
    memoryBox,
  );
  return {
    el,
    form,
    estimate,
    /** Settings problems found by the last check (0: the run may start). */
    get errors() {
      return errors;
    },
  };
}

/** Live progress of a run: the step counter, statistics, the loss chart, samples and checkpoint notes. */
function runProgress(studio: Studio) {
  const progress = h('progress', { max: 1, value: 0, 'aria-label': 'Training progress' });
  const progressText = h('span', { class: 'progress-text', text: 'Not started' });
  const stats = h('div', { class: 'train-stats', 'aria-live': 'off' });
  const chart = new LossChart('Loss chart: training loss per step and validation loss');
  const samples = h('ol', { class: 'samples', 'aria-label': 'Sample generations' });
  const checkpointNote = h('p', { class: 'hint', 'aria-live': 'polite' });
  let lastVal: number | null = null;

  studio.client.on((e) => {
    switch (e.type) {
      case 'step':
        progress.max = e.totalSteps;
        progress.value = e.step;
        progressText.textContent = `Step ${e.step} of ${e.totalSteps}`;
        setChildren(
          stats,
          defList([
            ['Loss', e.loss.toFixed(4)],
            ['Validation loss', lastVal === null ? '–' : lastVal.toFixed(4)],
            ['ETA', fmtSeconds(e.etaSec)],
            ['Tokens/s', e.tokensPerSec.toFixed(0)],
            ['Step time', `${e.stepMs.toFixed(0)} ms`],
            ['Learning rate', e.lr.toExponential(2)],
            ['Gradient norm', e.gradNorm.toFixed(3)],
            ['GPU memory', `${fmtBytes(e.liveBytes, 'short')} live, ${fmtBytes(e.peakBytes, 'short')} peak`],
          ]),
        );
        chart.addTrain(e.step, e.loss);
        studio.runSteps = e.step;
        break;
      case 'eval':
        lastVal = e.valLoss;
        chart.addVal(e.step, e.valLoss);
        break;
      case 'sample':
        samples.prepend(
          h(
            'li',
            {},
            h('span', { class: 'sample-step', text: `Step ${e.step}` }),
            h('span', { class: 'sample-prompt', text: e.prompt }),
            h('span', { class: 'sample-text', text: e.text }),
          ),
        );
        break;
      case 'checkpoint':
        checkpointNote.textContent = e.error ? `${e.error} Training goes on.` : `Checkpoint saved at step ${e.step}.`;
        checkpointNote.dataset.level = e.error ? 'error' : '';
        break;
    }
  });

  return {
    /** The elements below the run's buttons, in page order. */
    els: [
      h('div', { class: 'progress-row' }, progress, progressText),
      stats,
      checkpointNote,
      h('h4', { text: 'Loss' }),
      chart.el,
      h('h4', { text: 'Samples' }),
      samples,
    ],
    /** A new run starts with an empty chart and no samples; every run (also a resumed one) with no checkpoint note. */
    reset(newRun: boolean): void {
      checkpointNote.textContent = '';
      if (!newRun) return;
      chart.reset();
      samples.replaceChildren();
      lastVal = null;
    },
  };
}

/** The offer to resume (or discard) a run whose checkpoint survived a reload. */
function resumeOffer(studio: Studio, onResume: () => void) {
  const text = h('p');
  const resumeBtn = h('button', { type: 'button', text: 'Resume run' });
  const discardBtn = h('button', { type: 'button', text: 'Discard' });
  const status = new StatusLine();
  const el = h(
    'div',
    { class: 'offer', role: 'region', 'aria-label': 'Saved run' },
    text,
    h('div', { class: 'buttons' }, resumeBtn, discardBtn),
    status.el,
  );
  el.hidden = true;
  resumeBtn.addEventListener('click', onResume);
  discardBtn.addEventListener('click', async () => {
    try {
      await studio.client.request({ type: 'discardCheckpoint' });
      el.hidden = true;
    } catch (e) {
      status.set(`Could not discard the checkpoint: ${errorText(e)}`, 'error');
    }
  });

  function show(info: Replies['checkpointInfo'], why: string): void {
    if (!info?.exists) return;
    const saved = info.savedAt ? new Date(info.savedAt).toLocaleString() : 'earlier';
    text.textContent = `${why}A run was saved at step ${info.step} of ${info.totalSteps} (model ${info.modelId}, dataset ${info.dataset}, ${saved}). The dataset and settings are saved with it: with the same model loaded, resume it or discard it.`;
    resumeBtn.textContent = `Resume run from step ${info.step}`;
    resumeBtn.hidden = false;
    status.clear();
    el.hidden = false;
  }

  /** Asks the engine for the saved run; a damaged one is shown with its error and only Discard. */
  async function look(why = ''): Promise<void> {
    if (!studio.engine) return;
    try {
      show(await studio.client.request({ type: 'checkpointInfo' }), why);
    } catch (e) {
      text.textContent = '';
      resumeBtn.hidden = true;
      status.set(`Could not read the saved run: ${errorText(e)}`, 'error');
      el.hidden = false;
    }
  }

  studio.on('engine', () => void look());
  studio.client.on((e) => {
    if (e.type === 'deviceLost') void look('The GPU device was lost during the run. ');
  });
  return { el, resumeBtn };
}

/** Pause, resume and stop: each asks the engine and says what happened. */
function controlButtons(studio: Studio, status: StatusLine) {
  const control = (type: 'pause' | 'resume' | 'stop', doing: string) => async () => {
    try {
      const r = await studio.client.request({ type });
      if (type === 'pause') status.set(`Paused after step ${r.step} (a step already running finishes first).`, 'info');
      else if (type === 'resume') status.set(`Resumed at step ${r.step}.`, 'busy');
      else status.set(`Stopping after step ${r.step}…`, 'busy');
    } catch (e) {
      status.set(`Could not ${doing}: ${errorText(e)}`, 'error');
    }
  };
  const pause = h('button', { type: 'button', text: 'Pause' });
  const resume = h('button', { type: 'button', text: 'Resume' });
  const stop = h('button', { type: 'button', text: 'Stop' });
  pause.addEventListener('click', control('pause', 'pause'));
  resume.addEventListener('click', control('resume', 'resume'));
  stop.addEventListener('click', control('stop', 'stop'));
  return { pause, resume, stop };
}

/** Why Start is disabled while no run is going ('' when it may start). */
function notReadyReason(studio: Studio, settingsErrors: number): string {
  if (!studio.engine) return 'The engine is not running.';
  if (studio.modelLoading) return 'Waiting for the model to load.';
  if (!studio.model) return 'Load a model first.';
  if (!studio.dataset) return 'Choose a dataset first.';
  if (settingsErrors) return 'Fix the settings marked above.';
  return '';
}

export function trainPanel(studio: Studio): HTMLElement {
  const status = new StatusLine('run-status');
  const startBtn = h('button', { type: 'button', class: 'primary', text: 'Start training' });
  const readyHint = h('p', { class: 'hint', id: 'start-hint' });
  startBtn.setAttribute('aria-describedby', readyHint.id);
  const controls = controlButtons(studio, status);
  const progress = runProgress(studio);
  const settings = settingsSection(studio, updateButtons);
  const offer = resumeOffer(studio, () => void run(true));
  let runPending = false;

  function updateButtons(): void {
    const st = studio.trainState;
    const why = notReadyReason(studio, settings.errors);
    readyHint.textContent = st === 'idle' ? why : '';
    startBtn.disabled = st !== 'idle' || !!why || runPending;
    controls.pause.disabled = st !== 'training';
    controls.resume.disabled = st !== 'paused';
    controls.stop.disabled = st !== 'training' && st !== 'paused';
    settings.form.setDisabled(st !== 'idle');
    // The checkpoint carries its dataset and settings: only the model must be loaded.
    offer.resumeBtn.disabled = st !== 'idle' || !studio.model || runPending;
  }

  async function run(resume: boolean): Promise<void> {
    const s: Partial<TrainSettings> = settings.form.read();
    runPending = true;
    progress.reset(!resume);
    offer.el.hidden = true;
    studio.runSteps = 0;
    studio.emit('run');
    updateButtons();
    status.set(
      resume ? 'Resuming the saved run…' : 'Starting: building the adapter and compiling GPU kernels…',
      'busy',
    );
    try {
      const r = await studio.client.request({ type: 'train', settings: s, resume });
      studio.runSteps = r.step;
      status.set(
        r.reason === 'done'
          ? `Finished: ${r.step} steps. Save or export the adapter below.`
          : `Stopped at step ${r.step}.`,
        'ok',
      );
    } catch (e) {
      status.set(`Training failed: ${errorText(e)}`, 'error');
    } finally {
      runPending = false;
      studio.emit('run');
      updateButtons();
    }
  }
  startBtn.addEventListener('click', () => void run(false));

  studio.client.on((e) => {
    if (e.type !== 'state') return;
    studio.trainState = e.state;
    updateButtons();
    studio.emit('train');
  });
  studio.on('model', () => {
    if (studio.model) settings.form.setTargets(studio.model);
    void settings.estimate();
  });
  studio.on('dataset', updateButtons);
  studio.on('engine', updateButtons);
  updateButtons();

  return h(
    'section',
    { class: 'area', id: 'train', 'aria-labelledby': 'train-h' },
    h('h2', { id: 'train-h', text: '2. Train' }),
    offer.el,
    h(
      'div',
      { class: 'columns' },
      settings.el,
      h(
        'div',
        { class: 'panel' },
        h('h3', { text: 'Run' }),
        h(
          'div',
          { class: 'buttons', role: 'group', 'aria-label': 'Training controls' },
          startBtn,
          controls.pause,
          controls.resume,
          controls.stop,
        ),
        readyHint,
        status.el,
        ...progress.els,
      ),
    ),
  );
}
