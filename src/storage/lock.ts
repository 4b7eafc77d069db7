/**
 * Disk file locking: a writable open takes an exclusive fcntl OFD lock on the file, a read-only open (a VM's
 * read-only disk, a differencing disk's parent) a shared one. The kernel drops OFD locks when the descriptor
 * closes or the process dies, so a crashed holder never blocks anyone. The exclusive holder also leaves a small
 * sidecar record (who, pid, why) used only to name the holder in the error.
 */
import { readFileSync, unlinkSync, writeFileSync, renameSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { hostname } from 'node:os';
import { ofdConflict, ofdLock, ofdUnlock } from './host-io.js';

export class DiskLockedError extends Error {
  constructor(readonly path: string, readonly holder: string) {
    super(`${path} is in use by ${holder}; stop that user (VM, merge, conversion) or open the disk read-only`);
    this.name = 'DiskLockedError';
  }
}

export interface LockHolder { pid: number; host: string; purpose: string; since: string }

export function holderRecordPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.holder`);
}

function describeHolder(path: string, exclusiveWanted: boolean): string {
  try {
    const h = JSON.parse(readFileSync(holderRecordPath(path), 'utf8')) as LockHolder;
    // A record of a process that died (SIGKILL, power cut) names nobody: its OFD lock died with it.
    if (typeof h.pid === 'number' && !(h.host === hostname() && !processExists(h.pid))) return `${h.purpose || 'another process'} (pid ${h.pid} on ${h.host}, since ${h.since})`;
  } catch { /* no record: a reader holds it */ }
  return exclusiveWanted ? 'another process that has it open (for example as the parent of a running differencing disk)' : 'another process writing to it';
}

function processExists(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

export interface HeldLock { release(): void }

/** Locks the open file `fd` of `path`; throws DiskLockedError naming the holder when another process has it. */
export function lockDisk(fd: number | undefined, path: string, exclusive: boolean, purpose = 'a hyperts process'): HeldLock {
  if (fd === undefined) return { release() { /* nothing locked */ } };
  const r = ofdLock(fd, exclusive);
  if (r === 'busy' || (r === 'unsupported' && ofdConflict(fd, exclusive))) throw new DiskLockedError(path, describeHolder(path, exclusive));
  let record: string | null = null;
  if (exclusive && r === 'locked') {
    record = holderRecordPath(path);
    const h: LockHolder = { pid: process.pid, host: hostname(), purpose, since: new Date().toISOString() };
    try {
      writeFileSync(`${record}.tmp${process.pid}`, JSON.stringify(h));
      renameSync(`${record}.tmp${process.pid}`, record);
    } catch { record = null; /* the record is informational; a read-only directory must not stop the VM */ }
  }
  return {
    release() {
      if (record) {
        try {
          const h = JSON.parse(readFileSync(record, 'utf8')) as LockHolder;
          if (h.pid === process.pid) unlinkSync(record);
        } catch { /* already gone */ }
        record = null;
      }
      if (r === 'locked') ofdUnlock(fd);
    },
  };
}
