/**
 * Intel 8254 programmable interval timer at 0x40-0x43, clocked at 1.193182 MHz from the VirtualClock,
 * plus system control port B (0x61): channel 2 gate (bit 0), speaker enable (bit 1), refresh toggle
 * (bit 4) and channel 2 output (bit 5), which Linux polls to calibrate the TSC.
 *
 * Counters are not stepped: each channel keeps the virtual time its count was loaded and derives the
 * current count and output level from the elapsed ticks on demand. Channel 0's output rising edges are
 * scheduled on the clock and pulse IRQ0. Missed periods coalesce into one interrupt.
 * Gate-low does not pause modes 0/2/3/4 (as in QEMU); a rising gate restarts modes 1, 2, 3 and 5.
 */
import type { AccessSize, PioDevice } from '../platform/bus.js';
import type { TimerHandle, VirtualClock } from '../platform/clock.js';
import { PIT_IRQ } from '../platform/layout.js';
import type { IrqRouter } from './irq.js';

export const PIT_HZ = 1_193_182;
const NS_PER_TICK = 1e9 / PIT_HZ;
/** Refresh request toggles every 15.085 µs on a PC (port 0x61 bit 4). */
const REFRESH_NS = 15_085;

// Read/write states (access mode in the control word; WORD1 = second byte of an LSB-then-MSB pair).
const RW_LSB = 1, RW_MSB = 2, RW_WORD0 = 3, RW_WORD1 = 4;

function toBcd(v: number): number {
  return (v % 10) | (Math.floor(v / 10) % 10) << 4 | (Math.floor(v / 100) % 10) << 8 | (Math.floor(v / 1000) % 10) << 12;
}
function fromBcd(v: number): number {
  return (v & 0xf) + ((v >> 4) & 0xf) * 10 + ((v >> 8) & 0xf) * 100 + ((v >> 12) & 0xf) * 1000;
}

export interface PitChannelState {
  count: number; loadTime: number; loaded: boolean; mode: number; bcd: boolean; rw: number; readState: number;
  writeState: number; writeLatch: number; latched: number; latchState: number; statusLatched: boolean; status: number;
  gate: boolean; nullCount: boolean;
}

export class PitChannel {
  /** Reload value in ticks: 1..0x10000 (binary) or 1..10000 (BCD). */
  count = 0x10000;
  loadTime = 0;
  /** A count was written since the last control word (mode 0 output stays low until then). */
  loaded = false;
  mode = 0;
  bcd = false;
  rw = RW_WORD0;
  readState = RW_WORD0;
  writeState = RW_WORD0;
  writeLatch = 0;
  latched = 0;
  /** 0 = no count latched, else the read state of the latched count. */
  latchState = 0;
  statusLatched = false;
  status = 0;
  gate: boolean;
  nullCount = true;

  constructor(readonly index: number) { this.gate = index !== 2; }

  ticks(now: number): number {
    const d = Math.floor(((now - this.loadTime) * PIT_HZ) / 1e9);
    return d > 0 ? d : 0;
  }

  /** Counter value at `now`, in the channel's number format (BCD encoded in BCD mode). */
  value(now: number): number {
    const d = this.ticks(now);
    const n = this.count;
    const wrap = this.bcd ? 10000 : 0x10000;
    let c: number;
    switch (this.mode) {
      case 2: c = n - (d % n); break;
      case 3: c = n - ((2 * d) % n); break;
      default: c = (((n - d) % wrap) + wrap) % wrap; // modes 0, 1, 4, 5 keep counting down past zero
    }
    c %= wrap;
    return this.bcd ? toBcd(c) : c;
  }

  out(now: number): boolean {
    if (!this.loaded) return this.mode !== 0;
    const d = this.ticks(now);
    const n = this.count;
    switch (this.mode) {
      case 0: return d >= n;
      case 1: return d >= n;
      case 2: return n === 1 ? true : d % n !== n - 1;
      case 3: return d % n < Math.ceil(n / 2);
      default: return d !== n; // modes 4 and 5: one low tick at terminal count
    }
  }

  /** Tick index of the first output rising edge strictly after tick `after`, or -1 if none. */
  nextRisingEdge(after: number): number {
    if (!this.loaded) return -1;
    const n = this.count;
    switch (this.mode) {
      case 0: case 1: return n > after ? n : -1;
      case 2: case 3: return (Math.floor(after / n) + 1) * n;
      default: return n + 1 > after ? n + 1 : -1;
    }
  }

  load(raw: number, now: number): void {
    this.count = raw === 0 ? (this.bcd ? 10000 : 0x10000) : this.bcd ? Math.max(1, fromBcd(raw)) : raw;
    this.loadTime = now;
    this.loaded = true;
    this.nullCount = false;
  }

  saveState(): PitChannelState {
    const { count, loadTime, loaded, mode, bcd, rw, readState, writeState, writeLatch, latched, latchState, statusLatched,
      status, gate, nullCount } = this;
    return { count, loadTime, loaded, mode, bcd, rw, readState, writeState, writeLatch, latched, latchState, statusLatched,
      status, gate, nullCount };
  }
}

export interface PitState { channels: PitChannelState[]; speaker: boolean; port61: number; irqEdgeTick: number }

export class Pit implements PioDevice {
  readonly channels = [new PitChannel(0), new PitChannel(1), new PitChannel(2)];
  /** System control port B at 0x61. */
  readonly port61: PioDevice;
  /** Port 0x61 bits 1-3 as written (speaker data enable, parity/IOCHK NMI enables). */
  private port61Bits = 0;
  private irqTimer: TimerHandle | null = null;
  private irqEdgeTick = -1;

  constructor(private readonly clock: VirtualClock, private readonly irq: IrqRouter) {
    this.port61 = {
      pioRead: () => this.readPort61(),
      pioWrite: (_o: number, _s: AccessSize, v: number) => this.writePort61(v),
    };
  }

  reset(): void {
    for (let i = 0; i < 3; i++) {
      const c = new PitChannel(i);
      this.channels[i] = c;
    }
    this.port61Bits = 0;
    this.scheduleIrq();
  }

  private readPort61(): number {
    const now = this.clock.now();
    const ch2 = this.channels[2];
    const refresh = Math.floor(now / REFRESH_NS) & 1;
    return (ch2.gate ? 1 : 0) | (this.port61Bits & 0x0e) | (refresh << 4) | (ch2.out(now) ? 0x20 : 0);
  }

  private writePort61(v: number): void {
    this.port61Bits = v & 0x0e;
    this.setGate(2, (v & 1) !== 0);
  }

  setGate(ch: number, gate: boolean): void {
    const c = this.channels[ch];
    const rising = gate && !c.gate;
    c.gate = gate;
    if (rising && c.mode !== 0 && c.mode !== 4 && c.loaded) {
      c.loadTime = this.clock.now();
      if (ch === 0) this.scheduleIrq();
    }
  }

  pioRead(offset: number, _size: AccessSize): number {
    if (offset === 3) return 0xff; // the control word register is write-only
    const c = this.channels[offset];
    if (c.statusLatched) {
      c.statusLatched = false;
      return c.status;
    }
    if (c.latchState !== 0) {
      switch (c.latchState) {
        case RW_LSB: c.latchState = 0; return c.latched & 0xff;
        case RW_MSB: c.latchState = 0; return (c.latched >> 8) & 0xff;
        case RW_WORD0: c.latchState = RW_MSB; return c.latched & 0xff;
      }
    }
    const v = c.value(this.clock.now());
    switch (c.readState) {
      case RW_LSB: return v & 0xff;
      case RW_MSB: return (v >> 8) & 0xff;
      case RW_WORD0: c.readState = RW_WORD1; return v & 0xff;
      default: c.readState = RW_WORD0; return (v >> 8) & 0xff;
    }
  }

  pioWrite(offset: number, _size: AccessSize, value: number): void {
    const v = value & 0xff;
    const now = this.clock.now();
    if (offset === 3) {
      const sel = v >> 6;
      if (sel === 3) { // read-back
        for (let i = 0; i < 3; i++) {
          if ((v & (2 << i)) === 0) continue;
          const c = this.channels[i];
          if ((v & 0x20) === 0) this.latchCount(c, now);
          if ((v & 0x10) === 0 && !c.statusLatched) {
            c.status = (c.out(now) ? 0x80 : 0) | (c.nullCount ? 0x40 : 0) | ((c.rw === RW_WORD0 ? 3 : c.rw) << 4)
              | (c.mode << 1) | (c.bcd ? 1 : 0);
            c.statusLatched = true;
          }
        }
        return;
      }
      const c = this.channels[sel];
      const access = (v >> 4) & 3;
      if (access === 0) { this.latchCount(c, now); return; }
      c.rw = access;
      c.readState = access;
      c.writeState = access;
      c.latchState = 0;
      c.mode = (v >> 1) & 7;
      if (c.mode > 5) c.mode -= 4; // 6, 7 alias 2, 3
      c.bcd = (v & 1) !== 0;
      c.loaded = false;
      c.nullCount = true;
      if (sel === 0) this.scheduleIrq();
      return;
    }
    const c = this.channels[offset];
    switch (c.writeState) {
      case RW_LSB: c.load(v, now); break;
      case RW_MSB: c.load(v << 8, now); break;
      case RW_WORD0: c.writeLatch = v; c.writeState = RW_WORD1; return;
      default: c.load(c.writeLatch | (v << 8), now); c.writeState = RW_WORD0; break;
    }
    if (offset === 0) this.scheduleIrq();
  }

  private latchCount(c: PitChannel, now: number): void {
    if (c.latchState !== 0) return; // a latched count is held until read
    c.latched = c.value(now);
    c.latchState = c.rw;
  }

  /** Arm the clock for channel 0's next output rising edge (after a reprogramming). */
  private scheduleIrq(): void {
    this.clock.cancel(this.irqTimer);
    this.irqTimer = null;
    const c = this.channels[0];
    this.scheduleAfter(c, c.ticks(this.clock.now()));
  }

  private scheduleAfter(c: PitChannel, afterTick: number): void {
    const edge = c.nextRisingEdge(afterTick);
    if (edge < 0) return;
    const loadTime = c.loadTime;
    this.irqTimer = this.clock.at(c.loadTime + Math.ceil(edge * NS_PER_TICK), (t) => {
      this.irqTimer = null;
      if (c !== this.channels[0] || loadTime !== c.loadTime) return;
      this.irq.pulse(PIT_IRQ);
      this.irqEdgeTick = edge;
      this.scheduleAfter(c, Math.max(edge, c.ticks(t)));
    });
  }

  saveState(): PitState {
    return { channels: this.channels.map((c) => c.saveState()), speaker: (this.port61Bits & 2) !== 0,
      port61: this.port61Bits, irqEdgeTick: this.irqEdgeTick };
  }

  restoreState(s: PitState): void {
    s.channels.forEach((cs, i) => Object.assign(this.channels[i], cs));
    this.port61Bits = s.port61;
    this.irqEdgeTick = s.irqEdgeTick;
    this.clock.cancel(this.irqTimer);
    this.irqTimer = null;
    this.scheduleAfter(this.channels[0], this.channels[0].ticks(this.clock.now()));
  }
}
