/**
 * Host calls Node does not offer, bound with koffi: fallocate(PUNCH_HOLE), fcntl OFD locks, preadv2(RWF_NOWAIT)
 * (a read served from the page cache without a thread-pool round trip) and pwritev2/pwrite for small writes into
 * the page cache on the event loop.
 * Loaded lazily; every caller has a fallback when the binding or the call is unavailable.
 */
import { nativeLibc } from '../host/native-libc.js';

interface HostCalls {
  fallocate(fd: number, mode: number, off: number, len: number): number;
  fcntlLock(fd: number, cmd: number, flock: Uint8Array): number;
  errno(): number;
  /** preadv2 with one iovec (16 bytes: base, len) already filled in. */
  preadv2(fd: number, iov: Uint8Array, off: number, flags: number): number;
  /** pwritev2 with one iovec already filled in. */
  pwritev2(fd: number, iov: Uint8Array, off: number, flags: number): number;
  address(buf: Uint8Array): bigint;
  /** getrusage into a struct rusage (144 bytes). */
  getrusage(who: number, usage: Uint8Array): number;
}

let cached: HostCalls | null | undefined;

function host(): HostCalls | null {
  if (cached !== undefined) return cached;
  try {
    const { koffi, lib } = nativeLibc();
    const fallocate = lib.func('int fallocate(int fd, int mode, int64_t off, int64_t len)');
    const fcntl = lib.func('int fcntl(int fd, int cmd, void *arg)');
    // The iovec is built by hand: marshalling a struct object costs about twice the system call.
    const preadv2 = lib.func('long preadv2(int fd, void *iov, int iovcnt, int64_t off, int flags)');
    const pwritev2 = lib.func('long pwritev2(int fd, void *iov, int iovcnt, int64_t off, int flags)');
    const getrusage = lib.func('int getrusage(int who, void *usage)');
    cached = {
      fallocate: (fd, mode, off, len) => fallocate(fd, mode, off, len) as number,
      fcntlLock: (fd, cmd, fl) => fcntl(fd, cmd, fl) as number,
      errno: () => koffi.errno(),
      preadv2: (fd, iov, off, flags) => Number(preadv2(fd, iov, 1, off, flags)),
      pwritev2: (fd, iov, off, flags) => Number(pwritev2(fd, iov, 1, off, flags)),
      address: (buf) => koffi.address(buf) as bigint,
      getrusage: (who, usage) => getrusage(who, usage) as number,
    };
  } catch {
    cached = null;
  }
  return cached;
}

const FALLOC_FL_KEEP_SIZE = 1;
const FALLOC_FL_PUNCH_HOLE = 2;

/** Deallocates [off, off+len) so it reads as zeros, keeping the file size. False if the host cannot. */
export function punchHole(fd: number, off: number, len: number): boolean {
  const h = host();
  if (!h) return false;
  return h.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) === 0;
}

const RWF_NOWAIT = 8;
let noWaitReads = true;
const iov = new Uint8Array(16);
const iovView = new DataView(iov.buffer);

/**
 * Reads what the page cache holds of [pos, pos+buf.length) synchronously, without ever waiting for the device or a
 * lock: the bytes read (possibly fewer than asked, 0 at end of file), or -1 when the read would block or the host
 * cannot do this (then the caller reads through the thread pool). A cached 4 KiB read costs about 1.5 us here
 * against 7 us for a thread-pool read.
 */
export function readNoWait(fd: number, buf: Uint8Array, pos: number): number {
  if (!noWaitReads) return -1;
  const h = host();
  if (!h) { noWaitReads = false; return -1; }
  let n: number;
  try {
    void buf.buffer; // moves a small on-heap array's bytes off the heap, where they stay put for the call
    iovView.setBigUint64(0, h.address(buf), true);
    iovView.setBigUint64(8, BigInt(buf.length), true);
    n = h.preadv2(fd, iov, pos, RWF_NOWAIT);
  } catch {
    return -1; // a buffer koffi cannot address; the thread pool can read it
  }
  if (n >= 0) return n;
  const e = h.errno();
  if (e === ENOSYS || e === EOPNOTSUPP || e === EINVAL) noWaitReads = false; // old kernel or a file system without it
  return -1;
}

/** How a write on the event loop went: bytes written, 'blocked' (the pool writes it) or 'unsupported' (nowait
 *  writes are not possible on this file system). */
export type EventLoopWrite = number | 'blocked' | 'unsupported';

/**
 * Writes [pos, pos+data.length) into the page cache on the event loop. nowait: with RWF_NOWAIT, so the kernel refuses
 * rather than block (buffered writes support it on XFS and btrfs; ext4 and tmpfs answer EOPNOTSUPP). Without it, a
 * plain pwrite that can block; the caller bounds that (see NodeFile). Any error ('blocked'): the thread pool redoes
 * the write and reports the error properly.
 */
export function writeOnLoop(fd: number, data: Uint8Array, pos: number, nowait: boolean): EventLoopWrite {
  const h = host();
  if (!h) return 'unsupported';
  let n: number;
  try {
    void data.buffer; // as in readNoWait
    iovView.setBigUint64(0, h.address(data), true);
    iovView.setBigUint64(8, BigInt(data.length), true);
    n = h.pwritev2(fd, iov, pos, nowait ? RWF_NOWAIT : 0);
  } catch {
    return 'blocked'; // a buffer koffi cannot address; the thread pool can write it
  }
  if (n >= 0) return n;
  const e = h.errno();
  if (e === ENOSYS || e === EOPNOTSUPP || (nowait && e === EINVAL)) return 'unsupported';
  return 'blocked';
}

const RUSAGE_THREAD = 1;
const rusage = new BigInt64Array(18);
const rusageBytes = new Uint8Array(rusage.buffer);
/**
 * How many times the calling thread has slept (voluntary context switches, ru_nvcsw); -1 if unknown. A call that
 * took long without one was preempted (a loaded host), not blocked.
 */
export function threadSleeps(): number {
  const h = host();
  if (!h || h.getrusage(RUSAGE_THREAD, rusageBytes) !== 0) return -1;
  return Number(rusage[16]);
}

const ENOSYS = 38;
const EOPNOTSUPP = 95;
const EINVAL = 22;
const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const F_WRLCK = 1;
const F_RDLCK = 0;
const F_UNLCK = 2;
const EAGAIN = 11;
const EACCES = 13;

/** struct flock (x86-64): l_type s16, l_whence s16, pad, l_start s64, l_len s64, l_pid s32, pad. */
function flock(type: number): Uint8Array {
  const b = new Uint8Array(32);
  const dv = new DataView(b.buffer);
  dv.setInt16(0, type, true);
  dv.setInt16(2, 0, true); // SEEK_SET; whole file (start 0, len 0)
  return b;
}

export type LockResult = 'locked' | 'busy' | 'unsupported';

/**
 * An open-file-description lock on the whole file: released by the kernel when the descriptor closes or the
 * process dies, so a crashed holder never leaves a stale lock.
 */
export function ofdLock(fd: number, exclusive: boolean): LockResult {
  const h = host();
  if (!h) return 'unsupported';
  const r = h.fcntlLock(fd, F_OFD_SETLK, flock(exclusive ? F_WRLCK : F_RDLCK));
  if (r === 0) return 'locked';
  const e = h.errno();
  return e === EAGAIN || e === EACCES ? 'busy' : 'unsupported';
}

export function ofdUnlock(fd: number): void {
  host()?.fcntlLock(fd, F_OFD_SETLK, flock(F_UNLCK));
}

/** Whether another descriptor holds a conflicting lock (for messages). */
export function ofdConflict(fd: number, exclusive: boolean): boolean {
  const h = host();
  if (!h) return false;
  const b = flock(exclusive ? F_WRLCK : F_RDLCK);
  if (h.fcntlLock(fd, F_OFD_GETLK, b) !== 0) return false;
  return new DataView(b.buffer).getInt16(0, true) !== F_UNLCK;
}
