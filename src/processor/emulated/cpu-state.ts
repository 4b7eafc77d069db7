/**
 * Architectural state of one emulated x86-64 processor. Fields only: logic lives in the modules that own
 * each concern (decoder/execution: `exec*.ts`, lazy flags: `flags.ts`, MMU and TLB: `mmu.ts`,
 * exceptions and interrupt delivery: `exceptions.ts`, segments/descriptor tables/system instructions:
 * `system.ts`, MSRs: `msr.ts`, CPUID: `cpuid.ts`, SIMD/x87: `simd/`).
 *
 * Representation rules (hot path, no BigInt, no allocation):
 *  - GPRs are 32-bit halves: gpr[2*i] low, gpr[2*i+1] high, RAX=0 ... R15=15.
 *  - Linear addresses and RIP are JS numbers holding the *signed* canonical value (-2^47 .. 2^47-1 for 48-bit
 *    addresses; kernel 0xffffffff81000000 is -0x7f000000). In legacy modes they are 0 .. 2^32-1.
 *    Convert register halves with `hi * 4294967296 + (lo >>> 0)` (hi signed) — exact for canonical values.
 *  - Physical addresses are non-negative numbers (< 2^52).
 *  - Faults are raised by throwing the preallocated `cpu.fault` object (see `CpuFault`); the run loop catches it.
 */
import type { PlatformServices } from '../backend.js';
import type { FpuStateLike } from './simd/contract.js';
import { TLB_TAG, TLB_ADD } from './wasm/state.js';

export const enum Seg { ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5 }

export const enum Mode {
  Real = 0, // CR0.PE = 0
  Protected16 = 1, // PE, CS.D = 0
  Protected32 = 2, // PE, CS.D = 1 (legacy or compatibility mode)
  Long64 = 3, // EFER.LMA and CS.L
}

export const enum Vec { DE = 0, DB = 1, NMI = 2, BP = 3, OF = 4, BR = 5, UD = 6, NM = 7, DF = 8, TS = 10, NP = 11, SS = 12, GP = 13, PF = 14, MF = 16, AC = 17, MC = 18, XM = 19 }

/** Thrown (one preallocated instance per CPU) when an instruction faults. */
export class CpuFault {
  vector = 0;
  hasError = false;
  errorCode = 0;
}

/** RFLAGS bits. */
export const enum F { CF = 1 << 0, PF = 1 << 2, AF = 1 << 4, ZF = 1 << 6, SF = 1 << 7, TF = 1 << 8, IF = 1 << 9, DF = 1 << 10, OF = 1 << 11, IOPL = 3 << 12, NT = 1 << 14, RF = 1 << 16, VM = 1 << 17, AC = 1 << 18, VIF = 1 << 19, VIP = 1 << 20, ID = 1 << 21 }

export class CpuState {
  // ---- General purpose and instruction pointer
  /**
   * State shared with translated WebAssembly code (layout: wasm/state.ts): an area of the memory that holds
   * guest RAM (platform.memory.wasm) or, when RAM is not in one, a private one-page memory. The area's first
   * 128 bytes are the GPRs, so `gpr` is a view of it and wasm reads RAX..R15 as i64 at area + 0, 8, ...
   */
  readonly stateMem: WebAssembly.Memory;
  /** Byte offset of this vCPU's area in stateMem. */
  readonly stateBase: number;
  /** The TLB (below) lives in stateMem too, so translated code can look it up inline. */
  readonly tlbInWasm: boolean;
  readonly gpr: Int32Array;
  rip = 0;

  // ---- RFLAGS. Arithmetic flags (CF PF AF ZF SF OF) are lazy and owned by flags.ts; `flagsRest` holds every
  // other bit (IF, DF, TF, IOPL, NT, RF, AC, ID, bit 1 always set). Read the whole register through flags.ts.
  flagsRest = 0x2;
  // Lazy-flags record (layout owned by flags.ts): operation kind, result and sources as 32-bit halves.
  ccOp = 0;
  ccRes = 0; ccResHi = 0;
  ccSrc1 = 0; ccSrc1Hi = 0;
  ccSrc2 = 0; ccSrc2Hi = 0;
  ccAux = 0; // e.g. carry-in for adc/sbb, shift count
  /**
   * Model Intel's string-instruction corners instead of AMD's (the identity CPUID presents). Only the
   * differential tests set it, to compare against an Intel host: there a 32-bit-address rep with ECX=0 still
   * zero-extends RCX (and the pointers MOVS/STOS advance), and a rep CMPS/SCAS that faults part-way leaves
   * the flags it started with.
   */
  intelStrings = false;

  // ---- Segments: selector, base (number), limit (bytes, inclusive), attributes (descriptor bits 40..55 packed as
  // type[3:0] s[4] dpl[6:5] p[7] avl[12] l[13] db[14] g[15], i.e. the VMX "access rights" layout).
  readonly segSel = new Uint16Array(6);
  readonly segBase = new Float64Array(6);
  readonly segLimit = new Float64Array(6);
  readonly segAttr = new Uint16Array(6);
  ldtrSel = 0; ldtrBase = 0; ldtrLimit = 0; ldtrAttr = 0;
  trSel = 0; trBase = 0; trLimit = 0; trAttr = 0;
  gdtrBase = 0; gdtrLimit = 0xffff;
  idtrBase = 0; idtrLimit = 0xffff;

  // ---- Mode summary (recomputed by system.ts whenever CR0/EFER/CS change)
  mode: Mode = Mode.Real;
  cpl = 0;
  /** Default operand/address size in bytes for the current code segment: 2, 4 or 8 (address). */
  codeBits = 16;

  // ---- Control registers (low 32 bits; CR2/CR3 full numbers)
  cr0 = 0x60000010;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  efer = 0; // only low bits used: SCE(0) LME(8) LMA(10) NXE(11)
  xcr0 = 1;
  readonly dr = new Float64Array(8);

  // ---- MSRs the processor owns (values as numbers; 64-bit ones split where arithmetic needs it)
  star = 0; starHi = 0; // STAR: SYSCALL CS/SS in high half
  lstar = 0; cstar = 0; sfmask = 0;
  kernelGsBase = 0;
  sysenterCs = 0; sysenterEsp = 0; sysenterEip = 0;
  patLo = 0x00070406; patHi = 0x00070406;
  tscAux = 0;
  tscOffset = 0; // guest TSC = clock-derived TSC + offset (IA32_TSC writes)
  apicBase = 0xfee00900; // enabled, BSP
  miscEnable = 1; // fast strings
  readonly mtrr = new Map<number, number>();

  // ---- SIMD / x87 (contents owned by simd/)
  readonly xmm = new Int32Array(64);
  fpu!: FpuStateLike;

  // ---- Execution control
  halted = false;
  /** Interrupt shadow after STI / MOV SS / POP SS: no external interrupt before the next instruction retires. */
  intShadow = false;
  /** Set by requestExit() or a device event; the run loop returns at the next block boundary. */
  exitRequested = false;
  /** Retired instruction count (for benchmarks, icount-style time, trace). */
  insnCount = 0;
  /** PAUSEs since the last exit; past `pauseExitAfter` (0 = never) a spinning vCPU asks to exit so another runs. */
  pauseCount = 0;
  pauseExitAfter = 0;
  /** Nesting guard for #DF / triple fault. */
  faultDepth = 0;

  readonly fault = new CpuFault();

  /** High half of the last 64-bit value returned by read64()/movFromCr() etc. (avoids allocating pairs). */
  memHi = 0;

  /**
   * Physical pages (by page number) that hold decoded/cached code. The MMU keeps such pages out of the
   * fast write path and calls `onCodeWrite` on a store to one, so the execution core can drop stale blocks.
   */
  codePages: Uint8Array = new Uint8Array(0);
  onCodeWrite: (ppn: number) => void = () => {};

  /**
   * Debugger: called when INT3 executes; returning true means the debugger owns this breakpoint, so the
   * instruction is not delivered to the guest (RIP stays on it) and the run loop stops (exitRequested).
   */
  breakpointHook: ((cpu: CpuState) => boolean) | null = null;

  /** Tests: when set, the run loop does not deliver a fault; it stops with `faultStopped` and cpu.fault filled. */
  stopOnFault = false;
  faultStopped = false;

  // ---- core-exec fields (decoder, flags, block cache, run loop) go below this line
  /**
   * Something may have made an interrupt deliverable (device access, clock poll, system instruction): the run
   * loop asks the interrupt controller at the next block boundary instead of at every one.
   */
  irqCheck = true;
  /** RFLAGS.IF when interrupts were last looked at (IF becoming 1 makes a pending one deliverable). */
  ifWasOn = false;

  // ---- core-system fields (MMU/TLB, exceptions, segments, MSRs) go below this line
  /**
   * Software TLB (mmu.ts): 6 direct-mapped tables of 1024 entries, one per (access kind, privilege):
   * index = ((kind << 1) | user) * 1024 + (linear page number & 1023); kind 0 read, 1 write, 2 fetch.
   * Tag = linear page base (NaN = empty). addend = RAM byte offset - linear page base (fast path: one add);
   * phys = physical page base - linear page base. flags: 1 global, 2 part of a large page, 4 RAM.
   */
  readonly tlbTag: Float64Array;
  readonly tlbAddend: Float64Array;
  readonly tlbPhys = new Float64Array(6 * 1024);
  readonly tlbFlags = new Uint8Array(6 * 1024);
  /** Linear base and size of the large page an entry came from (for invlpg on a 2M/4M/1G page). */
  readonly tlbLargeBase = new Float64Array(6 * 1024);
  readonly tlbLargeSize = new Float64Array(6 * 1024);
  tlbGlobalCount = 0;
  tlbLargeCount = 0;
  /** Distinct large pages in the TLB as [base, end) pairs (mmu.ts); count 9 = more than 8. */
  readonly tlbRanges = new Float64Array(16);
  tlbRangeCount = 0;
  /** Views of guest RAM, set on the first TLB fill (the fast path only runs after a fill). */
  ram!: Uint8Array;
  ramView!: DataView;
  /** Vector being delivered (for #DF / triple-fault classification), -1 when none. */
  deliveringVector = -1;
  /** Set by NMI delivery, cleared by IRET: blocks further NMIs. */
  nmiBlocked = false;
  /** Scratch for MSR handler calls (no allocation per access). */
  readonly msrOut = { lo: 0, hi: 0 };
  // Debug state (debug.ts). Nonzero debugArmed (1: a DR7 breakpoint enabled, 2: a #DB trap pending) or
  // RFLAGS.TF sends execution through debug.debugStep one instruction at a time.
  debugArmed = 0;
  /** DR6 bits of a #DB trap waiting for the next instruction boundary. */
  dbgPending = 0;
  /** Data/I-O breakpoint hits (DR6.B0-B3) of the instruction being stepped. */
  dbgHits = 0;
  /** Set by the stepped instruction: 1 = it delivered a software interrupt or was SYSCALL/SYSRET (no TF-at-start trap). */
  dbgEvent = 0;
  /** The last SS load (MOV SS / POP SS) opened an interrupt shadow that also inhibits debug traps. */
  dbgMovSs = false;
  /** Enabled data breakpoints, and the linear page each watches (NaN: none): the MMU keeps them out of the TLB. */
  dbgWatch = 0;
  readonly dbgWatchPage = new Float64Array(4).fill(NaN);
  /** Protection-key rights registers: PKRU (user pages, CR4.PKE) and IA32_PKRS (supervisor pages, CR4.PKS). */
  pkru = 0;
  pkrs = 0;
  /** TLB indices of supervisor entries for user pages that SMAP allowed because RFLAGS.AC was 1 (mmu.ts). */
  readonly tlbSmapIdx = new Int32Array(32);
  tlbSmapCount = 0;

  constructor(readonly vp: number, readonly platform: PlatformServices) {
    const w = platform.memory?.wasm ?? null; // unit tests build a CpuState without a platform
    if (w !== null && vp < w.areas) {
      this.stateMem = w.memory; this.stateBase = vp * w.areaSize; this.tlbInWasm = true;
      this.tlbTag = new Float64Array(w.memory.buffer, this.stateBase + TLB_TAG, 6 * 1024).fill(NaN);
      this.tlbAddend = new Float64Array(w.memory.buffer, this.stateBase + TLB_ADD, 6 * 1024);
    } else {
      this.stateMem = new WebAssembly.Memory({ initial: 1, maximum: 1 }); this.stateBase = 0; this.tlbInWasm = false;
      this.tlbTag = new Float64Array(6 * 1024).fill(NaN);
      this.tlbAddend = new Float64Array(6 * 1024);
    }
    this.gpr = new Int32Array(this.stateMem.buffer, this.stateBase, 32);
  }
}
