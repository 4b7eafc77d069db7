/**
 * Thin typed wrappers over the /dev/kvm system fd and a VM fd: each method is one ioctl with its
 * structure built from abi.ts. Errors become KvmError with the errno named.
 */
import * as abi from './abi.js';
import { KvmError, libc, type Libc } from './libc.js';
import { setU64 } from './vcpu-state.js';
import type { CpuidResult } from '../backend.js';

export interface CpuidEntry extends CpuidResult { leaf: number; subleaf: number; indexed: boolean }

export class KvmSystem {
  private constructor(readonly fd: number, private readonly c: Libc, private readonly borrowed = false) {}

  /**
   * An open /dev/kvm this process was handed (a sandboxed VM worker has no device node: the service opens it and
   * passes the descriptor). Borrowed: close() leaves it open for the next user in the process.
   */
  static fromFd(fd: number): KvmSystem {
    if (!Number.isInteger(fd) || fd < 0) throw new KvmError(`use /dev/kvm descriptor ${fd}`, 9 /* EBADF */);
    return new KvmSystem(fd, libc(), true);
  }

  /** Opens /dev/kvm (or throws KvmError with ENOENT/EACCES...). */
  static open(path = '/dev/kvm'): KvmSystem {
    const c = libc();
    const fd = c.open(path, abi.O_RDWR | abi.O_CLOEXEC);
    if (fd < 0) throw new KvmError(`open ${path}`, c.errno());
    return new KvmSystem(fd, c);
  }

  apiVersion(): number { return this.c.ioctlInt(this.fd, abi.KVM_GET_API_VERSION, 0); }

  /** KVM_CHECK_EXTENSION by capability name: 0 when absent, otherwise the capability's value. */
  checkExtension(name: abi.KvmCapName): number {
    const r = this.c.ioctlInt(this.fd, abi.KVM_CHECK_EXTENSION, abi.KVM_CAP[name]);
    return r < 0 ? 0 : r;
  }

  vcpuMmapSize(): number {
    const r = this.c.ioctlInt(this.fd, abi.KVM_GET_VCPU_MMAP_SIZE, 0);
    if (r <= 0) throw new KvmError('KVM_GET_VCPU_MMAP_SIZE', this.c.errno());
    return r;
  }

  /** What the host can offer a guest (for reference: hyperts builds its own CPUID). */
  supportedCpuid(): CpuidEntry[] {
    const max = 256;
    const b = new Uint8Array(abi.KVM_CPUID2_HEADER_SIZE + max * abi.KVM_CPUID_ENTRY2_SIZE);
    const v = new DataView(b.buffer);
    v.setUint32(0, max, true);
    if (this.c.ioctlPtr(this.fd, abi.KVM_GET_SUPPORTED_CPUID, b) < 0) throw new KvmError('KVM_GET_SUPPORTED_CPUID', this.c.errno());
    const n = Math.min(v.getUint32(0, true), max);
    const out: CpuidEntry[] = [];
    for (let i = 0; i < n; i++) {
      const o = abi.KVM_CPUID2_HEADER_SIZE + i * abi.KVM_CPUID_ENTRY2_SIZE;
      out.push({
        leaf: v.getUint32(o + abi.CPUID_ENTRY.function, true), subleaf: v.getUint32(o + abi.CPUID_ENTRY.index, true),
        indexed: (v.getUint32(o + abi.CPUID_ENTRY.flags, true) & abi.KVM_CPUID_FLAG_SIGNIFCANT_INDEX) !== 0,
        eax: v.getUint32(o + abi.CPUID_ENTRY.eax, true), ebx: v.getUint32(o + abi.CPUID_ENTRY.ebx, true),
        ecx: v.getUint32(o + abi.CPUID_ENTRY.ecx, true), edx: v.getUint32(o + abi.CPUID_ENTRY.edx, true),
      });
    }
    return out;
  }

  createVm(): KvmVm {
    const fd = this.c.ioctlInt(this.fd, abi.KVM_CREATE_VM, 0);
    if (fd < 0) throw new KvmError('KVM_CREATE_VM', this.c.errno());
    return new KvmVm(fd, this.c);
  }

  close(): void { if (!this.borrowed) this.c.close(this.fd); }
}

export class KvmVm {
  constructor(readonly fd: number, private readonly c: Libc) {}

  private check(op: string, r: number): number {
    if (r < 0) throw new KvmError(op, this.c.errno());
    return r;
  }

  setUserMemoryRegion(slot: number, gpa: number, size: number, hostAddr: bigint): void {
    const b = new Uint8Array(abi.KVM_USERSPACE_MEMORY_REGION_SIZE);
    const v = new DataView(b.buffer);
    v.setUint32(abi.MEMREGION.slot, slot, true);
    v.setUint32(abi.MEMREGION.flags, 0, true);
    setU64(v, abi.MEMREGION.guest_phys_addr, gpa);
    setU64(v, abi.MEMREGION.memory_size, size);
    v.setBigUint64(abi.MEMREGION.userspace_addr, hostAddr, true);
    this.check('KVM_SET_USER_MEMORY_REGION', this.c.ioctlPtr(this.fd, abi.KVM_SET_USER_MEMORY_REGION, b));
  }

  /** Intel without unrestricted guest needs 3 pages for the real-mode TSS and 1 for the identity map. */
  setTssAddr(addr: number): void { this.check('KVM_SET_TSS_ADDR', this.c.ioctlInt(this.fd, abi.KVM_SET_TSS_ADDR, addr)); }
  setIdentityMapAddr(addr: number): void {
    const b = new Uint8Array(8);
    setU64(new DataView(b.buffer), 0, addr);
    this.check('KVM_SET_IDENTITY_MAP_ADDR', this.c.ioctlPtr(this.fd, abi.KVM_SET_IDENTITY_MAP_ADDR, b));
  }

  createIrqchip(): void { this.check('KVM_CREATE_IRQCHIP', this.c.ioctlInt(this.fd, abi.KVM_CREATE_IRQCHIP, 0)); }

  private readonly irqBuf = new Uint8Array(abi.KVM_IRQ_LEVEL_SIZE);
  private readonly irqView = new DataView(this.irqBuf.buffer);
  /** Drives in-kernel irqchip input `gsi` (PIC and IOAPIC pins share GSI numbers 0-23). */
  irqLine(gsi: number, level: boolean): void {
    this.irqView.setUint32(abi.IRQ_LEVEL.irq, gsi, true);
    this.irqView.setUint32(abi.IRQ_LEVEL.level, level ? 1 : 0, true);
    this.check('KVM_IRQ_LINE', this.c.ioctlPtr(this.fd, abi.KVM_IRQ_LINE, this.irqBuf));
  }

  private readonly msiBuf = new Uint8Array(abi.KVM_MSI_SIZE);
  private readonly msiView = new DataView(this.msiBuf.buffer);
  /** KVM_SIGNAL_MSI: >0 delivered, 0 blocked by the guest (masked), throws on error. */
  signalMsi(addressLo: number, addressHi: number, data: number): number {
    this.msiView.setUint32(abi.MSI.address_lo, addressLo >>> 0, true);
    this.msiView.setUint32(abi.MSI.address_hi, addressHi >>> 0, true);
    this.msiView.setUint32(abi.MSI.data, data >>> 0, true);
    return this.check('KVM_SIGNAL_MSI', this.c.ioctlPtr(this.fd, abi.KVM_SIGNAL_MSI, this.msiBuf));
  }

  enableCap(name: abi.KvmCapName, args: number[] = []): void {
    const b = new Uint8Array(abi.KVM_ENABLE_CAP_SIZE);
    const v = new DataView(b.buffer);
    v.setUint32(abi.ENABLE_CAP.cap, abi.KVM_CAP[name], true);
    args.slice(0, 4).forEach((a, i) => setU64(v, abi.ENABLE_CAP.args + i * 8, a));
    this.check(`KVM_ENABLE_CAP(${name})`, this.c.ioctlPtr(this.fd, abi.KVM_ENABLE_CAP, b));
  }

  /**
   * Denies (read and write) every MSR in each [base, base+count) range so the access exits to user space
   * with KVM_MSR_EXIT_REASON_FILTER; everything else stays with KVM. The bitmaps must stay alive only
   * for the ioctl (the kernel copies them).
   */
  setMsrDenyFilter(ranges: Array<[base: number, count: number]>): void {
    if (ranges.length > abi.KVM_MSR_FILTER_MAX_RANGES) throw new RangeError('too many MSR filter ranges');
    const b = new Uint8Array(abi.KVM_MSR_FILTER_SIZE);
    const v = new DataView(b.buffer);
    v.setUint32(abi.MSR_FILTER.flags, abi.KVM_MSR_FILTER_DEFAULT_ALLOW, true);
    const keep: Uint8Array[] = [];
    ranges.forEach(([base, count], i) => {
      // An explicit ArrayBuffer is always off the V8 heap, so its address is stable for the ioctl.
      const bitmap = new Uint8Array(new ArrayBuffer(Math.max(64, Math.ceil(count / 8)))); // all zero: deny
      keep.push(bitmap);
      const o = abi.MSR_FILTER.ranges + i * abi.KVM_MSR_FILTER_RANGE_SIZE;
      v.setUint32(o + abi.MSR_FILTER_RANGE.flags, abi.KVM_MSR_FILTER_READ | abi.KVM_MSR_FILTER_WRITE, true);
      v.setUint32(o + abi.MSR_FILTER_RANGE.nmsrs, count, true);
      v.setUint32(o + abi.MSR_FILTER_RANGE.base, base >>> 0, true);
      v.setBigUint64(o + abi.MSR_FILTER_RANGE.bitmap, this.c.addressOf(bitmap), true);
    });
    this.check('KVM_X86_SET_MSR_FILTER', this.c.ioctlPtr(this.fd, abi.KVM_X86_SET_MSR_FILTER, b));
    void keep;
  }

  createVcpu(id: number): number { return this.check('KVM_CREATE_VCPU', this.c.ioctlInt(this.fd, abi.KVM_CREATE_VCPU, id)); }

  /** KVM_GET_IRQCHIP for one chip (PIC master/slave, IOAPIC): 512 opaque bytes for save/restore. */
  getIrqchip(chipId: number): Uint8Array {
    const b = new Uint8Array(abi.KVM_IRQCHIP_SIZE);
    new DataView(b.buffer).setUint32(abi.IRQCHIP.chip_id, chipId, true);
    this.check('KVM_GET_IRQCHIP', this.c.ioctlPtr(this.fd, abi.KVM_GET_IRQCHIP, b));
    return b;
  }
  setIrqchip(state: Uint8Array): void {
    if (state.length !== abi.KVM_IRQCHIP_SIZE) throw new RangeError('irqchip state must be 520 bytes');
    this.check('KVM_SET_IRQCHIP', this.c.ioctlPtr(this.fd, abi.KVM_SET_IRQCHIP, state));
  }

  close(): void { this.c.close(this.fd); }
}

