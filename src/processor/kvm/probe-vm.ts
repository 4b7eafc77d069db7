/**
 * A throwaway one-vCPU real-mode VM for host probes (guest speed, real-mode fault behaviour): 64 KiB of
 * RAM at 0, KVM_RUN on the calling thread, no worker and no device models. Used by `hyperts check`,
 * `--processor auto` and the tests that need to know how this host's KVM behaves.
 */
import * as abi from './abi.js';
import { KvmError, libc, type Libc } from './libc.js';
import type { KvmSystem, KvmVm } from './kvm.js';
import { encodeBootRegs, encodeBootSregs } from './vcpu-state.js';

export const PROBE_MEM_SIZE = 0x10000;

export class ProbeVm {
  /** Guest RAM (PROBE_MEM_SIZE bytes at guest physical 0). */
  readonly guest: Uint8Array;
  private readonly run: DataView;

  private constructor(private readonly c: Libc, private readonly vm: KvmVm, private readonly mem: unknown,
    private readonly vcpu: number, private readonly runPtr: unknown, private readonly mmapSize: number) {
    this.guest = new Uint8Array(c.view(mem, PROBE_MEM_SIZE));
    this.run = new DataView(c.view(runPtr, mmapSize));
  }

  /** Builds the VM with the vCPU in real mode at 0000:`ip`. Throws KvmError when the host refuses. */
  static create(sys: KvmSystem, ip: number): ProbeVm {
    const c = libc();
    const vm = sys.createVm();
    const mem = c.mmap(PROBE_MEM_SIZE, abi.PROT_READ | abi.PROT_WRITE, abi.MAP_PRIVATE | abi.MAP_ANONYMOUS, -1, 0);
    if (mem === null) { vm.close(); throw new KvmError('mmap', c.errno()); }
    let vcpu = -1;
    let run: unknown = null;
    const mmapSize = sys.vcpuMmapSize();
    try {
      vm.setTssAddr(0xfffb_d000);
      vm.setUserMemoryRegion(0, 0, PROBE_MEM_SIZE, c.address(mem));
      vcpu = vm.createVcpu(0);
      run = c.mmap(mmapSize, abi.PROT_READ | abi.PROT_WRITE, abi.MAP_SHARED, vcpu, 0);
      if (run === null) throw new KvmError('mmap kvm_run', c.errno());
      const sregs = new Uint8Array(new ArrayBuffer(abi.KVM_SREGS_SIZE));
      if (c.ioctlPtr(vcpu, abi.KVM_GET_SREGS, sregs) < 0) throw new KvmError('KVM_GET_SREGS', c.errno());
      const boot = { mode: 'real' as const, rip: ip, cs: 0, ds: 0, gpr: { 4: 0x8000 } };
      const ns = new Uint8Array(new ArrayBuffer(abi.KVM_SREGS_SIZE));
      ns.set(encodeBootSregs(boot, sregs));
      const nr = new Uint8Array(new ArrayBuffer(abi.KVM_REGS_SIZE));
      nr.set(encodeBootRegs(boot));
      if (c.ioctlPtr(vcpu, abi.KVM_SET_SREGS, ns) < 0) throw new KvmError('KVM_SET_SREGS', c.errno());
      if (c.ioctlPtr(vcpu, abi.KVM_SET_REGS, nr) < 0) throw new KvmError('KVM_SET_REGS', c.errno());
      return new ProbeVm(c, vm, mem, vcpu, run, mmapSize);
    } catch (e) {
      if (run !== null) c.munmap(run, mmapSize);
      if (vcpu >= 0) c.close(vcpu);
      vm.close();
      c.munmap(mem, PROBE_MEM_SIZE);
      throw e;
    }
  }

  /** KVM_RUN until an exit (EINTR retried); returns the exit reason. */
  runToExit(): number {
    for (;;) {
      if (this.c.ioctlInt(this.vcpu, abi.KVM_RUN, 0) >= 0) return this.run.getUint32(abi.RUN.exit_reason, true);
      const e = this.c.errno();
      if (e !== abi.EINTR && e !== abi.EAGAIN) throw new KvmError('KVM_RUN', e);
    }
  }

  /** Port of the last KVM_EXIT_IO. */
  ioPort(): number { return this.run.getUint16(abi.RUN.io_port, true); }

  close(): void {
    this.c.munmap(this.runPtr, this.mmapSize);
    this.c.close(this.vcpu);
    this.vm.close();
    this.c.munmap(this.mem, PROBE_MEM_SIZE);
  }
}
