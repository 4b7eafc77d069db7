/**
 * The few libc entry points the KVM backend needs, bound with koffi. Loaded lazily so that importing
 * the KVM modules on a host without koffi's native part (or without KVM) costs nothing until used.
 *
 * ioctl is variadic in C; it is bound here with fixed prototypes (fd, request, pointer) and
 * (fd, request, integer). On x86-64 SysV a variadic callee only reads %al to decide whether to spill
 * vector registers, so a fixed-prototype call is safe and avoids koffi's slower variadic path. (KVM_RUN,
 * the hot call, normally goes through the zero-argument stub of run-stub.ts instead.)
 */
import { nativeLibc } from '../../host/native-libc.js';

export interface Libc {
  open(path: string, flags: number): number;
  close(fd: number): number;
  /** ioctl with a pointer argument (a Uint8Array/Buffer whose bytes the kernel reads or writes, or null). */
  ioctlPtr(fd: number, request: number, arg: Uint8Array | null): number;
  /** ioctl with an integer argument. */
  ioctlInt(fd: number, request: number, arg: number): number;
  /** mmap returning an opaque pointer, or null on failure. */
  mmap(len: number, prot: number, flags: number, fd: number, offset: number): unknown;
  munmap(ptr: unknown, len: number): number;
  mprotect(ptr: unknown, len: number, prot: number): number;
  /** A callable for the native function `int f(void)` at `ptr`. */
  nativeFunction0(ptr: unknown): () => number;
  /** An ArrayBuffer over native memory (no copy). */
  view(ptr: unknown, len: number): ArrayBuffer;
  /** Numeric address of a native pointer. */
  address(ptr: unknown): bigint;
  /** Address of an off-heap typed array's bytes (allocate it over an explicit ArrayBuffer). */
  addressOf(bytes: Uint8Array): bigint;
  madvise(ptr: unknown, len: number, advice: number): number;
  eventfd(initval: number, flags: number): number;
  write(fd: number, buf: Uint8Array, len: number): number;
  pthreadSelf(): number | bigint;
  pthreadKill(thread: number | bigint, sig: number): number;
  pthreadSigmask(how: number, set: Uint8Array, old: Uint8Array | null): number;
  /** sigtimedwait(set, NULL, timeout): takes one pending signal of `set` (timeout: struct timespec, 16 bytes). */
  sigtimedwait(set: Uint8Array, timeout: Uint8Array): number;
  gettid(): number;
  /** timer_create(clock, sigevent, &id): returns the timer id, or -1. */
  timerCreate(clock: number, sigevent: Uint8Array): number;
  timerSettime(id: number, itimerspec: Uint8Array): number;
  timerDelete(id: number): number;
  errno(): number;
  strerror(e: number): string;
}

let cached: Libc | null = null;
let loadError: string | null = null;

/** libc through koffi, or throws with a message saying why it cannot load. */
export function libc(): Libc {
  if (cached) return cached;
  if (loadError) throw new Error(loadError);
  try {
    const { koffi, lib } = nativeLibc();
    const open = lib.func('int open(const char *path, int flags, ...)');
    const close = lib.func('int close(int fd)');
    const ioctlPtr = lib.func('int ioctl(int fd, unsigned long req, void *arg)');
    const ioctlInt = lib.func('int ioctl(int fd, unsigned long req, unsigned long arg)');
    const mmap = lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)');
    const munmap = lib.func('int munmap(void *addr, size_t len)');
    const mprotect = lib.func('int mprotect(void *addr, size_t len, int prot)');
    const intVoid = koffi.proto('int', []);
    const eventfd = lib.func('int eventfd(unsigned int initval, int flags)');
    const write = lib.func('intptr_t write(int fd, const void *buf, size_t len)');
    const pthreadSelf = lib.func('unsigned long pthread_self()');
    const pthreadKill = lib.func('int pthread_kill(unsigned long thread, int sig)');
    const pthreadSigmask = lib.func('int pthread_sigmask(int how, const void *set, void *old)');
    const sigtimedwait = lib.func('int sigtimedwait(const void *set, void *info, const void *timeout)');
    const gettid = lib.func('int gettid()');
    const timerCreate = lib.func('int timer_create(int clock, void *sev, _Out_ intptr_t *id)');
    const timerSettime = lib.func('int timer_settime(intptr_t id, int flags, const void *value, void *old)');
    const timerDelete = lib.func('int timer_delete(intptr_t id)');
    const strerror = lib.func('const char *strerror(int e)');
    // koffi passes a typed array as a pointer to its bytes; memmove(p, p, 0) returns that pointer.
    const memmove = lib.func('void *memmove(void *d, const void *s, size_t n)');
    const madvise = lib.func('int madvise(void *addr, size_t len, int advice)');
    const MAP_FAILED = -1n;
    cached = {
      open: (path, flags) => open(path, flags) as number,
      close: (fd) => close(fd) as number,
      ioctlPtr: (fd, req, arg) => ioctlPtr(fd, req, arg) as number,
      ioctlInt: (fd, req, arg) => ioctlInt(fd, req, arg) as number,
      mmap: (len, prot, flags, fd, off) => {
        const p = mmap(null, len, prot, flags, fd, off);
        if (p === null) return null;
        return BigInt.asIntN(64, koffi.address(p)) === MAP_FAILED ? null : p;
      },
      munmap: (p, len) => munmap(p, len) as number,
      mprotect: (p, len, prot) => mprotect(p, len, prot) as number,
      nativeFunction0: (p) => koffi.decode(p, intVoid) as () => number,
      view: (p, len) => koffi.view(p, len),
      address: (p) => koffi.address(p),
      addressOf: (b) => koffi.address(memmove(b, b, 0)),
      madvise: (p, len, adv) => madvise(p, len, adv) as number,
      eventfd: (v, f) => eventfd(v, f) as number,
      write: (fd, buf, len) => Number(write(fd, buf, len)),
      pthreadSelf: () => pthreadSelf() as number | bigint,
      pthreadKill: (t, s) => pthreadKill(t, s) as number,
      pthreadSigmask: (how, set, old) => pthreadSigmask(how, set, old) as number,
      sigtimedwait: (set, timeout) => sigtimedwait(set, null, timeout) as number,
      gettid: () => gettid() as number,
      timerCreate: (clock, sev) => {
        const id = [0];
        return (timerCreate(clock, sev, id) as number) < 0 ? -1 : Number(id[0]);
      },
      timerSettime: (id, spec) => timerSettime(id, 0, spec, null) as number,
      timerDelete: (id) => timerDelete(id) as number,
      errno: () => koffi.errno(),
      strerror: (e) => String(strerror(e)),
    };
    return cached;
  } catch (e) {
    loadError = e instanceof Error ? e.message : String(e);
    throw new Error(loadError);
  }
}

/** Error from a failed libc call, with errno decoded. */
export class KvmError extends Error {
  constructor(readonly op: string, readonly errno: number, message?: string) {
    super(message ?? `${op} failed: ${errnoName(errno)}`);
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 4: 'EINTR', 5: 'EIO', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT',
  16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV', 22: 'EINVAL', 24: 'EMFILE', 25: 'ENOTTY', 95: 'EOPNOTSUPP',
};

export function errnoName(e: number): string {
  const n = ERRNO_NAMES[e];
  let msg = '';
  try { msg = cached ? cached.strerror(e) : ''; } catch { /* message is optional */ }
  return `${n ?? `errno ${e}`}${msg ? ` (${msg})` : ''}`;
}
