// The page-level banner: for problems that stop the engine as a whole (no WebGPU, device lost).
// Everything else is reported next to the control that caused it.

import { h, setChildren } from './dom';

export class Banner {
  readonly el = h('div', { class: 'banner', role: 'alert', 'aria-live': 'assertive' });
  constructor() {
    this.el.hidden = true;
  }
  show(title: string, detail: string, advice: string): void {
    setChildren(this.el, h('strong', { text: title }), ' ', h('span', { text: detail }), h('p', { text: advice }));
    this.el.hidden = false;
  }
}
