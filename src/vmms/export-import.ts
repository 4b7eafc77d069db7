/**
 * Export-VM / Import-VM. An export is a folder `DIR/NAME/` holding everything the VM needs:
 *   Virtual Machines/VM.json   configuration, state, checkpoint tree, which disk files the service created
 *   Virtual Hard Disks/        every file of every disk chain (current and checkpoints'), under their own names
 *   Snapshots/ID.vmrs          checkpoints' running state;  saved-state.vmrs  when the VM was Saved
 * Disk paths in VM.json are file names inside Virtual Hard Disks (our AVHDX children find their parents by the
 * relative path, so a copied chain keeps working). Import registers it in place, or copies the disks first
 * (--copy); --generate-new-id gives the VM and its checkpoints new ids (a second copy of the same export).
 */
import { randomUUID } from 'node:crypto';
import { closeSync, copyFileSync as copyFileOnly, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { diskChainPaths } from '../storage/open.js';
import { capturedDrives, withDrivePaths } from './checkpoint-disks.js';
import type { VmConfig } from './config.js';
import { migrateConfig } from './config.js';
import { conflict, badRequest } from './errors.js';
import type { CheckpointRecord, Inventory } from './store.js';
import type { VmState } from './states.js';

export const EXPORT_FORMAT = 'hyperts-vm-export/1';

interface ExportedCheckpoint { id: string; name: string; created: number; parentId: string | null; running: boolean; kind: 'Standard' | 'Production'; config: VmConfig }
export interface ExportManifest {
  format: typeof EXPORT_FORMAT;
  vm: { id: string; name: string; state: 'Off' | 'Saved'; config: VmConfig };
  checkpoints: ExportedCheckpoint[];
  current: string | null;
  /** Disk files the service created (AVHDX of checkpoints), with their parents: file names in Virtual Hard Disks. */
  ownFiles: { name: string; parent: string }[];
}

export interface ExportSource {
  id: string; name: string; state: VmState; config: VmConfig;
  checkpoints: CheckpointRecord[]; current: string | null;
  ownFiles: { path: string; parent: string }[];
  savedState: string | null;
  checkpointStateFile: (id: string) => string;
}

const vhdDir = (root: string): string => join(root, 'Virtual Hard Disks');

const fsyncPath = (p: string): void => { const fd = openSync(p, 'r'); try { fsyncSync(fd); } finally { closeSync(fd); } };

/** A copy that is on disk (data and its directory entry) when this returns. */
function copyFileSync(src: string, dst: string): void {
  copyFileOnly(src, dst);
  fsyncPath(dst);
  fsyncPath(dirname(dst));
}

/** Writes the export folder `dir/NAME` (must not exist); returns its path. */
export async function exportVm(src: ExportSource, dir: string): Promise<string> {
  const root = join(dir, src.name);
  if (existsSync(root)) throw conflict(`cannot export VM '${src.name}': ${root} already exists (pick another --path or remove it)`);
  // Every file of every chain, by name: two different files of one name could not share the folder.
  const files = new Map<string, string>();
  const heads = [...capturedDrives(src.config.hardware), ...src.checkpoints.flatMap((c) => capturedDrives(c.config.hardware))].map((d) => d.path!);
  for (const h of new Set(heads)) {
    for (const p of await diskChainPaths(h)) {
      const n = basename(p);
      if (files.has(n) && files.get(n) !== p) throw conflict(`cannot export VM '${src.name}': two of its disk files are named ${n} (${files.get(n)} and ${p}); rename one first`);
      files.set(n, p);
    }
  }
  const tmp = `${root}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    mkdirSync(vhdDir(tmp), { recursive: true });
    mkdirSync(join(tmp, 'Snapshots'));
    mkdirSync(join(tmp, 'Virtual Machines'));
    for (const [n, p] of files) copyFileSync(p, join(vhdDir(tmp), n));
    for (const c of src.checkpoints) if (c.running) copyFileSync(src.checkpointStateFile(c.id), join(tmp, 'Snapshots', `${c.id}.vmrs`));
    if (src.savedState) copyFileSync(src.savedState, join(tmp, 'saved-state.vmrs'));
    const rel = (c: VmConfig): VmConfig => withDrivePaths(c, (p) => basename(p));
    const manifest: ExportManifest = {
      format: EXPORT_FORMAT,
      vm: { id: src.id, name: src.name, state: src.savedState ? 'Saved' : 'Off', config: rel(src.config) },
      checkpoints: src.checkpoints.map((c) => ({ id: c.id, name: c.name, created: c.created, parentId: c.parentId, running: c.running, kind: c.kind ?? 'Standard', config: rel(c.config) })),
      current: src.current,
      ownFiles: src.ownFiles.filter((f) => files.has(basename(f.path))).map((f) => ({ name: basename(f.path), parent: basename(f.parent) })),
    };
    writeFileSync(join(tmp, 'Virtual Machines', 'VM.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    fsyncPath(join(tmp, 'Virtual Machines', 'VM.json'));
    // Complete or absent: the folder gets its name only once everything is in it.
    renameSync(tmp, root);
    fsyncPath(dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return root;
}

/** The export folder's manifest (PATH may be the folder or its VM.json). */
export function readExport(path: string): { root: string; manifest: ExportManifest } {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'Virtual Machines', 'VM.json') : path;
  let m: ExportManifest;
  try { m = JSON.parse(readFileSync(file, 'utf8')) as ExportManifest; } catch (err) {
    throw badRequest(`${path} is not an exported VM (no readable ${file}: ${(err as Error).message}); give the folder export-vm wrote`);
  }
  if (m?.format !== EXPORT_FORMAT || !m.vm || !Array.isArray(m.checkpoints)) throw badRequest(`${file} is not a hyperts VM export (format ${JSON.stringify(m?.format)})`);
  m.vm.config = migrateConfig(m.vm.config);
  for (const c of m.checkpoints) c.config = migrateConfig(c.config);
  return { root: dirname(dirname(file)), manifest: m };
}

export interface ImportPlan {
  id: string; name: string; state: 'Off' | 'Saved'; config: VmConfig;
  checkpoints: CheckpointRecord[]; current: string | null;
  ownFiles: { path: string; parent: string }[];
  savedState: string | null;
  checkpointStates: { id: string; file: string }[];
}

/** Copies the disks to `copyTo` (when given) and maps the export to inventory records. */
export function planImport(root: string, m: ExportManifest, o: { copyTo: string | null; newId: boolean }): ImportPlan {
  let disks = vhdDir(root);
  if (o.copyTo) {
    if (existsSync(o.copyTo)) throw conflict(`cannot import: ${o.copyTo} already exists (remove it, or import in place without --copy)`);
    mkdirSync(o.copyTo, { recursive: true });
    for (const n of new Set([...m.ownFiles.flatMap((f) => [f.name, f.parent]), ...diskNames(m)])) copyFileSync(join(disks, n), join(o.copyTo, n));
    disks = o.copyTo;
  }
  const abs = (c: VmConfig): VmConfig => withDrivePaths(c, (n) => join(disks, basename(n)));
  const ids = new Map(m.checkpoints.map((c) => [c.id, o.newId ? randomUUID() : c.id]));
  const id = o.newId ? randomUUID() : m.vm.id;
  return {
    id, name: m.vm.name, state: m.vm.state, config: abs(m.vm.config),
    checkpoints: m.checkpoints.map((c) => ({ id: ids.get(c.id)!, vmId: id, name: c.name, created: c.created, parentId: c.parentId ? ids.get(c.parentId) ?? null : null, running: c.running, kind: c.kind, config: abs(c.config) })),
    current: m.current ? ids.get(m.current) ?? null : null,
    ownFiles: m.ownFiles.map((f) => ({ path: join(disks, f.name), parent: join(disks, f.parent) })),
    savedState: m.vm.state === 'Saved' ? join(root, 'saved-state.vmrs') : null,
    checkpointStates: m.checkpoints.filter((c) => c.running).map((c) => ({ id: ids.get(c.id)!, file: join(root, 'Snapshots', `${c.id}.vmrs`) })),
  };
}

function diskNames(m: ExportManifest): string[] {
  return [m.vm.config, ...m.checkpoints.map((c) => c.config)].flatMap((c) => capturedDrives(c.hardware).map((d) => basename(d.path!)));
}

/** Records an import plan in the inventory (one transaction). */
export function recordImport(inv: Inventory, p: ImportPlan): void {
  inv.transaction(() => {
    inv.insertImported({ id: p.id, name: p.name, config: p.config, state: p.state, created: Date.now() });
    for (const c of p.checkpoints) inv.insertCheckpoint(c);
    if (p.current) inv.setCurrentCheckpoint(p.id, p.current);
    for (const f of p.ownFiles) inv.addCheckpointFile({ path: f.path, vmId: p.id, parent: f.parent });
  });
}
