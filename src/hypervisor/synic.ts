/**
 * Synthetic interrupt controller, one per VP (contract §4): message slots with the msg_pending/EOM
 * handshake, event flags set atomically, and interrupt injection on the vector the guest programmed.
 */
import type { GuestMemory } from '../platform/memory.js';
import { GuestRam, PAGE_SIZE, u64, lo32, hi32, type FaultLogger } from './guest-memory-access.js';
import * as T from './tlfs.js';

/** Delivers `vector` to VP `vp`'s local APIC. `autoEoi`: the guest asked for auto-EOI on this SINT. */
export type InterruptInjector = (vp: number, vector: number, autoEoi: boolean) => void;

/** Host-side per-VP queue limit: past it HvPostMessage returns INSUFFICIENT_BUFFERS (guest retries). */
export const SYNIC_QUEUE_SOFT_LIMIT = 64;
/** Hard cap so a guest that never EOMs cannot make the host queue grow without bound. */
const SYNIC_QUEUE_HARD_LIMIT = 4096;

interface QueuedMessage { type: number; payload: Uint8Array }

export type SynicState = Array<{ scontrol: number; siefp: number[]; simp: number[]; sint: number[]; queues: QueuedMessage[][] }>;

class VpSynic {
  scontrol = 0;
  siefpLo = 0; siefpHi = 0;
  simpLo = 0; simpHi = 0;
  readonly sint = new Uint32Array(T.HV_SYNIC_SINT_COUNT).fill(T.HV_SINT_MASKED);
  readonly queues: QueuedMessage[][] = Array.from({ length: T.HV_SYNIC_SINT_COUNT }, () => []);
  get simpGpa(): number { return u64(this.simpLo & ~0xfff, this.simpHi); }
  get siefpGpa(): number { return u64(this.siefpLo & ~0xfff, this.siefpHi); }
  reset(): void {
    this.scontrol = 0; this.siefpLo = this.siefpHi = this.simpLo = this.simpHi = 0;
    this.sint.fill(T.HV_SINT_MASKED);
    for (const q of this.queues) q.length = 0;
  }
}

export class SynIC {
  private readonly vps: VpSynic[];
  private readonly ram: GuestRam;

  constructor(memory: GuestMemory, readonly vpCount: number, private readonly inject: InterruptInjector,
    private readonly log: FaultLogger) {
    this.ram = new GuestRam(memory);
    this.vps = Array.from({ length: vpCount }, () => new VpSynic());
  }

  reset(): void { for (const v of this.vps) v.reset(); }

  isSynicMsr(index: number): boolean {
    return index >= T.HV_X64_MSR_SCONTROL && index <= T.HV_X64_MSR_EOM ||
      index >= T.HV_X64_MSR_SINT0 && index <= T.HV_X64_MSR_SINT15;
  }

  readMsr(vp: number, index: number, out: { lo: number; hi: number }): boolean {
    const s = this.vps[vp];
    if (!s) return false;
    out.hi = 0;
    switch (index) {
      case T.HV_X64_MSR_SCONTROL: out.lo = s.scontrol; return true;
      case T.HV_X64_MSR_SVERSION: out.lo = 1; return true;
      case T.HV_X64_MSR_SIEFP: out.lo = s.siefpLo; out.hi = s.siefpHi; return true;
      case T.HV_X64_MSR_SIMP: out.lo = s.simpLo; out.hi = s.simpHi; return true;
      case T.HV_X64_MSR_EOM: out.lo = 0; return true;
    }
    if (index >= T.HV_X64_MSR_SINT0 && index <= T.HV_X64_MSR_SINT15) { out.lo = s.sint[index - T.HV_X64_MSR_SINT0]; return true; }
    return false;
  }

  writeMsr(vp: number, index: number, lo: number, hi: number): boolean {
    const s = this.vps[vp];
    if (!s) return false;
    switch (index) {
      case T.HV_X64_MSR_SCONTROL: s.scontrol = lo & 1; this.retryAll(vp); return true;
      case T.HV_X64_MSR_SVERSION: return false; // read-only
      case T.HV_X64_MSR_SIEFP:
        s.siefpLo = lo & ~0xffe; s.siefpHi = hi >>> 0;
        if (lo & 1 && this.ram.pageOffset(s.siefpGpa) < 0) this.log('synic', `vp${vp}: SIEFP 0x${s.siefpGpa.toString(16)} is not RAM`);
        this.retryAll(vp);
        return true;
      case T.HV_X64_MSR_SIMP:
        s.simpLo = lo & ~0xffe; s.simpHi = hi >>> 0;
        if (lo & 1 && this.ram.pageOffset(s.simpGpa) < 0) this.log('synic', `vp${vp}: SIMP 0x${s.simpGpa.toString(16)} is not RAM`);
        this.retryAll(vp);
        return true;
      case T.HV_X64_MSR_EOM: this.retryAll(vp); return true;
    }
    if (index >= T.HV_X64_MSR_SINT0 && index <= T.HV_X64_MSR_SINT15) {
      const n = index - T.HV_X64_MSR_SINT0;
      const vector = lo & 0xff;
      // Vectors below 16 are architecturally invalid for a SINT (TLFS); keep the old value.
      if (!(lo & T.HV_SINT_MASKED) && vector < 16) return false;
      s.sint[n] = (lo & (0xff | T.HV_SINT_MASKED | T.HV_SINT_AUTO_EOI | T.HV_SINT_POLLING)) >>> 0;
      this.retry(vp, n);
      // An unmask with event flags already set must still interrupt the guest.
      if (this.sintLive(s, n) && this.anyFlagSet(s, n)) this.raise(vp, n);
      return true;
    }
    return false;
  }

  /** Saved state: per-VP SynIC MSRs, SINTs and the messages still queued on the host side. */
  saveState(): SynicState {
    return this.vps.map((v) => ({
      scontrol: v.scontrol, siefp: [v.siefpLo, v.siefpHi], simp: [v.simpLo, v.simpHi], sint: [...v.sint],
      queues: v.queues.map((q) => q.map((m) => ({ type: m.type, payload: m.payload.slice() }))),
    }));
  }

  restoreState(s: SynicState): void {
    if (!Array.isArray(s) || s.length !== this.vps.length) throw new Error(`SynIC state is for ${Array.isArray(s) ? s.length : '?'} VPs, this partition has ${this.vps.length}`);
    s.forEach((v, i) => {
      if (v.sint.length !== T.HV_SYNIC_SINT_COUNT || v.queues.length !== T.HV_SYNIC_SINT_COUNT) throw new Error(`SynIC state of VP ${i} is malformed`);
      for (const q of v.queues) for (const m of q) {
        if (!(m.payload instanceof Uint8Array) || m.payload.length > T.HV_MESSAGE_PAYLOAD_MAX || q.length > SYNIC_QUEUE_HARD_LIMIT) throw new Error(`SynIC message queue of VP ${i} is malformed`);
      }
    });
    s.forEach((v, i) => {
      const d = this.vps[i];
      d.scontrol = v.scontrol >>> 0; [d.siefpLo, d.siefpHi] = v.siefp; [d.simpLo, d.simpHi] = v.simp;
      d.sint.set(v.sint);
      v.queues.forEach((q, n) => { d.queues[n] = q.map((m) => ({ type: m.type >>> 0, payload: m.payload.slice() })); });
    });
  }

  /** Messages still queued on the host side for (vp, sint). */
  queued(vp: number, sint: number): number { return this.vps[vp]?.queues[sint]?.length ?? 0; }

  /**
   * Queue a message (type ≠ 0, payload ≤ 240 bytes) for slot `sint` of `vp` and deliver it when the slot is free.
   * Returns false when the VP does not exist or the queue is full.
   */
  postMessage(vp: number, sint: number, type: number, payload: Uint8Array): boolean {
    const s = this.vps[vp];
    if (!s || sint < 0 || sint >= T.HV_SYNIC_SINT_COUNT || type === 0 || payload.length > T.HV_MESSAGE_PAYLOAD_MAX) return false;
    const q = s.queues[sint];
    if (q.length >= SYNIC_QUEUE_HARD_LIMIT) {
      this.log('synic', `vp${vp} sint${sint}: guest does not consume messages, dropping one`);
      return false;
    }
    q.push({ type: type >>> 0, payload: payload.slice() });
    this.retry(vp, sint);
    return true;
  }

  /** Set event flag `flag` of `sint` on `vp` atomically; interrupt on a 0 -> 1 transition. */
  signalEvent(vp: number, sint: number, flag: number): boolean {
    const s = this.vps[vp];
    if (!s || sint < 0 || sint >= T.HV_SYNIC_SINT_COUNT || flag < 0 || flag >= 2048) return false;
    if (!(s.scontrol & 1) || !(s.siefpLo & 1)) return false;
    const page = this.ram.pageOffset(s.siefpGpa);
    if (page < 0) return false;
    const word = page + sint * T.HV_MESSAGE_SIZE + (flag >> 5) * 4;
    const bit = 1 << (flag & 31);
    const old = this.ram.orU32(word, bit);
    if (!(old & bit)) this.raise(vp, sint);
    return true;
  }

  private sintLive(s: VpSynic, n: number): boolean {
    return (s.scontrol & 1) !== 0 && (s.sint[n] & T.HV_SINT_MASKED) === 0;
  }

  private anyFlagSet(s: VpSynic, n: number): boolean {
    if (!(s.siefpLo & 1)) return false;
    const page = this.ram.pageOffset(s.siefpGpa);
    if (page < 0) return false;
    for (let i = 0; i < 64; i++) if (this.ram.loadU32(page + n * T.HV_MESSAGE_SIZE + i * 4) !== 0) return true;
    return false;
  }

  private raise(vp: number, n: number): void {
    const s = this.vps[vp];
    const v = s.sint[n];
    if (!this.sintLive(s, n) || v & T.HV_SINT_POLLING) return;
    this.inject(vp, v & 0xff, (v & T.HV_SINT_AUTO_EOI) !== 0);
  }

  private retryAll(vp: number): void { for (let n = 0; n < T.HV_SYNIC_SINT_COUNT; n++) this.retry(vp, n); }

  /** Producer rules of contract §4.2. */
  private retry(vp: number, n: number): void {
    const s = this.vps[vp];
    const q = s.queues[n];
    if (q.length === 0 || !this.sintLive(s, n) || !(s.simpLo & 1)) return;
    const page = this.ram.pageOffset(s.simpGpa);
    if (page < 0) return;
    const slot = page + n * T.HV_MESSAGE_SIZE;
    for (let guard = 0; guard < 2 && q.length > 0; guard++) {
      if (this.ram.loadU32(slot) === 0) {
        const m = q.shift()!;
        const bytes = this.ram.memory.bytes;
        bytes.fill(0, slot + 4, slot + T.HV_MESSAGE_SIZE);
        bytes.set(m.payload, slot + 16);
        bytes[slot + 4] = m.payload.length;
        bytes[slot + 5] = q.length > 0 ? T.HV_MESSAGE_FLAG_PENDING : 0;
        this.ram.storeU32(slot, m.type); // last: publishes the slot
        this.raise(vp, n);
        return;
      }
      this.ram.orU8(slot + 5, T.HV_MESSAGE_FLAG_PENDING);
      // The guest may have freed the slot before it could see the flag: look again once.
      if (this.ram.loadU32(slot) !== 0) return;
    }
  }
}

export { lo32, hi32, PAGE_SIZE };
