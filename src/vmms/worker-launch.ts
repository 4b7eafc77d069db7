/**
 * How a VM's worker process is launched under isolation (sandbox.ts builds the bubblewrap command): which files
 * it may see (its drives' chains, bound one by one; kernel and initrd through descriptors the service opened and
 * checked), whether it can run as nobody, and /dev/kvm handed over as an open descriptor.
 */
import { chmodSync, constants, existsSync, fstatSync, mkdirSync, openSync, realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { VmConfig } from './config.js';
import { conflict } from './errors.js';
import type { WorkerStartConfig } from './worker-protocol.js';
import { closeFds, isolationSupport, sandboxCommand, WORKER_UID, type SandboxLaunch } from './sandbox.js';
import { openConfined, resolveConfinedPath } from './confined-path.js';
import { WORKER_BOOT_FD } from './worker-grants.js';
import { diskChainPaths } from '../storage/open.js';
import { chownTree } from './checkpoint-ops.js';

/** A sandboxed worker's command, with the descriptors the service opened for it (placed at fixed numbers). */
export type WorkerLaunch = SandboxLaunch & { kvmFd?: number; bootFds: number[] };

/** Threads and processes of one worker (Node uses about a dozen threads). */
const WORKER_PIDS_LIMIT = 128;

export interface LaunchContext {
  isolation: 'auto' | 'required' | 'off';
  workerPath: string;
  /** The VM's own folder (saved state, checkpoints), bound read-write. */
  vmDir: string;
  pathRoots: string[];
  bootRoots: string[];
  memoryLimitBytes: number;
  /** Records an event in the VM's log (isolation missing or incomplete). */
  note(message: string): void;
  /** The uid the worker will run as (undefined: the service's); its folders must then be its own. */
  setWorkerUid(uid: number | undefined): void;
}

/**
 * The sandboxed command of a VM's worker, or null to fork it plainly (isolation off or unavailable, which
 * the VM's event log records every time).
 */
export async function sandboxedLaunch(ctx: LaunchContext, config: VmConfig, wc: WorkerStartConfig): Promise<WorkerLaunch | null> {
  const mode = ctx.isolation;
  if (mode === 'off') { ctx.note('the worker runs without isolation: the service was started with --no-isolation'); return null; }
  const support = isolationSupport();
  if (!support.available) {
    const why = support.notes.join('; ');
    if (mode === 'required') throw conflict(`cannot start VM '${config.name}' isolated: ${why}`);
    ctx.note(`the worker runs WITHOUT isolation (it has the service's rights): ${why}`);
    return null;
  }
  const dir = ctx.vmDir;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const wantKvm = wc.processor !== 'emulated' && existsSync('/dev/kvm');
  const bootPaths = [wc.kernel, wc.initrd].filter((f): f is string => !!f);
  const drives = await driveBinds(config, ctx.pathRoots);
  const closedDisk = support.unprivilegedUser ? [...drives.rw.map((f) => [f, true] as const), ...drives.ro.map((f) => [f, false] as const)]
    .find(([f, w]) => !openToUser(f, WORKER_UID, w))?.[0] : undefined;
  const held: number[] = [];
  try {
    // Kernel and initrd are bound from descriptors the service opened and checked (confined, regular files):
    // what bubblewrap binds is the very file checked, whatever happens to the paths meanwhile.
    const roots = config.boot.kernel ? ctx.bootRoots : bootPaths.map((f) => dirname(realpathSync(f)));
    const bootFds = bootPaths.map((f) => {
      let r;
      try { r = openConfined(f, roots, { what: f === wc.kernel ? 'kernel' : 'initrd' }); } catch (err) {
        throw conflict(`cannot start VM '${config.name}': ${(err as Error).message} (set-vm ${config.name} --${f === wc.kernel ? 'kernel' : 'initrd'} FILE)`);
      }
      held.push(r.fd!);
      return r.fd!;
    });
    // A root service runs the worker as nobody (a KVM one too: it gets /dev/kvm open, below). Boot files must then
    // be readable by everyone: a path only root can read (say /etc/shadow given as a kernel) would otherwise be
    // loaded into guest memory with root's rights.
    if (support.unprivilegedUser) {
      const closed = bootPaths.find((_, i) => (fstatSync(bootFds[i]!).mode & 0o004) === 0);
      if (closed) throw conflict(`cannot start VM '${config.name}': its boot file ${closed} is not readable by other users, and the VM's worker runs as nobody (chmod o+r ${closed} if it is meant to be a kernel or initrd)`);
    }
    // KVM through a descriptor the service opens: no device node in the sandbox, and the worker needs no right
    // to open /dev/kvm (root-only here), so it can run as nobody too. Where the service cannot open it either,
    // the node is bound in as before (the worker then fails or falls back as it would unsandboxed).
    let kvmFd: number | undefined;
    if (wantKvm) try { kvmFd = openSync('/dev/kvm', constants.O_RDWR) /* close-on-exec, as Node opens everything */; held.push(kvmFd); } catch { kvmFd = undefined; }
    const why = support.unprivilegedUser && wantKvm && kvmFd === undefined ? `/dev/kvm is open to root only (processor ${wc.processor})`
      : closedDisk ? `its disk ${closedDisk} is not open to the worker's user (uid ${WORKER_UID}); give that user access to run the worker as it` : null;
    const uid = support.unprivilegedUser && !why ? WORKER_UID : undefined;
    if (uid !== undefined) {
      chownTree(dir, uid);
      // Searchable (not readable) by others: bubblewrap, as root without capabilities, must enter it; the data
      // directory above stays 0700, so no other user reaches it.
      chmodSync(dir, 0o711);
    }
    ctx.setWorkerUid(uid);
    const launch = sandboxCommand({
      workerPath: ctx.workerPath, vmDir: dir, readOnly: drives.ro,
      readOnlyFds: bootPaths.map((dest, i) => ({ fdIndex: WORKER_BOOT_FD + i, dest })),
      readWrite: drives.rw, devices: wantKvm && kvmFd === undefined ? ['/dev/kvm'] : [],
      memoryLimitBytes: ctx.memoryLimitBytes, pidsLimit: WORKER_PIDS_LIMIT, uid,
    }, config.name);
    const notes = [...launch.notes, ...(why ? [`the worker keeps the service's uid: ${why}`] : [])];
    if (notes.length) ctx.note(`the worker's sandbox is incomplete: ${notes.join('; ')}`);
    return { ...launch, kvmFd, bootFds };
  } catch (err) {
    closeFds(held);
    throw err;
  }
}

/**
 * The files a VM's drives need inside its sandbox, bound one by one: each writable disk read-write, its
 * differencing parents, read-only disks and ISOs read-only. Missing files are left out (the worker then
 * reports the drive's error itself).
 */
async function driveBinds(c: VmConfig, roots: string[]): Promise<{ rw: string[]; ro: string[] }> {
  const rw = new Set<string>(), ro = new Set<string>();
  for (const d of c.hardware?.drives ?? []) {
    if (!d.path || !existsSync(d.path)) continue;
    let chain: string[];
    try { chain = await diskChainPaths(d.path); } catch { chain = [d.path]; }
    // Bound by bubblewrap with the service's rights: every file of the chain (a parent locator included) must
    // lie in the path roots, as the files handed over later must (worker-grants.ts).
    for (const f of chain) {
      try { resolveConfinedPath(f, roots, { what: d.kind === 'dvd' ? 'ISO image' : 'disk file' }); } catch (err) {
        throw conflict(`cannot start VM '${c.name}' isolated: ${(err as Error).message}`);
      }
    }
    chain.forEach((f, i) => (i === 0 && d.kind === 'disk' && !d.readOnly ? rw : ro).add(f));
  }
  for (const f of rw) ro.delete(f);
  return { rw: [...rw], ro: [...ro] };
}

/** Whether `uid` (not root) may read, or read and write, the file by its owner and other-permission bits. */
function openToUser(path: string, uid: number, write: boolean): boolean {
  const st = statSync(path);
  const need = write ? 0o6 : 0o4;
  return st.uid === uid ? ((st.mode >> 6) & need) === need : (st.mode & need) === need;
}
