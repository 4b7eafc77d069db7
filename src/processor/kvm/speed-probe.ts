/**
 * Measures how fast this host's KVM runs guest code: a one-vCPU VM executes a real-mode
 * `dec ecx; jnz` loop and reports each round with an OUT. Runs synchronously on the calling thread
 * (no worker, no device models), for `hyperts check` and `--processor auto`.
 * A software-assisted nested KVM (e.g. kvm_pvm) shows up here as a few million instructions per
 * second instead of billions.
 */
import * as abi from './abi.js';
import { KvmError, libc } from './libc.js';
import type { KvmSystem } from './kvm.js';
import { encodeBootRegs, encodeBootSregs } from './vcpu-state.js';

export interface GuestSpeed { instructionsPerSecond: number; iterations: number; seconds: number }

const CODE_ADDR = 0x1000;
const PROBE_PORT = 0xf4;
const MEM_SIZE = 0x10000;

/** Real-mode loop: mov ecx, N; l: dec ecx; jnz l; out PROBE_PORT, al; jmp start. */
export function probeProgram(iterations: number): Uint8Array {
  const b = new Uint8Array(14);
  b.set([0x66, 0xb9, 0, 0, 0, 0, 0x66, 0x49, 0x75, 0xfc, 0xe6, PROBE_PORT, 0xeb, 0xf2]);
  new DataView(b.buffer).setUint32(2, iterations >>> 0, true);
  return b;
}

/**
 * Runs rounds of growing length until one takes at least `minSeconds` (or `maxSeconds` are spent).
 * Throws KvmError when the VM cannot be built or run.
 */
export function measureGuestSpeed(sys: KvmSystem, minSeconds = 0.02, maxSeconds = 2): GuestSpeed {
  const c = libc();
  const vm = sys.createVm();
  const mem = c.mmap(MEM_SIZE, abi.PROT_READ | abi.PROT_WRITE, abi.MAP_PRIVATE | abi.MAP_ANONYMOUS, -1, 0);
  if (mem === null) { vm.close(); throw new KvmError('mmap', c.errno()); }
  const mmapSize = sys.vcpuMmapSize();
  let vcpu = -1;
  let run: unknown = null;
  try {
    vm.setTssAddr(0xfffb_d000);
    vm.setUserMemoryRegion(0, 0, MEM_SIZE, c.address(mem));
    vcpu = vm.createVcpu(0);
    if (vcpu < 0) throw new KvmError('KVM_CREATE_VCPU', c.errno());
    run = c.mmap(mmapSize, abi.PROT_READ | abi.PROT_WRITE, abi.MAP_SHARED, vcpu, 0);
    if (run === null) throw new KvmError('mmap kvm_run', c.errno());
    const rv = new DataView(c.view(run, mmapSize));
    const guest = new Uint8Array(c.view(mem, MEM_SIZE));
    const sregs = new Uint8Array(new ArrayBuffer(abi.KVM_SREGS_SIZE));
    if (c.ioctlPtr(vcpu, abi.KVM_GET_SREGS, sregs) < 0) throw new KvmError('KVM_GET_SREGS', c.errno());
    const boot = { mode: 'real' as const, rip: CODE_ADDR, gpr: {} };
    const ns = new Uint8Array(new ArrayBuffer(abi.KVM_SREGS_SIZE));
    ns.set(encodeBootSregs(boot, sregs));
    const nr = new Uint8Array(new ArrayBuffer(abi.KVM_REGS_SIZE));
    nr.set(encodeBootRegs(boot));
    if (c.ioctlPtr(vcpu, abi.KVM_SET_SREGS, ns) < 0) throw new KvmError('KVM_SET_SREGS', c.errno());
    if (c.ioctlPtr(vcpu, abi.KVM_SET_REGS, nr) < 0) throw new KvmError('KVM_SET_REGS', c.errno());

    const runToOut = (): void => {
      for (;;) {
        if (c.ioctlInt(vcpu, abi.KVM_RUN, 0) < 0) {
          const e = c.errno();
          if (e === abi.EINTR || e === abi.EAGAIN) continue;
          throw new KvmError('KVM_RUN', e);
        }
        const reason = rv.getUint32(abi.RUN.exit_reason, true);
        if (reason === abi.KVM_EXIT_IO && rv.getUint16(abi.RUN.io_port, true) === PROBE_PORT) return;
        throw new Error(`speed probe: unexpected KVM exit reason ${reason}`);
      }
    };
    let iterations = 1000;
    let spent = 0;
    for (;;) {
      // The loop is only entered from its start (after the OUT the guest jumps back to the MOV).
      guest.set(probeProgram(iterations), CODE_ADDR);
      const t0 = performance.now();
      runToOut();
      const dt = (performance.now() - t0) / 1000;
      spent += dt;
      if (dt >= minSeconds || spent >= maxSeconds || iterations >= 1e9) {
        return { instructionsPerSecond: (2 * iterations) / Math.max(dt, 1e-9), iterations, seconds: dt };
      }
      iterations = Math.min(1e9, iterations * (dt < minSeconds / 100 ? 10 : 2));
    }
  } finally {
    if (run !== null) c.munmap(run, mmapSize);
    if (vcpu >= 0) c.close(vcpu);
    vm.close();
    c.munmap(mem, MEM_SIZE);
  }
}
