/**
 * Little helpers over GuestMemory for the hypervisor and VMBus: 64-bit values as (lo, hi), page checks,
 * and atomic access to guest RAM (the guest updates SynIC slots and flags with locked instructions, and
 * with the KVM backend it runs concurrently on other threads).
 */
import type { GuestMemory } from '../platform/memory.js';

export const PAGE_SIZE = 4096;
const TWO32 = 0x1_0000_0000;

/** Combine 32-bit halves into a number (exact below 2^53; callers only use it for addresses and counters). */
export function u64(lo: number, hi: number): number { return (hi >>> 0) * TWO32 + (lo >>> 0); }
export function lo32(v: number): number { return v % TWO32 >>> 0; }
export function hi32(v: number): number { return Math.floor(v / TWO32) >>> 0; }

/** Guest RAM access with atomics where the guest may race us. */
export class GuestRam {
  readonly i32: Int32Array | null;
  constructor(readonly memory: GuestMemory) {
    const b = memory.bytes;
    this.i32 = b.byteOffset % 4 === 0 ? new Int32Array(b.buffer, b.byteOffset, b.byteLength >> 2) : null;
  }

  /** Byte offset of a whole guest page, or -1 when the page is not RAM. */
  pageOffset(gpa: number): number {
    if (gpa % PAGE_SIZE !== 0 || !this.memory.isRam(gpa, PAGE_SIZE)) return -1;
    return this.memory.offsetOf(gpa);
  }

  u32(off: number): number { return this.memory.view.getUint32(off, true); }
  setU32(off: number, v: number): void { this.memory.view.setUint32(off, v >>> 0, true); }
  u16(off: number): number { return this.memory.view.getUint16(off, true); }
  u64(off: number): number { return u64(this.u32(off), this.u32(off + 4)); }

  /** Atomic 32-bit load/store/or at a 4-aligned byte offset. */
  loadU32(off: number): number { return this.i32 && off % 4 === 0 ? Atomics.load(this.i32, off >> 2) >>> 0 : this.u32(off); }
  storeU32(off: number, v: number): void {
    if (this.i32 && off % 4 === 0) Atomics.store(this.i32, off >> 2, v | 0); else this.setU32(off, v);
  }
  /** Returns the previous value. */
  orU32(off: number, v: number): number {
    if (this.i32 && off % 4 === 0) return Atomics.or(this.i32, off >> 2, v | 0) >>> 0;
    const old = this.u32(off);
    this.setU32(off, old | v);
    return old;
  }
  orU8(off: number, v: number): number { return Atomics.or(this.memory.bytes, off, v); }
}

/** Where a fault caused by guest misbehaviour is reported (never thrown). */
export type FaultLogger = (source: string, message: string) => void;
export const consoleFaultLogger: FaultLogger = (source, message) => { console.warn(`[${source}] ${message}`); };
