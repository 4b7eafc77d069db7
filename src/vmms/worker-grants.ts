/**
 * The service's side of file grants (fd-passing.ts): before a request that makes the worker open files, the
 * service opens them itself, with its own checks, sends the descriptors and names them in the request
 * (worker-files.ts). This is how an isolated worker, which sees only the files it started with, takes an online
 * checkpoint (the new differencing disk), merges online (the parent, writable) and gets a hot-added disk.
 *
 * A disk is granted with its whole chain (the disk, then each parent as its locator resolves, read-only):
 * simpler than the worker asking for parents, and the worker can then never name a file itself.
 */
import { closeSync } from 'node:fs';
import { openConfined } from './confined-path.js';
import { diskChainPaths } from '../storage/open.js';
import { closeFds } from './sandbox.js';
import { fdChannelPair, fdPassingAvailable, GRANT_WRITABLE, sendFd } from './fd-passing.js';
import type { FileGrant } from './worker-files.js';
import type { WorkerOp } from './worker-protocol.js';

/** Where the worker finds its end of the channel (after stdin/out/err, the IPC channel and bwrap's seccomp descriptor). */
export const WORKER_FILE_CHANNEL_FD = 5;
/** Where a sandboxed worker finds the open /dev/kvm the service handed in (KVM VMs). */
export const WORKER_KVM_FD = 6;
/** Where bubblewrap finds the kernel (and the initrd at the next number) it binds from descriptors. */
export const WORKER_BOOT_FD = 7;

export interface FileWanted { path: string; writable: boolean }

/** The files a request opens in the worker (none for most). `mergeParent`: the parent an online merge finishes on. */
export async function filesFor(op: WorkerOp, mergeParent?: string): Promise<FileWanted[]> {
  switch (op.op) {
    case 'checkpointDetach': return chains(op.disks.map((p) => [p, true]));
    case 'checkpointAttach': return chains(op.swaps.flatMap((s) => [[s.to, true], [s.from, true]] as [string, boolean][]));
    case 'mergeCopy': return chains([[op.parent, true]]);
    case 'mergeFinish': return op.commit && mergeParent ? chains([[mergeParent, true]]) : [];
    case 'attachDrive': return op.drive.path ? chains([[op.drive.path, op.drive.kind === 'disk' && !op.drive.readOnly]]) : [];
    // A disc image is read as it is: no chain to follow.
    case 'changeMedia': return op.drive.path ? [{ path: op.drive.path, writable: false }] : [];
    default: return [];
  }
}

async function chains(tops: [string, boolean][]): Promise<FileWanted[]> {
  const out: FileWanted[] = [];
  const seen = new Set<string>();
  for (const [top, writable] of tops) {
    const chain = await diskChainPaths(top);
    chain.forEach((path, i) => {
      const w = i === 0 && writable;
      const key = `${w ? 'w' : 'r'}:${path}`;
      if (!seen.has(key)) { seen.add(key); out.push({ path, writable: w }); }
    });
  }
  return out;
}

/** A worker's file channel, the service's end. */
export class FileChannel {
  private next = 1;
  private closed = false;
  private constructor(private readonly fd: number, private worker: number) {}
  get workerEnd(): number { return this.worker; }

  /** A new channel, or null when descriptors cannot be passed here (then an isolated worker keeps its files). */
  static create(): FileChannel | null {
    if (!fdPassingAvailable()) return null;
    try { const [s, w] = fdChannelPair(); return new FileChannel(s, w); } catch { return null; }
  }

  /** After spawn: the child has its copy of the worker's end. */
  closeWorkerEnd(): void { if (this.worker >= 0) closeFds([this.worker]); this.worker = -1; }

  /**
   * Opens and sends each file; the grants name them in the request. The service keeps no descriptor. Every file
   * (a disk and each parent its locator names) must lie in `roots` and be a regular file (confined-path.ts): a
   * differencing disk cannot pull a file from elsewhere into the worker through its parent locator.
   */
  send(files: FileWanted[], roots: string[]): FileGrant[] {
    if (this.closed) throw new Error('the worker\'s file channel is closed');
    const out: FileGrant[] = [];
    for (const f of files) {
      const fd = openConfined(f.path, roots, { write: f.writable, what: 'disk file' }).fd!;
      try {
        const grant = this.next++;
        sendFd(this.fd, fd, grant, f.writable ? GRANT_WRITABLE : 0);
        out.push({ grant, path: f.path, writable: f.writable });
      } finally { closeSync(fd); }
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closeWorkerEnd();
    closeFds([this.fd]);
  }
}
