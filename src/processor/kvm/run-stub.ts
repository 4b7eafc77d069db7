/**
 * KVM_RUN for one vCPU as a zero-argument native function: 25 bytes of x86-64 made at run time
 * (`endbr64; mov $fd, %edi; mov $KVM_RUN, %esi; xor %edx, %edx; mov $SYS_ioctl, %eax; syscall; ret`)
 * in a page that is written, then made read+execute (never both).
 *
 * Why: KVM_RUN is the one call made per exit, and each koffi argument costs a N-API conversion on a path
 * the kernel has just pushed out of the caches. On kvm_pvm a zero-argument call saved ~200 ns of a ~9 us
 * PIO round trip against ioctl(fd, req, arg) (bench:exits: 1.07x -> 1.05x of the C program's loop).
 * The stub returns the kernel's result as is: >= 0, or -errno (no libc errno to fetch).
 * Where the page cannot be made executable (or off x86-64), KVM_RUN goes through libc's ioctl instead.
 */
import * as abi from './abi.js';
import type { Libc } from './libc.js';

const SYS_IOCTL = 16;
const PAGE = 4096;

/** The stub's machine code for vCPU fd `fd`. */
export function runStubCode(fd: number): Uint8Array {
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fff_ffff) throw new RangeError(`bad vCPU fd ${fd}`);
  const imm = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  return new Uint8Array([
    0xf3, 0x0f, 0x1e, 0xfa, // endbr64 (a no-op unless indirect-branch tracking is on)
    0xbf, ...imm(fd), // mov $fd, %edi
    0xbe, ...imm(abi.KVM_RUN), // mov $KVM_RUN, %esi
    0x31, 0xd2, // xor %edx, %edx (KVM_RUN refuses a non-zero argument)
    0xb8, ...imm(SYS_IOCTL), // mov $SYS_ioctl, %eax
    0x0f, 0x05, // syscall
    0xc3, // ret
  ]);
}

export interface KvmRunCall {
  /** One KVM_RUN: its result, or -errno. */
  run(): number;
  /** True when `run` is the native stub (false: libc ioctl). */
  readonly native: boolean;
  /** Releases the stub's page; `run` must not be called afterwards. */
  free(): void;
}

/** KVM_RUN on `fd` through the stub when possible (`native: false` forces libc's ioctl). */
export function kvmRunCall(c: Libc, fd: number, native = true): KvmRunCall {
  const viaLibc: KvmRunCall = {
    run: () => { const r = c.ioctlInt(fd, abi.KVM_RUN, 0); return r < 0 ? -c.errno() : r; },
    native: false,
    free: () => {},
  };
  if (!native || process.arch !== 'x64' || process.platform !== 'linux') return viaLibc;
  const page = c.mmap(PAGE, abi.PROT_READ | abi.PROT_WRITE, abi.MAP_PRIVATE | abi.MAP_ANONYMOUS, -1, 0);
  if (page === null) return viaLibc;
  new Uint8Array(c.view(page, PAGE)).set(runStubCode(fd));
  if (c.mprotect(page, PAGE, abi.PROT_READ | abi.PROT_EXEC) !== 0) { c.munmap(page, PAGE); return viaLibc; }
  let fn: () => number;
  try {
    fn = c.nativeFunction0(page);
  } catch {
    c.munmap(page, PAGE);
    return viaLibc;
  }
  let freed = false;
  return {
    run: fn,
    native: true,
    free: () => { if (!freed) { freed = true; c.munmap(page, PAGE); } },
  };
}
