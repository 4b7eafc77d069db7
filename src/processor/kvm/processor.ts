/**
 * The KVM processor backend: hardware virtualization through /dev/kvm behind the same
 * ProcessorBackend interface as the emulated processor.
 *
 * Threads: `run(budget)` issues KVM_RUN on the calling thread and services each exit there, synchronously,
 * with the partition's device models, CPUID, MSR and hypercall handlers, exactly where the emulated
 * backend would call them. The partition runs its vCPUs in turns, so a vCPU thread would add a thread
 * hand-off to every exit and run nothing in parallel (bench:exits measured it at 3-8x the C round trip
 * on a loaded host). The budget ends with a POSIX timer whose signal is blocked outside KVM_RUN and
 * unblocked inside it (KVM_SET_SIGNAL_MASK), so it can never be lost: it ends a guest that does not exit,
 * and one that exits all the time (no clock is read per exit; that cost 2-3% of a PIO round trip).
 *
 * Hyper-V lives in user space: a KVM MSR filter denies 0x40000000-0x400001FF so those MSRs exit
 * (KVM_CAP_X86_USER_SPACE_MSR) to PlatformServices.msr; the hypercall page holds a port-I/O stub
 * (hypercall-stub.ts); SynIC interrupts are MSIs (signalMsi).
 *
 * Interrupt controllers: 'kernel' (default) uses KVM's PIC/IOAPIC/LAPIC; devices raise lines with
 * `irqLine` and the hypervisor injects with `signalMsi`. 'user' leaves them to the partition's models
 * (PlatformServices.interrupts) and injects with KVM_INTERRUPT, like the emulated processor.
 */
import type {
  BackendKind, BootCpuState, HypercallRegs, PlatformServices, ProcessorBackend, RunOutcome, VirtualProcessor,
} from '../backend.js';
import type { AccessSize } from '../../platform/bus.js';
import { GuestMemory } from '../../platform/memory.js';
import * as abi from './abi.js';
import { KvmError, libc, errnoName, type Libc } from './libc.js';
import { KvmSystem, type KvmVm } from './kvm.js';
import { completeExit, copyExit, needsCompletion, PAYLOAD_SIZE, REC, REC_INTS, REPLY_MSR_ERROR } from './exit-record.js';
import { buildCpuidTable, encodeCpuid2 } from './cpuid.js';
import { HV_X64_MSR_HYPERCALL, HYPERCALL_PORT, hypercallPageGpa, hypercallStub } from './hypercall-stub.js';
import { decodeSnapshot, encodeBootRegs, encodeBootSregs } from './vcpu-state.js';
import { kvmRunCall, type KvmRunCall } from './run-stub.js';

/** Capabilities the backend cannot work without, by header name. */
export const REQUIRED_CAPS: readonly abi.KvmCapName[] = [
  'KVM_CAP_USER_MEMORY', 'KVM_CAP_SET_TSS_ADDR', 'KVM_CAP_EXT_CPUID', 'KVM_CAP_IRQCHIP', 'KVM_CAP_HLT',
  'KVM_CAP_SIGNAL_MSI', 'KVM_CAP_IMMEDIATE_EXIT', 'KVM_CAP_X86_USER_SPACE_MSR', 'KVM_CAP_X86_MSR_FILTER',
  'KVM_CAP_VCPU_EVENTS', 'KVM_CAP_MP_STATE',
];
/** Used when present (save/restore completeness, fewer exits). */
export const OPTIONAL_CAPS: readonly abi.KvmCapName[] = [
  'KVM_CAP_XSAVE', 'KVM_CAP_XCRS', 'KVM_CAP_IRQFD', 'KVM_CAP_IOEVENTFD', 'KVM_CAP_GET_TSC_KHZ', 'KVM_CAP_TSC_CONTROL',
  'KVM_CAP_SET_IDENTITY_MAP_ADDR', 'KVM_CAP_HYPERV',
];

/** Hyper-V synthetic MSRs handled in user space (hyperv-guest-contract.md §2). */
export const HYPERV_MSR_BASE = 0x4000_0000;
export const HYPERV_MSR_COUNT = 0x200;

/** Real-mode helpers for Intel without unrestricted guest: just below the 4 GiB BIOS area, inside the MMIO hole. */
const TSS_ADDR = 0xfffb_d000;
const IDENTITY_MAP_ADDR = 0xfffb_c000;

/** MSRs saved with a vCPU beyond those in kvm_sregs (EFER, APIC base). */
export const SAVED_MSRS: readonly number[] = [
  0x174, 0x175, 0x176, // SYSENTER_CS/ESP/EIP
  0x10, // TSC
  0x277, // PAT
  0x1a0, // MISC_ENABLE
  0xc000_0081, 0xc000_0082, 0xc000_0083, 0xc000_0084, // STAR, LSTAR, CSTAR, SFMASK
  0xc000_0102, // KERNEL_GS_BASE
  0xc000_0103, // TSC_AUX
];

export interface KvmBackendOptions {
  devicePath?: string;
  /** An open /dev/kvm to use instead of the path (a sandboxed worker's, handed in by the service). */
  deviceFd?: number;
  irqchip?: 'kernel' | 'user';
  hypercallPort?: number;
  /** KVM_RUN through a generated zero-argument stub (run-stub.ts; default) or, when false, libc's ioctl. */
  runStub?: boolean;
}

export interface KvmVcpuState {
  regs: Uint8Array; sregs: Uint8Array; msrs: Array<[index: number, lo: number, hi: number]>;
  events: Uint8Array; mpState: number; fpu: Uint8Array; xsave: Uint8Array | null; xcrs: Uint8Array | null;
  lapic: Uint8Array | null;
}

/** Guest RAM mapped for sharing with KVM: anonymous mmap, wrapped for the device models. */
interface MappedMemory { ptr: unknown; size: number; address: bigint }
const mappedMemory = new WeakMap<ArrayBufferLike, MappedMemory>();

/**
 * Guest memory the KVM backend can register as a user memory region (page-aligned, never moved).
 * The partition allocates RAM with this when the processor is KVM; device models use it as usual.
 */
export function allocateGuestMemory(size: number): GuestMemory {
  const c = libc();
  const ptr = c.mmap(size, abi.PROT_READ | abi.PROT_WRITE, abi.MAP_PRIVATE | abi.MAP_ANONYMOUS | abi.MAP_NORESERVE, -1, 0);
  if (ptr === null) throw new KvmError(`mmap ${size} bytes of guest memory`, c.errno());
  const buf = c.view(ptr, size);
  mappedMemory.set(buf, { ptr, size, address: c.address(ptr) });
  return new GuestMemory(size, buf);
}

export class KvmBackend implements ProcessorBackend {
  readonly kind: BackendKind = 'kvm';
  readonly irqchip: 'kernel' | 'user';
  readonly hypercallPort: number;
  readonly runStub: boolean;
  private readonly c: Libc;
  private readonly sys: KvmSystem;
  readonly vm: KvmVm;
  private readonly mmapSize: number;
  private memory: GuestMemory | null = null;
  private readonly vcpus: KvmVirtualProcessor[] = [];
  private destroyed = false;

  constructor(opts: KvmBackendOptions = {}) {
    this.c = libc();
    this.irqchip = opts.irqchip ?? 'kernel';
    this.hypercallPort = opts.hypercallPort ?? HYPERCALL_PORT;
    this.runStub = opts.runStub ?? true;
    this.sys = opts.deviceFd !== undefined ? KvmSystem.fromFd(opts.deviceFd) : KvmSystem.open(opts.devicePath);
    try {
      const api = this.sys.apiVersion();
      if (api !== abi.KVM_API_VERSION) throw new Error(`KVM API version ${api}, hyperts needs ${abi.KVM_API_VERSION}`);
      const missing = REQUIRED_CAPS.filter((n) => this.sys.checkExtension(n) === 0);
      if (missing.length) throw new Error(`KVM lacks ${missing.join(', ')} (run 'hyperts check')`);
      this.mmapSize = this.sys.vcpuMmapSize();
      this.vm = this.sys.createVm();
    } catch (e) {
      this.sys.close();
      throw e;
    }
    this.vm.setTssAddr(TSS_ADDR);
    if (this.sys.checkExtension('KVM_CAP_SET_IDENTITY_MAP_ADDR')) this.vm.setIdentityMapAddr(IDENTITY_MAP_ADDR);
    if (this.irqchip === 'kernel') this.vm.createIrqchip();
    // Unknown MSRs and the filtered Hyper-V range go to PlatformServices.msr, as on the emulated processor.
    this.vm.enableCap('KVM_CAP_X86_USER_SPACE_MSR', [abi.KVM_MSR_EXIT_REASON_FILTER | abi.KVM_MSR_EXIT_REASON_UNKNOWN]);
    this.vm.setMsrDenyFilter([[HYPERV_MSR_BASE, HYPERV_MSR_COUNT]]);
  }

  /** Registers guest RAM with KVM (once, from the first vCPU's platform). */
  private attachMemory(m: GuestMemory): void {
    if (this.memory === m) return;
    if (this.memory) throw new Error('all vCPUs of a KVM partition must share one GuestMemory');
    const mapped = mappedMemory.get(m.bytes.buffer);
    let base: bigint;
    if (mapped) {
      base = mapped.address + BigInt(m.bytes.byteOffset);
    } else {
      base = this.c.addressOf(m.bytes);
    }
    if ((base & 0xfffn) !== 0n) {
      throw new Error('guest memory for KVM must be page-aligned: allocate it with allocateGuestMemory() from src/processor/kvm/processor.ts');
    }
    let slot = 0;
    let hostOff = 0n;
    for (const [gpa, len] of m.ranges()) {
      this.vm.setUserMemoryRegion(slot++, gpa, len, base + hostOff);
      hostOff += BigInt(len);
    }
    this.memory = m;
  }

  async createVcpu(index: number, platform: PlatformServices): Promise<VirtualProcessor> {
    if (this.destroyed) throw new Error('KVM backend destroyed');
    this.attachMemory(platform.memory);
    const fd = this.vm.createVcpu(index);
    const cpuid = encodeCpuid2(buildCpuidTable(platform.cpuid));
    if (this.c.ioctlPtr(fd, abi.KVM_SET_CPUID2, cpuid) < 0) {
      const e = this.c.errno();
      this.c.close(fd);
      throw new KvmError('KVM_SET_CPUID2', e);
    }
    const vp = new KvmVirtualProcessor(this, index, fd, platform);
    try {
      vp.start(this.mmapSize);
    } catch (e) {
      vp.stop();
      throw e;
    }
    this.vcpus.push(vp);
    return vp;
  }

  /** Drives an in-kernel PIC/IOAPIC input (irqchip 'kernel'). */
  irqLine(gsi: number, level: boolean): void {
    if (this.irqchip !== 'kernel') throw new Error('irqLine needs the in-kernel irqchip');
    this.vm.irqLine(gsi, level);
  }

  /** Delivers an MSI (e.g. a SynIC SINT): fixed delivery, physical destination `apicId`. Returns false when blocked. */
  signalMsi(apicId: number, vector: number): boolean {
    if (this.irqchip !== 'kernel') throw new Error('signalMsi needs the in-kernel irqchip');
    return this.vm.signalMsi((0xfee0_0000 | ((apicId & 0xff) << 12)) >>> 0, 0, vector & 0xff) > 0;
  }

  /** In-kernel PIC master, PIC slave and IOAPIC state (520 bytes each) for save/restore. */
  saveIrqchip(): Uint8Array[] {
    if (this.irqchip !== 'kernel') return [];
    return [abi.KVM_IRQCHIP_PIC_MASTER, abi.KVM_IRQCHIP_PIC_SLAVE, abi.KVM_IRQCHIP_IOAPIC].map((id) => this.vm.getIrqchip(id));
  }
  restoreIrqchip(chips: Uint8Array[]): void { for (const c of chips) this.vm.setIrqchip(c); }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const vp of this.vcpus) vp.stop();
    this.vm.close();
    this.sys.close();
    // Device models may still hold views of guest RAM, so the mapping stays; its pages are released.
    const m = this.memory ? mappedMemory.get(this.memory.bytes.buffer) : undefined;
    if (m) this.c.madvise(m.ptr, m.size, abi.MADV_DONTNEED);
  }
}

const ACCESS_SIZES: readonly AccessSize[] = [1, 2, 4];
/** run() budgets are clamped to these (a zero, negative, NaN or infinite budget would leave no kick). */
const MIN_SLICE_MS = 1;
const MAX_SLICE_MS = 60_000;

const INTERNAL_SUBERRORS: Readonly<Record<number, string>> = {
  [abi.KVM_INTERNAL_ERROR_EMULATION]: 'the host could not emulate an instruction',
  [abi.KVM_INTERNAL_ERROR_SIMUL_EX]: 'an exception while delivering an exception',
  [abi.KVM_INTERNAL_ERROR_DELIVERY_EV]: 'an exit while delivering an event',
  [abi.KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON]: 'an exit the host does not handle',
};

export class KvmVirtualProcessor implements VirtualProcessor {
  private readonly c: Libc;
  private readonly rec = new Int32Array(REC_INTS);
  private readonly payload = new Uint8Array(new ArrayBuffer(PAYLOAD_SIZE));
  private readonly pv = new DataView(this.payload.buffer);
  private runPtr: unknown = null;
  /** KVM_RUN on this vCPU: result or -errno. */
  private kvmRun: KvmRunCall | null = null;
  private mmapSize = 0;
  private runBuf = new Uint8Array(0);
  private run_ = new DataView(new ArrayBuffer(8));
  private closed = false;
  private exitRequested = false;
  /** The last exit was a HLT reported as 'halted'; the next run() re-checks for an interrupt first. */
  private haltParked = false;
  /** The last exit's instruction is finished by the next KVM_RUN (its answer is already in kvm_run). */
  private completionPending = false;
  /** The vCPU hit a terminal exit; `final` is returned from every later run(). */
  private final: RunOutcome | null = null;
  /** POSIX timer that signals the running thread at the end of the budget, and the thread it targets. */
  private timerId = -1;
  private timerTid = -1;
  private readonly kickSet = new Uint8Array(abi.GLIBC_SIGSET_SIZE);
  private readonly noWait = new Uint8Array(16); // struct timespec { 0, 0 }
  private readonly itimer = new Uint8Array(abi.ITIMERSPEC_SIZE);
  private readonly itimerView = new DataView(this.itimer.buffer);
  private readonly regsBuf = new Uint8Array(new ArrayBuffer(abi.KVM_REGS_SIZE));
  private readonly regsView = new DataView(this.regsBuf.buffer);
  private readonly msrOut = { lo: 0, hi: 0 };
  private readonly intBuf = new Uint8Array(new ArrayBuffer(abi.KVM_INTERRUPT_SIZE));
  private regsDirty = false;
  private readonly hcRegs: HypercallRegs;

  constructor(private readonly backend: KvmBackend, readonly index: number, private readonly fd: number,
    private readonly platform: PlatformServices) {
    this.c = libc();
    this.kickSet[(abi.SIGUSR2 - 1) >> 3] |= 1 << ((abi.SIGUSR2 - 1) & 7);
    const self = this;
    this.hcRegs = {
      get(reg: number) {
        const off = abi.GPR_OFFSET[reg & 15];
        return { lo: self.regsView.getUint32(off, true), hi: self.regsView.getUint32(off + 4, true) };
      },
      set(reg: number, lo: number, hi: number) {
        const off = abi.GPR_OFFSET[reg & 15];
        self.regsView.setUint32(off, lo >>> 0, true);
        self.regsView.setUint32(off + 4, hi >>> 0, true);
        self.regsDirty = true;
      },
      getXmm(reg: number, out: Uint32Array) {
        const fpu = self.vcpuGet(abi.KVM_GET_FPU, abi.KVM_FPU_SIZE, 'KVM_GET_FPU');
        const v = new DataView(fpu.buffer);
        for (let i = 0; i < 4; i++) out[i] = v.getUint32(abi.FPU.xmm + (reg & 15) * 16 + i * 4, true);
      },
    };
  }

  /** Maps kvm_run and lets the kick signal through inside KVM_RUN only. */
  start(mmapSize: number): void {
    const run = this.c.mmap(mmapSize, abi.PROT_READ | abi.PROT_WRITE, abi.MAP_SHARED, this.fd, 0);
    if (run === null) throw new KvmError('mmap kvm_run', this.c.errno());
    this.runPtr = run;
    this.mmapSize = mmapSize;
    this.kvmRun = kvmRunCall(this.c, this.fd, this.backend.runStub);
    this.runBuf = new Uint8Array(this.c.view(run, mmapSize));
    this.run_ = new DataView(this.runBuf.buffer, this.runBuf.byteOffset, mmapSize);
    const kmask = new Uint8Array(abi.KVM_SIGNAL_MASK_HEADER_SIZE + abi.KERNEL_SIGSET_SIZE);
    new DataView(kmask.buffer).setUint32(0, abi.KERNEL_SIGSET_SIZE, true); // empty mask: nothing blocked in the guest
    if (this.c.ioctlPtr(this.fd, abi.KVM_SET_SIGNAL_MASK, kmask) < 0) throw new KvmError('KVM_SET_SIGNAL_MASK', this.c.errno());
  }

  /**
   * Readies the calling thread for KVM_RUN: the kick signal blocked (so an expiry outside KVM_RUN stays
   * pending and ends the next KVM_RUN at once, and no handler is needed) and the timer aimed at it.
   */
  private prepareThread(): void {
    // Every time (one cheap syscall per slice): a thread id can be reused by a new thread after the old one ends.
    if (this.c.pthreadSigmask(abi.SIG_BLOCK, this.kickSet, null) !== 0) throw new Error('pthread_sigmask failed');
    const tid = this.c.gettid();
    if (tid === this.timerTid) return;
    if (this.timerId >= 0) this.c.timerDelete(this.timerId);
    const sev = new Uint8Array(abi.SIGEVENT_SIZE);
    const v = new DataView(sev.buffer);
    v.setInt32(abi.SIGEVENT.signo, abi.SIGUSR2, true);
    v.setInt32(abi.SIGEVENT.notify, abi.SIGEV_THREAD_ID, true);
    v.setInt32(abi.SIGEVENT.tid, tid, true);
    const id = this.c.timerCreate(abi.CLOCK_MONOTONIC, sev);
    if (id < 0) throw new KvmError('timer_create', this.c.errno());
    this.timerId = id;
    this.timerTid = tid;
  }

  /** Arms the kick timer `ms` from now (0 disarms). */
  private armKick(ms: number): void {
    const v = this.itimerView;
    const ns = Math.max(0, Math.round(ms * 1e6));
    v.setBigInt64(16, BigInt(Math.floor(ns / 1e9)), true);
    v.setBigInt64(24, BigInt(ms > 0 ? Math.max(1, ns % 1e9) : 0), true);
    if (this.c.timerSettime(this.timerId, this.itimer) < 0) throw new KvmError('timer_settime', this.c.errno());
  }

  /** Takes a pending kick so it does not end a later KVM_RUN; true when there was one. */
  private takeKick(): boolean { return this.c.sigtimedwait(this.kickSet, this.noWait) === abi.SIGUSR2; }

  private vcpuGet(req: number, size: number, op: string): Uint8Array {
    const b = new Uint8Array(new ArrayBuffer(size));
    if (this.c.ioctlPtr(this.fd, req, b) < 0) throw new KvmError(op, this.c.errno());
    return b;
  }
  private vcpuSet(req: number, b: Uint8Array, op: string): void {
    if (this.c.ioctlPtr(this.fd, req, b) < 0) throw new KvmError(op, this.c.errno());
  }

  setBootState(s: BootCpuState): void {
    if (this.final?.kind === 'reset' && !this.closed) {
      // A machine reset reloads every register, so the vCPU runs again; nothing from before may stay pending.
      this.final = null;
      this.haltParked = false;
      this.completionPending = false;
      // Best effort: a kernel that refuses all-zero events keeps them, and the registers below still reset.
      this.c.ioctlPtr(this.fd, abi.KVM_SET_VCPU_EVENTS, new Uint8Array(new ArrayBuffer(abi.KVM_VCPU_EVENTS_SIZE)));
    }
    const cur = this.vcpuGet(abi.KVM_GET_SREGS, abi.KVM_SREGS_SIZE, 'KVM_GET_SREGS');
    this.vcpuSet(abi.KVM_SET_SREGS, encodeBootSregs(s, cur), 'KVM_SET_SREGS');
    this.vcpuSet(abi.KVM_SET_REGS, encodeBootRegs(s), 'KVM_SET_REGS');
  }

  snapshot(): Record<string, number | bigint> {
    const regs = this.vcpuGet(abi.KVM_GET_REGS, abi.KVM_REGS_SIZE, 'KVM_GET_REGS');
    const sregs = this.vcpuGet(abi.KVM_GET_SREGS, abi.KVM_SREGS_SIZE, 'KVM_GET_SREGS');
    return decodeSnapshot(regs, sregs);
  }

  /** True when KVM_RUN goes through the generated stub (run-stub.ts), false through libc's ioctl. */
  get nativeRunStub(): boolean { return this.kvmRun?.native ?? false; }

  /** Ends the current run() after the exit being handled (the guest only runs inside run()). */
  requestExit(): void { this.exitRequested = true; }

  run(budgetMs: number): RunOutcome {
    if (this.final) return this.final;
    if (this.closed) return this.terminal({ kind: 'shutdown', code: 0, reason: 'partition destroyed' });
    this.exitRequested = false;
    if (this.haltParked) {
      if (!this.interruptPending()) return { kind: 'halted' };
      this.haltParked = false;
    }
    this.prepareThread();
    // The kick is the only thing that ends a busy slice, so the budget it is armed with must be a real one.
    const budget = budgetMs > 0 ? Math.min(budgetMs, MAX_SLICE_MS) : MIN_SLICE_MS;
    const deadline = performance.now() + budget;
    const kvmRun = this.kvmRun!, run = this.run_, runBuf = this.runBuf, rec = this.rec, payload = this.payload;
    const userIrqchip = this.backend.irqchip === 'user';
    if (!userIrqchip) run.setUint8(abi.RUN.request_interrupt_window, 0);
    this.armKick(budget);
    try {
      for (;;) {
        if (userIrqchip) run.setUint8(abi.RUN.request_interrupt_window, this.interruptWindowWanted() ? 1 : 0);
        const r = kvmRun.run();
        this.completionPending = false;
        if (r < 0) {
          const e = -r;
          if (e !== abi.EINTR && e !== abi.EAGAIN) return this.terminal({ kind: 'shutdown', code: 255, reason: `KVM_RUN failed: ${errnoName(e)}` });
          // The budget is enforced by the kick alone (no clock read per exit): its signal stays pending
          // outside KVM_RUN, so expiry always surfaces here. Another signal only ends the slice when late.
          if (this.takeKick() || performance.now() >= deadline) return { kind: 'yield' };
        } else {
          const exit = run.getUint32(abi.RUN.exit_reason, true);
          if (exit === abi.KVM_EXIT_IO && this.singlePio(run)) {
            this.completionPending = true;
            if (this.exitRequested) return { kind: 'yield' };
            continue;
          }
          copyExit(exit, run, runBuf, rec, payload);
          const out = this.handleExit();
          if (out !== null) {
            if (out.kind === 'halted') this.haltParked = true;
            return out;
          }
          completeExit(exit, rec[REC.replyFlags], run, runBuf, payload);
          this.completionPending = needsCompletion(exit);
        }
        if (this.exitRequested) return { kind: 'yield' };
      }
    } finally {
      this.armKick(0);
    }
  }

  private terminal(o: RunOutcome): RunOutcome {
    this.final = o;
    return o;
  }

  /** Services the exit in the record. Returns null to re-enter (reply flags written), or an outcome to stop. */
  private handleExit(): RunOutcome | null {
    const mb = this.rec;
    const exit = mb[REC.exit];
    let flags = 0;
    switch (exit) {
      case abi.KVM_EXIT_INTR:
      case abi.KVM_EXIT_DEBUG:
        break;
      case abi.KVM_EXIT_IO:
        if (!this.pio()) return this.fatal('KVM_EXIT_IO with an impossible size or count');
        break;
      case abi.KVM_EXIT_MMIO:
        if (!this.mmio()) return this.fatal('KVM_EXIT_MMIO with an impossible length');
        break;
      case abi.KVM_EXIT_X86_RDMSR: {
        const idx = mb[REC.a0] >>> 0;
        this.msrOut.lo = 0; this.msrOut.hi = 0;
        if (this.platform.msr.read(this.index, idx, this.msrOut)) {
          this.pv.setUint32(0, this.msrOut.lo >>> 0, true);
          this.pv.setUint32(4, this.msrOut.hi >>> 0, true);
        } else flags |= REPLY_MSR_ERROR;
        break;
      }
      case abi.KVM_EXIT_X86_WRMSR: {
        const idx = mb[REC.a0] >>> 0;
        const lo = this.pv.getUint32(0, true);
        const hi = this.pv.getUint32(4, true);
        if (!this.platform.msr.write(this.index, idx, lo, hi)) flags |= REPLY_MSR_ERROR;
        else if (idx === HV_X64_MSR_HYPERCALL) this.installHypercallStub(lo, hi);
        break;
      }
      case abi.KVM_EXIT_HLT:
        // Only with the user-space irqchip: halted until the partition's LAPIC has something to deliver.
        if (!this.interruptPending()) return { kind: 'halted' };
        break;
      case abi.KVM_EXIT_IRQ_WINDOW_OPEN:
        break;
      case abi.KVM_EXIT_SHUTDOWN:
        this.platform.onReset('triple fault');
        return this.terminal({ kind: 'reset', reason: 'triple fault' });
      case abi.KVM_EXIT_SYSTEM_EVENT: {
        const t = mb[REC.a0];
        if (t === abi.KVM_SYSTEM_EVENT_RESET) { this.platform.onReset('guest reset (KVM system event)'); return this.terminal({ kind: 'reset', reason: 'guest reset (KVM system event)' }); }
        const code = t === abi.KVM_SYSTEM_EVENT_CRASH ? 1 : 0;
        const reason = code ? 'guest crash (KVM system event)' : 'guest power-off (KVM system event)';
        this.platform.onShutdown(code, reason);
        return this.terminal({ kind: 'shutdown', code, reason });
      }
      case abi.KVM_EXIT_INTERNAL_ERROR:
        return this.fatal(this.describeInternalError());
      case abi.KVM_EXIT_FAIL_ENTRY:
        return this.fatal(`VM entry failed, hardware reason 0x${(mb[REC.a1] >>> 0).toString(16)}${(mb[REC.a0] >>> 0).toString(16).padStart(8, '0')}`);
      case abi.KVM_EXIT_EXCEPTION:
        return this.fatal(`unhandled exception ${mb[REC.a0]} (error code 0x${(mb[REC.a1] >>> 0).toString(16)})`);
      default:
        return this.fatal(`unexpected KVM exit reason ${exit}`);
    }
    mb[REC.replyFlags] = flags;
    return null;
  }

  /** KVM_EXIT_INTERNAL_ERROR in words: the suberror by name and, for an emulation failure, the instruction bytes. */
  private describeInternalError(): string {
    const sub = this.rec[REC.a0];
    const ndata = this.rec[REC.a1] >>> 0;
    let s = `KVM internal error: ${INTERNAL_SUBERRORS[sub] ?? 'unknown'} (suberror ${sub})`;
    // struct emulation_failure: flags (u64), insn_size (u8), insn_bytes[15].
    if (sub === abi.KVM_INTERNAL_ERROR_EMULATION && ndata >= 3 && (this.pv.getUint32(0, true) & abi.KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
      const n = Math.min(this.payload[8], 15);
      s += `, instruction bytes ${Array.from(this.payload.subarray(9, 9 + n), (b) => b.toString(16).padStart(2, '0')).join(' ')}`;
    }
    return s;
  }

  private fatal(what: string): RunOutcome {
    let where = '';
    try { where = ` at rip 0x${this.snapshot().rip.toString(16)}`; } catch { /* registers are a courtesy */ }
    return this.terminal({ kind: 'shutdown', code: 255, reason: `KVM vCPU ${this.index}: ${what}${where}` });
  }

  /**
   * The common PIO exit, one access to a port other than the hypercall stub's, straight between kvm_run and
   * the I/O bus (no exit record: this is the hottest exit). False leaves it to the general path.
   */
  private singlePio(run: DataView): boolean {
    if (run.getUint32(abi.RUN.io_count, true) !== 1) return false;
    const size = run.getUint8(abi.RUN.io_size);
    const port = run.getUint16(abi.RUN.io_port, true);
    const off = run.getUint32(abi.RUN.io_data_offset, true);
    if ((size !== 1 && size !== 2 && size !== 4) || off + size > this.mmapSize || port === this.backend.hypercallPort) return false;
    const io = this.platform.io;
    if (run.getUint8(abi.RUN.io_direction) === abi.KVM_EXIT_IO_OUT) {
      io.write(port, size, size === 1 ? run.getUint8(off) : size === 2 ? run.getUint16(off, true) : run.getUint32(off, true));
    } else {
      const v = io.read(port, size);
      if (size === 1) run.setUint8(off, v); else if (size === 2) run.setUint16(off, v, true); else run.setUint32(off, v >>> 0, true);
    }
    return true;
  }

  /** PIO exit: the hypercall stub's OUT, or `count` accesses of `size` bytes on the I/O bus. */
  private pio(): boolean {
    const a0 = this.rec[REC.a0];
    const port = a0 & 0xffff;
    const size = (a0 >>> 16) & 0xff;
    const out = ((a0 >>> 24) & 0xff) === abi.KVM_EXIT_IO_OUT;
    const count = this.rec[REC.a1] >>> 0;
    if ((size !== 1 && size !== 2 && size !== 4) || count === 0 || size * count > PAYLOAD_SIZE) return false;
    const io = this.platform.io;
    const pv = this.pv;
    if (out && port === this.backend.hypercallPort && size === 1 && count === 1 && this.platform.hypercall) {
      this.hypercall();
      return true;
    }
    for (let i = 0, o = 0; i < count; i++, o += size) {
      if (out) io.write(port, size as AccessSize, size === 1 ? pv.getUint8(o) : size === 2 ? pv.getUint16(o, true) : pv.getUint32(o, true));
      else {
        const v = io.read(port, size as AccessSize);
        if (size === 1) pv.setUint8(o, v); else if (size === 2) pv.setUint16(o, v, true); else pv.setUint32(o, v >>> 0, true);
      }
    }
    return true;
  }

  /** MMIO exit: 1/2/4-byte accesses go through as they are; 8 as two dwords; anything else byte by byte. */
  private mmio(): boolean {
    const a0 = this.rec[REC.a0];
    const len = a0 & 0xff;
    const write = ((a0 >>> 8) & 0xff) !== 0;
    const addr = (this.rec[REC.a2] >>> 0) * 0x1_0000_0000 + (this.rec[REC.a1] >>> 0);
    if (len < 1 || len > 8) return false;
    const bus = this.platform.mmio;
    const pv = this.pv;
    if (len === 1 || len === 2 || len === 4) {
      const size = ACCESS_SIZES[len === 4 ? 2 : len - 1];
      if (write) bus.write(addr, size, len === 1 ? pv.getUint8(0) : len === 2 ? pv.getUint16(0, true) : pv.getUint32(0, true));
      else {
        const v = bus.read(addr, size);
        pv.setUint32(4, 0, true);
        if (len === 1) { pv.setUint32(0, 0, true); pv.setUint8(0, v); } else if (len === 2) { pv.setUint32(0, 0, true); pv.setUint16(0, v, true); } else pv.setUint32(0, v >>> 0, true);
      }
    } else if (len === 8) {
      if (write) { bus.write(addr, 4, pv.getUint32(0, true)); bus.write(addr + 4, 4, pv.getUint32(4, true)); }
      else { pv.setUint32(0, bus.read(addr, 4) >>> 0, true); pv.setUint32(4, bus.read(addr + 4, 4) >>> 0, true); }
    } else {
      for (let i = 0; i < len; i++) {
        if (write) bus.write(addr + i, 1, pv.getUint8(i)); else pv.setUint8(i, bus.read(addr + i, 1));
      }
    }
    return true;
  }

  private hypercall(): void {
    if (this.c.ioctlPtr(this.fd, abi.KVM_GET_REGS, this.regsBuf) < 0) throw new KvmError('KVM_GET_REGS', this.c.errno());
    this.regsDirty = false;
    this.platform.hypercall!.hypercall(this.index, this.hcRegs);
    // RIP is still at the OUT, so KVM completes it (steps to the RET) after these registers are set.
    if (this.regsDirty && this.c.ioctlPtr(this.fd, abi.KVM_SET_REGS, this.regsBuf) < 0) throw new KvmError('KVM_SET_REGS', this.c.errno());
  }

  private installHypercallStub(lo: number, hi: number): void {
    const gpa = hypercallPageGpa(lo, hi);
    const stub = hypercallStub(this.backend.hypercallPort);
    // The guest chose the page: write only when it is RAM, otherwise the guest simply has no working page.
    if (gpa >= 0 && this.platform.memory.isRam(gpa, stub.length)) this.platform.memory.write(gpa, stub);
  }

  private interruptPending(): boolean {
    if (this.backend.irqchip !== 'user') return false;
    const ic = this.platform.interrupts[this.index];
    return !!ic && (ic.nmiPending() || ic.pendingVector() >= 0);
  }

  /**
   * User-space irqchip, before each KVM_RUN: injects the LAPIC model's highest pending interrupt when the
   * last exit said the guest can take one now, otherwise asks KVM for an interrupt-window exit (true).
   */
  private interruptWindowWanted(): boolean {
    if (this.backend.irqchip !== 'user') return false;
    const ic = this.platform.interrupts[this.index];
    if (!ic) return false;
    if (ic.nmiPending()) {
      if (this.c.ioctlInt(this.fd, abi.KVM_NMI, 0) >= 0) ic.acknowledgeNmi();
    }
    if (ic.pendingVector() < 0) return false;
    const run = this.run_;
    if (run.getUint8(abi.RUN.ready_for_interrupt_injection) !== 0 && run.getUint8(abi.RUN.if_flag) !== 0) {
      const v = ic.acknowledge();
      if (v >= 0) {
        new DataView(this.intBuf.buffer).setUint32(0, v, true);
        if (this.c.ioctlPtr(this.fd, abi.KVM_INTERRUPT, this.intBuf) < 0) throw new KvmError('KVM_INTERRUPT', this.c.errno());
        // KVM now holds an interrupt for delivery, so ready_for_interrupt_injection reads 0 until it is taken.
        run.setUint8(abi.RUN.ready_for_interrupt_injection, 0);
      }
      return false;
    }
    return true;
  }

  /**
   * Complete vCPU state for save/restore. Any half-done PIO/MMIO/MSR exit is
   * completed (KVM_RUN with immediate_exit) so the state does not depend on it.
   */
  saveState(): KvmVcpuState {
    this.completePending();
    const g = (req: number, size: number, op: string): Uint8Array => this.vcpuGet(req, size, op);
    const msrBuf = new Uint8Array(new ArrayBuffer(abi.KVM_MSRS_HEADER_SIZE + SAVED_MSRS.length * abi.KVM_MSR_ENTRY_SIZE));
    const mv = new DataView(msrBuf.buffer);
    mv.setUint32(0, SAVED_MSRS.length, true);
    SAVED_MSRS.forEach((idx, i) => mv.setUint32(abi.KVM_MSRS_HEADER_SIZE + i * abi.KVM_MSR_ENTRY_SIZE + abi.MSR_ENTRY.index, idx, true));
    const n = this.c.ioctlPtr(this.fd, abi.KVM_GET_MSRS, msrBuf);
    if (n < 0) throw new KvmError('KVM_GET_MSRS', this.c.errno());
    const msrs: Array<[number, number, number]> = [];
    for (let i = 0; i < n; i++) {
      const o = abi.KVM_MSRS_HEADER_SIZE + i * abi.KVM_MSR_ENTRY_SIZE;
      msrs.push([mv.getUint32(o, true), mv.getUint32(o + 8, true), mv.getUint32(o + 12, true)]);
    }
    const mp = g(abi.KVM_GET_MP_STATE, abi.KVM_MP_STATE_SIZE, 'KVM_GET_MP_STATE');
    return {
      regs: g(abi.KVM_GET_REGS, abi.KVM_REGS_SIZE, 'KVM_GET_REGS'),
      sregs: g(abi.KVM_GET_SREGS, abi.KVM_SREGS_SIZE, 'KVM_GET_SREGS'),
      msrs,
      events: g(abi.KVM_GET_VCPU_EVENTS, abi.KVM_VCPU_EVENTS_SIZE, 'KVM_GET_VCPU_EVENTS'),
      mpState: new DataView(mp.buffer).getUint32(0, true),
      fpu: g(abi.KVM_GET_FPU, abi.KVM_FPU_SIZE, 'KVM_GET_FPU'),
      xsave: this.tryGet(abi.KVM_GET_XSAVE, abi.KVM_XSAVE_SIZE),
      xcrs: this.tryGet(abi.KVM_GET_XCRS, abi.KVM_XCRS_SIZE),
      lapic: this.backend.irqchip === 'kernel' ? g(abi.KVM_GET_LAPIC, abi.KVM_LAPIC_STATE_SIZE, 'KVM_GET_LAPIC') : null,
    };
  }

  restoreState(s: KvmVcpuState): void {
    this.completePending();
    // Order matters: sregs (modes) before regs; xsave/xcrs before fpu-dependent state; LAPIC before events.
    this.vcpuSet(abi.KVM_SET_SREGS, s.sregs, 'KVM_SET_SREGS');
    this.vcpuSet(abi.KVM_SET_REGS, s.regs, 'KVM_SET_REGS');
    if (s.xcrs) this.vcpuSet(abi.KVM_SET_XCRS, s.xcrs, 'KVM_SET_XCRS');
    if (s.xsave) this.vcpuSet(abi.KVM_SET_XSAVE, s.xsave, 'KVM_SET_XSAVE'); else this.vcpuSet(abi.KVM_SET_FPU, s.fpu, 'KVM_SET_FPU');
    const msrBuf = new Uint8Array(new ArrayBuffer(abi.KVM_MSRS_HEADER_SIZE + s.msrs.length * abi.KVM_MSR_ENTRY_SIZE));
    const mv = new DataView(msrBuf.buffer);
    mv.setUint32(0, s.msrs.length, true);
    s.msrs.forEach(([idx, lo, hi], i) => {
      const o = abi.KVM_MSRS_HEADER_SIZE + i * abi.KVM_MSR_ENTRY_SIZE;
      mv.setUint32(o, idx, true); mv.setUint32(o + 8, lo, true); mv.setUint32(o + 12, hi, true);
    });
    if (this.c.ioctlPtr(this.fd, abi.KVM_SET_MSRS, msrBuf) !== s.msrs.length) throw new KvmError('KVM_SET_MSRS', this.c.errno());
    if (s.lapic) this.vcpuSet(abi.KVM_SET_LAPIC, s.lapic, 'KVM_SET_LAPIC');
    this.vcpuSet(abi.KVM_SET_VCPU_EVENTS, s.events, 'KVM_SET_VCPU_EVENTS');
    const mp = new Uint8Array(new ArrayBuffer(4));
    new DataView(mp.buffer).setUint32(0, s.mpState, true);
    this.vcpuSet(abi.KVM_SET_MP_STATE, mp, 'KVM_SET_MP_STATE');
  }

  private tryGet(req: number, size: number): Uint8Array | null {
    const b = new Uint8Array(new ArrayBuffer(size));
    return this.c.ioctlPtr(this.fd, req, b) < 0 ? null : b;
  }

  /** If the last exit's instruction is unfinished, re-enter with immediate_exit so KVM completes it without running guest code. */
  private completePending(): void {
    if (!this.completionPending || this.closed) return;
    this.prepareThread();
    const run = this.run_;
    run.setUint8(abi.RUN.request_interrupt_window, 0);
    run.setUint8(abi.RUN.immediate_exit, 1);
    const r = this.kvmRun!.run();
    const e = r < 0 ? -r : 0;
    run.setUint8(abi.RUN.immediate_exit, 0);
    if (r < 0 && e !== abi.EINTR && e !== abi.EAGAIN) throw new KvmError('KVM_RUN (completing an exit)', e);
    this.takeKick();
    this.completionPending = false;
  }

  /** Releases kvm_run, the kick timer and the vCPU fd. */
  stop(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timerId >= 0) { this.c.timerDelete(this.timerId); this.timerId = -1; }
    if (this.runPtr !== null) { this.c.munmap(this.runPtr, this.mmapSize); this.runPtr = null; }
    this.kvmRun?.free();
    this.kvmRun = null;
    this.c.close(this.fd);
    this.final ??= { kind: 'shutdown', code: 0, reason: 'partition destroyed' };
  }
}
