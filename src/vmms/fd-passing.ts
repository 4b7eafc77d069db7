/**
 * Handing open files to a VM worker (the way crosvm and Firecracker's jailer give a jailed process its disks):
 * the service opens a file itself, after its own path checks, and sends the descriptor over an AF_UNIX
 * SOCK_SEQPACKET socketpair with SCM_RIGHTS. An isolated worker thus gets exactly the files it needs without
 * any path of them in its sandbox.
 *
 * One message = one descriptor and a 16-byte header (magic, grant number, flags). The channel is one-way: the
 * service shuts its end for reading, so a worker (untrusted) can send neither data nor descriptors back (its
 * sends fail with EPIPE). The receiver closes every descriptor of a message it does not accept.
 * Bound with koffi (Node has no SCM_RIGHTS for files); every user has a fallback when it is unavailable.
 */
import { nativeLibc } from '../host/native-libc.js';
import { closeSync } from 'node:fs';

interface Calls {
  socketpair(domain: number, type: number, proto: number, sv: Int32Array): number;
  sendmsg(fd: number, msg: Uint8Array, flags: number): number;
  recvmsg(fd: number, msg: Uint8Array, flags: number): number;
  shutdown(fd: number, how: number): number;
  dupCloexec(fd: number): number;
  errno(): number;
  address(b: Uint8Array): bigint;
}

let cached: Calls | null | undefined;
function calls(): Calls | null {
  if (cached !== undefined) return cached;
  try {
    const { koffi, lib } = nativeLibc();
    const socketpair = lib.func('int socketpair(int domain, int type, int protocol, void *sv)');
    const sendmsg = lib.func('long sendmsg(int fd, void *msg, int flags)');
    const recvmsg = lib.func('long recvmsg(int fd, void *msg, int flags)');
    const shutdown = lib.func('int shutdown(int fd, int how)');
    const fcntl = lib.func('fcntl', 'int', ['int', 'int', 'int']);
    cached = {
      socketpair: (d, t, p, sv) => socketpair(d, t, p, sv) as number,
      sendmsg: (fd, m, f) => Number(sendmsg(fd, m, f)),
      recvmsg: (fd, m, f) => Number(recvmsg(fd, m, f)),
      shutdown: (fd, how) => shutdown(fd, how) as number,
      dupCloexec: (fd) => fcntl(fd, F_DUPFD_CLOEXEC, 0) as number,
      errno: () => koffi.errno(),
      address: (b) => koffi.address(b) as bigint,
    };
  } catch {
    cached = null;
  }
  return cached;
}

const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
const SOCK_CLOEXEC = 0x80000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_DONTWAIT = 0x40;
const MSG_CTRUNC = 0x8;
const MSG_TRUNC = 0x20;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const SHUT_RD = 0;
const F_DUPFD_CLOEXEC = 1030;
const EAGAIN = 11;
const EINTR = 4;

/** "HFD1": a message of this channel. */
export const GRANT_MAGIC = 0x31444648;
export const GRANT_HEADER = 16;
/** Header flag: the descriptor is open for writing. */
export const GRANT_WRITABLE = 1;
/** Room for more descriptors than a message should carry: extras are seen (and closed) instead of lost. */
const CONTROL_FDS = 8;
const CMSG_HDR = 16;
const CONTROL_BYTES = CMSG_HDR + CONTROL_FDS * 4;

export class FdPassingError extends Error {}

/** Whether descriptors can be passed here (koffi and libc loaded). */
export function fdPassingAvailable(): boolean { return calls() !== null; }

/** A socketpair: [service end, worker end], both close-on-exec (spawn's stdio entry clears it in the child). */
export function fdChannelPair(): [number, number] {
  const c = calls();
  if (!c) throw new FdPassingError('descriptor passing is unavailable (koffi could not load libc)');
  const sv = new Int32Array(new ArrayBuffer(8));
  if (c.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) !== 0) throw new FdPassingError(`socketpair failed (errno ${c.errno()})`);
  // The worker may not talk back: its sends fail from now on, and nothing ever queues at the service.
  c.shutdown(sv[0]!, SHUT_RD);
  return [sv[0]!, sv[1]!];
}

/** A second descriptor of the same open file (same offset, flags and OFD locks), close-on-exec. */
export function dupFd(fd: number): number {
  const c = calls();
  if (!c) throw new FdPassingError('descriptor passing is unavailable (koffi could not load libc)');
  const r = c.dupCloexec(fd);
  if (r < 0) throw new FdPassingError(`cannot duplicate descriptor ${fd} (errno ${c.errno()})`);
  return r;
}

/** struct msghdr (56 bytes on x86-64) pointing at one iovec and a control buffer. */
function msghdr(c: Calls, iov: Uint8Array, control: Uint8Array, controlLen: number): Uint8Array {
  const m = new Uint8Array(new ArrayBuffer(56));
  const v = new DataView(m.buffer);
  v.setBigUint64(16, c.address(iov), true); // msg_iov
  v.setBigUint64(24, 1n, true); // msg_iovlen
  v.setBigUint64(32, c.address(control), true); // msg_control
  v.setBigUint64(40, BigInt(controlLen), true); // msg_controllen
  return m;
}

function iovec(c: Calls, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(new ArrayBuffer(16));
  const v = new DataView(b.buffer);
  v.setBigUint64(0, c.address(data), true);
  v.setBigUint64(8, BigInt(data.length), true);
  return b;
}

/**
 * Sends `fd` with its grant number over the channel (the service's end). The kernel takes its own reference:
 * the caller may close `fd` right after. Throws when the worker is gone or its queue is full.
 */
export function sendFd(channel: number, fd: number, grant: number, flags = 0): void {
  const c = calls();
  if (!c) throw new FdPassingError('descriptor passing is unavailable (koffi could not load libc)');
  const data = new Uint8Array(new ArrayBuffer(GRANT_HEADER));
  const dv = new DataView(data.buffer);
  dv.setUint32(0, GRANT_MAGIC, true);
  dv.setUint32(4, grant >>> 0, true);
  dv.setUint32(8, flags >>> 0, true);
  const control = new Uint8Array(new ArrayBuffer(24)); // CMSG_SPACE(4)
  const cv = new DataView(control.buffer);
  cv.setBigUint64(0, 20n, true); // CMSG_LEN(4)
  cv.setInt32(8, SOL_SOCKET, true);
  cv.setInt32(12, SCM_RIGHTS, true);
  cv.setInt32(16, fd, true);
  const iov = iovec(c, data);
  const m = msghdr(c, iov, control, control.length);
  for (;;) {
    const n = c.sendmsg(channel, m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n === GRANT_HEADER) return;
    const e = n < 0 ? c.errno() : 0;
    if (e === EINTR) continue;
    throw new FdPassingError(e === EAGAIN ? 'the worker is not taking the files it was sent (its queue is full)' : `sending a file to the worker failed (errno ${e})`);
  }
}

export interface ReceivedFd { grant: number; fd: number; writable: boolean }

/**
 * One message from the channel without waiting (the worker's end): null when none is queued. A message that is
 * not exactly one header and one descriptor is dropped, closing whatever descriptors it carried; `rejected`
 * counts those.
 */
export function receiveFd(channel: number, stats?: { rejected: number }): ReceivedFd | null {
  const c = calls();
  if (!c) throw new FdPassingError('descriptor passing is unavailable (koffi could not load libc)');
  for (;;) {
    const data = new Uint8Array(new ArrayBuffer(GRANT_HEADER + 16)); // room to see an oversized message as such
    const control = new Uint8Array(new ArrayBuffer(CONTROL_BYTES));
    const iov = iovec(c, data);
    const m = msghdr(c, iov, control, control.length);
    const n = c.recvmsg(channel, m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      const e = c.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) return null;
      throw new FdPassingError(`receiving a file from the service failed (errno ${e})`);
    }
    const mv = new DataView(m.buffer);
    const msgFlags = mv.getInt32(48, true);
    const fds = controlFds(control, Number(mv.getBigUint64(40, true)));
    // Zero bytes: the service's end is closed, or an empty message (its descriptors are dropped).
    if (n === 0 && fds.length === 0) return null;
    const dv = new DataView(data.buffer);
    const ok = n === GRANT_HEADER && !(msgFlags & (MSG_CTRUNC | MSG_TRUNC)) && fds.length === 1 && dv.getUint32(0, true) === GRANT_MAGIC;
    if (!ok) {
      for (const fd of fds) try { closeSync(fd); } catch { /* closed */ }
      if (stats) stats.rejected++;
      continue;
    }
    return { grant: dv.getUint32(4, true), fd: fds[0]!, writable: (dv.getUint32(8, true) & GRANT_WRITABLE) !== 0 };
  }
}

/** The descriptors of every SCM_RIGHTS item in a received control buffer (bounds-checked walk). */
function controlFds(control: Uint8Array, len: number): number[] {
  const out: number[] = [];
  const v = new DataView(control.buffer);
  const end = Math.min(len, control.length);
  for (let off = 0; off + CMSG_HDR <= end;) {
    const clen = Number(v.getBigUint64(off, true));
    if (clen < CMSG_HDR || off + clen > end) break;
    if (v.getInt32(off + 8, true) === SOL_SOCKET && v.getInt32(off + 12, true) === SCM_RIGHTS) {
      for (let p = off + CMSG_HDR; p + 4 <= off + clen; p += 4) out.push(v.getInt32(p, true));
    }
    off += (clen + 7) & ~7;
  }
  return out;
}

/** Test hook: sends arbitrary bytes and descriptors (a misbehaving peer). */
export function sendRaw(channel: number, bytes: Uint8Array, fds: number[]): number {
  const c = calls();
  if (!c) throw new FdPassingError('descriptor passing is unavailable (koffi could not load libc)');
  const data = new Uint8Array(new ArrayBuffer(Math.max(1, bytes.length)));
  data.set(bytes);
  const clen = CMSG_HDR + fds.length * 4;
  const control = new Uint8Array(new ArrayBuffer(Math.max(8, (clen + 7) & ~7)));
  const cv = new DataView(control.buffer);
  if (fds.length) {
    cv.setBigUint64(0, BigInt(clen), true);
    cv.setInt32(8, SOL_SOCKET, true);
    cv.setInt32(12, SCM_RIGHTS, true);
    fds.forEach((fd, i) => cv.setInt32(CMSG_HDR + i * 4, fd, true));
  }
  const iov = iovec(c, data);
  new DataView(iov.buffer).setBigUint64(8, BigInt(bytes.length), true);
  const m = msghdr(c, iov, control, fds.length ? control.length : 0);
  if (!fds.length) new DataView(m.buffer).setBigUint64(32, 0n, true);
  const n = c.sendmsg(channel, m, MSG_DONTWAIT | MSG_NOSIGNAL);
  return n < 0 ? -c.errno() : n;
}
