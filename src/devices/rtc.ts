/**
 * Motorola MC146818 real-time clock and 128 bytes of CMOS memory at 0x70 (index; bit 7 is the NMI mask,
 * ignored) / 0x71 (data).
 *
 * Time is the host's wall clock at creation (or what the guest set) advanced by the VirtualClock, kept as
 * UTC. Time registers are computed on read in the format register B selects (BCD or binary, 12 or 24 h).
 * While register B's SET bit is on, the clock is frozen and the guest's writes are kept; clearing SET
 * takes them as the new time. UIP (register A bit 7) reads as set during the last 244 µs before each
 * second boundary. Periodic, alarm and update-ended flags are computed from elapsed virtual time when
 * register C is read; timers are armed only for the enabled interrupts, which raise IRQ8 until register C
 * is read.
 */
import type { AccessSize, PioDevice } from '../platform/bus.js';
import type { TimerHandle, VirtualClock } from '../platform/clock.js';
import { RTC_IRQ } from '../platform/layout.js';
import type { IrqRouter } from './irq.js';

export const RTC_SECONDS = 0x00, RTC_SECONDS_ALARM = 0x01, RTC_MINUTES = 0x02, RTC_MINUTES_ALARM = 0x03,
  RTC_HOURS = 0x04, RTC_HOURS_ALARM = 0x05, RTC_DAY_OF_WEEK = 0x06, RTC_DAY_OF_MONTH = 0x07, RTC_MONTH = 0x08,
  RTC_YEAR = 0x09, RTC_REG_A = 0x0a, RTC_REG_B = 0x0b, RTC_REG_C = 0x0c, RTC_REG_D = 0x0d, RTC_CENTURY = 0x32;

const REG_A_UIP = 0x80;
const REG_B_SET = 0x80, REG_B_PIE = 0x40, REG_B_AIE = 0x20, REG_B_UIE = 0x10, REG_B_BINARY = 0x04, REG_B_24H = 0x02;
const REG_C_IRQF = 0x80, REG_C_PF = 0x40, REG_C_AF = 0x20, REG_C_UF = 0x10;
const UIP_NS = 244_000;
const NS_PER_S = 1e9;

const toBcd = (v: number): number => ((Math.floor(v / 10) % 10) << 4) | (v % 10);
const fromBcd = (v: number): number => ((v >> 4) & 0xf) * 10 + (v & 0xf);

export interface RtcState { cmos: number[]; index: number; baseSeconds: number; baseNs: number; lastCheck: number }

export class Rtc implements PioDevice {
  readonly cmos = new Uint8Array(128);
  index = 0;
  /** Guest-visible UTC seconds at virtual time `baseNs` (may carry a fraction). */
  private baseSeconds: number;
  private baseNs: number;
  /** Virtual time up to which register C's flags have been accounted. */
  private lastCheck: number;
  private timer: TimerHandle | null = null;

  constructor(private readonly clock: VirtualClock, private readonly irq: IrqRouter | null,
    hostEpochMs: number = Date.now()) {
    this.baseSeconds = hostEpochMs / 1000;
    this.baseNs = clock.now();
    this.lastCheck = this.baseNs;
    this.cmos[RTC_REG_A] = 0x26; // 32.768 kHz time base, 1024 Hz periodic rate
    this.cmos[RTC_REG_B] = REG_B_24H;
    this.cmos[RTC_REG_D] = 0x80; // valid RAM and time
  }

  /** Set a CMOS byte from the host side (firmware memory-size bytes and the like). */
  setCmosByte(index: number, value: number): void { if (index >= 0 && index < 128) this.cmos[index] = value & 0xff; }

  /** Guest-visible time now, in UTC seconds since the epoch (fractional). */
  seconds(now = this.clock.now()): number {
    if (this.cmos[RTC_REG_B] & REG_B_SET) return this.baseSeconds;
    return this.baseSeconds + (now - this.baseNs) / NS_PER_S;
  }

  private enc(v: number): number { return (this.cmos[RTC_REG_B] & REG_B_BINARY) ? v : toBcd(v); }
  private dec(v: number): number { return (this.cmos[RTC_REG_B] & REG_B_BINARY) ? v : fromBcd(v); }

  private encHour(h: number): number {
    if (this.cmos[RTC_REG_B] & REG_B_24H) return this.enc(h);
    const pm = h >= 12 ? 0x80 : 0;
    const h12 = h % 12 === 0 ? 12 : h % 12;
    return this.enc(h12) | pm;
  }

  private decHour(v: number): number {
    if (this.cmos[RTC_REG_B] & REG_B_24H) return this.dec(v);
    const h = this.dec(v & 0x7f) % 12;
    return (v & 0x80) ? h + 12 : h;
  }

  /** Fill the time registers from `secs` (used on read and when SET is raised). */
  private latchTime(secs: number): void {
    const d = new Date(Math.floor(secs) * 1000);
    const c = this.cmos;
    c[RTC_SECONDS] = this.enc(d.getUTCSeconds());
    c[RTC_MINUTES] = this.enc(d.getUTCMinutes());
    c[RTC_HOURS] = this.encHour(d.getUTCHours());
    c[RTC_DAY_OF_WEEK] = this.enc(d.getUTCDay() + 1);
    c[RTC_DAY_OF_MONTH] = this.enc(d.getUTCDate());
    c[RTC_MONTH] = this.enc(d.getUTCMonth() + 1);
    const y = d.getUTCFullYear();
    c[RTC_YEAR] = this.enc(y % 100);
    c[RTC_CENTURY] = this.enc(Math.floor(y / 100) % 100);
  }

  /** Take the time registers the guest wrote as the new time. */
  private commitTime(now: number): void {
    const c = this.cmos;
    const year = this.dec(c[RTC_CENTURY]) * 100 + this.dec(c[RTC_YEAR]);
    const ms = Date.UTC(year, Math.max(0, this.dec(c[RTC_MONTH]) - 1), this.dec(c[RTC_DAY_OF_MONTH]),
      this.decHour(c[RTC_HOURS]), this.dec(c[RTC_MINUTES]), this.dec(c[RTC_SECONDS]));
    if (Number.isFinite(ms)) this.baseSeconds = ms / 1000;
    this.baseNs = now;
  }

  private periodNs(): number {
    const rs = this.cmos[RTC_REG_A] & 0xf;
    if (rs === 0) return 0;
    const r = rs <= 2 ? rs + 7 : rs;
    return (NS_PER_S * (1 << (r - 1))) / 32768;
  }

  private alarmMatches(secs: number): boolean {
    const d = new Date(Math.floor(secs) * 1000);
    const c = this.cmos;
    const dontCare = (v: number): boolean => (v & 0xc0) === 0xc0;
    return (dontCare(c[RTC_SECONDS_ALARM]) || this.dec(c[RTC_SECONDS_ALARM]) === d.getUTCSeconds())
      && (dontCare(c[RTC_MINUTES_ALARM]) || this.dec(c[RTC_MINUTES_ALARM]) === d.getUTCMinutes())
      && (dontCare(c[RTC_HOURS_ALARM]) || this.decHour(c[RTC_HOURS_ALARM]) === d.getUTCHours());
  }

  /** Account for events between `lastCheck` and `now` into register C; raise IRQ8 for enabled ones. */
  private updateFlags(now: number): void {
    const from = this.lastCheck;
    if (now <= from) return;
    this.lastCheck = now;
    let flags = 0;
    const p = this.periodNs();
    if (p > 0 && Math.floor((now - this.baseNs) / p) > Math.floor((from - this.baseNs) / p)) flags |= REG_C_PF;
    if (!(this.cmos[RTC_REG_B] & REG_B_SET)) {
      const s0 = Math.floor(this.seconds(from));
      const s1 = Math.floor(this.seconds(now));
      if (s1 > s0) {
        flags |= REG_C_UF;
        // Alarm: check each second passed, bounded to a day (the alarm has at most daily resolution).
        for (let s = Math.max(s0 + 1, s1 - 86400); s <= s1; s++) {
          if (this.alarmMatches(s)) { flags |= REG_C_AF; break; }
        }
      }
    }
    this.cmos[RTC_REG_C] |= flags;
    const enabled = this.cmos[RTC_REG_B] & (REG_B_PIE | REG_B_AIE | REG_B_UIE);
    if ((this.cmos[RTC_REG_C] & enabled & (REG_C_PF | REG_C_AF | REG_C_UF)) && !(this.cmos[RTC_REG_C] & REG_C_IRQF)) {
      this.cmos[RTC_REG_C] |= REG_C_IRQF;
      this.irq?.setLevel(RTC_IRQ, true);
    }
  }

  /** Arm the clock for the next enabled interrupt source. */
  private schedule(): void {
    this.clock.cancel(this.timer);
    this.timer = null;
    const b = this.cmos[RTC_REG_B];
    const now = this.clock.now();
    let next = Infinity;
    const p = this.periodNs();
    if ((b & REG_B_PIE) && p > 0) next = this.baseNs + (Math.floor((now - this.baseNs) / p) + 1) * p;
    if ((b & (REG_B_AIE | REG_B_UIE)) && !(b & REG_B_SET)) {
      const s = this.seconds(now);
      next = Math.min(next, now + Math.max(1, Math.ceil((Math.floor(s) + 1 - s) * NS_PER_S)));
    }
    if (next === Infinity) return;
    this.timer = this.clock.at(next, (t) => {
      this.timer = null;
      this.updateFlags(t);
      this.schedule();
    });
  }

  private readData(): number {
    const i = this.index;
    const now = this.clock.now();
    switch (i) {
      case RTC_SECONDS: case RTC_MINUTES: case RTC_HOURS: case RTC_DAY_OF_WEEK: case RTC_DAY_OF_MONTH:
      case RTC_MONTH: case RTC_YEAR: case RTC_CENTURY:
        if (!(this.cmos[RTC_REG_B] & REG_B_SET)) this.latchTime(this.seconds(now));
        return this.cmos[i];
      case RTC_REG_A: {
        const s = this.seconds(now);
        const uip = !(this.cmos[RTC_REG_B] & REG_B_SET) && (Math.floor(s) + 1 - s) * NS_PER_S <= UIP_NS;
        return (this.cmos[RTC_REG_A] & 0x7f) | (uip ? REG_A_UIP : 0);
      }
      case RTC_REG_C: {
        this.updateFlags(now);
        const v = this.cmos[RTC_REG_C];
        this.cmos[RTC_REG_C] = 0;
        if (v & REG_C_IRQF) this.irq?.setLevel(RTC_IRQ, false);
        return v;
      }
      case RTC_REG_D: return 0x80;
      default: return this.cmos[i];
    }
  }

  private writeData(v: number): void {
    const i = this.index;
    const now = this.clock.now();
    switch (i) {
      case RTC_REG_A:
        this.updateFlags(now);
        this.cmos[i] = v & 0x7f;
        this.schedule();
        return;
      case RTC_REG_B: {
        this.updateFlags(now);
        const old = this.cmos[i];
        if ((v & REG_B_SET) && !(old & REG_B_SET)) {
          this.latchTime(this.seconds(now));
          this.baseSeconds = this.seconds(now);
          this.baseNs = now;
        }
        this.cmos[i] = v;
        if (!(v & REG_B_SET) && (old & REG_B_SET)) this.commitTime(now);
        if (v & REG_B_SET) this.cmos[i] &= ~REG_B_UIE;
        this.schedule();
        return;
      }
      case RTC_REG_C: case RTC_REG_D: return; // read-only
      case RTC_SECONDS: case RTC_MINUTES: case RTC_HOURS: case RTC_DAY_OF_WEEK: case RTC_DAY_OF_MONTH: case RTC_MONTH:
      case RTC_YEAR: case RTC_CENTURY:
        if (!(this.cmos[RTC_REG_B] & REG_B_SET)) this.latchTime(this.seconds(now));
        this.cmos[i] = v;
        if (!(this.cmos[RTC_REG_B] & REG_B_SET)) this.commitTime(now);
        return;
      default:
        this.cmos[i] = v;
        if (i === RTC_SECONDS_ALARM || i === RTC_MINUTES_ALARM || i === RTC_HOURS_ALARM) this.schedule();
    }
  }

  pioRead(offset: number, _size: AccessSize): number {
    return offset === 0 ? 0xff : this.readData();
  }

  pioWrite(offset: number, _size: AccessSize, value: number): void {
    if (offset === 0) this.index = value & 0x7f;
    else this.writeData(value & 0xff);
  }

  saveState(): RtcState {
    return { cmos: [...this.cmos], index: this.index, baseSeconds: this.baseSeconds, baseNs: this.baseNs, lastCheck: this.lastCheck };
  }

  restoreState(s: RtcState): void {
    this.cmos.set(s.cmos); this.index = s.index; this.baseSeconds = s.baseSeconds; this.baseNs = s.baseNs;
    this.lastCheck = s.lastCheck;
    this.schedule();
  }
}
