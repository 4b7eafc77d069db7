/**
 * The persistent inventory (VM configurations and last known states) and the event log of every state
 * transition, in one SQLite file under the data directory.
 */
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { migrateConfig, type VmConfig } from './config.js';
import type { VmState } from './states.js';

export interface VmRecord { id: string; name: string; config: VmConfig; state: VmState; created: number }
/** A standard checkpoint: the VM's configuration, plus its saved state when it was Running, Paused or Saved. */
export interface CheckpointRecord {
  id: string; vmId: string; name: string; created: number; parentId: string | null;
  /** True when the checkpoint holds the guest's running state (a saved-state file), false for configuration only. */
  running: boolean; config: VmConfig;
  /** 'Standard' (memory and devices when running, plus disks) or 'Production' (disks only, guest file systems frozen). */
  kind?: 'Standard' | 'Production';
}
/** A differencing disk (AVHDX) the service created for a checkpoint: it owns the file and may merge or delete it. */
export interface CheckpointFile { path: string; vmId: string; parent: string }
/** A merge of `child` into `parent` under way (finished at service start when the service died during it). */
export interface PendingMerge { child: string; vmId: string; parent: string }
export interface VmEvent { seq: number; time: number; vmId: string | null; vmName: string | null; from: string | null; to: string | null; message: string }

interface VmRow { id: string; name: string; config: string; state: string; created: number }
interface CheckpointRow { id: string; vm_id: string; name: string; created: number; parent_id: string | null; running: number; config: string; kind: string | null }
interface EventRow { seq: number; time: number; vm_id: string | null; vm_name: string | null; from_state: string | null; to_state: string | null; message: string }

export class Inventory {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS vms (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE, config TEXT NOT NULL,
        state TEXT NOT NULL, created INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, vm_id TEXT, vm_name TEXT,
        from_state TEXT, to_state TEXT, message TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS events_vm ON events (vm_id, seq);
      CREATE TABLE IF NOT EXISTS checkpoints (
        id TEXT PRIMARY KEY, vm_id TEXT NOT NULL, name TEXT NOT NULL COLLATE NOCASE, created INTEGER NOT NULL,
        parent_id TEXT, running INTEGER NOT NULL, config TEXT NOT NULL, UNIQUE (vm_id, name));
      CREATE TABLE IF NOT EXISTS current_checkpoint (vm_id TEXT PRIMARY KEY, checkpoint_id TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS checkpoint_files (path TEXT PRIMARY KEY, vm_id TEXT NOT NULL, parent TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS kept_files (path TEXT PRIMARY KEY);
      CREATE TABLE IF NOT EXISTS pending_merges (child TEXT PRIMARY KEY, vm_id TEXT NOT NULL, parent TEXT NOT NULL);`);
    const cols = (this.db.prepare('PRAGMA table_info(checkpoints)').all() as { name: string }[]).map((c) => c.name);
    if (!cols.includes('kind')) this.db.exec(`ALTER TABLE checkpoints ADD COLUMN kind TEXT NOT NULL DEFAULT 'Standard'`);
  }

  list(): VmRecord[] {
    return (this.db.prepare('SELECT * FROM vms ORDER BY name COLLATE NOCASE').all() as VmRow[]).map(fromRow);
  }

  byName(name: string): VmRecord | null {
    const r = this.db.prepare('SELECT * FROM vms WHERE name = ?').get(name) as VmRow | undefined;
    return r ? fromRow(r) : null;
  }

  insert(config: VmConfig): VmRecord {
    const rec: VmRecord = { id: randomUUID(), name: config.name, config, state: 'Off', created: Date.now() };
    this.db.prepare('INSERT INTO vms (id, name, config, state, created) VALUES (?, ?, ?, ?, ?)')
      .run(rec.id, rec.name, JSON.stringify(config), rec.state, rec.created);
    return rec;
  }

  /** Import-VM: a record with its own id and state. */
  insertImported(rec: VmRecord): void {
    this.db.prepare('INSERT INTO vms (id, name, config, state, created) VALUES (?, ?, ?, ?, ?)')
      .run(rec.id, rec.name, JSON.stringify(rec.config), rec.state, rec.created);
  }

  updateConfig(id: string, config: VmConfig): void {
    this.db.prepare('UPDATE vms SET name = ?, config = ? WHERE id = ?').run(config.name, JSON.stringify(config), id);
  }

  setState(id: string, state: VmState): void {
    this.db.prepare('UPDATE vms SET state = ? WHERE id = ?').run(state, id);
  }

  remove(id: string): void {
    this.transaction(() => {
      this.db.prepare('DELETE FROM vms WHERE id = ?').run(id);
      this.db.prepare('DELETE FROM checkpoints WHERE vm_id = ?').run(id);
      this.db.prepare('DELETE FROM current_checkpoint WHERE vm_id = ?').run(id);
      this.db.prepare('DELETE FROM checkpoint_files WHERE vm_id = ?').run(id);
      this.db.prepare('DELETE FROM pending_merges WHERE vm_id = ?').run(id);
    });
  }

  // ---- checkpoints -------------------------------------------------------------------------------------

  /** A VM's checkpoints, oldest first. */
  checkpoints(vmId: string): CheckpointRecord[] {
    return (this.db.prepare('SELECT * FROM checkpoints WHERE vm_id = ? ORDER BY created, rowid').all(vmId) as CheckpointRow[]).map(checkpointFromRow);
  }

  insertCheckpoint(rec: CheckpointRecord): CheckpointRecord {
    this.db.prepare('INSERT INTO checkpoints (id, vm_id, name, created, parent_id, running, config, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(rec.id, rec.vmId, rec.name, rec.created, rec.parentId, rec.running ? 1 : 0, JSON.stringify(rec.config), rec.kind ?? 'Standard');
    return rec;
  }

  updateCheckpointConfig(id: string, config: VmConfig): void {
    this.db.prepare('UPDATE checkpoints SET config = ? WHERE id = ?').run(JSON.stringify(config), id);
  }

  checkpointFiles(vmId: string): CheckpointFile[] {
    return (this.db.prepare('SELECT path, vm_id, parent FROM checkpoint_files WHERE vm_id = ? ORDER BY rowid').all(vmId) as { path: string; vm_id: string; parent: string }[])
      .map((r) => ({ path: r.path, vmId: r.vm_id, parent: r.parent }));
  }

  addCheckpointFile(f: CheckpointFile): void {
    this.db.prepare('INSERT OR REPLACE INTO checkpoint_files (path, vm_id, parent) VALUES (?, ?, ?)').run(f.path, f.vmId, f.parent);
  }

  removeCheckpointFile(path: string): void {
    this.db.prepare('DELETE FROM checkpoint_files WHERE path = ?').run(path);
  }

  /** Marks an own file the user took out of the VM (Remove-VMHardDiskDrive): it and its chain stay. */
  keepCheckpointFile(path: string): void {
    this.db.prepare('INSERT OR IGNORE INTO kept_files (path) SELECT path FROM checkpoint_files WHERE path = ?').run(path);
  }

  keptFiles(): Set<string> {
    return new Set((this.db.prepare('SELECT path FROM kept_files').all() as { path: string }[]).map((r) => r.path));
  }

  pendingMerges(vmId: string): PendingMerge[] {
    return (this.db.prepare('SELECT child, vm_id, parent FROM pending_merges WHERE vm_id = ?').all(vmId) as { child: string; vm_id: string; parent: string }[])
      .map((r) => ({ child: r.child, vmId: r.vm_id, parent: r.parent }));
  }

  addPendingMerge(m: PendingMerge): void {
    this.db.prepare('INSERT OR REPLACE INTO pending_merges (child, vm_id, parent) VALUES (?, ?, ?)').run(m.child, m.vmId, m.parent);
  }

  removePendingMerge(child: string): void {
    this.db.prepare('DELETE FROM pending_merges WHERE child = ?').run(child);
  }

  /** Whether any of these checkpoint ids exists (of any VM). */
  checkpointsById(ids: string[]): boolean {
    const q = this.db.prepare('SELECT 1 FROM checkpoints WHERE id = ?');
    return ids.some((id) => q.get(id) !== undefined);
  }

  renameCheckpoint(id: string, name: string): void {
    this.db.prepare('UPDATE checkpoints SET name = ? WHERE id = ?').run(name, id);
  }

  /** Deletes one checkpoint; its children hang from its parent from then on (Hyper-V's Delete Checkpoint). */
  removeCheckpoint(id: string): void {
    this.transaction(() => {
      const r = this.db.prepare('SELECT parent_id, vm_id FROM checkpoints WHERE id = ?').get(id) as { parent_id: string | null; vm_id: string } | undefined;
      if (!r) return;
      this.db.prepare('UPDATE checkpoints SET parent_id = ? WHERE parent_id = ?').run(r.parent_id, id);
      if (r.parent_id) this.db.prepare('UPDATE current_checkpoint SET checkpoint_id = ? WHERE checkpoint_id = ?').run(r.parent_id, id);
      else this.db.prepare('DELETE FROM current_checkpoint WHERE checkpoint_id = ?').run(id);
      this.db.prepare('DELETE FROM checkpoints WHERE id = ?').run(id);
    });
  }

  /** The checkpoint the VM's current state descends from (the parent of its next checkpoint). */
  currentCheckpoint(vmId: string): string | null {
    const r = this.db.prepare('SELECT checkpoint_id FROM current_checkpoint WHERE vm_id = ?').get(vmId) as { checkpoint_id: string } | undefined;
    return r?.checkpoint_id ?? null;
  }

  setCurrentCheckpoint(vmId: string, checkpointId: string): void {
    this.db.prepare('INSERT INTO current_checkpoint (vm_id, checkpoint_id) VALUES (?, ?) ON CONFLICT (vm_id) DO UPDATE SET checkpoint_id = excluded.checkpoint_id')
      .run(vmId, checkpointId);
  }

  addEvent(e: Omit<VmEvent, 'seq' | 'time'>): VmEvent {
    const time = Date.now();
    const r = this.db.prepare('INSERT INTO events (time, vm_id, vm_name, from_state, to_state, message) VALUES (?, ?, ?, ?, ?, ?)')
      .run(time, e.vmId, e.vmName, e.from, e.to, e.message);
    return { seq: Number(r.lastInsertRowid), time, ...e };
  }

  /** Newest last; `vmId` narrows to one VM. */
  events(o: { vmId?: string; limit?: number; after?: number } = {}): VmEvent[] {
    const limit = Math.max(1, Math.min(o.limit ?? 100, 10_000));
    const rows = (o.vmId
      ? this.db.prepare('SELECT * FROM events WHERE vm_id = ? AND seq > ? ORDER BY seq DESC LIMIT ?').all(o.vmId, o.after ?? 0, limit)
      : this.db.prepare('SELECT * FROM events WHERE seq > ? ORDER BY seq DESC LIMIT ?').all(o.after ?? 0, limit)) as EventRow[];
    return rows.reverse().map((r) => ({ seq: r.seq, time: r.time, vmId: r.vm_id, vmName: r.vm_name, from: r.from_state, to: r.to_state, message: r.message }));
  }

  transaction<T>(fn: () => T): T { return this.db.transaction(fn)(); }

  close(): void { this.db.close(); }
}

function checkpointFromRow(r: CheckpointRow): CheckpointRecord {
  return { id: r.id, vmId: r.vm_id, name: r.name, created: r.created, parentId: r.parent_id, running: r.running !== 0, config: migrateConfig(JSON.parse(r.config)),
    kind: r.kind === 'Production' ? 'Production' : 'Standard' };
}

function fromRow(r: VmRow): VmRecord {
  return { id: r.id, name: r.name, config: migrateConfig(JSON.parse(r.config)), state: r.state as VmState, created: r.created };
}
