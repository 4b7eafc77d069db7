/**
 * The fast test worker: speaks the worker protocol and opens the VM's disks through the real worker's disk
 * code (worker-disks.ts: online checkpoints and merges), but instead of a guest it runs a writer that fills
 * numbered 4 KiB records into a ring of slots of the first disk, flushing after each and noting the last
 * acknowledged record in a file. The VM's command line (JSON, WriterOptions) says where.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { WorkerDisks, type PausableVm } from '../../src/vmms/worker-disks.js';
import { WorkerFiles } from '../../src/vmms/worker-files.js';
import { writeSavedStateFile } from '../../src/platform/saved-state.js';
import type { Disk } from '../../src/storage/disk.js';
import type { HardwareConfig } from '../../src/platform/hardware.js';
import type { FromWorker, ToWorker, WorkerOp, WorkerStartConfig } from '../../src/vmms/worker-protocol.js';
import { RECORD, recordBytes } from './disk-writer-records.js';

export interface WriterOptions { ackFile: string; regionStart: number; slots: number }

const send = (m: FromWorker): void => { if (process.connected) process.send!(m); };

let name = '';
let disks = new WorkerDisks(() => name);
let disk: Disk | null = null;
let opts: WriterOptions | null = null;
let stopping = false;
let paused = false;
let inflight: Promise<void> | null = null;
let wake: (() => void) | null = null;
let ackFd = -1;
let acked = -1;

/** Notes record `i` as acknowledged (the file survives a killed process: the page cache keeps it). */
function ack(i: number): void {
  acked = i;
  const b = Buffer.from(`${i}\n`.padEnd(16, ' '));
  writeSync(ackFd, b, 0, b.length, 0);
}

async function writer(): Promise<void> {
  for (let i = 0; !stopping; i++) {
    while (paused && !stopping) await new Promise<void>((r) => { wake = r; });
    if (stopping) break;
    const slot = i % opts!.slots;
    inflight = (async () => {
      await disk!.write(opts!.regionStart + slot * RECORD, recordBytes(i, slot));
      await disk!.flush();
    })();
    await inflight;
    inflight = null;
    ack(i);
  }
}

const vm: PausableVm & { config: { hardware?: HardwareConfig } } = {
  get isPaused() { return paused; },
  pause() { paused = true; },
  resume() { paused = false; wake?.(); wake = null; },
  async quiesce() { await inflight?.catch(() => undefined); },
  saveState() { return Buffer.from(`fake saved state of ${name}, ${acked + 1} records`); },
  config: {},
};

async function stop(reason: string): Promise<void> {
  stopping = true;
  wake?.();
  await inflight?.catch(() => undefined);
  await disk?.close().catch(() => undefined);
  if (ackFd >= 0) { fsyncSync(ackFd); closeSync(ackFd); }
  if (process.connected) process.send!({ t: 'exit', code: 0, reason } satisfies FromWorker, () => process.exit(0));
  else process.exit(0);
}

async function start(c: WorkerStartConfig): Promise<void> {
  name = c.name;
  if (c.fileChannel !== undefined) disks = new WorkerDisks(() => name, new WorkerFiles(c.fileChannel));
  vm.config.hardware = structuredClone(c.hardware);
  try {
    opts = JSON.parse(c.cmdline) as WriterOptions;
    const d = c.hardware.drives.find((x) => x.kind === 'disk' && x.path && !x.readOnly);
    if (!d) throw new Error('the fast test worker needs a writable disk');
    disk = await disks.openVmDisk(d.path!, false);
    ackFd = openSync(opts.ackFile, 'w');
  } catch (e) {
    send({ t: 'failed', error: (e as Error).message });
    process.exit(0);
  }
  send({ t: 'started', backend: 'disk-writer' });
  send({ t: 'log', message: `worker pid ${process.pid}` });
  void writer().catch((e: unknown) => send({ t: 'log', message: `writer failed: ${(e as Error).message}` }));
}

async function handle(r: WorkerOp): Promise<unknown> {
  switch (r.op) {
    case 'pause': vm.pause(); return null;
    case 'resume': vm.resume(); return null;
    case 'checkpoint': writeSavedStateFile(r.path, vm.saveState()); return { bytes: 1 };
    case 'checkpointDetach': return disks.checkpointDetach(vm, r.path, r.disks, writeSavedStateFile);
    case 'checkpointAttach': return disks.checkpointAttach(vm, r.swaps);
    case 'mergeCopy': return disks.mergeCopy(r.child, r.parent);
    case 'mergeFinish': return disks.mergeFinish(vm, r.child, r.commit);
    case 'vssFreeze': throw new Error('the fast test worker has no guest to freeze');
    default: throw new Error(`the fast test worker does not do ${r.op}`);
  }
}

process.on('message', (m: ToWorker) => {
  if (m.t === 'start') void start(m.config);
  else if (m.t === 'req') {
    if (m.req.op === 'turnOff') { void stop(m.req.reason); return; }
    disks.files.with(m.files, () => handle(m.req)).then((value) => send({ t: 'res', id: m.id, ok: true, value }),
      (e: unknown) => send({ t: 'res', id: m.id, ok: false, error: (e as Error).message, code: 'WorkerError' }));
  }
});
process.on('disconnect', () => { void stop('management service disconnected'); });
