/**
 * The worker's seccomp filter as a classic BPF program (what bwrap --seccomp loads), built here without
 * libseccomp: x86-64 only (other architectures and the x32 ABI are killed), then a deny list of system calls
 * a VM worker never needs (sockets, mounts and namespaces, kernel modules and keys, tracing other processes,
 * io_uring, which would bypass the filter). Everything else is allowed: a deny list, not an allow list,
 * because Node's and libuv's needs differ between versions.
 */

const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_JGE_K = 0x35;
const BPF_JSET_K = 0x45;
const BPF_RET_K = 0x06;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const RET_KILL_PROCESS = 0x80000000;
const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;
const EPERM = 1;
const ENOSYS = 38;
const X32_BIT = 0x40000000;
/** seccomp_data: nr at 0, arch at 4, args from 16 (low 32 bits first). */
const OFF_NR = 0, OFF_ARCH = 4, OFF_ARG0_LO = 16;

/** x86-64 system call numbers refused with EPERM. */
export const DENIED_SYSCALLS: Record<string, number> = {
  socket: 41, socketpair: 53, ptrace: 101, personality: 135, pivot_root: 155, chroot: 161, acct: 163, mount: 165,
  umount2: 166, swapon: 167, swapoff: 168, reboot: 169, sethostname: 170, setdomainname: 171, iopl: 172, ioperm: 173,
  init_module: 175, delete_module: 176, quotactl: 179, lookup_dcookie: 212, add_key: 248, request_key: 249,
  keyctl: 250, kexec_load: 246, unshare: 272, perf_event_open: 298, fanotify_init: 300, name_to_handle_at: 303,
  open_by_handle_at: 304, setns: 308, process_vm_readv: 310, process_vm_writev: 311, kcmp: 312, finit_module: 313,
  kexec_file_load: 320, bpf: 321, userfaultfd: 323, open_tree: 428, move_mount: 429, fsopen: 430, fsconfig: 431,
  fsmount: 432, fspick: 433, mount_setattr: 442,
};
/** Refused with ENOSYS, so the C library and libuv fall back to what the filter can see (clone, epoll). */
export const UNAVAILABLE_SYSCALLS: Record<string, number> = { io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427, clone3: 435 };
const CLONE = 56;
/** CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME: clone may make threads and processes, not namespaces. */
const CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080;

type Insn = [code: number, jt: number, jf: number, k: number];

/** The program as bytes (struct sock_filter[]: u16 code, u8 jt, u8 jf, u32 k, little-endian). */
export function seccompProgram(): Buffer {
  const deny = Object.values(DENIED_SYSCALLS);
  const nosys = Object.values(UNAVAILABLE_SYSCALLS);
  // Layout: [arch check][x32 check][deny jumps][nosys jumps][clone check][ALLOW][ERRNO EPERM][ERRNO ENOSYS][KILL]
  const p: Insn[] = [];
  const fixups: { at: number; target: 'eperm' | 'enosys' | 'kill' }[] = [];
  p.push([BPF_LD_W_ABS, 0, 0, OFF_ARCH]);
  fixups.push({ at: p.length, target: 'kill' }); p.push([BPF_JEQ_K, 0, 0, AUDIT_ARCH_X86_64]); // jf -> kill (patched)
  p.push([BPF_LD_W_ABS, 0, 0, OFF_NR]);
  fixups.push({ at: p.length, target: 'kill' }); p.push([BPF_JGE_K, 0, 0, X32_BIT]); // jt -> kill (patched)
  for (const n of deny) { fixups.push({ at: p.length, target: 'eperm' }); p.push([BPF_JEQ_K, 0, 0, n]); }
  for (const n of nosys) { fixups.push({ at: p.length, target: 'enosys' }); p.push([BPF_JEQ_K, 0, 0, n]); }
  const cloneAt = p.length;
  p.push([BPF_JEQ_K, 0, 0, CLONE]); // jf -> allow (patched)
  p.push([BPF_LD_W_ABS, 0, 0, OFF_ARG0_LO]);
  fixups.push({ at: p.length, target: 'eperm' }); p.push([BPF_JSET_K, 0, 0, CLONE_NS_FLAGS]);
  const allow = p.length; p.push([BPF_RET_K, 0, 0, RET_ALLOW]);
  const eperm = p.length; p.push([BPF_RET_K, 0, 0, RET_ERRNO | EPERM]);
  const enosys = p.length; p.push([BPF_RET_K, 0, 0, RET_ERRNO | ENOSYS]);
  const kill = p.length; p.push([BPF_RET_K, 0, 0, RET_KILL_PROCESS]);
  const target = { eperm, enosys, kill };
  p[cloneAt][2] = allow - (cloneAt + 1);
  for (const f of fixups) {
    const d = target[f.target] - (f.at + 1);
    if (d > 255) throw new Error('seccomp program too long for a jump');
    // The arch check jumps on mismatch (jf); every other test jumps on a match (jt).
    if (f.at === 1) p[f.at][2] = d; else p[f.at][1] = d;
  }
  const out = Buffer.alloc(p.length * 8);
  p.forEach(([code, jt, jf, k], i) => { out.writeUInt16LE(code, i * 8); out.writeUInt8(jt, i * 8 + 2); out.writeUInt8(jf, i * 8 + 3); out.writeUInt32LE(k >>> 0, i * 8 + 4); });
  return out;
}
