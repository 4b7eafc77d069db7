/**
 * The Hyper-V hypervisor interface of one partition, shared by both processor backends: CPUID leaves,
 * synthetic MSRs (contract §2), the hypercall page and dispatcher (§3) and the SynIC (§4).
 *
 * Wiring (see also index.ts): give the processor `cpuid(base)`, `msr` and `hypercall`; the SynIC injects
 * through `inject(vp, vector, autoEoi)`; the VMBus host plugs in with `connect()`.
 */
import type { CpuidProvider, HypercallHandler, MsrHandler } from '../processor/backend.js';
import type { GuestMemory } from '../platform/memory.js';
import type { VirtualClock } from '../platform/clock.js';
import { HyperVCpuid, combineCpuid } from './cpuid.js';
import { SynIC, type InterruptInjector, type SynicState } from './synic.js';
import { HypercallDispatcher, type HypervisorConnections } from './hypercall.js';
import { ReferenceTime } from './reference-time.js';
import { decodeGuestOsId, type GuestOsIdentity } from './guest-os-id.js';
import { vmcallPage, type HypercallPageWriter } from './hypercall-page.js';
import { GuestRam, u64, lo32, hi32, consoleFaultLogger, type FaultLogger } from './guest-memory-access.js';
import * as T from './tlfs.js';

export interface HypervisorOptions {
  memory: GuestMemory;
  clock: VirtualClock;
  vpCount: number;
  /** Guest TSC frequency in Hz (PlatformServices.tscHz). */
  tscHz: number;
  /** Local APIC timer input frequency in Hz (the LAPIC model's bus clock). Default 1 GHz. */
  apicHz?: number;
  /** false: no 0x4000xxxx CPUID leaves, every synthetic MSR #GPs, no hypercalls. Default true. */
  enlightened?: boolean;
  /** Delivers a SynIC interrupt to a VP's LAPIC (the lead wires the LAPIC's deliver). */
  inject: InterruptInjector;
  /** Code written into the hypercall page. Default VMCALL; RET (emulated backend). */
  hypercallPage?: HypercallPageWriter;
  /** Guest TSC of a VP now; default derived from the virtual clock (see ReferenceTime). */
  guestTsc?: (vp: number) => number;
  tscAtStart?: number;
  tscInvariant?: boolean;
  /** Offer the crash MSRs; a guest panic is then reported through onGuestCrash. */
  crashMsrs?: boolean;
  onGuestCrash?: (params: number[], message: string | null) => void;
  log?: FaultLogger;
}

interface VpState { vpAssistLo: number; vpAssistHi: number }

export interface HypervisorState {
  guestOsId: number[]; hypercall: number[]; tscPage: number[]; tscSequence: number; crash: number[];
  vpAssist: number[][]; synic: SynicState;
}

export class Hypervisor implements MsrHandler {
  readonly enlightened: boolean;
  readonly leaves: HyperVCpuid | null;
  readonly synic: SynIC;
  readonly hypercalls: HypercallDispatcher;
  readonly referenceTime: ReferenceTime;
  readonly log: FaultLogger;
  /** The partition's low-level OS identification (decoded GUEST_OS_ID), null until the guest reports. */
  guestOsIdentity: GuestOsIdentity | null = null;

  private guestOsIdLo = 0; private guestOsIdHi = 0;
  private hypercallLo = 0; private hypercallHi = 0;
  private tscPageLo = 0; private tscPageHi = 0;
  private tscSequence = 0;
  private readonly crash = new Array<number>(5).fill(0);
  private readonly vps: VpState[];
  private readonly ram: GuestRam;
  private readonly writePage: HypercallPageWriter;

  constructor(readonly o: HypervisorOptions) {
    this.enlightened = o.enlightened ?? true;
    this.log = o.log ?? consoleFaultLogger;
    this.ram = new GuestRam(o.memory);
    this.leaves = this.enlightened ? new HyperVCpuid({ vpCount: o.vpCount, tscInvariant: o.tscInvariant, crashMsrs: o.crashMsrs }) : null;
    this.synic = new SynIC(o.memory, o.vpCount, o.inject, this.log);
    this.hypercalls = new HypercallDispatcher(o.memory, this.log);
    this.referenceTime = new ReferenceTime({ clock: o.clock, tscHz: o.tscHz, guestTsc: o.guestTsc, tscAtStart: o.tscAtStart });
    this.writePage = o.hypercallPage ?? vmcallPage;
    this.vps = Array.from({ length: o.vpCount }, () => ({ vpAssistLo: 0, vpAssistHi: 0 }));
  }

  /** The partition CPUID: `base` with the Hyper-V leaves (or none when unenlightened) layered on top. */
  cpuid(base: CpuidProvider): CpuidProvider { return combineCpuid(base, this.leaves); }
  get msr(): MsrHandler { return this; }
  /** null when unenlightened: the processor then raises #UD on VMCALL. */
  get hypercall(): HypercallHandler | null { return this.enlightened ? this.hypercalls : null; }

  /** Route HvPostMessage/HvSignalEvent to the VMBus host. */
  connect(c: HypervisorConnections): void { this.hypercalls.connections = c; }

  /** Machine reset: every synthetic MSR back to its reset value. */
  reset(): void {
    this.guestOsIdLo = this.guestOsIdHi = this.hypercallLo = this.hypercallHi = this.tscPageLo = this.tscPageHi = 0;
    this.guestOsIdentity = null;
    this.crash.fill(0);
    for (const v of this.vps) v.vpAssistLo = v.vpAssistHi = 0;
    this.synic.reset();
  }

  /** Saved state: synthetic MSRs and the SynIC (the hypercall and TSC pages live in guest memory). */
  saveState(): HypervisorState {
    return {
      guestOsId: [this.guestOsIdLo, this.guestOsIdHi], hypercall: [this.hypercallLo, this.hypercallHi],
      tscPage: [this.tscPageLo, this.tscPageHi], tscSequence: this.tscSequence, crash: [...this.crash],
      vpAssist: this.vps.map((v) => [v.vpAssistLo, v.vpAssistHi]), synic: this.synic.saveState(),
    };
  }

  restoreState(s: HypervisorState): void {
    if (s.vpAssist.length !== this.vps.length) throw new Error(`hypervisor state is for ${s.vpAssist.length} VPs, this partition has ${this.vps.length}`);
    this.synic.restoreState(s.synic);
    [this.guestOsIdLo, this.guestOsIdHi] = s.guestOsId;
    this.guestOsIdentity = this.guestOsIdLo === 0 && this.guestOsIdHi === 0 ? null : decodeGuestOsId(this.guestOsIdLo, this.guestOsIdHi);
    [this.hypercallLo, this.hypercallHi] = s.hypercall;
    [this.tscPageLo, this.tscPageHi] = s.tscPage;
    this.tscSequence = s.tscSequence;
    s.crash.slice(0, this.crash.length).forEach((v, i) => { this.crash[i] = v; });
    s.vpAssist.forEach(([lo, hi], i) => { this.vps[i].vpAssistLo = lo; this.vps[i].vpAssistHi = hi; });
  }

  get hypercallPageEnabled(): boolean { return (this.hypercallLo & 1) === 1; }
  get hypercallPageGpa(): number { return u64(this.hypercallLo & ~0xfff, this.hypercallHi); }

  read(vp: number, index: number, out: { lo: number; hi: number }): boolean {
    if (!this.enlightened || vp < 0 || vp >= this.vps.length) return false;
    out.lo = 0; out.hi = 0;
    switch (index) {
      case T.HV_X64_MSR_GUEST_OS_ID: out.lo = this.guestOsIdLo; out.hi = this.guestOsIdHi; return true;
      case T.HV_X64_MSR_HYPERCALL: out.lo = this.hypercallLo; out.hi = this.hypercallHi; return true;
      case T.HV_X64_MSR_VP_INDEX: out.lo = vp; return true;
      case T.HV_X64_MSR_TIME_REF_COUNT: {
        const c = this.referenceTime.count(vp);
        out.lo = Number(c & 0xffffffffn) >>> 0; out.hi = Number(c >> 32n) >>> 0;
        return true;
      }
      case T.HV_X64_MSR_REFERENCE_TSC: out.lo = this.tscPageLo; out.hi = this.tscPageHi; return true;
      case T.HV_X64_MSR_TSC_FREQUENCY: out.lo = lo32(this.o.tscHz); out.hi = hi32(this.o.tscHz); return true;
      case T.HV_X64_MSR_APIC_FREQUENCY: { const f = this.o.apicHz ?? 1e9; out.lo = lo32(f); out.hi = hi32(f); return true; }
      case T.HV_X64_MSR_VP_ASSIST_PAGE: out.lo = this.vps[vp].vpAssistLo; out.hi = this.vps[vp].vpAssistHi; return true;
      case T.HV_X64_MSR_TSC_INVARIANT_CONTROL: return this.o.tscInvariant === true;
      case T.HV_X64_MSR_CRASH_CTL:
        if (!this.o.crashMsrs) return false;
        out.hi = 0xc0000000; // CRASH_NOTIFY | CRASH_MESSAGE supported
        return true;
    }
    if (index >= T.HV_X64_MSR_CRASH_P0 && index <= T.HV_X64_MSR_CRASH_P4) {
      if (!this.o.crashMsrs) return false;
      const v = this.crash[index - T.HV_X64_MSR_CRASH_P0];
      out.lo = lo32(v); out.hi = hi32(v);
      return true;
    }
    if (this.synic.isSynicMsr(index)) return this.synic.readMsr(vp, index, out);
    return false;
  }

  write(vp: number, index: number, lo: number, hi: number): boolean {
    if (!this.enlightened || vp < 0 || vp >= this.vps.length) return false;
    lo >>>= 0; hi >>>= 0;
    switch (index) {
      case T.HV_X64_MSR_GUEST_OS_ID:
        this.guestOsIdLo = lo; this.guestOsIdHi = hi;
        this.guestOsIdentity = decodeGuestOsId(lo, hi);
        return true;
      case T.HV_X64_MSR_HYPERCALL:
        // As KVM: the page stays disabled until the guest has identified itself (TLFS).
        if (this.guestOsIdLo === 0 && this.guestOsIdHi === 0) return true;
        this.hypercallLo = lo & ~0xffe; this.hypercallHi = hi; // bits 1-11 reserved (read as 0)
        if (lo & 1) this.installHypercallPage();
        return true;
      case T.HV_X64_MSR_REFERENCE_TSC:
        this.tscPageLo = lo; this.tscPageHi = hi;
        if (lo & 1) this.updateTscPage();
        return true;
      case T.HV_X64_MSR_VP_ASSIST_PAGE:
        this.vps[vp].vpAssistLo = lo & ~0xffe; this.vps[vp].vpAssistHi = hi;
        return true;
      case T.HV_X64_MSR_TSC_INVARIANT_CONTROL: return this.o.tscInvariant === true;
      case T.HV_X64_MSR_CRASH_CTL:
        if (!this.o.crashMsrs) return false;
        if (hi & 0x80000000) this.reportCrash((hi & 0x40000000) !== 0);
        return true;
      // Read-only registers: a write is a guest bug, #GP as Hyper-V does.
      case T.HV_X64_MSR_VP_INDEX: case T.HV_X64_MSR_TIME_REF_COUNT:
      case T.HV_X64_MSR_TSC_FREQUENCY: case T.HV_X64_MSR_APIC_FREQUENCY:
        return false;
    }
    if (index >= T.HV_X64_MSR_CRASH_P0 && index <= T.HV_X64_MSR_CRASH_P4) {
      if (!this.o.crashMsrs) return false;
      this.crash[index - T.HV_X64_MSR_CRASH_P0] = u64(lo, hi);
      return true;
    }
    if (this.synic.isSynicMsr(index)) return this.synic.writeMsr(vp, index, lo, hi);
    return false;
  }

  /**
   * Rewrite the reference TSC page (sequence 0 first, then scale/offset, then a new non-zero sequence),
   * e.g. after the backend changed the guest TSC. No-op while the page is disabled.
   */
  updateTscPage(): void {
    if (!(this.tscPageLo & 1)) return;
    const gpa = u64(this.tscPageLo & ~0xfff, this.tscPageHi);
    const off = this.ram.pageOffset(gpa);
    if (off < 0) { this.log('hypervisor', `reference TSC page 0x${gpa.toString(16)} is not RAM`); return; }
    const v = this.o.memory.view;
    this.ram.storeU32(off, 0);
    const rt = this.referenceTime;
    v.setBigUint64(off + 8, rt.scale, true);
    v.setBigInt64(off + 16, rt.offset, true);
    // KVM never uses 0 (invalid) or 0xFFFFFFFF; follow it.
    this.tscSequence = this.tscSequence >= 0xfffffffe ? 1 : this.tscSequence + 1;
    this.ram.storeU32(off, this.tscSequence);
  }

  private installHypercallPage(): void {
    const gpa = this.hypercallPageGpa;
    const off = this.ram.pageOffset(gpa);
    if (off < 0) { this.log('hypervisor', `hypercall page 0x${gpa.toString(16)} is not RAM`); return; }
    this.writePage(this.o.memory.bytes.subarray(off, off + 4096));
    this.o.memory.deviceWrote(gpa, 4096); // code the guest will run: no stale decoded blocks of that page
  }

  private reportCrash(withMessage: boolean): void {
    let message: string | null = null;
    if (withMessage) {
      // P3 = GPA of the message, P4 = its length (Linux kmsg dump).
      const gpa = this.crash[3], len = Math.min(this.crash[4], 4096);
      if (len > 0 && this.o.memory.isRam(gpa, len)) message = new TextDecoder().decode(this.o.memory.slice(gpa, len));
    }
    this.log('hypervisor', `guest reported a crash: ${this.crash.map((x) => '0x' + x.toString(16)).join(' ')}`);
    this.o.onGuestCrash?.([...this.crash], message);
  }
}
