/**
 * Intel 8259A programmable interrupt controller pair (master at 0x20, slave at 0xa0 cascaded on IRQ2)
 * plus the ELCR edge/level registers at 0x4d0/0x4d1 (PIIX/ICH style).
 *
 * The master's INT output goes to the boot processor's LAPIC LINT0 (virtual-wire, ExtINT); the LAPIC
 * reads the vector with `acknowledge()` (the INTA cycle). When the requesting IRR bit vanishes between
 * INT and INTA the chip answers with IRQ7 of the chip (spurious) without setting ISR, as hardware does.
 */
import type { AccessSize, PioDevice } from '../platform/bus.js';
import type { PicInput } from './irq.js';

const ICW1_IC4 = 0x01;
const ICW1_SNGL = 0x02;
const ICW1_INIT = 0x10;
const OCW3_SELECT = 0x08;

/** Lowest priority index (0 = highest priority) of a set bit in `mask` given the rotation, 8 if none. */
function priorityOf(mask: number, rotation: number): number {
  if (mask === 0) return 8;
  let p = 0;
  while ((mask & (1 << ((p + rotation) & 7))) === 0) p++;
  return p;
}

export interface PicChipState {
  irr: number; imr: number; isr: number; lastLevel: number; elcr: number; rotation: number; base: number;
  readIsr: boolean; poll: boolean; specialMask: boolean; initStep: number; needIcw4: boolean; single: boolean;
  autoEoi: boolean; rotateOnAutoEoi: boolean; specialFullyNested: boolean;
}

export class PicChip implements PioDevice {
  irr = 0;
  /** All masked at power-on: with direct kernel boot no BIOS programs the chip before the guest does. */
  imr = 0xff;
  isr = 0;
  /** Input line levels, for edge detection. */
  lastLevel = 0;
  elcr = 0;
  /** Priority rotation: IRQ `rotation` has the highest priority. */
  rotation = 0;
  base = 0;
  readIsr = false;
  poll = false;
  specialMask = false;
  /** 0 = operational, 1..3 = expecting ICW2..ICW4. */
  initStep = 0;
  needIcw4 = false;
  single = false;
  autoEoi = false;
  rotateOnAutoEoi = false;
  specialFullyNested = false;

  constructor(readonly isMaster: boolean, readonly elcrMask: number, private readonly changed: () => void) {}

  setIrq(irq: number, level: boolean): void {
    const m = 1 << irq;
    if (this.elcr & m) {
      if (level) this.irr |= m; else this.irr &= ~m;
    } else if (level) {
      if ((this.lastLevel & m) === 0) this.irr |= m;
    }
    if (level) this.lastLevel |= m; else this.lastLevel &= ~m;
  }

  /** The IRQ (0-7) this chip would present now, or -1. */
  requested(): number {
    const pending = this.irr & ~this.imr;
    const p = priorityOf(pending, this.rotation);
    if (p === 8) return -1;
    let inService = this.isr;
    if (this.specialMask) inService &= ~this.imr;
    // In special fully nested mode the slave's own in-service IRQ2 does not block higher slave requests.
    if (this.specialFullyNested && this.isMaster) inService &= ~(1 << 2);
    return p < priorityOf(inService, this.rotation) ? (p + this.rotation) & 7 : -1;
  }

  /** INTA for `irq`: moves it to in-service (or auto-EOIs it); edge requests are consumed. */
  ack(irq: number): void {
    const m = 1 << irq;
    if (this.isMaster && irq === 2) { this.isr |= this.autoEoi ? 0 : m; return; }
    if (this.autoEoi) {
      if (this.rotateOnAutoEoi) this.rotation = (irq + 1) & 7;
    } else {
      this.isr |= m;
    }
    if ((this.elcr & m) === 0) this.irr &= ~m;
  }

  private reset(): void {
    this.lastLevel = 0;
    this.irr &= this.elcr; // level requests still asserted stay; edge latches clear
    this.imr = 0;
    this.isr = 0;
    this.rotation = 0;
    this.readIsr = false;
    this.poll = false;
    this.specialMask = false;
    this.autoEoi = false;
    this.rotateOnAutoEoi = false;
    this.specialFullyNested = false;
    this.single = false;
  }

  pioRead(offset: number, _size: AccessSize): number {
    if ((offset & 1) === 0) {
      if (this.poll) {
        this.poll = false;
        const irq = this.requested();
        if (irq < 0) return 0;
        this.ack(irq);
        this.changed();
        return 0x80 | irq;
      }
      return this.readIsr ? this.isr : this.irr;
    }
    return this.imr;
  }

  pioWrite(offset: number, _size: AccessSize, value: number): void {
    const v = value & 0xff;
    if ((offset & 1) === 0) {
      if (v & ICW1_INIT) {
        this.reset();
        this.needIcw4 = (v & ICW1_IC4) !== 0;
        this.single = (v & ICW1_SNGL) !== 0;
        this.initStep = 1;
      } else if (v & OCW3_SELECT) {
        if (v & 0x04) this.poll = true;
        if (v & 0x02) this.readIsr = (v & 0x01) !== 0;
        if (v & 0x40) this.specialMask = (v & 0x20) !== 0;
      } else {
        this.ocw2(v);
      }
    } else {
      switch (this.initStep) {
        case 0: this.imr = v; break;
        case 1:
          this.base = v & 0xf8;
          this.initStep = this.single ? (this.needIcw4 ? 3 : 0) : 2;
          break;
        case 2: this.initStep = this.needIcw4 ? 3 : 0; break; // ICW3: cascade wiring is fixed
        case 3:
          this.autoEoi = (v & 0x02) !== 0;
          this.specialFullyNested = (v & 0x10) !== 0;
          this.initStep = 0;
          break;
      }
    }
    this.changed();
  }

  private ocw2(v: number): void {
    const cmd = v >> 5;
    switch (cmd) {
      case 0: case 4: // rotate in automatic EOI mode clear/set
        this.rotateOnAutoEoi = cmd === 4;
        break;
      case 1: case 5: { // non-specific EOI (with rotation)
        const p = priorityOf(this.isr, this.rotation);
        if (p !== 8) {
          const irq = (p + this.rotation) & 7;
          this.isr &= ~(1 << irq);
          if (cmd === 5) this.rotation = (irq + 1) & 7;
        }
        break;
      }
      case 3: this.isr &= ~(1 << (v & 7)); break; // specific EOI
      case 6: this.rotation = ((v & 7) + 1) & 7; break; // set priority: IRQ v&7 lowest
      case 7: this.isr &= ~(1 << (v & 7)); this.rotation = ((v & 7) + 1) & 7; break;
      default: break; // 2: no operation
    }
  }

  saveState(): PicChipState {
    const { irr, imr, isr, lastLevel, elcr, rotation, base, readIsr, poll, specialMask, initStep, needIcw4, single,
      autoEoi, rotateOnAutoEoi, specialFullyNested } = this;
    return { irr, imr, isr, lastLevel, elcr, rotation, base, readIsr, poll, specialMask, initStep, needIcw4, single,
      autoEoi, rotateOnAutoEoi, specialFullyNested };
  }

  restoreState(s: PicChipState): void { Object.assign(this, s); }
}

/** ELCR at 0x4d0 (master) / 0x4d1 (slave): 1 bit per IRQ, 1 = level-triggered. */
class ElcrPorts implements PioDevice {
  constructor(private readonly pic: Pic) {}
  pioRead(offset: number, size: AccessSize): number {
    let v = 0;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const b = o === 0 ? this.pic.master.elcr : o === 1 ? this.pic.slave.elcr : 0xff;
      v |= b << (8 * i);
    }
    return v >>> 0;
  }
  pioWrite(offset: number, size: AccessSize, value: number): void {
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const b = (value >>> (8 * i)) & 0xff;
      if (o === 0) this.pic.master.elcr = b & this.pic.master.elcrMask;
      else if (o === 1) this.pic.slave.elcr = b & this.pic.slave.elcrMask;
    }
    this.pic.update();
  }
}

export class Pic implements PicInput {
  readonly master: PicChip;
  readonly slave: PicChip;
  /** Register at PIC_ELCR_PORT, 2 ports. */
  readonly elcrPorts: PioDevice;
  /** The master's INT output. */
  intr = false;
  /** Called when INT changes (wire it to the boot LAPIC's LINT0). */
  onIntrChange: ((level: boolean) => void) | null = null;

  constructor() {
    const changed = (): void => this.update();
    // IRQ0-2 (timer, keyboard, cascade) and IRQ8/13 (RTC, FPU) cannot be level-triggered on PIIX.
    this.master = new PicChip(true, 0xf8, changed);
    this.slave = new PicChip(false, 0xde, changed);
    this.elcrPorts = new ElcrPorts(this);
  }

  setIrq(irq: number, level: boolean): void {
    if (!(irq >= 0 && irq < 16)) return;
    if (irq < 8) this.master.setIrq(irq, level); else this.slave.setIrq(irq - 8, level);
    this.update();
  }

  /** Recompute the cascade line and INT after any state change. */
  update(): void {
    // The cascade input follows the slave's INT as a level, so a slave request is never lost to a missing edge.
    if (this.slave.requested() >= 0) this.master.irr |= 1 << 2; else this.master.irr &= ~(1 << 2);
    const intr = this.master.requested() >= 0;
    if (intr !== this.intr) {
      this.intr = intr;
      this.onIntrChange?.(intr);
    }
  }

  /** The vector INTA would return now, without side effects (-1 when INT is low). */
  peekVector(): number {
    const irq = this.master.requested();
    if (irq < 0) return -1;
    if (irq === 2) {
      const s = this.slave.requested();
      return this.slave.base + (s < 0 ? 7 : s);
    }
    return this.master.base + irq;
  }

  /** The INTA cycle: returns the vector and updates IRR/ISR (spurious IRQ7/15 when nothing is requested). */
  acknowledge(): number {
    const irq = this.master.requested();
    let vector: number;
    if (irq < 0) {
      vector = this.master.base + 7;
    } else {
      this.master.ack(irq);
      if (irq === 2) {
        const s = this.slave.requested();
        if (s >= 0) { this.slave.ack(s); vector = this.slave.base + s; } else vector = this.slave.base + 7;
      } else {
        vector = this.master.base + irq;
      }
    }
    this.update();
    return vector;
  }

  saveState(): { master: PicChipState; slave: PicChipState; intr: boolean } {
    return { master: this.master.saveState(), slave: this.slave.saveState(), intr: this.intr };
  }

  restoreState(s: { master: PicChipState; slave: PicChipState; intr: boolean }): void {
    this.master.restoreState(s.master);
    this.slave.restoreState(s.slave);
    this.intr = s.intr;
  }
}
