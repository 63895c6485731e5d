// Small DOM helpers for the studio page.
//
// No UI framework: the page is one screen of forms, lists and two charts, so plain DOM calls keep it
// small, need no build-time JSX, and leave fewer moving parts between the code and what a person sees.
// Every piece of text from files, metadata or the engine goes through textContent (never innerHTML).

type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;
type Child = Node | string | null | undefined | false;

/** h('button', { type: 'button', onclick: f }, 'Start') -> <button type="button">Start</button> */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v as EventListener);
    else if (k === 'class') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
}

/** Replaces an element's children. */
export function setChildren(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

let uid = 0;
/** A fresh element id, for label/for and aria-describedby pairs. */
export function newId(prefix: string): string {
  return `${prefix}-${++uid}`;
}

/** A status line (role=status, polite) whose text and level change; 'error' lines are alerts. */
export class StatusLine {
  readonly el: HTMLParagraphElement;
  constructor(cls = '') {
    this.el = h('p', { class: `status ${cls}`, role: 'status', 'aria-live': 'polite' });
    this.el.hidden = true;
  }
  set(text: string, level: 'info' | 'ok' | 'warn' | 'error' | 'busy' = 'info'): void {
    this.el.textContent = text;
    this.el.dataset.level = level;
    this.el.setAttribute('role', level === 'error' ? 'alert' : 'status');
    this.el.hidden = !text;
  }
  clear(): void {
    this.set('');
  }
}

/** 1234567 -> "1.23 M" */
export function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '–';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** An error's message as a sentence (ends with a full stop, so more text can follow it). */
export function errorText(e: unknown): string {
  const msg = (e instanceof Error ? e.message : String(e)).trim();
  return /[.!?)]$/.test(msg) ? msg : `${msg}.`;
}

/**
 * "Could not <verb> <what>: <error>". The engine's errors name the file or repo they are about, so when
 * the error already holds <what> it is said once: "Could not read: "data.jsonl", line 2: ...".
 */
export function couldNot(verb: string, what: string, e: unknown): string {
  const msg = errorText(e);
  return msg.includes(what) ? `Could not ${verb}: ${msg}` : `Could not ${verb} ${what}: ${msg}`;
}

/** A definition list from [term, value] pairs. */
export function defList(rows: [string, string][], cls = 'facts'): HTMLDListElement {
  const dl = h('dl', { class: cls });
  for (const [k, v] of rows) append(dl, h('dt', { text: k }), h('dd', { text: v }));
  return dl;
}

/** Saves bytes as a file through a Blob URL (revoked once the download has started). */
export function downloadBytes(bytes: Uint8Array, fileName: string, mime = 'application/zip'): void {
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: mime }));
  const a = h('a', { href: url, download: fileName });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
