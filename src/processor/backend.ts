/**
 * The processor backend interface: what a partition needs from a virtual processor, whichever backend
 * (emulated x86-64 in TypeScript, or KVM hardware virtualization) implements it.
 *
 * Data flows one way: the processor runs guest code, and on I/O, MSR, CPUID, hypercall or interrupt
 * acknowledge it calls the partition's `PlatformServices`; device models never call the processor
 * directly except through `InterruptController`/`requestExit`.
 */
import type { GuestMemory } from '../platform/memory.js';
import type { IoBus, MmioBus } from '../platform/bus.js';
import type { VirtualClock } from '../platform/clock.js';

export type BackendKind = 'emulated' | 'kvm';

/** Four 32-bit register values returned by CPUID. */
export interface CpuidResult { eax: number; ebx: number; ecx: number; edx: number }

/** Answers CPUID for leaves the partition defines (base x86 leaves plus Hyper-V's 0x4000xxxx). */
export interface CpuidProvider {
  cpuid(leaf: number, subleaf: number): CpuidResult;
}

/**
 * Model-specific registers the processor does not own itself (e.g. Hyper-V synthetic MSRs).
 * 64-bit values are passed as (lo, hi) 32-bit halves to stay off BigInt in the emulator.
 * `read` returns false (and the processor raises #GP) when the MSR does not exist; the value goes to `out`.
 */
export interface MsrHandler {
  read(vp: number, index: number, out: { lo: number; hi: number }): boolean;
  write(vp: number, index: number, lo: number, hi: number): boolean;
}

/**
 * Hypercall entry (VMCALL/VMMCALL from the hypercall page). The handler reads and writes the guest's
 * registers through `regs` (x64 convention: RCX control, RDX input GPA, R8 output GPA; result in RAX).
 */
export interface HypercallRegs {
  get(reg: number): { lo: number; hi: number };
  set(reg: number, lo: number, hi: number): void;
  /** XMM fast hypercall inputs. */
  getXmm?(reg: number, out: Uint32Array): void;
}
export interface HypercallHandler {
  hypercall(vp: number, regs: HypercallRegs): void;
}

/**
 * The local interrupt controller of one virtual processor (the LAPIC model for the emulated backend).
 * The emulated processor asks it for a deliverable vector when RFLAGS.IF allows.
 */
export interface InterruptController {
  /** Vector of the highest-priority interrupt deliverable now (respecting TPR/ISR), or -1. */
  pendingVector(): number;
  /** Acknowledge the interrupt `pendingVector()` returned (moves it to in-service) and return its vector. */
  acknowledge(): number;
  /** An NMI is waiting. */
  nmiPending(): boolean;
  acknowledgeNmi(): void;
  /** CR8 <-> TPR[7:4]. */
  getTpr(): number;
  setTpr(v: number): void;
  /** WRMSR IA32_APIC_BASE (low half; BSP bit ignored): the enable bit reaches the APIC model. */
  writeApicBase?(lo: number): boolean;
}

/** Everything the partition offers its processors. */
export interface PlatformServices {
  memory: GuestMemory;
  io: IoBus;
  mmio: MmioBus;
  clock: VirtualClock;
  cpuid: CpuidProvider;
  msr: MsrHandler;
  hypercall: HypercallHandler | null;
  /** One per vCPU, index = VP index. */
  interrupts: InterruptController[];
  /** Logical processors in the partition (CPUID topology); 1 when absent. */
  vcpuCount?: number;
  /** Frequency of the guest TSC in Hz (must match CPUID/MSR advertisement). */
  tscHz: number;
  /** The guest asked for a machine reset (triple fault, i8042, ACPI reset) or power-off. */
  onReset(reason: string): void;
  onShutdown(code: number, reason: string): void;
}

/** Register state a boot loader sets before the first instruction (64-bit Linux entry, multiboot, real mode). */
export interface BootCpuState {
  mode: 'long64' | 'protected32' | 'real';
  rip: number;
  /** General-purpose registers by index (RAX=0 ... R15=15), values < 2^53. */
  gpr: Partial<Record<number, number>>;
  rflags?: number;
  cr0?: number;
  cr3?: number;
  cr4?: number;
  efer?: number;
  /** Physical address of a GDT the loader placed (flat code/data descriptors). */
  gdtBase?: number;
  gdtLimit?: number;
  /** Selectors for CS and the data segments in that GDT. */
  cs?: number;
  ds?: number;
}

export type RunOutcome =
  | { kind: 'shutdown'; code: number; reason: string }
  | { kind: 'reset'; reason: string }
  | { kind: 'yield' } // budget spent or an external event wants attention
  | { kind: 'halted' }; // every vCPU waits for an interrupt

export interface VirtualProcessor {
  readonly index: number;
  /** Apply the loader's initial state. */
  setBootState(s: BootCpuState): void;
  /**
   * Run guest code for about `budgetMs` of host time (or until halt/shutdown/reset/requestExit).
   * Synchronous for the emulated backend; a KVM vCPU runs on its own thread and this awaits it.
   */
  run(budgetMs: number): RunOutcome | Promise<RunOutcome>;
  /** Ask a running vCPU to return from `run` soon (new interrupt, pause, stop). */
  requestExit(): void;
  /**
   * Several vCPUs taking turns on one thread (emulated backend): `run` with an instruction quantum, INIT and
   * SIPI, and whether the vCPU sits in HLT. Absent on backends that cannot run application processors yet.
   */
  runQuantum?(budgetMs: number, maxInsns: number): RunOutcome;
  /** INIT: the architectural INIT state; the processor then waits for a startup IPI. */
  init?(): void;
  /** STARTUP IPI: real mode at CS = vector << 8, IP = 0. */
  startup?(vector: number): void;
  readonly halted?: boolean;
  /** Drop cached translations (remote TLB flush); global ones too unless `nonGlobalOnly`. */
  flushTlb?(nonGlobalOnly: boolean): void;
  /** RFLAGS.IF: a halted vCPU with IF=0 is woken by an NMI only. */
  readonly interruptsEnabled?: boolean;
  /** Retired instructions (icount clock). */
  readonly instructions?: number;
  /** Ask for an exit after this many PAUSEs in a row-ish (0 = never; one vCPU never needs it). */
  setPauseExit?(count: number): void;
  /**
   * Saved state (Save-VM), between runs only. Absent on backends that cannot save (KVM): the partition
   * then refuses to save.
   */
  saveState?(): unknown;
  restoreState?(s: unknown): void;
  /** Register snapshot for the GDB stub, trace and error reports (names as in `info registers`). */
  snapshot(): Record<string, number | bigint>;
}

export interface ProcessorBackend {
  readonly kind: BackendKind;
  createVcpu(index: number, platform: PlatformServices): VirtualProcessor | Promise<VirtualProcessor>;
  destroy(): void;
}
