// The page's side of the worker interface: typed requests that resolve with the worker's reply, and
// an event callback. The page imports only this file and protocol.ts from the engine.

import type { Event, FromWorker, Replies, Request, ToWorker } from './protocol';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

export class EngineClient {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private listeners = new Set<(e: Event) => void>();

  constructor(private worker: Worker) {
    worker.onmessage = (m: MessageEvent<FromWorker>) => {
      const msg = m.data;
      if (msg.kind === 'event') {
        for (const f of this.listeners) f(msg.event);
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(new Error(msg.error));
    };
    worker.onerror = (e) => {
      const err = new Error(
        `The engine worker failed: ${e.message || 'unknown error'}. Reload the page; saved work is kept.`,
      );
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      for (const f of this.listeners) f({ type: 'fatal', message: err.message });
    };
  }

  /** Starts the engine worker (vite bundles it as a module worker). */
  static start(): EngineClient {
    return new EngineClient(new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' }));
  }

  on(f: (e: Event) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  request<R extends Request>(req: R): Promise<Replies[R['type']]> {
    const id = this.nextId++;
    const msg: ToWorker = { id, req };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage(msg);
    });
  }

  terminate(): void {
    this.worker.terminate();
  }
}
