// Loss charts with uPlot: the live training/validation chart and the small curves on gallery cards.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const TRAIN_COLOR = '#2563eb';
const VAL_COLOR = '#d97706';

/** The live chart: training loss at every step, validation loss at evaluation steps. */
export class LossChart {
  readonly el: HTMLDivElement;
  private plot: uPlot | null = null;
  // uPlot wants aligned columns: x, train, val (null where a series has no point at that step).
  private steps: number[] = [];
  private train: (number | null)[] = [];
  private val: (number | null)[] = [];
  private pending = false;

  constructor(label: string) {
    this.el = document.createElement('div');
    this.el.className = 'loss-chart';
    this.el.setAttribute('role', 'img');
    this.el.setAttribute('aria-label', label);
    this.el.dataset.points = '0';
  }

  /** Creates the plot once the element is in the document (uPlot measures nothing, but sizes do). */
  private ensure(): uPlot {
    if (this.plot) return this.plot;
    const width = Math.max(280, this.el.clientWidth || 560);
    this.plot = new uPlot(
      {
        width,
        height: 220,
        scales: { x: { time: false } },
        axes: [{ label: 'step' }, { label: 'loss' }],
        series: [
          { label: 'step' },
          { label: 'training loss', stroke: TRAIN_COLOR, width: 1.5, spanGaps: true },
          { label: 'validation loss', stroke: VAL_COLOR, width: 2, spanGaps: true, points: { show: true, size: 6 } },
        ],
        legend: { show: true },
      },
      [[], [], []],
      this.el,
    );
    new ResizeObserver(() => {
      const w = this.el.clientWidth;
      if (this.plot && w > 0 && Math.abs(w - this.plot.width) > 4) this.plot.setSize({ width: w, height: 220 });
    }).observe(this.el);
    return this.plot;
  }

  reset(): void {
    this.steps = [];
    this.train = [];
    this.val = [];
    this.el.dataset.points = '0';
    this.redraw();
  }

  addTrain(step: number, loss: number): void {
    this.put(step, loss, this.train, this.val);
  }

  addVal(step: number, loss: number): void {
    this.put(step, loss, this.val, this.train);
  }

  private put(step: number, v: number, into: (number | null)[], other: (number | null)[]): void {
    let i = this.steps.indexOf(step);
    if (i < 0) {
      // Steps arrive in order; a resumed run may repeat the last one, which indexOf catches.
      i = this.steps.length;
      this.steps.push(step);
      into.push(null);
      other.push(null);
    }
    into[i] = v;
    this.el.dataset.points = String(this.steps.length);
    this.redraw();
  }

  /** At most one redraw per animation frame, however fast steps arrive. */
  private redraw(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.ensure().setData([this.steps, this.train, this.val] as uPlot.AlignedData);
    });
  }
}

/** A small static curve for a gallery card (no axes labels, no legend). */
export function smallCurve(
  train: { step: number; loss: number }[],
  val: { step: number; loss: number }[],
  label: string,
): HTMLElement {
  const el = document.createElement('div');
  el.className = 'small-curve';
  el.setAttribute('role', 'img');
  el.setAttribute('aria-label', label);
  if (!train.length && !val.length) {
    el.textContent = 'no loss curve';
    return el;
  }
  const steps = [...new Set([...train.map((p) => p.step), ...val.map((p) => p.step)])].sort((a, b) => a - b);
  const t = new Map(train.map((p) => [p.step, p.loss]));
  const v = new Map(val.map((p) => [p.step, p.loss]));
  new uPlot(
    {
      width: 220,
      height: 80,
      scales: { x: { time: false } },
      legend: { show: false },
      cursor: { show: false },
      axes: [{ show: false }, { size: 36, font: '10px sans-serif' }],
      series: [{}, { stroke: TRAIN_COLOR, width: 1, spanGaps: true }, { stroke: VAL_COLOR, width: 1, spanGaps: true }],
    },
    [steps, steps.map((s) => t.get(s) ?? null), steps.map((s) => v.get(s) ?? null)] as uPlot.AlignedData,
    el,
  );
  return el;
}
