/**
 * The writable disks of a VM's worker and what checkpoints do to them while the guest runs:
 * - online checkpoint: pause, flush and close the files, continue on the new differencing children;
 * - online merge (deleting a checkpoint of a running VM): the child the guest writes is copied into its
 *   parent beside the guest's I/O; writes that land meanwhile are copied again (they are recorded when they
 *   complete); at the end the disk's I/O is held for the last few ranges, the service records the switch
 *   durably, and the worker continues on the parent. No write is lost: until the service has recorded the
 *   switch the guest's writes go to the child (and the parent is a superset copy of it), and after it every
 *   write the guest saw complete is in the parent, flushed.
 * The worker holds the disk locks, so the merge must run here, on the worker's own handles.
 * Files go through `files` (worker-files.ts): an isolated worker writes a checkpoint's new child or a merge's
 * parent through descriptors the service granted with the request.
 */
import { realpathSync } from 'node:fs';
import { openDisk, VhdxDisk } from '../storage/open.js';
import { SwappableDisk } from '../storage/swappable-disk.js';
import { ofdLock } from '../storage/host-io.js';
import type { Disk } from '../storage/disk.js';
import type { HardwareConfig } from '../platform/hardware.js';
import { WorkerFiles } from './worker-files.js';

/** What the disk work needs of the running partition (the real one, or the fast test worker's stand-in). */
export interface PausableVm {
  readonly isPaused: boolean;
  pause(): void;
  resume(): void;
  /** Waits for the disk I/O the guest started. */
  quiesce(): Promise<void>;
  saveState(): Uint8Array;
  readonly config: { hardware?: HardwareConfig };
}

/** Granule of the merge's record of ranges written meanwhile. */
const DIRTY_CHUNK = 256 * 1024;
const COPY_PIECE = 1024 * 1024;
/** Copy rounds beside the running guest before its I/O is held for the rest. */
const MAX_ROUNDS = 8;
/** Few enough ranges left to copy them with the guest's disk I/O held. */
const HOLD_BELOW_CHUNKS = 16;

interface MergeJob { child: string; parent: string; s: SwappableDisk; src: VhdxDisk; dst: VhdxDisk; parentFd: number | undefined; dirty: Set<number>; held: boolean }

const real = (p: string): string => { try { return realpathSync(p); } catch { return p; } };

export class WorkerDisks {
  /** The VM's writable disks by current file. */
  private readonly swappable = new Map<string, SwappableDisk>();
  /** Whether the guest was paused already when an online checkpoint began (it is left so afterwards). */
  private pausedBeforeCheckpoint: boolean | null = null;
  private readonly merges = new Map<string, MergeJob>();

  constructor(private readonly vmName: () => string, readonly files: WorkerFiles = new WorkerFiles(null)) {}

  private open(path: string): Promise<Disk> { return openDisk(path, { purpose: `VM ${this.vmName()}`, openFile: this.files.openFile, hasFile: this.files.hasFile }); }

  /** The partition's openDisk: writable disks become swappable. */
  readonly openVmDisk = async (path: string, readOnly: boolean): Promise<Disk> => {
    const d = await openDisk(path, { readOnly, purpose: `VM ${this.vmName()}`, openFile: this.files.openFile, hasFile: this.files.hasFile });
    if (readOnly) return d;
    const s = new SwappableDisk(d);
    this.swappable.set(path, s);
    return s;
  };

  private rename(p: PausableVm, s: SwappableDisk, from: string, to: string): void {
    this.swappable.delete(from);
    this.swappable.set(to, s);
    // The partition's description follows, so a later save and restore names the new file.
    for (const d of p.config.hardware?.drives ?? []) if (d.kind === 'disk' && d.path === from) d.path = to;
  }

  async checkpointDetach(p: PausableVm, path: string | null, disks: string[], writeState: (path: string, b: Uint8Array) => void): Promise<{ bytes: number }> {
    if (this.pausedBeforeCheckpoint !== null) throw new Error('another checkpoint is under way');
    if (this.merges.size) throw new Error('a checkpoint merge is under way');
    const targets = disks.map((d) => {
      const s = this.swappable.get(d);
      if (!s) throw new Error(`the VM has no writable disk ${d} open`);
      return s;
    });
    this.pausedBeforeCheckpoint = p.isPaused;
    p.pause();
    const done: SwappableDisk[] = [];
    try {
      await p.quiesce(); // disk I/O the guest started lands in the saved state and in the checkpoint's files
      let bytes = 0;
      if (path) { const b = p.saveState(); writeState(path, b); bytes = b.length; }
      for (const t of targets) { await t.detach(); done.push(t); }
      return { bytes };
    } catch (e) {
      for (const t of done) t.attach(await this.open(t.path));
      if (!this.pausedBeforeCheckpoint) p.resume();
      this.pausedBeforeCheckpoint = null;
      throw e;
    }
  }

  async checkpointAttach(p: PausableVm, swaps: { from: string; to: string }[]): Promise<null> {
    if (this.pausedBeforeCheckpoint === null) throw new Error('no checkpoint is under way');
    const moved: { s: SwappableDisk; from: string }[] = [];
    try {
      for (const w of swaps) {
        const s = this.swappable.get(w.from);
        if (!s || !s.detached) throw new Error(`disk ${w.from} is not waiting for a new file`);
        s.attach(await this.open(w.to));
        this.rename(p, s, w.from, w.to);
        moved.push({ s, from: w.from });
      }
    } catch (e) {
      // Back onto the files the VM used before, so the guest carries on unchanged.
      for (const m of moved) {
        const now = m.s.path;
        await m.s.detach();
        m.s.attach(await this.open(m.from));
        this.rename(p, m.s, now, m.from);
      }
      for (const x of this.swappable.values()) if (x.detached) x.attach(await this.open(x.path));
      if (!this.pausedBeforeCheckpoint) p.resume();
      this.pausedBeforeCheckpoint = null;
      throw e;
    }
    if (!this.pausedBeforeCheckpoint) p.resume();
    this.pausedBeforeCheckpoint = null;
    return null;
  }

  /**
   * Online merge, step 1: copies what `child` (a disk the guest writes) holds itself into its parent `parent`
   * while the guest runs, then holds the disk's I/O, copies the last ranges written meanwhile and flushes the
   * parent. The guest's disk requests wait from then until mergeFinish.
   */
  async mergeCopy(child: string, parent: string): Promise<{ bytes: number; rounds: number }> {
    if (this.pausedBeforeCheckpoint !== null || this.merges.size) throw new Error('another checkpoint operation is under way');
    const s = this.swappable.get(child);
    if (!s) throw new Error(`the VM has no writable disk ${child} open`);
    const src = s.current;
    if (!(src instanceof VhdxDisk) || !(src.parent instanceof VhdxDisk) || real(src.parent.path) !== real(parent)) {
      throw new Error(`${child} is not a differencing disk of ${parent}`);
    }
    // The parent becomes ours alone: nobody else may read it while it changes (our own read-only handle,
    // the child's parent, is upgraded; it goes away with the child).
    const parentFd = src.parent.file.fd;
    if (parentFd !== undefined && ofdLock(parentFd, true) === 'busy') {
      throw new Error(`${parent} is open in another process (a differencing disk of it, or a reader); close it to merge`);
    }
    let dst: VhdxDisk;
    try {
      dst = await VhdxDisk.open(parent, { lock: false, purpose: `checkpoint merge of VM ${this.vmName()}`, openFile: this.files.openFile, hasFile: this.files.hasFile });
    } catch (e) {
      if (parentFd !== undefined) ofdLock(parentFd, false);
      throw e;
    }
    const job: MergeJob = { child, parent, s, src, dst, parentFd, dirty: new Set(), held: false };
    this.merges.set(child, job);
    s.onWrite = (off, len) => { for (let c = Math.floor(off / DIRTY_CHUNK); c * DIRTY_CHUNK < off + len; c++) job.dirty.add(c); };
    try {
      let bytes = 0;
      for (let b = 0; b < src.geometry.payloadBlocks; b++) {
        for (const [off, len] of await src.ownRuns(b)) bytes += await this.copy(job, off, len);
      }
      let rounds = 1;
      for (; rounds <= MAX_ROUNDS && job.dirty.size > HOLD_BELOW_CHUNKS; rounds++) bytes += await this.copyDirty(job);
      await s.hold();
      job.held = true;
      bytes += await this.copyDirty(job);
      await dst.flush();
      return { bytes, rounds };
    } catch (e) {
      await this.abort(job);
      throw e;
    }
  }

  private async copy(job: MergeJob, off: number, len: number): Promise<number> {
    for (let o = off; o < off + len; o += COPY_PIECE) {
      const n = Math.min(COPY_PIECE, off + len - o);
      const buf = new Uint8Array(n);
      await job.src.read(o, buf);
      await job.dst.write(o, buf);
    }
    return len;
  }

  private async copyDirty(job: MergeJob): Promise<number> {
    const chunks = [...job.dirty].sort((a, b) => a - b);
    job.dirty.clear();
    let bytes = 0;
    for (const c of chunks) {
      const off = c * DIRTY_CHUNK;
      bytes += await this.copy(job, off, Math.min(DIRTY_CHUNK, job.src.sizeBytes - off));
    }
    return bytes;
  }

  private async abort(job: MergeJob): Promise<void> {
    this.merges.delete(job.child);
    job.s.onWrite = null;
    await job.dst.close().catch(() => undefined);
    if (job.parentFd !== undefined) ofdLock(job.parentFd, false);
    if (job.held) job.s.unhold();
  }

  /**
   * Online merge, step 2. commit: the service has recorded that the VM uses the parent now; the worker closes
   * the child and continues on the parent. Otherwise the guest continues on the child, as before.
   */
  async mergeFinish(p: PausableVm, child: string, commit: boolean): Promise<null> {
    const job = this.merges.get(child);
    if (!job || !job.held) throw new Error(`no merge of ${child} is waiting to finish`);
    if (!commit) { await this.abort(job); return null; }
    this.merges.delete(child);
    job.s.onWrite = null;
    await job.dst.close();
    await job.s.detach(); // closes the child and with it the old handle on the parent
    let lastErr: unknown = null;
    // The parent's lock went with the child's handle: another opener may slip in for a moment, so retry.
    for (let i = 0; i < 20; i++) {
      try {
        job.s.attach(await this.open(job.parent));
        this.rename(p, job.s, job.child, job.parent);
        return null;
      } catch (e) { lastErr = e; await new Promise((r) => setTimeout(r, 50)); }
    }
    throw lastErr;
  }
}
