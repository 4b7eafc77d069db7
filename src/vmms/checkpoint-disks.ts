/**
 * The disks of checkpoints, as Hyper-V keeps them: taking a checkpoint gives every virtual hard disk a new
 * differencing child (`<disk>_<GUID>.avhdx` next to it) that the VM writes from then on, and the checkpoint
 * keeps the file each drive pointed at (its configuration's drive paths). Those files are never written again
 * while a checkpoint or a child needs them. Applying gives the VM fresh children of the checkpoint's files;
 * deleting merges what is no longer needed ("consolidate").
 *
 * The service owns the AVHDX files it created (inventory table checkpoint_files, with each file's parent), so
 * the file tree is known without opening files and only its own files are ever deleted. Crash safety:
 * - a child is recorded before it is created, so a file left by a killed service is found and removed;
 * - configurations switch in one inventory transaction;
 * - a merge is recorded (pending_merges) before the parent is written; the service finishes it at start
 *   (the child's blocks are copied again: the result is the same), then repoints and deletes the child;
 * - a merge of the file a running VM writes runs in its worker (mergeOnline, worker-disks.ts); the switch
 *   to the parent is recorded while the worker holds the disk's I/O, before the guest writes the parent.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createVhdx, detectFormat, VhdxDisk } from '../storage/open.js';
import { lockDisk } from '../storage/lock.js';
import type { DriveConfig, HardwareConfig } from '../platform/hardware.js';
import type { VmConfig } from './config.js';
import type { Inventory } from './store.js';

const GUID_TAIL = /_[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/i;

/** Hyper-V's name for a checkpoint child of `disk`: the base disk's name, an underscore, a GUID, .avhdx. */
export function childPathFor(disk: string): string {
  const stem = basename(disk).replace(/\.(a?vhdx|vhd|img|raw)$/i, '').replace(GUID_TAIL, '');
  return join(dirname(disk), `${stem}_${randomUUID().toUpperCase()}.avhdx`);
}

/** The drives a checkpoint captures: virtual hard disks with a file (DVD images are read-only anyway). */
export const capturedDrives = (hw: HardwareConfig): DriveConfig[] => hw.drives.filter((d) => d.kind === 'disk' && d.path !== null);

/** Why the disks cannot be captured (null when they can): differencing disks need VHDX parents. */
export async function captureProblem(hw: HardwareConfig): Promise<string | null> {
  for (const d of capturedDrives(hw)) {
    if (!existsSync(d.path!)) return `its disk ${d.path} is missing`;
    if (d.readOnly) continue;
    const fmt = await detectFormat(d.path!);
    if (fmt !== 'vhdx') {
      return `its disk ${d.path} is a ${fmt} image, and checkpoints need VHDX disks to put a differencing disk on ` +
        `(convert it: hyperts convert-vhd ${d.path} NEW.vhdx, then point the drive at the copy)`;
    }
  }
  return null;
}

/** Test seam for the crash tests: the process kills itself at the named step (HYPERTS_CRASH_AT). */
export function crashPoint(step: string): void {
  if (process.env.HYPERTS_CRASH_AT === step) process.kill(process.pid, 'SIGKILL');
}

const syncDir = (dir: string): void => { const fd = openSync(dir, 'r'); try { fsyncSync(fd); } finally { closeSync(fd); } };

/** Creates a differencing child of `parent` (same disk id, so the guest sees the same disk), recorded first. */
export async function createChild(inv: Inventory, vmId: string, parent: string): Promise<string> {
  const p = await VhdxDisk.open(parent, { readOnly: true, lock: false });
  const diskId = p.params.diskId;
  await p.close();
  const path = childPathFor(parent);
  inv.addCheckpointFile({ path, vmId, parent });
  try {
    await createVhdx({ path, type: 'differencing', parentPath: parent, diskId });
    syncDir(dirname(path));
    crashPoint('child-created');
  } catch (err) {
    inv.removeCheckpointFile(path);
    throw err;
  }
  return path;
}

/** `config` with each captured drive's path replaced by `map(path)`. */
export function withDrivePaths(config: VmConfig, map: (path: string) => string): VmConfig {
  return {
    ...config,
    hardware: { ...config.hardware, drives: config.hardware.drives.map((d) => (d.kind === 'disk' && d.path ? { ...d, path: map(d.path) } : d)) },
  };
}

/** Copies the sectors `child` holds itself into `parent` (the child's view is unchanged by that). */
export async function mergeChildIntoParent(child: string, parent: string): Promise<void> {
  // The parent's DataWriteGuid changes with the first write: a merge finished after a crash must trust it.
  const k = await VhdxDisk.open(child, { readOnly: true, lock: false, trustParent: true });
  const held = lockDisk(k.file.fd, child, false, 'checkpoint merge');
  try {
    const dst = await VhdxDisk.open(parent, { purpose: 'checkpoint merge' });
    try {
      if (dst.sizeBytes !== k.sizeBytes) throw new Error(`${child} (${k.sizeBytes} bytes) and its parent ${parent} (${dst.sizeBytes} bytes) differ in size`);
      for (let b = 0; b < k.geometry.payloadBlocks; b++) {
        for (const [off, len] of await k.ownRuns(b)) {
          const buf = new Uint8Array(len);
          await k.read(off, buf);
          await dst.write(off, buf);
          crashPoint('merge-partial');
        }
      }
      await dst.flush();
    } finally {
      await dst.close();
    }
  } finally {
    held.release();
    await k.close();
  }
}

/** A running worker's side of an online merge (worker-disks.ts). */
export interface OnlineMerge {
  /** Copies the child's data into the parent beside the guest's I/O, then holds the disk's I/O. */
  copy(child: string, parent: string): Promise<void>;
  /** commit: continue on the parent (the switch is recorded); else continue on the child. */
  finish(child: string, commit: boolean): Promise<void>;
  /** The worker could not continue after the switch was recorded: it must stop (its writes would go astray). */
  failed(err: Error): Promise<void>;
}

export interface ConsolidateHooks {
  /** Files a running worker has open for writing: merged away only through `online`, else when it stops. */
  inUse: Set<string>;
  /** The running worker merges online; null: merges of files it writes wait until it stops. */
  online?: OnlineMerge | null;
  /** Why merges wait (the event says so), when `online` is null and a merge waits for the running VM. */
  waitReason?: string;
  note: (message: string) => void;
}

/**
 * Merges `child`, which the running VM writes, into `parent` online. The pending merge is recorded before the
 * parent is written; the switch (VM and checkpoints repointed, merge no longer pending) is one transaction
 * taken while the worker holds the disk's I/O, so a kill at any point leaves the chain as before (the child,
 * with the parent a superset copy of it: recovery finishes the merge) or after (the parent; the child is
 * deleted as unused). Returns the new configuration, or null when the worker could not merge (the pending
 * merge stays and is finished when the VM stops).
 */
async function mergeOnline(inv: Inventory, vmId: string, config: VmConfig, child: string, parent: string, hooks: ConsolidateHooks & { online: OnlineMerge }): Promise<VmConfig | null> {
  inv.addPendingMerge({ child, vmId, parent });
  try {
    await hooks.online.copy(child, parent);
  } catch (err) {
    hooks.note(`could not merge ${basename(child)} into ${basename(parent)} while the VM runs (${(err as Error).message}); the merge finishes when the VM stops`);
    return null;
  }
  crashPoint('online-merge-copied');
  let next: VmConfig;
  try {
    next = repoint(inv, vmId, config, child, parent, () => { inv.removePendingMerge(child); });
  } catch (err) {
    await hooks.online.finish(child, false).catch(() => undefined);
    throw err;
  }
  crashPoint('online-merge-repointed');
  try {
    await hooks.online.finish(child, true);
  } catch (err) {
    await hooks.online.failed(err as Error);
  }
  await unlink(child).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
  syncDir(dirname(child));
  inv.removeCheckpointFile(child);
  hooks.note(`merged ${basename(child)} into ${basename(parent)} while the VM ran`);
  return next;
}

/** Paths the VM's configuration and its checkpoints point at. */
function referenced(inv: Inventory, vmId: string, vmConfig: VmConfig): Set<string> {
  const refs = new Set<string>();
  for (const d of capturedDrives(vmConfig.hardware)) refs.add(d.path!);
  for (const c of inv.checkpoints(vmId)) for (const d of capturedDrives(c.config.hardware)) refs.add(d.path!);
  for (const p of inv.keptFiles()) refs.add(p);
  return refs;
}

/** Repoints the VM and every checkpoint from `from` to `to` (one transaction with `also`). */
function repoint(inv: Inventory, vmId: string, vmConfig: VmConfig, from: string, to: string, also: () => void): VmConfig {
  const map = (p: string): string => (p === from ? to : p);
  const next = withDrivePaths(vmConfig, map);
  inv.transaction(() => {
    inv.updateConfig(vmId, next);
    for (const c of inv.checkpoints(vmId)) {
      if (capturedDrives(c.config.hardware).some((d) => d.path === from)) inv.updateCheckpointConfig(c.id, withDrivePaths(c.config, map));
    }
    also();
  });
  return next;
}

/**
 * Brings the VM's checkpoint files to the fewest that still hold every checkpoint and the VM's current disks:
 * finishes interrupted merges, deletes own files nothing needs, and merges a file nothing points at into its
 * place when its only child is a leaf (the child's data moves into it; whoever pointed at the child points
 * at it). Returns the VM's configuration (changed when its disks were merged).
 */
export async function consolidate(inv: Inventory, vmId: string, vmConfig: VmConfig, hooks: ConsolidateHooks): Promise<VmConfig> {
  let config = vmConfig;
  const online = hooks.online ?? null;
  for (const m of inv.pendingMerges(vmId)) {
    if (hooks.inUse.has(m.child) && existsSync(m.child)) {
      // Interrupted while the VM ran (the worker could not finish): again online, or when it stops.
      if (!online) continue;
      const next = await mergeOnline(inv, vmId, config, m.child, m.parent, { ...hooks, online });
      if (!next) return config;
      config = next;
      continue;
    }
    if (existsSync(m.child)) {
      await mergeChildIntoParent(m.child, m.parent);
      config = repoint(inv, vmId, config, m.child, m.parent, () => inv.removePendingMerge(m.child));
      await unlink(m.child);
      syncDir(dirname(m.child));
      hooks.note(`finished merging ${m.child} into ${m.parent}, interrupted when the service stopped`);
    } else {
      inv.removePendingMerge(m.child);
    }
    inv.removeCheckpointFile(m.child);
  }
  for (let changed = true; changed;) {
    changed = false;
    const files = inv.checkpointFiles(vmId);
    const refs = referenced(inv, vmId, config);
    const kept = inv.keptFiles();
    const children = (p: string): string[] => files.filter((f) => f.parent === p).map((f) => f.path);
    // Own files nothing points at and nothing descends from: discarded state, or left by a killed service.
    for (const f of files) {
      if (refs.has(f.path) || children(f.path).length) continue;
      await unlink(f.path).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
      syncDir(dirname(f.path));
      inv.removeCheckpointFile(f.path);
      hooks.note(`deleted ${f.path}: nothing needs it any more (state discarded by applying a checkpoint, or left by an interrupted operation)`);
      changed = true;
    }
    if (changed) continue;
    const parents = new Set(files.map((f) => f.parent));
    for (const parent of parents) {
      if (refs.has(parent)) continue;
      const kids = children(parent);
      if (kids.length !== 1) continue;
      const child = kids[0];
      if (children(child).length || kept.has(child)) continue;
      if (hooks.inUse.has(child)) {
        if (!online) {
          if (hooks.waitReason) hooks.note(`${basename(child)} merges into ${basename(parent)} when the VM stops: ${hooks.waitReason}`);
          continue;
        }
        const next = await mergeOnline(inv, vmId, config, child, parent, { ...hooks, online });
        if (!next) return config;
        config = next;
        changed = true;
        break;
      }
      inv.addPendingMerge({ child, vmId, parent });
      await mergeChildIntoParent(child, parent);
      crashPoint('merge-copied');
      config = repoint(inv, vmId, config, child, parent, () => { inv.removePendingMerge(child); });
      crashPoint('merge-repointed');
      await unlink(child);
      syncDir(dirname(child));
      inv.removeCheckpointFile(child);
      hooks.note(`merged ${basename(child)} into ${basename(parent)}`);
      changed = true;
      break;
    }
  }
  return config;
}
