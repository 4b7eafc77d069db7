/**
 * Checkpoints (Hyper-V's snapshots) of the management service: standard and production checkpoints with their
 * differencing disks, apply, delete (the disk merges into its neighbour, online while the VM runs), rename,
 * export and import. The VM state machine, the workers and the inventory stay the service's (VmmsService); this
 * class reaches them through `CheckpointHost` only.
 */
import { chownSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { copyFileAtomic, removeFileDurably } from '../platform/state-files.js';
import { defaultVirtualDiskDir } from './paths.js';
import type { VmConfig } from './config.js';
import { VmmsError, badRequest, conflict, notFound } from './errors.js';
import type { CheckpointRecord, Inventory } from './store.js';
import type { VmState } from './states.js';
import type { WorkerOp } from './worker-protocol.js';
import { hasDisks, slotName, clientPath } from './drives.js';
import { capturedDrives, captureProblem, consolidate, crashPoint, createChild, withDrivePaths, type OnlineMerge } from './checkpoint-disks.js';
import { exportVm, planImport, readExport, recordImport } from './export-import.js';
import { resolveConfinedPath } from './confined-path.js';
import { newEntry, type Entry, type Runtime } from './vm-entry.js';
import type { VmView } from './service.js';

/** Get-VMSnapshot's view of a checkpoint. */
export interface CheckpointView {
  id: string;
  vmName: string;
  name: string;
  /** Standard (memory and devices when it ran, plus disks) or Production (disks of a frozen guest, no memory). */
  snapshotType: 'Standard' | 'Production';
  /** The disk file each drive pointed at when it was taken (what applying it brings back). */
  disks: { slot: string; path: string }[];
  creationTime: string;
  parentSnapshotId: string | null;
  parentSnapshotName: string | null;
  /** True when it holds the guest's running state (applying it gives a Saved VM); false: configuration only (Off). */
  runningState: boolean;
  /** The VM's current state descends from this checkpoint (Hyper-V's "Now" marker hangs under it). */
  current: boolean;
  config: VmConfig;
}

/** Hyper-V's limit of checkpoints per VM. */
export const MAX_CHECKPOINTS = 50;

/** What the checkpoint operations need from the service. */
export interface CheckpointHost {
  readonly inventory: Inventory;
  readonly dataDir: string;
  readonly pathRoots: string[];
  entry(name: string): Entry;
  find(name: string): Entry | null;
  /** The VM (by id) is still in the inventory. */
  has(id: string): boolean;
  add(e: Entry): void;
  request(e: Entry, req: WorkerOp, timeoutMs?: number): Promise<unknown>;
  requireState(e: Entry, allowed: VmState[], action: string, fix: string): void;
  record(e: Entry, from: VmState | null, to: VmState | null, message: string): void;
  transition(e: Entry, to: VmState, message: string): void;
  changed(e: Entry): void;
  refreshHolderRecords(e: Entry, rt: Runtime): void;
  view(e: Entry): VmView;
  vmDir(e: Entry): string;
  savedStatePath(e: Entry): string;
  /** The uid an unprivileged worker of this VM runs as (its folders must be its own), if any. */
  workerUid(e: Entry): number | undefined;
}

export class VmCheckpoints {
  /** Checkpoint names being written right now ("vmId/name" lower case), so two requests cannot take one name. */
  private readonly checkpointsInFlight = new Set<string>();
  /** Checkpoint disk work (create children, merge, delete) runs one operation at a time. */
  private diskQueue: Promise<unknown> = Promise.resolve();

  constructor(private readonly h: CheckpointHost) {}

  private checkpointDir(e: Entry): string { return join(this.h.vmDir(e), 'checkpoints'); }

  /**
   * A service that died while a state file was being written leaves a temporary file, or a checkpoint file the
   * inventory never recorded. Both are garbage (possibly GBs of guest memory): removed when the service starts.
   */
  sweepUnfinishedFiles(e: Entry): void {
    const known = new Set(this.h.inventory.checkpoints(e.rec.id).map((c) => `${c.id}.vmrs`));
    const removed: string[] = [];
    const sweep = (dir: string, keep: (f: string) => boolean): void => {
      let files: string[];
      try { files = readdirSync(dir); } catch { return; }
      for (const f of files) if (!keep(f)) { rmSync(join(dir, f), { force: true }); removed.push(f); }
    };
    sweep(this.h.vmDir(e), (f) => !/\.tmp-\d+(-[0-9a-f]+)?$/.test(f));
    sweep(this.checkpointDir(e), (f) => known.has(f));
    if (removed.length) this.h.record(e, null, null, `removed ${removed.length} unfinished state file(s) left by an interrupted save or checkpoint`);
  }
  serialDisks<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.diskQueue.then(fn, fn);
    this.diskQueue = run.catch(() => undefined);
    return run;
  }

  /** Wait for the checkpoint disk work queued so far (service start recovery, deferred merges). */
  async checkpointDisksSettled(): Promise<void> { await this.serialDisks(async () => undefined); }

  /**
   * Merges and deletes of checkpoint disks nothing needs any more, and recovery of what a killed service left
   * (see checkpoint-disks.ts). Files a running worker writes wait for it to stop.
   */
  consolidateDisks(e: Entry): Promise<void> {
    return this.serialDisks(async () => {
      if (!this.h.has(e.rec.id)) return;
      const rt = e.rt;
      const inUse = new Set(rt ? capturedDrives(e.rec.config.hardware).map((d) => d.path!) : []);
      // A running worker merges the disk it writes online (an isolated one gets the parent as a writable
      // descriptor); without descriptor passing an isolated worker's merges wait until the VM stops.
      const online: OnlineMerge | null = rt && (!rt.isolated || rt.files) && rt.backend !== null ? {
        copy: async (child, parent) => { await this.h.request(e, { op: 'mergeCopy', child, parent }, 60 * 60_000); },
        finish: async (child, commit) => {
          await this.h.request(e, { op: 'mergeFinish', child, commit }, 120_000);
          if (e.rt === rt) this.h.refreshHolderRecords(e, rt);
        },
        failed: async (err) => {
          if (e.rt !== rt) return;
          this.h.record(e, null, null, `the worker could not continue on the merged disk (${err.message}); the VM is turned off so that no write goes astray`);
          rt.exitReason ??= 'turned off: it could not continue on its merged disk';
          rt.child.kill('SIGKILL');
          await rt.exited;
        },
      } : null;
      const waitReason = rt?.isolated && !rt.files ? 'its worker is isolated and this host cannot hand it the parent disk (descriptor passing is unavailable), so it cannot merge while it runs' : 'the VM is starting';
      try {
        const before = JSON.stringify(e.rec.config);
        const config = await consolidate(this.h.inventory, e.rec.id, e.rec.config, { inUse, online, waitReason, note: (m) => this.h.record(e, null, null, m) });
        if (JSON.stringify(config) !== before) { e.rec.config = config; this.h.changed(e); }
      } catch (err) {
        this.h.record(e, null, null, `could not merge checkpoint disks (they stay as they are and are retried later): ${(err as Error).message}`);
      }
    });
  }

  private checkpointPath(e: Entry, id: string): string { return join(this.checkpointDir(e), `${id}.vmrs`); }

  private checkpointView(e: Entry, c: CheckpointRecord, all: CheckpointRecord[], current: string | null): CheckpointView {
    const parent = c.parentId ? all.find((x) => x.id === c.parentId) ?? null : null;
    return {
      id: c.id, vmName: e.rec.name, name: c.name, snapshotType: c.kind ?? 'Standard', creationTime: new Date(c.created).toISOString(),
      parentSnapshotId: parent?.id ?? null, parentSnapshotName: parent?.name ?? null, runningState: c.running,
      current: c.id === current, config: structuredClone(c.config),
      disks: capturedDrives(c.config.hardware).map((d) => ({ slot: slotName(d), path: d.path! })),
    };
  }

  private findCheckpoint(e: Entry, snapshot: unknown): CheckpointRecord {
    if (typeof snapshot !== 'string' || !snapshot) throw badRequest('name the checkpoint (get-vmsnapshot NAME lists them)');
    const all = this.h.inventory.checkpoints(e.rec.id);
    const c = all.find((x) => x.name.toLowerCase() === snapshot.toLowerCase()) ?? all.find((x) => x.id === snapshot);
    if (!c) throw new VmmsError(404, 'SnapshotNotFound', `VM '${e.rec.name}' has no checkpoint named '${snapshot}' (list them with 'hyperts get-vmsnapshot ${e.rec.name}')`);
    return c;
  }

  private checkpointName(e: Entry, v: unknown): string {
    if (typeof v !== 'string' || !v.trim() || v.length > 100 || /[\x00-\x1f\x7f]/.test(v)) {
      throw badRequest(`invalid checkpoint name ${JSON.stringify(v)}: use 1-100 printable characters`);
    }
    const taken = this.h.inventory.checkpoints(e.rec.id).some((c) => c.name.toLowerCase() === v.toLowerCase()) ||
      this.checkpointsInFlight.has(`${e.rec.id}/${v.toLowerCase()}`);
    if (taken) throw new VmmsError(409, 'DuplicateName', `VM '${e.rec.name}' already has a checkpoint named '${v}' (pick another name, or rename-vmsnapshot ${e.rec.name} '${v}' NEWNAME)`);
    return v;
  }

  /** Hyper-V's default: "NAME - (M/D/YYYY - h:mm:ss AM)", with " (2)"... when one second saw several. */
  private defaultCheckpointName(e: Entry, at: Date): string {
    const h = at.getHours();
    const stamp = `${at.getMonth() + 1}/${at.getDate()}/${at.getFullYear()} - ${h % 12 || 12}:${String(at.getMinutes()).padStart(2, '0')}:${String(at.getSeconds()).padStart(2, '0')} ${h < 12 ? 'AM' : 'PM'}`;
    const base = `${e.rec.name} - (${stamp})`;
    const used = new Set(this.h.inventory.checkpoints(e.rec.id).map((c) => c.name.toLowerCase()));
    for (const k of this.checkpointsInFlight) if (k.startsWith(`${e.rec.id}/`)) used.add(k.slice(e.rec.id.length + 1));
    for (let i = 1; ; i++) {
      const n = i === 1 ? base : `${base} (${i})`;
      if (!used.has(n.toLowerCase())) return n;
    }
  }

  /** Get-VMSnapshot: the VM's checkpoints, oldest first. */
  checkpoints(name: string): CheckpointView[] {
    const e = this.h.entry(name);
    const all = this.h.inventory.checkpoints(e.rec.id);
    const current = this.h.inventory.currentCheckpoint(e.rec.id);
    return all.map((c) => this.checkpointView(e, c, all, current));
  }

  getCheckpoint(name: string, snapshot: string): CheckpointView {
    const e = this.h.entry(name);
    const c = this.findCheckpoint(e, snapshot);
    return this.checkpointView(e, c, this.h.inventory.checkpoints(e.rec.id), this.h.inventory.currentCheckpoint(e.rec.id));
  }

  /**
   * Checkpoint-VM (standard checkpoint). Running or Paused: the worker writes a saved-state file without
   * stopping the guest (paused at an instruction boundary only while it writes). Saved: the saved state is
   * copied. Off: the configuration alone. The VM's state does not change.
   */
  async checkpoint(name: string, snapshotName?: unknown): Promise<CheckpointView> {
    const e = this.h.entry(name);
    this.h.requireState(e, ['Off', 'Running', 'Paused', 'Saved'], 'checkpoint', 'wait until it is Running, Paused, Saved or Off');
    if (this.h.inventory.checkpoints(e.rec.id).length >= MAX_CHECKPOINTS) {
      throw conflict(`cannot checkpoint VM '${e.rec.name}': it already has ${MAX_CHECKPOINTS} checkpoints, the limit (remove-vmsnapshot ${e.rec.name} SNAPSHOT first)`);
    }
    const created = new Date();
    const cpName = snapshotName === undefined || snapshotName === null ? this.defaultCheckpointName(e, created) : this.checkpointName(e, snapshotName);
    const from = e.rec.state;
    const rt = e.rt;
    const live = from === 'Running' || from === 'Paused';
    const type = e.rec.config.checkpointType ?? 'Production';
    if (type === 'Disabled') {
      throw conflict(`cannot checkpoint VM '${e.rec.name}': checkpoints are disabled for it (set-vm ${e.rec.name} --checkpoint-type Production or Standard allows them)`);
    }
    // Production: the guest freezes its file systems (VSS integration service) and only the disks are kept.
    // An Off VM's checkpoint is the same either way (disks at rest, no memory): shown as Standard, as Hyper-V.
    let kind: 'Standard' | 'Production' = type === 'Standard' || from === 'Off' ? 'Standard' : 'Production';
    let fallback: string | null = null;
    if (kind === 'Production' && (from === 'Saved' || from === 'Paused')) fallback = `the VM is ${from}, so its guest cannot freeze its file systems`;
    // The disks the checkpoint keeps (each gets a child the VM writes from then on).
    const disks = [...new Set(capturedDrives(e.rec.config.hardware).filter((d) => !d.readOnly).map((d) => d.path!))];
    if (hasDisks(e.rec.config.hardware)) {
      const problem = await captureProblem(e.rec.config.hardware);
      if (problem) throw conflict(`cannot checkpoint VM '${e.rec.name}': ${problem}`);
      if (live && disks.length && rt?.isolated && !rt.files) {
        throw conflict(`cannot checkpoint VM '${e.rec.name}' while it runs: its isolated worker sees only the files it started with and this host cannot hand it the new differencing disks (descriptor passing is unavailable) ` +
          `(save-vm ${e.rec.name}, checkpoint-vm ${e.rec.name}, start-vm ${e.rec.name}: the checkpoint keeps the running state)`);
      }
    }
    let frozen = false;
    if (kind === 'Production' && live && !fallback) {
      try {
        await this.h.request(e, { op: 'vssFreeze' }, 120_000);
        frozen = true;
      } catch (err) { fallback = `the guest could not freeze its file systems: ${(err as Error).message}`; }
    }
    if (fallback) {
      if (type === 'ProductionOnly') {
        throw conflict(`cannot take a production checkpoint of VM '${e.rec.name}': ${fallback} (its checkpoint type is ProductionOnly; ` +
          `make sure the guest runs hv_vss_daemon with the VSS integration service enabled, or set-vm ${e.rec.name} --checkpoint-type Production to fall back to a standard checkpoint)`);
      }
      kind = 'Standard';
    }
    try {
      return await this.takeCheckpoint(e, name, cpName, created, kind, disks, fallback);
    } finally {
      if (frozen) {
        await this.h.request(e, { op: 'vssThaw' }, 60_000).catch((err: Error) => this.h.record(e, null, null, `thawing the guest's file systems after the checkpoint failed: ${err.message}`));
      }
    }
  }

  private async takeCheckpoint(e: Entry, name: string, cpName: string, created: Date, kind: 'Standard' | 'Production', disks: string[], fallback: string | null): Promise<CheckpointView> {
    const from = e.rec.state;
    const rt = e.rt;
    const live = (from === 'Running' || from === 'Paused') && kind === 'Standard';
    const liveDisks = (from === 'Running' || from === 'Paused') && disks.length > 0;
    if (live && rt?.backend === 'kvm') {
      throw conflict(`cannot checkpoint VM '${e.rec.name}' while it runs: checkpoints with running state need the emulated processor, and this VM runs on kvm ` +
        `(stop-vm ${e.rec.name} and checkpoint it while Off, or set-vm ${e.rec.name} --processor emulated while it is off)`);
    }
    const id = randomUUID();
    const path = this.checkpointPath(e, id);
    const config = structuredClone(e.rec.config);
    const key = `${e.rec.id}/${cpName.toLowerCase()}`;
    this.checkpointsInFlight.add(key);
    // Online with disks: the worker pauses, writes the state and lets go of the disk files; the guest stays
    // paused until the worker continues on the new children (or, on failure, on the same files).
    let detached = false;
    const reattach = async (swaps: { from: string; to: string }[]): Promise<void> => {
      detached = false;
      await this.h.request(e, { op: 'checkpointAttach', swaps });
    };
    try {
      let running = false;
      if (live || liveDisks) {
        mkdirSync(this.checkpointDir(e), { recursive: true, mode: 0o700 });
        // An unprivileged worker writes the file: the folder must be its own.
        const uid = this.h.workerUid(e);
        if (uid !== undefined) chownTree(this.checkpointDir(e), uid);
        try {
          if (liveDisks) {
            // Queued merges first, so the guest does not stay paused behind them.
            await this.checkpointDisksSettled();
            detached = true;
            await this.h.request(e, { op: 'checkpointDetach', path: live ? path : null, disks }, 10 * 60_000);
          } else {
            await this.h.request(e, { op: 'checkpoint', path }, 10 * 60_000);
          }
        } catch (err) {
          rmSync(path, { force: true });
          if (detached && e.rt) await reattach(disks.map((p) => ({ from: p, to: p }))).catch(() => undefined);
          throw conflict(`cannot checkpoint VM '${e.rec.name}': ${(err as Error).message}`);
        }
        running = live;
      } else if (from === 'Saved') {
        const saved = this.h.savedStatePath(e);
        if (!existsSync(saved)) throw conflict(`cannot checkpoint VM '${e.rec.name}': its saved-state file ${saved} is missing (remove-vmsavedstate ${e.rec.name}, then checkpoint it while Off)`);
        mkdirSync(this.checkpointDir(e), { recursive: true, mode: 0o700 });
        copyFileAtomic(saved, path);
        running = true;
      }
      if (!this.h.has(e.rec.id)) { rmSync(path, { force: true }); throw notFound(name); }
      // The children are recorded before they exist and the switch is one transaction, so a killed service
      // leaves the VM as before (the unused children are removed at start) or after.
      // Created and switched in one step of the disk queue, so no merge in between sees the new children unused.
      const { rec, children } = await this.serialDisks(async () => {
        const children = new Map<string, string>();
        try {
          for (const p of disks) children.set(p, await createChild(this.h.inventory, e.rec.id, p));
        } catch (err) {
          rmSync(path, { force: true });
          if (detached) await reattach(disks.map((p) => ({ from: p, to: p }))).catch(() => undefined);
          void this.consolidateDisks(e);
          throw conflict(`cannot checkpoint VM '${e.rec.name}': creating its differencing disks failed: ${(err as Error).message}`);
        }
        const vmConfig = withDrivePaths(e.rec.config, (p) => children.get(p) ?? p);
        const parentId = this.h.inventory.currentCheckpoint(e.rec.id);
        const rec = this.h.inventory.transaction(() => {
          const r = this.h.inventory.insertCheckpoint({ id, vmId: e.rec.id, name: cpName, created: created.getTime(), parentId, running, config, kind });
          this.h.inventory.setCurrentCheckpoint(e.rec.id, id);
          if (children.size) this.h.inventory.updateConfig(e.rec.id, vmConfig);
          return r;
        });
        if (children.size) e.rec.config = vmConfig;
        if (detached) {
          crashPoint('online-switched');
          try {
            await reattach(disks.map((p) => ({ from: p, to: children.get(p)! })));
          } catch (err) {
            // The worker went back to the previous files (or is gone): undo the switch.
            this.h.inventory.transaction(() => {
              this.h.inventory.removeCheckpoint(id);
              this.h.inventory.updateConfig(e.rec.id, config);
              if (parentId) this.h.inventory.setCurrentCheckpoint(e.rec.id, parentId);
            });
            e.rec.config = config;
            rmSync(path, { force: true });
            void this.consolidateDisks(e);
            throw conflict(`cannot checkpoint VM '${e.rec.name}': the worker could not continue on the new differencing disks: ${(err as Error).message}`);
          }
          if (e.rt) this.h.refreshHolderRecords(e, e.rt);
        }
        return { rec, children };
      });
      if (fallback) this.h.record(e, null, null, `checkpoint '${cpName}': a production checkpoint was not possible, so a standard checkpoint was taken: ${fallback}`);
      this.h.record(e, null, null, `${kind.toLowerCase()} checkpoint '${cpName}' created (${running ? `with the ${from === 'Saved' ? 'saved' : 'running'} state` : kind === 'Production' ? 'disks and configuration, no memory state' : 'configuration only: the VM was off'}` +
        `${children.size ? `; ${children.size} disk(s) continue on new differencing disks` : ''})`);
      this.h.changed(e);
      return this.checkpointView(e, rec, this.h.inventory.checkpoints(e.rec.id), id);
    } finally {
      this.checkpointsInFlight.delete(key);
    }
  }

  /**
   * Restore-VMSnapshot (Apply): the VM must be Off or Saved. Its configuration becomes the checkpoint's
   * (the VM keeps its name); a checkpoint with running state leaves the VM Saved with that state, so start-vm
   * resumes the guest where the checkpoint was taken; a configuration-only one leaves it Off. The VM's
   * previous saved state is discarded.
   */
  async restoreCheckpoint(name: string, snapshot: string): Promise<VmView> {
    const e = this.h.entry(name);
    const c = this.findCheckpoint(e, snapshot);
    this.h.requireState(e, ['Off', 'Saved'], `apply checkpoint '${c.name}' to`,
      e.rec.state === 'Running' || e.rec.state === 'Paused' ? `stop-vm ${e.rec.name} or save-vm ${e.rec.name} first` : 'wait until it is Off or Saved');
    const missing = capturedDrives(c.config.hardware).find((d) => !existsSync(d.path!));
    if (missing) throw conflict(`cannot apply checkpoint '${c.name}' to VM '${e.rec.name}': its disk ${missing.path} is missing (restore the file, or remove-vmsnapshot ${e.rec.name} '${c.name}')`);
    const src = this.checkpointPath(e, c.id);
    if (c.running && !existsSync(src)) {
      throw conflict(`cannot apply checkpoint '${c.name}' to VM '${e.rec.name}': its state file ${src} is missing (remove-vmsnapshot ${e.rec.name} '${c.name}' deletes the broken checkpoint)`);
    }
    // Fresh children of the checkpoint's disks: the checkpoint's own files are never written again.
    const saved = this.h.savedStatePath(e);
    const hadSavedState = e.rec.state === 'Saved';
    // Created and switched in one step of the disk queue, so no merge in between sees the new children unused.
    await this.serialDisks(async () => {
      const children = new Map<string, string>();
      try {
        for (const d of capturedDrives(c.config.hardware)) if (!d.readOnly && !children.has(d.path!)) children.set(d.path!, await createChild(this.h.inventory, e.rec.id, d.path!));
        this.h.requireState(e, ['Off', 'Saved'], `apply checkpoint '${c.name}' to`, 'it was started meanwhile');
        if (c.running) {
          mkdirSync(this.h.vmDir(e), { recursive: true, mode: 0o700 });
          // Through a temporary file, so a failed copy leaves the previous saved state as it was.
          copyFileAtomic(src, saved);
        } else {
          removeFileDurably(saved);
        }
      } catch (err) {
        void this.consolidateDisks(e);
        throw err instanceof VmmsError ? err : conflict(`cannot apply checkpoint '${c.name}' to VM '${e.rec.name}': ${(err as Error).message}`);
      }
      const config: VmConfig = withDrivePaths({ ...structuredClone(c.config), name: e.rec.name }, (p) => children.get(p) ?? p);
      e.rec.config = config;
      this.h.inventory.transaction(() => {
        this.h.inventory.updateConfig(e.rec.id, config);
        this.h.inventory.setCurrentCheckpoint(e.rec.id, c.id);
      });
    });
    e.lastError = null;
    const to: VmState = c.running ? 'Saved' : 'Off';
    this.h.transition(e, to, `checkpoint '${c.name}' applied${c.running ? ': start-vm resumes the guest where the checkpoint was taken' : ' (configuration only)'}` +
      (hadSavedState ? '; the previous saved state was discarded' : ''));
    // The disks the VM wrote before are discarded (unless a checkpoint keeps them).
    await this.consolidateDisks(e);
    return this.h.view(e);
  }

  /** Remove-VMSnapshot: deletes one checkpoint (file and record); its children move up to its parent. */
  async removeCheckpoint(name: string, snapshot: string): Promise<void> {
    const e = this.h.entry(name);
    const c = this.findCheckpoint(e, snapshot);
    this.h.inventory.removeCheckpoint(c.id);
    removeFileDurably(this.checkpointPath(e, c.id));
    this.h.record(e, null, null, `checkpoint '${c.name}' removed`);
    this.h.changed(e);
    // Its disk merges into its neighbour (now if no running worker holds the files, else when the VM stops).
    await this.consolidateDisks(e);
  }

  /**
   * Export-VM NAME --path DIR: the VM with its disks, checkpoints and state to DIR/NAME. A Running or Paused VM
   * is exported, as Hyper-V does, from a checkpoint taken for the purpose (production or standard as its
   * checkpoint type says): its disks stop changing while they are copied; the checkpoint is removed afterwards
   * (its AVHDX merges back online) and does not appear in the export.
   */
  async exportVm(name: string, input: unknown): Promise<{ path: string }> {
    const e = this.h.entry(name);
    this.h.requireState(e, ['Off', 'Saved', 'Running', 'Paused'], 'export', 'wait until it is Off, Saved, Running or Paused');
    const b = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
    const dir = resolveConfinedPath(clientPath(b.path, 'path', defaultVirtualDiskDir(this.h.dataDir)), this.h.pathRoots, { kind: 'directory', mayCreate: true, what: 'export folder' });
    mkdirSync(dir, { recursive: true });
    let path: string;
    if (e.rec.state === 'Running' || e.rec.state === 'Paused') {
      const temp = await this.checkpoint(e.rec.name, `Export ${new Date().toISOString()}`);
      try {
        const c = this.findCheckpoint(e, temp.id);
        path = await this.serialDisks(() => exportVm({
          id: e.rec.id, name: e.rec.name, state: c.running ? 'Saved' : 'Off', config: { ...structuredClone(c.config), name: e.rec.name },
          checkpoints: this.h.inventory.checkpoints(e.rec.id).filter((x) => x.id !== c.id), current: c.parentId,
          ownFiles: this.h.inventory.checkpointFiles(e.rec.id), savedState: c.running ? this.checkpointPath(e, c.id) : null,
          checkpointStateFile: (id) => this.checkpointPath(e, id),
        }, dir));
      } finally {
        await this.removeCheckpoint(e.rec.name, temp.id);
      }
      this.h.record(e, null, null, `exported to ${path} from ${temp.snapshotType.toLowerCase()} checkpoint '${temp.name}' (removed again)`);
      return { path };
    }
    path = await this.serialDisks(() => exportVm({
      id: e.rec.id, name: e.rec.name, state: e.rec.state, config: e.rec.config,
      checkpoints: this.h.inventory.checkpoints(e.rec.id), current: this.h.inventory.currentCheckpoint(e.rec.id),
      ownFiles: this.h.inventory.checkpointFiles(e.rec.id), savedState: e.rec.state === 'Saved' ? this.h.savedStatePath(e) : null,
      checkpointStateFile: (id) => this.checkpointPath(e, id),
    }, dir));
    this.h.record(e, null, null, `exported to ${path}`);
    return { path };
  }

  /** Import-VM PATH [--copy] [--generate-new-id]: registers an export in place, or a copy of its disks. */
  async importVm(input: unknown): Promise<VmView> {
    const b = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
    const given = clientPath(b.path, 'path', defaultVirtualDiskDir(this.h.dataDir));
    const src = resolveConfinedPath(given, this.h.pathRoots, { kind: given.endsWith('.json') ? 'file' : 'directory', what: 'exported VM' });
    const copy = b.copy === true, newId = b.generateNewId === true;
    const { root, manifest: m } = readExport(src);
    if (this.h.find(m.vm.name)) throw new VmmsError(409, 'DuplicateName', `cannot import: a virtual machine named '${m.vm.name}' already exists (rename it with set-vm ${m.vm.name} --new-name NEW, or remove it)`);
    const taken = this.h.has(m.vm.id) || this.h.inventory.checkpointsById(m.checkpoints.map((c) => c.id));
    if (!newId && taken) throw conflict(`cannot import: VM id ${m.vm.id} (or one of its checkpoints) is already registered; import a copy with --copy --generate-new-id`);
    const plan = await this.serialDisks(async () => planImport(root, m, { copyTo: copy ? join(defaultVirtualDiskDir(this.h.dataDir), newId ? `${m.vm.name}-${randomUUID().slice(0, 8)}` : m.vm.name) : null, newId }));
    const dir = join(this.h.dataDir, 'vms', plan.id);
    mkdirSync(join(dir, 'checkpoints'), { recursive: true, mode: 0o700 });
    for (const s of plan.checkpointStates) copyFileAtomic(s.file, join(dir, 'checkpoints', `${s.id}.vmrs`));
    if (plan.savedState) copyFileAtomic(plan.savedState, join(dir, 'saved-state.vmrs'));
    recordImport(this.h.inventory, plan);
    const rec = this.h.inventory.list().find((r) => r.id === plan.id)!;
    const e = newEntry(rec);
    this.h.add(e);
    this.h.record(e, null, rec.state, `imported from ${root}${copy ? ' (disks copied)' : ' (in place)'}${newId ? ' with a new id' : ''}`);
    this.h.changed(e);
    return this.h.view(e);
  }

  /** Rename-VMSnapshot. */
  renameCheckpoint(name: string, snapshot: string, newName: unknown): CheckpointView {
    const e = this.h.entry(name);
    const c = this.findCheckpoint(e, snapshot);
    if (typeof newName === 'string' && newName.toLowerCase() === c.name.toLowerCase() && newName !== c.name) {
      // Only the case changes: not a clash with itself.
    } else if (newName !== c.name) this.checkpointName(e, newName);
    const n = newName as string;
    if (n !== c.name) {
      this.h.inventory.renameCheckpoint(c.id, n);
      this.h.record(e, null, null, `checkpoint '${c.name}' renamed to '${n}'`);
      this.h.changed(e);
    }
    return this.getCheckpoint(name, c.id);
  }
}

/** Gives a VM folder and everything in it to the worker's uid. */
export function chownTree(dir: string, uid: number): void {
  chownSync(dir, uid, uid);
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, f.name);
    if (f.isDirectory()) chownTree(p, uid); else if (f.isFile()) chownSync(p, uid, uid);
  }
}
