/**
 * The KVM processor backend: hardware virtualization through /dev/kvm behind the same
 * ProcessorBackend interface as the emulated processor.
 *
 * Threads: one worker per vCPU loops on KVM_RUN (vcpu-worker.ts) and parks each exit in a shared
 * mailbox (mailbox.ts); `run(budget)` on the main thread services those exits synchronously with the
 * partition's device models, CPUID, MSR and hypercall handlers, exactly where the emulated backend would
 * call them. Every other vCPU ioctl (registers, interrupt injection, state save) is issued from the main
 * thread while the worker is parked, when the vCPU mutex is free.
 *
 * Hyper-V lives in user space: a KVM MSR filter denies 0x40000000-0x400001FF so those MSRs exit
 * (KVM_CAP_X86_USER_SPACE_MSR) to PlatformServices.msr; the hypercall page holds a port-I/O stub
 * (hypercall-stub.ts); SynIC interrupts are MSIs (signalMsi).
 *
 * Interrupt controllers: 'kernel' (default) uses KVM's PIC/IOAPIC/LAPIC; devices raise lines with
 * `irqLine` and the hypervisor injects with `signalMsi`. 'user' leaves them to the partition's models
 * (PlatformServices.interrupts) and injects with KVM_INTERRUPT, like the emulated processor.
 */
import { Worker } from 'node:worker_threads';
import type {
  BackendKind, BootCpuState, HypercallRegs, PlatformServices, ProcessorBackend, RunOutcome, VirtualProcessor,
} from '../backend.js';
import type { AccessSize } from '../../platform/bus.js';
import { GuestMemory } from '../../platform/memory.js';
import * as abi from './abi.js';
import { KvmError, libc, errnoName, type Libc } from './libc.js';
import { KvmSystem, type KvmVm } from './kvm.js';
import {
  EXIT_ERRNO, EXIT_INTR, MB, MB_BYTES, MB_PAYLOAD, MB_PAYLOAD_SIZE, REPLY_IMMEDIATE_EXIT, REPLY_IRQ_WINDOW,
  REPLY_MSR_ERROR, REPLY_STOP, SPIN_ITERATIONS, STATE_EXIT, STATE_RUNNING, STATE_STOPPED,
} from './mailbox.js';
import { buildCpuidTable, encodeCpuid2 } from './cpuid.js';
import { HV_X64_MSR_HYPERCALL, HYPERCALL_PORT, hypercallPageGpa, hypercallStub } from './hypercall-stub.js';
import { decodeSnapshot, encodeBootRegs, encodeBootSregs } from './vcpu-state.js';
import type { VcpuWorkerData } from './vcpu-worker.js';

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
  irqchip?: 'kernel' | 'user';
  hypercallPort?: number;
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
  private readonly c: Libc;
  private readonly sys: KvmSystem;
  readonly vm: KvmVm;
  private readonly mmapSize: number;
  private memory: GuestMemory | null = null;
  private readonly vcpus: KvmVirtualProcessor[] = [];
  private destroyed = false;
  private static signalHandlerInstalled = false;

  constructor(opts: KvmBackendOptions = {}) {
    this.c = libc();
    this.irqchip = opts.irqchip ?? 'kernel';
    this.hypercallPort = opts.hypercallPort ?? HYPERCALL_PORT;
    this.sys = KvmSystem.open(opts.devicePath);
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
    // The kick signal needs a handler process-wide (its default action kills the process); libuv's
    // handler only writes to a pipe, and the interrupted KVM_RUN returns EINTR.
    if (!KvmBackend.signalHandlerInstalled) {
      process.on('SIGUSR2', () => { /* vCPU kick */ });
      KvmBackend.signalHandlerInstalled = true;
    }
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
    await vp.start(this.mmapSize);
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

const INTERNAL_SUBERRORS: Readonly<Record<number, string>> = {
  [abi.KVM_INTERNAL_ERROR_EMULATION]: 'the host could not emulate an instruction',
  [abi.KVM_INTERNAL_ERROR_SIMUL_EX]: 'an exception while delivering an exception',
  [abi.KVM_INTERNAL_ERROR_DELIVERY_EV]: 'an exit while delivering an event',
  [abi.KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON]: 'an exit the host does not handle',
};

export class KvmVirtualProcessor implements VirtualProcessor {
  private readonly c: Libc;
  private readonly mailbox = new SharedArrayBuffer(MB_BYTES);
  private readonly mb = new Int32Array(this.mailbox, 0, MB_PAYLOAD / 4);
  private readonly payload = new Uint8Array(this.mailbox, MB_PAYLOAD, MB_PAYLOAD_SIZE);
  private readonly pv = new DataView(this.mailbox, MB_PAYLOAD, MB_PAYLOAD_SIZE);
  private worker: Worker | null = null;
  private started = false;
  /** The parked exit has been handled; the reply is written and the worker only needs a go. */
  private replied = false;
  private exitRequested = false;
  /** The vCPU hit a terminal exit; `final` is returned from every later run(). */
  private final: RunOutcome | null = null;
  private readonly regsBuf = new Uint8Array(new ArrayBuffer(abi.KVM_REGS_SIZE));
  private readonly regsView = new DataView(this.regsBuf.buffer);
  private readonly msrOut = { lo: 0, hi: 0 };
  private readonly intBuf = new Uint8Array(new ArrayBuffer(abi.KVM_INTERRUPT_SIZE));
  private regsDirty = false;
  private readonly hcRegs: HypercallRegs;

  constructor(private readonly backend: KvmBackend, readonly index: number, private readonly fd: number,
    private readonly platform: PlatformServices) {
    this.c = libc();
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

  /** Spawns the worker and waits until it has mapped kvm_run and set its signal mask. */
  async start(mmapSize: number): Promise<void> {
    const data: VcpuWorkerData = { vcpuFd: this.fd, mmapSize, mailbox: this.mailbox, kickSignal: abi.SIGUSR2 };
    const w = new Worker(new URL('./vcpu-worker.js', import.meta.url), { workerData: data });
    this.worker = w;
    const failure = await new Promise<string | null>((resolve) => {
      w.on('message', (m: { ready?: boolean; error?: string }) => resolve(m.error ?? null));
      w.on('error', (e) => resolve(e.message));
      w.on('exit', (code) => resolve(`worker exited with code ${code}`));
    });
    if (failure !== null || Atomics.load(this.mb, MB.ready) !== 1) {
      throw new Error(`KVM vCPU ${this.index} worker did not start: ${failure ?? 'no ready signal'}`);
    }
    w.unref();
  }

  private vcpuGet(req: number, size: number, op: string): Uint8Array {
    const b = new Uint8Array(new ArrayBuffer(size));
    if (this.c.ioctlPtr(this.fd, req, b) < 0) throw new KvmError(op, this.c.errno());
    return b;
  }
  private vcpuSet(req: number, b: Uint8Array, op: string): void {
    if (this.c.ioctlPtr(this.fd, req, b) < 0) throw new KvmError(op, this.c.errno());
  }

  /** True when the worker is not inside KVM_RUN (not started, parked in the mailbox, or gone). */
  private get parked(): boolean {
    const s = Atomics.load(this.mb, MB.state);
    return !this.started || s === STATE_EXIT || s === STATE_STOPPED;
  }

  /** Stops the guest and waits (bounded) until the worker parks; for register access outside run(). */
  private park(): void {
    if (this.parked) return;
    this.kick();
    for (let i = 0; i < 100 && !this.parked; i++) Atomics.wait(this.mb, MB.state, STATE_RUNNING, 10);
    if (!this.parked) throw new Error(`KVM vCPU ${this.index} did not stop`);
  }

  setBootState(s: BootCpuState): void {
    this.park();
    const cur = this.vcpuGet(abi.KVM_GET_SREGS, abi.KVM_SREGS_SIZE, 'KVM_GET_SREGS');
    this.vcpuSet(abi.KVM_SET_SREGS, encodeBootSregs(s, cur), 'KVM_SET_SREGS');
    this.vcpuSet(abi.KVM_SET_REGS, encodeBootRegs(s), 'KVM_SET_REGS');
  }

  snapshot(): Record<string, number | bigint> {
    this.park();
    const regs = this.vcpuGet(abi.KVM_GET_REGS, abi.KVM_REGS_SIZE, 'KVM_GET_REGS');
    const sregs = this.vcpuGet(abi.KVM_GET_SREGS, abi.KVM_SREGS_SIZE, 'KVM_GET_SREGS');
    return decodeSnapshot(regs, sregs);
  }

  requestExit(): void {
    this.exitRequested = true;
    if (this.started && Atomics.load(this.mb, MB.state) === STATE_RUNNING) this.kick();
  }

  private kick(): void {
    Atomics.store(this.mb, MB.kick, 1);
    const t = (BigInt(this.mb[MB.threadHi] >>> 0) << 32n) | BigInt(this.mb[MB.threadLo] >>> 0);
    this.c.pthreadKill(t, abi.SIGUSR2);
  }

  private resume(flags: number): void {
    this.mb[MB.replyFlags] = flags;
    this.replied = false;
    Atomics.store(this.mb, MB.state, STATE_RUNNING);
    Atomics.notify(this.mb, MB.state);
  }

  run(budgetMs: number): RunOutcome {
    if (this.final) return this.final;
    const mb = this.mb;
    Atomics.store(mb, MB.kick, 0);
    this.exitRequested = false;
    if (!this.started) {
      this.started = true;
      this.mb[MB.replyFlags] = this.interruptFlags(0);
      Atomics.store(mb, MB.state, STATE_RUNNING);
      Atomics.notify(mb, MB.state);
    } else if (this.replied) {
      this.resume(this.interruptFlags(this.mb[MB.replyFlags] & ~REPLY_IRQ_WINDOW));
    }
    const deadline = performance.now() + budgetMs;
    for (;;) {
      let st = Atomics.load(mb, MB.state);
      if (st === STATE_RUNNING) {
        for (let i = 0; i < SPIN_ITERATIONS && st === STATE_RUNNING; i++) st = Atomics.load(mb, MB.state);
        if (st === STATE_RUNNING) {
          const left = deadline - performance.now();
          if (left <= 0) { this.kick(); return { kind: 'yield' }; }
          Atomics.wait(mb, MB.state, STATE_RUNNING, left);
          continue;
        }
      }
      if (st === STATE_STOPPED) return this.terminal({ kind: 'shutdown', code: 255, reason: `KVM vCPU ${this.index} worker stopped: ${errnoName(mb[MB.a0])}` });
      const out = this.handleExit();
      if (out !== null) return out;
      // handleExit left the reply flags in the mailbox.
      if (this.exitRequested || performance.now() >= deadline) { this.replied = true; return { kind: 'yield' }; }
      this.resume(mb[MB.replyFlags]);
    }
  }

  private terminal(o: RunOutcome): RunOutcome {
    this.final = o;
    return o;
  }

  /** Services the parked exit. Returns null to resume (reply flags written), or an outcome to leave it parked. */
  private handleExit(): RunOutcome | null {
    const mb = this.mb;
    const exit = mb[MB.exit];
    let flags = 0;
    switch (exit) {
      case EXIT_INTR:
      case abi.KVM_EXIT_DEBUG:
        break;
      case EXIT_ERRNO:
        return this.terminal({ kind: 'shutdown', code: 255, reason: `KVM_RUN failed: ${errnoName(mb[MB.a0])}` });
      case abi.KVM_EXIT_IO:
        if (!this.pio()) return this.fatal('KVM_EXIT_IO with an impossible size or count');
        break;
      case abi.KVM_EXIT_MMIO:
        if (!this.mmio()) return this.fatal('KVM_EXIT_MMIO with an impossible length');
        break;
      case abi.KVM_EXIT_X86_RDMSR: {
        const idx = mb[MB.a0] >>> 0;
        this.msrOut.lo = 0; this.msrOut.hi = 0;
        if (this.platform.msr.read(this.index, idx, this.msrOut)) {
          this.pv.setUint32(0, this.msrOut.lo >>> 0, true);
          this.pv.setUint32(4, this.msrOut.hi >>> 0, true);
        } else flags |= REPLY_MSR_ERROR;
        break;
      }
      case abi.KVM_EXIT_X86_WRMSR: {
        const idx = mb[MB.a0] >>> 0;
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
        const t = mb[MB.a0];
        if (t === abi.KVM_SYSTEM_EVENT_RESET) { this.platform.onReset('guest reset (KVM system event)'); return this.terminal({ kind: 'reset', reason: 'guest reset (KVM system event)' }); }
        const code = t === abi.KVM_SYSTEM_EVENT_CRASH ? 1 : 0;
        const reason = code ? 'guest crash (KVM system event)' : 'guest power-off (KVM system event)';
        this.platform.onShutdown(code, reason);
        return this.terminal({ kind: 'shutdown', code, reason });
      }
      case abi.KVM_EXIT_INTERNAL_ERROR:
        return this.fatal(this.describeInternalError());
      case abi.KVM_EXIT_FAIL_ENTRY:
        return this.fatal(`VM entry failed, hardware reason 0x${(mb[MB.a1] >>> 0).toString(16)}${(mb[MB.a0] >>> 0).toString(16).padStart(8, '0')}`);
      case abi.KVM_EXIT_EXCEPTION:
        return this.fatal(`unhandled exception ${mb[MB.a0]} (error code 0x${(mb[MB.a1] >>> 0).toString(16)})`);
      default:
        return this.fatal(`unexpected KVM exit reason ${exit}`);
    }
    mb[MB.replyFlags] = this.interruptFlags(flags);
    return null;
  }

  /** KVM_EXIT_INTERNAL_ERROR in words: the suberror by name and, for an emulation failure, the instruction bytes. */
  private describeInternalError(): string {
    const sub = this.mb[MB.a0];
    const ndata = this.mb[MB.a1] >>> 0;
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

  /** PIO exit: the hypercall stub's OUT, or `count` accesses of `size` bytes on the I/O bus. */
  private pio(): boolean {
    const a0 = this.mb[MB.a0];
    const port = a0 & 0xffff;
    const size = (a0 >>> 16) & 0xff;
    const out = ((a0 >>> 24) & 0xff) === abi.KVM_EXIT_IO_OUT;
    const count = this.mb[MB.a1] >>> 0;
    if ((size !== 1 && size !== 2 && size !== 4) || count === 0 || size * count > MB_PAYLOAD_SIZE) return false;
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
    const a0 = this.mb[MB.a0];
    const len = a0 & 0xff;
    const write = ((a0 >>> 8) & 0xff) !== 0;
    const addr = (this.mb[MB.a2] >>> 0) * 0x1_0000_0000 + (this.mb[MB.a1] >>> 0);
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
   * User-space irqchip: injects the LAPIC model's highest pending interrupt when the parked exit says the
   * guest can take one now, otherwise asks KVM for an interrupt-window exit. Returns the reply flags.
   */
  private interruptFlags(flags: number): number {
    if (this.backend.irqchip !== 'user') return flags;
    const ic = this.platform.interrupts[this.index];
    if (!ic) return flags;
    if (ic.nmiPending()) {
      if (this.c.ioctlInt(this.fd, abi.KVM_NMI, 0) >= 0) ic.acknowledgeNmi();
    }
    if (ic.pendingVector() < 0) return flags;
    const ready = this.mb[MB.irqReady];
    if ((ready & 0x1) !== 0 && (ready & 0x100) !== 0) {
      const v = ic.acknowledge();
      if (v >= 0) {
        new DataView(this.intBuf.buffer).setUint32(0, v, true);
        if (this.c.ioctlPtr(this.fd, abi.KVM_INTERRUPT, this.intBuf) < 0) throw new KvmError('KVM_INTERRUPT', this.c.errno());
        this.mb[MB.irqReady] = 0; // one injection per entry
      }
      return flags;
    }
    return flags | REPLY_IRQ_WINDOW;
  }

  /**
   * Complete vCPU state for save/restore. The vCPU is parked first and any half-done PIO/MMIO/MSR exit is
   * completed (KVM_RUN with immediate_exit) so the state does not depend on it.
   */
  saveState(): KvmVcpuState {
    this.park();
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
    this.park();
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

  /** If an exit is parked unfinished, handle it and re-enter with immediate_exit so KVM completes it without running guest code. */
  private completePending(): void {
    if (!this.started || Atomics.load(this.mb, MB.state) !== STATE_EXIT) return;
    const exit = this.mb[MB.exit];
    const needsCompletion = exit === abi.KVM_EXIT_IO || exit === abi.KVM_EXIT_MMIO || exit === abi.KVM_EXIT_X86_RDMSR || exit === abi.KVM_EXIT_X86_WRMSR;
    if (!needsCompletion) return;
    if (!this.replied) { const o = this.handleExit(); if (o) return; }
    this.resume((this.mb[MB.replyFlags] & ~REPLY_IRQ_WINDOW) | REPLY_IMMEDIATE_EXIT);
    for (let i = 0; i < 100 && Atomics.load(this.mb, MB.state) === STATE_RUNNING; i++) Atomics.wait(this.mb, MB.state, STATE_RUNNING, 10);
    this.replied = true; // the parked EXIT_INTR only needs a go
    this.mb[MB.replyFlags] = 0;
  }

  /** Ends the worker thread (the vCPU fd closes with it). */
  stop(): void {
    if (!this.worker) return;
    try { if (this.started) this.park(); } catch { /* a stuck vCPU is left to process exit */ }
    if (!this.started) { this.started = true; }
    this.resume(REPLY_STOP);
    for (let i = 0; i < 100 && Atomics.load(this.mb, MB.state) !== STATE_STOPPED; i++) Atomics.wait(this.mb, MB.state, Atomics.load(this.mb, MB.state), 10);
    this.c.close(this.fd);
    this.worker = null;
    this.final ??= { kind: 'shutdown', code: 0, reason: 'partition destroyed' };
  }
}

