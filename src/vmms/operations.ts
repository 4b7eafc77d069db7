/**
 * Long-running VHD work (create, resize, merge, convert, optimize) as operation resources: the API answers
 * 202 with an operation at once, and clients poll GET /operations/{id} for percent, rate and time left, then
 * the result or the error. The same ProgressMeter draws the CLI's progress line.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { VmmsError } from './errors.js';

export interface OperationView {
  id: string;
  kind: string;
  /** The file it works on. */
  path: string;
  state: 'Running' | 'Completed' | 'Failed';
  percentComplete: number;
  bytesDone: number;
  bytesTotal: number;
  bytesPerSecond: number | null;
  secondsRemaining: number | null;
  started: string;
  finished: string | null;
  result: unknown;
  error: { code: string; message: string } | null;
}

/** Percent, rate and time left from (done, total) samples. */
export class ProgressMeter {
  done = 0;
  total = 0;
  private readonly startedAt = Date.now();
  update(done: number, total: number): void { this.done = done; this.total = total; }
  get percent(): number { return this.total > 0 ? Math.min(100, Math.floor(this.done / this.total * 100)) : 0; }
  get rate(): number | null {
    const s = (Date.now() - this.startedAt) / 1000;
    return s > 0.2 && this.done > 0 ? this.done / s : null;
  }
  get secondsLeft(): number | null {
    const r = this.rate;
    return r ? Math.ceil((this.total - this.done) / r) : null;
  }
  /** "42% 118.3 MB/s 00:00:07 left" */
  line(): string {
    const r = this.rate;
    const left = this.secondsLeft;
    const t = left === null ? '--:--:--' : [Math.floor(left / 3600), Math.floor(left / 60) % 60, left % 60].map((v) => String(v).padStart(2, '0')).join(':');
    return `${String(this.percent).padStart(3)}% ${r === null ? '' : `${(r / 1048576).toFixed(1)} MB/s `}${t} left`;
  }
}

const KEEP_FINISHED = 100;

export class Operations extends EventEmitter {
  private readonly ops = new Map<string, { view: OperationView; meter: ProgressMeter }>();

  /** Starts `work` now; it reports through the `progress` callback it is given. */
  start(kind: string, path: string, work: (progress: (done: number, total: number) => void) => Promise<unknown>): OperationView {
    const meter = new ProgressMeter();
    const view: OperationView = {
      id: randomUUID(), kind, path, state: 'Running', percentComplete: 0, bytesDone: 0, bytesTotal: 0, bytesPerSecond: null,
      secondsRemaining: null, started: new Date().toISOString(), finished: null, result: null, error: null,
    };
    this.ops.set(view.id, { view, meter });
    const finish = (patch: Partial<OperationView>): void => {
      Object.assign(view, patch, { finished: new Date().toISOString(), secondsRemaining: 0 });
      this.prune();
      this.emit('finished', this.snapshot(view.id));
    };
    void work((d, t) => meter.update(d, t)).then(
      (result) => finish({ state: 'Completed', percentComplete: 100, bytesDone: meter.total, bytesTotal: meter.total, result: result ?? null }),
      (e: unknown) => finish({ state: 'Failed', error: { code: e instanceof VmmsError ? e.code : 'OperationFailed', message: e instanceof Error ? e.message : String(e) } }),
    );
    return this.snapshot(view.id);
  }

  private snapshot(id: string): OperationView {
    const o = this.ops.get(id)!;
    if (o.view.state === 'Running') {
      Object.assign(o.view, { percentComplete: o.meter.percent, bytesDone: o.meter.done, bytesTotal: o.meter.total, bytesPerSecond: o.meter.rate === null ? null : Math.round(o.meter.rate), secondsRemaining: o.meter.secondsLeft });
    }
    return structuredClone(o.view);
  }

  get(id: string): OperationView {
    if (!this.ops.has(id)) throw new VmmsError(404, 'OperationNotFound', `no operation '${id}' (finished operations are kept for a while only; GET /operations lists them)`);
    return this.snapshot(id);
  }

  list(): OperationView[] { return [...this.ops.keys()].map((id) => this.snapshot(id)); }

  /** Resolves with the operation once it has finished. */
  wait(id: string): Promise<OperationView> {
    const v = this.get(id);
    if (v.state !== 'Running') return Promise.resolve(v);
    return new Promise((resolve) => {
      const on = (f: OperationView): void => { if (f.id === id) { this.off('finished', on); resolve(f); } };
      this.on('finished', on);
    });
  }

  private prune(): void {
    const finished = [...this.ops.values()].filter((o) => o.view.state !== 'Running');
    for (const o of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.ops.delete(o.view.id);
  }
}
