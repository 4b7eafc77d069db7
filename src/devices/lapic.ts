/**
 * Local APIC (xAPIC, MMIO at LAPIC_BASE), one per virtual processor, ID = VP index.
 *
 * Timer: the input clock is LAPIC_TIMER_HZ (1 GHz, as KVM's in-kernel LAPIC, so the value the Hyper-V
 * APIC_FREQUENCY MSR reports is the same on both backends), divided by the divide configuration.
 * One-shot and periodic modes only: TSC-deadline is not advertised, so LVT timer bit 18 is reserved.
 * A new divide value takes effect at the next initial-count write.
 *
 * The 8259's INT reaches the boot processor's LINT0 (virtual wire): with LINT0 in ExtINT mode and not
 * masked (or the APIC globally disabled) the PIC's vector is delivered without touching IRR/ISR.
 * The emulated processor calls `pendingVector()`/`acknowledge()` at instruction-block boundaries;
 * `onInterruptPending` lets a halted processor be woken when something becomes deliverable.
 */
import type { AccessSize, MmioBus, MmioDevice } from '../platform/bus.js';
import type { TimerHandle, VirtualClock } from '../platform/clock.js';
import { LAPIC_BASE, LAPIC_SIZE } from '../platform/layout.js';
import type { InterruptController } from '../processor/backend.js';

/** LAPIC timer input frequency in Hz (report it through HV_X64_MSR_APIC_FREQUENCY). */
export const LAPIC_TIMER_HZ = 1_000_000_000;
/** Periodic timer interrupts are not generated faster than this (guest-chosen tiny periods would flood). */
const MIN_PERIODIC_NS = 50_000;

export const LAPIC_VERSION = 0x00050014; // version 0x14, 6 LVT entries (max LVT index 5)

// Register offsets.
const REG_ID = 0x20, REG_VERSION = 0x30, REG_TPR = 0x80, REG_APR = 0x90, REG_PPR = 0xa0, REG_EOI = 0xb0,
  REG_RRD = 0xc0, REG_LDR = 0xd0, REG_DFR = 0xe0, REG_SVR = 0xf0, REG_ISR = 0x100, REG_TMR = 0x180,
  REG_IRR = 0x200, REG_ESR = 0x280, REG_LVT_CMCI = 0x2f0, REG_ICR_LO = 0x300, REG_ICR_HI = 0x310,
  REG_LVT_TIMER = 0x320, REG_LVT_THERMAL = 0x330, REG_LVT_PERF = 0x340, REG_LVT_LINT0 = 0x350,
  REG_LVT_LINT1 = 0x360, REG_LVT_ERROR = 0x370, REG_TIMER_ICR = 0x380, REG_TIMER_CCR = 0x390, REG_TIMER_DCR = 0x3e0;

export const LVT_MASKED = 1 << 16;
export const LVT_TIMER_PERIODIC = 1 << 17;
const LVT_LEVEL = 1 << 15;
const LVT_REMOTE_IRR = 1 << 14;
const SVR_ENABLE = 1 << 8;
export const APIC_BASE_BSP = 1 << 8;
export const APIC_BASE_ENABLE = 1 << 11;

export const DM_FIXED = 0, DM_LOWEST = 1, DM_SMI = 2, DM_NMI = 4, DM_INIT = 5, DM_STARTUP = 6, DM_EXTINT = 7;

const ESR_SEND_ILLEGAL = 1 << 5;
const ESR_RECV_ILLEGAL = 1 << 6;
const ESR_ILLEGAL_REG = 1 << 7;

/** The 8259 as seen from LINT0 in ExtINT mode. */
export interface ExtIntSource {
  readonly intr: boolean;
  peekVector(): number;
  acknowledge(): number;
}

function highestBit(words: Uint32Array): number {
  for (let i = 7; i >= 0; i--) {
    const w = words[i];
    if (w !== 0) return i * 32 + 31 - Math.clz32(w);
  }
  return -1;
}

const setBit = (w: Uint32Array, v: number): void => { w[v >> 5] |= 1 << (v & 31); };
const clearBit = (w: Uint32Array, v: number): void => { w[v >> 5] &= ~(1 << (v & 31)); };
const testBit = (w: Uint32Array, v: number): boolean => (w[v >> 5] & (1 << (v & 31))) !== 0;

/**
 * The APIC bus: routes IPIs and IOAPIC/MSI messages to local APICs by destination.
 * Physical mode matches the APIC ID (0xff = broadcast); logical mode uses the LDR with the flat or
 * cluster model of the DFR.
 */
export class ApicBus {
  readonly lapics: LocalApic[] = [];
  /** An IPI (a message some APIC's ICR sent) reached another APIC: the scheduler runs that vCPU soon. */
  onIpi: ((target: LocalApic) => void) | null = null;

  add(l: LocalApic): void { this.lapics.push(l); }

  private matches(l: LocalApic, dest: number, logical: boolean): boolean {
    if (!logical) return dest === 0xff || l.id === dest;
    const ldr = l.ldr >>> 24;
    if ((l.dfr >>> 28) === 0xf) return (ldr & dest) !== 0; // flat
    if ((dest & 0xf0) === 0xf0) return (dest & 0x0f & ldr) !== 0 || dest === 0xff; // cluster broadcast
    return (dest >> 4) === (ldr >> 4) && (dest & ldr & 0x0f) !== 0;
  }

  /**
   * Deliver an interrupt message. `shorthand`: 0 = use dest, 1 = self, 2 = all including self,
   * 3 = all excluding self (`source` required for 1-3).
   */
  deliver(dest: number, logical: boolean, mode: number, vector: number, level: boolean,
    shorthand = 0, source: LocalApic | null = null): void {
    if (mode === DM_LOWEST && shorthand === 0) {
      // Lowest priority: the matching APIC with the lowest TPR (first on ties).
      let best: LocalApic | null = null;
      for (const l of this.lapics) {
        if (this.matches(l, dest, logical) && (best === null || (l.tpr & 0xf0) < (best.tpr & 0xf0))) best = l;
      }
      if (best) { best.accept(DM_FIXED, vector, level); if (source !== null && best !== source) this.onIpi?.(best); }
      return;
    }
    for (const l of this.lapics) {
      let hit: boolean;
      switch (shorthand) {
        case 1: hit = l === source; break;
        case 2: hit = true; break;
        case 3: hit = l !== source; break;
        default: hit = this.matches(l, dest, logical);
      }
      if (!hit) continue;
      l.accept(mode, vector, level);
      if (source !== null && l !== source && mode !== DM_INIT && mode !== DM_STARTUP) this.onIpi?.(l);
    }
  }
}

export interface LocalApicState {
  id: number; apicBase: number; tpr: number; ldr: number; dfr: number; svr: number; esr: number; esrPending: number;
  icrLo: number; icrHi: number; lvt: number[]; irr: number[]; isr: number[]; tmr: number[]; autoEoi: number[];
  nmi: boolean; timerInitial: number; timerDcr: number; timerStart: number; timerTickNs: number; timerStopped?: boolean;
  lint: number[]; initPending: boolean; sipiVector: number;
}

export class LocalApic implements InterruptController, MmioDevice {
  id: number;
  /** IA32_APIC_BASE low half (base, BSP and enable bits). */
  apicBase: number;
  tpr = 0;
  ldr = 0;
  dfr = 0xffffffff;
  svr = 0xff;
  esr = 0;
  private esrPending = 0;
  icrLo = 0;
  icrHi = 0;
  /** LVT entries: timer, thermal, perf, LINT0, LINT1, error, CMCI. */
  readonly lvt = new Uint32Array(7);
  readonly irr = new Uint32Array(8);
  readonly isr = new Uint32Array(8);
  readonly tmr = new Uint32Array(8);
  /** Vectors delivered with auto-EOI (Hyper-V SynIC SINTs): acknowledged without entering ISR. */
  readonly autoEoi = new Uint32Array(8);
  private nmi = false;

  timerInitial = 0;
  timerDcr = 0;
  /** Virtual time (ns) the current count started from, and ns per count at that time. */
  private timerStart = 0;
  private timerTickNs = 2;
  /** A one-shot count reached zero and the mode then became periodic: the count stays 0 until TMICT is written. */
  private timerStopped = false;
  private timerHandle: TimerHandle | null = null;
  private readonly lintLevel = [0, 0];

  /** INIT/SIPI received; the partition moves the processor's run state (wait-for-SIPI, started). */
  initPending = false;
  sipiVector = -1;
  onInitSipi: ((kind: 'init' | 'sipi', vector: number) => void) | null = null;

  /** Something may have become deliverable (wake a halted vCPU / ask a running one to exit). */
  onInterruptPending: (() => void) | null = null;
  /** EOI of a level-triggered vector: the IOAPIC clears remote IRR. */
  onEoiBroadcast: ((vector: number) => void) | null = null;
  /** The 8259 pair behind LINT0 (boot processor only). */
  extInt: ExtIntSource | null = null;
  /** The MMIO base moved (IA32_APIC_BASE write, reset, restore): the window maps the new address. */
  onBaseChange: (() => void) | null = null;

  constructor(readonly index: number, private readonly clock: VirtualClock, private readonly bus: ApicBus) {
    this.id = index;
    this.apicBase = (LAPIC_BASE | APIC_BASE_ENABLE | (index === 0 ? APIC_BASE_BSP : 0)) >>> 0;
    this.resetRegisters();
    bus.add(this);
  }

  private resetRegisters(): void {
    this.tpr = 0; this.ldr = 0; this.dfr = 0xffffffff; this.svr = 0xff; this.esr = 0; this.esrPending = 0;
    this.icrLo = 0; this.icrHi = 0;
    this.lvt.fill(LVT_MASKED);
    // As firmware leaves a PC (and QEMU's reset does): the BSP's LINT0 in virtual-wire ExtINT, LINT1 NMI.
    if (this.index === 0) { this.lvt[3] = DM_EXTINT << 8; this.lvt[4] = DM_NMI << 8; }
    this.irr.fill(0); this.isr.fill(0); this.tmr.fill(0); this.autoEoi.fill(0);
    this.nmi = false;
    this.timerInitial = 0; this.timerDcr = 0; this.timerStopped = false;
    this.clock.cancel(this.timerHandle); this.timerHandle = null;
  }

  /** Machine reset (INIT keeps the APIC ID and base; a full reset here restores everything). */
  reset(): void {
    this.id = this.index;
    this.apicBase = (LAPIC_BASE | APIC_BASE_ENABLE | (this.index === 0 ? APIC_BASE_BSP : 0)) >>> 0;
    this.resetRegisters();
    this.initPending = false;
    this.sipiVector = -1;
    this.onBaseChange?.();
  }

  get softwareEnabled(): boolean { return (this.svr & SVR_ENABLE) !== 0; }
  get globallyEnabled(): boolean { return (this.apicBase & APIC_BASE_ENABLE) !== 0; }
  /** Guest-physical address of the register page (IA32_APIC_BASE[31:12]). */
  get base(): number { return (this.apicBase & 0xfffff000) >>> 0; }

  // ---- InterruptController ----

  private ppr(): number {
    const isrv = highestBit(this.isr);
    const isrClass = isrv < 0 ? 0 : isrv & 0xf0;
    return (this.tpr & 0xf0) >= isrClass ? this.tpr & 0xff : isrClass;
  }

  private fixedPending(): number {
    if (!this.globallyEnabled || !this.softwareEnabled) return -1;
    const v = highestBit(this.irr);
    if (v < 0) return -1;
    return (v & 0xf0) > (this.ppr() & 0xf0) ? v : -1;
  }

  private extIntAccepted(): boolean {
    const e = this.extInt;
    if (e === null || !e.intr) return false;
    if (!this.globallyEnabled) return true;
    const lint0 = this.lvt[3];
    return (lint0 & LVT_MASKED) === 0 && ((lint0 >> 8) & 7) === DM_EXTINT;
  }

  pendingVector(): number {
    const v = this.fixedPending();
    if (v >= 0) return v;
    return this.extIntAccepted() ? this.extInt!.peekVector() : -1;
  }

  acknowledge(): number {
    const v = this.fixedPending();
    if (v >= 0) {
      clearBit(this.irr, v);
      if (testBit(this.autoEoi, v)) clearBit(this.autoEoi, v);
      else setBit(this.isr, v);
      return v;
    }
    if (this.extIntAccepted()) return this.extInt!.acknowledge();
    return this.svr & 0xff; // nothing left to deliver: the spurious vector
  }

  nmiPending(): boolean { return this.nmi; }
  acknowledgeNmi(): void { this.nmi = false; }

  getTpr(): number { return (this.tpr >> 4) & 0xf; }
  setTpr(v: number): void { this.tpr = (v & 0xf) << 4; this.kick(); }

  // ---- Interrupt sources ----

  /** MSI-style injection of a fixed interrupt (IOAPIC, Hyper-V SynIC). `level` sets TMR (EOI broadcast). */
  deliver(vector: number, level: boolean, autoEoi = false): void {
    this.acceptFixed(vector & 0xff, level, autoEoi);
  }

  /** A message from the APIC bus. */
  accept(mode: number, vector: number, level: boolean): void {
    switch (mode) {
      case DM_FIXED: case DM_LOWEST: this.acceptFixed(vector & 0xff, level, false); break;
      case DM_NMI: this.raiseNmi(); break;
      case DM_INIT: {
        // INIT resets the APIC as at power-up, except its ID and IA32_APIC_BASE.
        const id = this.id;
        this.resetRegisters();
        this.id = id;
        this.initPending = true;
        this.onInitSipi?.('init', 0);
        break;
      }
      case DM_STARTUP: this.sipiVector = vector & 0xff; this.onInitSipi?.('sipi', vector & 0xff); break;
      default: break; // SMI and ExtINT messages are not modelled
    }
  }

  raiseNmi(): void { this.nmi = true; this.kick(); }

  private acceptFixed(vector: number, level: boolean, autoEoi: boolean): void {
    if (vector < 16) { this.esrPending |= ESR_RECV_ILLEGAL; this.lvtError(); return; }
    setBit(this.irr, vector);
    if (level) setBit(this.tmr, vector); else clearBit(this.tmr, vector);
    if (autoEoi) setBit(this.autoEoi, vector); else clearBit(this.autoEoi, vector);
    this.kick();
  }

  private kick(): void { this.onInterruptPending?.(); }

  /** The 8259's INT changed (only meaningful on the boot processor). */
  extIntChanged(): void { if (this.extIntAccepted()) this.kick(); }

  /** LINT0/LINT1 pin input (for LINT1 as NMI, or fixed-mode local interrupts). */
  setLint(pin: 0 | 1, level: boolean): void {
    const was = this.lintLevel[pin];
    this.lintLevel[pin] = level ? 1 : 0;
    const e = this.lvt[3 + pin];
    if (e & LVT_MASKED) return;
    const mode = (e >> 8) & 7;
    const isLevel = (e & LVT_LEVEL) !== 0 && mode === DM_FIXED;
    if (!level || (was && !isLevel)) return;
    if (mode === DM_NMI) this.raiseNmi();
    else if (mode === DM_FIXED) {
      if (isLevel) this.lvt[3 + pin] |= LVT_REMOTE_IRR;
      this.acceptFixed(e & 0xff, isLevel, false);
    } else if (mode === DM_EXTINT) this.kick();
  }

  private lvtError(): void {
    const e = this.lvt[5];
    if ((e & LVT_MASKED) === 0 && (e & 0xff) >= 16) { setBit(this.irr, e & 0xff); clearBit(this.tmr, e & 0xff); this.kick(); }
  }

  /** End of interrupt: retire the highest in-service vector. */
  eoi(): void {
    const v = highestBit(this.isr);
    if (v < 0) return;
    clearBit(this.isr, v);
    if (testBit(this.tmr, v)) {
      clearBit(this.tmr, v);
      for (let pin = 0; pin < 2; pin++) {
        if ((this.lvt[3 + pin] & 0xff) === v) this.lvt[3 + pin] &= ~LVT_REMOTE_IRR;
      }
      this.onEoiBroadcast?.(v);
    }
    this.kick();
  }

  // ---- Timer ----

  private timerDivisor(): number {
    const d = (this.timerDcr & 3) | ((this.timerDcr & 8) >> 1);
    return d === 7 ? 1 : 2 << d;
  }

  private startTimer(): void {
    this.clock.cancel(this.timerHandle);
    this.timerHandle = null;
    this.timerStart = this.clock.now();
    this.timerTickNs = this.timerDivisor() * (1e9 / LAPIC_TIMER_HZ);
    this.timerStopped = false;
    if (this.timerInitial !== 0) this.armTimer(this.timerStart);
  }

  private periodNs(): number { return this.timerInitial * this.timerTickNs; }

  /** Schedule the next expiry strictly after `after`. */
  private armTimer(after: number): void {
    if (this.timerStopped) return;
    const period = this.periodNs();
    let deadline = this.timerStart + period;
    if (this.lvt[0] & LVT_TIMER_PERIODIC) {
      if (deadline <= after) deadline = this.timerStart + (Math.floor((after - this.timerStart) / period) + 1) * period;
      if (period < MIN_PERIODIC_NS) deadline = Math.max(deadline, after + MIN_PERIODIC_NS);
    } else if (deadline <= after) {
      return; // one-shot already expired
    }
    this.timerHandle = this.clock.at(deadline, (now) => this.timerFired(now));
  }

  private timerFired(now: number): void {
    this.timerHandle = null;
    const e = this.lvt[0];
    if ((e & LVT_MASKED) === 0) this.acceptFixed(e & 0xff, false, false);
    if ((e & LVT_TIMER_PERIODIC) && this.timerInitial !== 0) this.armTimer(now);
  }

  /**
   * Before the periodic bit flips: a one-shot count already at zero stays there (nothing reloads it);
   * a periodic count becomes a one-shot count of what is left of the current period.
   */
  private keepCountAcrossModeChange(): void {
    if (this.timerStopped) return;
    if ((this.lvt[0] & LVT_TIMER_PERIODIC) === 0) {
      if (this.currentCount() === 0) this.timerStopped = true;
      return;
    }
    const ticks = Math.floor((this.clock.now() - this.timerStart) / this.timerTickNs);
    this.timerStart += Math.floor(ticks / this.timerInitial) * this.periodNs();
  }

  currentCount(): number {
    if (this.timerInitial === 0 || this.timerStopped) return 0;
    const ticks = Math.floor((this.clock.now() - this.timerStart) / this.timerTickNs);
    if (this.lvt[0] & LVT_TIMER_PERIODIC) return this.timerInitial - (ticks % this.timerInitial);
    return ticks >= this.timerInitial ? 0 : this.timerInitial - ticks;
  }

  // ---- MMIO ----

  private readReg(reg: number): number {
    switch (reg) {
      case REG_ID: return (this.id << 24) >>> 0;
      case REG_VERSION: return LAPIC_VERSION;
      case REG_TPR: return this.tpr;
      case REG_APR: return 0;
      case REG_PPR: return this.ppr();
      case REG_EOI: return 0;
      case REG_RRD: return 0;
      case REG_LDR: return this.ldr;
      case REG_DFR: return this.dfr;
      case REG_SVR: return this.svr;
      case REG_ESR: return this.esr;
      case REG_LVT_CMCI: return this.lvt[6];
      case REG_ICR_LO: return this.icrLo & ~(1 << 12); // delivery is instant: never "send pending"
      case REG_ICR_HI: return this.icrHi;
      case REG_LVT_TIMER: return this.lvt[0];
      case REG_LVT_THERMAL: return this.lvt[1];
      case REG_LVT_PERF: return this.lvt[2];
      case REG_LVT_LINT0: return this.lvt[3];
      case REG_LVT_LINT1: return this.lvt[4];
      case REG_LVT_ERROR: return this.lvt[5];
      case REG_TIMER_ICR: return this.timerInitial;
      case REG_TIMER_CCR: return this.currentCount();
      case REG_TIMER_DCR: return this.timerDcr;
    }
    if (reg >= REG_ISR && reg < REG_ISR + 0x80) return this.isr[(reg - REG_ISR) >> 4];
    if (reg >= REG_TMR && reg < REG_TMR + 0x80) return this.tmr[(reg - REG_TMR) >> 4];
    if (reg >= REG_IRR && reg < REG_IRR + 0x80) return this.irr[(reg - REG_IRR) >> 4];
    return 0;
  }

  private writeLvt(i: number, value: number, writable: number): void {
    let v = value & writable;
    if (!this.softwareEnabled) v |= LVT_MASKED;
    this.lvt[i] = ((this.lvt[i] & ~writable) | v) >>> 0;
  }

  private writeReg(reg: number, value: number): void {
    value >>>= 0;
    switch (reg) {
      case REG_ID: this.id = value >>> 24; break;
      case REG_TPR: this.tpr = value & 0xff; this.kick(); break;
      case REG_EOI: this.eoi(); break;
      case REG_LDR: this.ldr = (value & 0xff000000) >>> 0; break;
      case REG_DFR: this.dfr = (value | 0x0fffffff) >>> 0; break;
      case REG_SVR:
        this.svr = value & 0x11ff;
        if (!this.softwareEnabled) for (let i = 0; i < this.lvt.length; i++) this.lvt[i] |= LVT_MASKED;
        this.kick();
        break;
      case REG_ESR: this.esr = this.esrPending; this.esrPending = 0; break;
      case REG_LVT_CMCI: this.writeLvt(6, value, 0x107ff); break;
      case REG_ICR_HI: this.icrHi = value & 0xff000000; break;
      case REG_ICR_LO: this.icrLo = value & 0x000ccfff; this.sendIpi(); break;
      case REG_LVT_TIMER: {
        const wasPeriodic = this.lvt[0] & LVT_TIMER_PERIODIC;
        // A mode change does not reload the count: it goes on from its current value (SDM; KVM alike).
        if (((value & LVT_TIMER_PERIODIC) ^ wasPeriodic) !== 0 && this.timerInitial !== 0) this.keepCountAcrossModeChange();
        this.writeLvt(0, value, 0x300ff);
        if ((this.lvt[0] & LVT_TIMER_PERIODIC) !== wasPeriodic && this.timerInitial !== 0) {
          this.clock.cancel(this.timerHandle);
          this.timerHandle = null;
          this.armTimer(this.clock.now());
        }
        this.kick();
        break;
      }
      case REG_LVT_THERMAL: this.writeLvt(1, value, 0x107ff); break;
      case REG_LVT_PERF: this.writeLvt(2, value, 0x107ff); break;
      case REG_LVT_LINT0: this.writeLvt(3, value, 0x1a7ff); this.kick(); break;
      case REG_LVT_LINT1: this.writeLvt(4, value, 0x1a7ff); break;
      case REG_LVT_ERROR: this.writeLvt(5, value, 0x100ff); break;
      case REG_TIMER_ICR: this.timerInitial = value; this.startTimer(); break;
      case REG_TIMER_DCR: this.timerDcr = value & 0xb; break;
      default:
        if (reg !== REG_VERSION && reg !== REG_PPR && reg !== REG_APR && reg !== REG_RRD && reg !== REG_TIMER_CCR
          && !(reg >= REG_ISR && reg < REG_IRR + 0x80)) {
          this.esrPending |= ESR_ILLEGAL_REG;
        }
    }
  }

  private sendIpi(): void {
    const lo = this.icrLo;
    const vector = lo & 0xff;
    const mode = (lo >> 8) & 7;
    const logical = (lo & (1 << 11)) !== 0;
    const assert = (lo & (1 << 14)) !== 0;
    const level = (lo & (1 << 15)) !== 0;
    const shorthand = (lo >> 18) & 3;
    if (mode === DM_INIT && level && !assert) return; // INIT level de-assert: no effect on modern CPUs
    if ((mode === DM_FIXED || mode === DM_LOWEST) && vector < 16) {
      this.esrPending |= ESR_SEND_ILLEGAL;
      this.lvtError();
      return;
    }
    this.bus.deliver(this.icrHi >>> 24, logical, mode, vector, false, shorthand, this);
  }

  mmioRead(offset: number, size: AccessSize): number {
    if (!this.globallyEnabled) return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    const within = offset & 0xf;
    if (within >= 4) return 0;
    const v = this.readReg(offset & 0xff0) >>> (within * 8);
    return size === 4 ? v >>> 0 : v & (size === 2 ? 0xffff : 0xff);
  }

  mmioWrite(offset: number, _size: AccessSize, value: number): void {
    if (!this.globallyEnabled) return;
    if ((offset & 0xf) !== 0) return; // registers are written as aligned dwords only
    this.writeReg(offset & 0xff0, value);
  }

  /**
   * WRMSR IA32_APIC_BASE (low half; the caller checks reserved bits): the enable bit and the register page's
   * address (relocation below 4 GiB); the BSP flag stays as reset set it. x2APIC is not offered.
   */
  writeApicBase(lo: number): boolean {
    if (lo & (1 << 10)) return false;
    const enable = (lo & APIC_BASE_ENABLE) !== 0;
    if (!enable && this.globallyEnabled) {
      // Disabling the APIC resets it (SDM: as after power-up, except the ID).
      const id = this.id;
      this.resetRegisters();
      this.id = id;
    }
    // Enabling it again brings back the initial APIC ID (as KVM; the APIC leaves its disabled state as at power-up).
    if (enable && !this.globallyEnabled) this.id = this.index;
    const oldBase = this.base;
    this.apicBase = ((lo & 0xfffff000) | (this.apicBase & APIC_BASE_BSP) | (enable ? APIC_BASE_ENABLE : 0)) >>> 0;
    if (this.base !== oldBase) this.onBaseChange?.();
    this.kick();
    return true;
  }

  saveState(): LocalApicState {
    return {
      id: this.id, apicBase: this.apicBase, tpr: this.tpr, ldr: this.ldr, dfr: this.dfr, svr: this.svr,
      esr: this.esr, esrPending: this.esrPending, icrLo: this.icrLo, icrHi: this.icrHi, lvt: [...this.lvt],
      irr: [...this.irr], isr: [...this.isr], tmr: [...this.tmr], autoEoi: [...this.autoEoi], nmi: this.nmi,
      timerInitial: this.timerInitial, timerDcr: this.timerDcr, timerStart: this.timerStart,
      timerTickNs: this.timerTickNs, timerStopped: this.timerStopped, lint: [...this.lintLevel], initPending: this.initPending, sipiVector: this.sipiVector,
    };
  }

  restoreState(s: LocalApicState): void {
    this.id = s.id; this.apicBase = s.apicBase; this.tpr = s.tpr; this.ldr = s.ldr; this.dfr = s.dfr; this.svr = s.svr;
    this.esr = s.esr; this.esrPending = s.esrPending; this.icrLo = s.icrLo; this.icrHi = s.icrHi;
    this.lvt.set(s.lvt); this.irr.set(s.irr); this.isr.set(s.isr); this.tmr.set(s.tmr); this.autoEoi.set(s.autoEoi);
    this.nmi = s.nmi; this.timerInitial = s.timerInitial; this.timerDcr = s.timerDcr;
    this.lintLevel[0] = s.lint[0]; this.lintLevel[1] = s.lint[1];
    this.initPending = s.initPending; this.sipiVector = s.sipiVector;
    this.clock.cancel(this.timerHandle);
    this.timerHandle = null;
    this.timerStart = s.timerStart;
    this.timerTickNs = s.timerTickNs;
    this.timerStopped = s.timerStopped === true;
    if (this.timerInitial !== 0) this.armTimer(this.clock.now());
    this.onBaseChange?.();
  }
}

const ONES = [0, 0xff, 0xffff, 0, 0xffffffff];

/**
 * All LAPICs share one MMIO window; the access goes to the APIC of the processor that makes it.
 * The partition sets `current` to the running VP index before each turn (the emulated backend runs
 * processors one at a time on one thread, see platform/vcpu-scheduler.ts).
 *
 * An APIC relocated through IA32_APIC_BASE answers at its own base only: the window at LAPIC_BASE acts as
 * unclaimed for it, and a view is mapped at every other base some APIC uses (unless a device claims it).
 */
export class LapicWindow implements MmioDevice {
  current = 0;
  private readonly views = new Map<number, MmioDevice>();

  constructor(readonly lapics: readonly LocalApic[], private readonly mmio: MmioBus | null = null) {
    if (mmio) {
      mmio.register(LAPIC_BASE, LAPIC_SIZE, this, 'lapic');
      for (const l of lapics) l.onBaseChange = () => this.remap();
    }
  }

  private read(base: number, offset: number, size: AccessSize): number {
    const l = this.lapics[this.current];
    return l && l.base === base ? l.mmioRead(offset, size) : ONES[size];
  }

  private write(base: number, offset: number, size: AccessSize, value: number): void {
    const l = this.lapics[this.current];
    if (l && l.base === base) l.mmioWrite(offset, size, value);
  }

  mmioRead(offset: number, size: AccessSize): number { return this.read(LAPIC_BASE, offset, size); }
  mmioWrite(offset: number, size: AccessSize, value: number): void { this.write(LAPIC_BASE, offset, size, value); }

  /** Map a view at each base in use other than LAPIC_BASE; drop views no APIC uses any more. */
  private remap(): void {
    const mmio = this.mmio!;
    const used = new Set(this.lapics.map((l) => l.base));
    for (const [base, view] of this.views) {
      if (!used.has(base)) { mmio.unregister(base, view); this.views.delete(base); }
    }
    for (const base of used) {
      if (base === LAPIC_BASE || this.views.has(base) || mmio.overlaps(base, LAPIC_SIZE)) continue;
      const view: MmioDevice = {
        mmioRead: (o, s) => this.read(base, o, s),
        mmioWrite: (o, s, v) => this.write(base, o, s, v),
      };
      mmio.register(base, LAPIC_SIZE, view, 'lapic-relocated');
      this.views.set(base, view);
    }
  }
}
