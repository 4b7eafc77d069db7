/**
 * The partition reference time (100 ns units since partition start) exposed two ways that must agree:
 * MSR TIME_REF_COUNT and the reference TSC page (contract §2.2). BigInt is fine here: this runs on MSR
 * exits and page (re)writes, not per instruction.
 */
import type { VirtualClock } from '../platform/clock.js';

const TWO64 = 1n << 64n;
const MASK64 = TWO64 - 1n;

export interface ReferenceTimeOptions {
  clock: VirtualClock;
  /** Guest TSC frequency in Hz (> 10 MHz, as the TSC page scale requires). */
  tscHz: number;
  /**
   * The guest TSC of a VP now. Default: ticks of `tscHz` since partition start derived from the virtual
   * clock, i.e. what the emulated processor's RDTSC returns.
   */
  guestTsc?: (vp: number) => number;
  /** Guest TSC value at partition start (virtual time 0); the counter is 0 there. Default 0. */
  tscAtStart?: number;
}

export class ReferenceTime {
  /** floor(2^64 * 10^7 / tscHz), as the guest multiplies with it and keeps the high 64 bits. */
  readonly scale: bigint;
  /** Signed offset in 100 ns units so that the counter starts at 0 with the partition. */
  readonly offset: bigint;
  private readonly guestTsc: (vp: number) => number;

  constructor(private readonly o: ReferenceTimeOptions) {
    if (!(o.tscHz > 10_000_000)) throw new RangeError(`TSC frequency must be above 10 MHz for the reference TSC page, got ${o.tscHz}`);
    this.scale = (TWO64 * 10_000_000n) / BigInt(Math.round(o.tscHz));
    this.guestTsc = o.guestTsc ?? (() => Math.floor((o.clock.now() * o.tscHz) / 1e9));
    this.offset = -((BigInt(Math.round(o.tscAtStart ?? 0)) * this.scale) >> 64n);
  }

  /** The TSC page formula applied to a TSC value. */
  fromTsc(tsc: number): bigint { return ((BigInt(Math.max(0, Math.floor(tsc))) * this.scale) >> 64n) + this.offset; }

  /** Current reference counter for `vp` (exactly the TSC page formula on that VP's TSC). */
  count(vp = 0): bigint { const c = this.fromTsc(this.guestTsc(vp)); return c < 0n ? 0n : c & MASK64; }
}
