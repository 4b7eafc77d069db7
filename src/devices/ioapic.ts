/**
 * I/O APIC (82093AA register interface, version 0x20 with the EOI register), 24 pins, MMIO at IOAPIC_BASE:
 * IOREGSEL at +0x00, IOWIN at +0x10, EOI at +0x40.
 *
 * Pin polarity bits are stored but not applied: the router carries logical assertion levels (as KVM's
 * and QEMU's IOAPICs do), so a guest choosing active-low cannot turn an idle line into an interrupt storm.
 * Edge pins interrupt on assertion while unmasked (edges arriving while masked are lost, as on hardware);
 * level pins set remote IRR when delivered and deliver again after EOI while still asserted.
 */
import type { AccessSize, MmioDevice } from '../platform/bus.js';
import { IOAPIC_ID, IOAPIC_PINS } from '../platform/layout.js';
import type { IoApicInput } from './irq.js';
import { ApicBus, DM_EXTINT, DM_INIT, DM_NMI, DM_SMI, DM_STARTUP } from './lapic.js';

export const IOAPIC_VERSION = 0x20;

const RTE_MASKED = 1 << 16;
const RTE_LEVEL = 1 << 15;
const RTE_REMOTE_IRR = 1 << 14;
const RTE_DELIVERY_STATUS = 1 << 12;
const RTE_LOGICAL = 1 << 11;
/** Guest-writable bits of the low dword: vector, delivery mode, dest mode, polarity, trigger, mask. */
const RTE_WRITABLE_LO = 0x1afff;

export interface IoApicState { id: number; select: number; lo: number[]; hi: number[]; levels: number[] }

export class IoApic implements MmioDevice, IoApicInput {
  id = IOAPIC_ID;
  select = 0;
  readonly lo = new Uint32Array(IOAPIC_PINS).fill(RTE_MASKED);
  readonly hi = new Uint32Array(IOAPIC_PINS);
  /** Current assertion level of each pin. */
  readonly levels = new Uint8Array(IOAPIC_PINS);

  constructor(private readonly bus: ApicBus) {}

  reset(): void {
    this.id = IOAPIC_ID;
    this.select = 0;
    this.lo.fill(RTE_MASKED);
    this.hi.fill(0);
  }

  setPin(pin: number, level: boolean): void {
    if (!(pin >= 0 && pin < IOAPIC_PINS)) return;
    const was = this.levels[pin];
    this.levels[pin] = level ? 1 : 0;
    const e = this.lo[pin];
    if (e & RTE_LEVEL) {
      if (level) this.service(pin);
    } else if (level && !was) {
      this.service(pin);
    }
  }

  /** Deliver pin `pin` if its entry allows. */
  private service(pin: number): void {
    const e = this.lo[pin];
    if (e & RTE_MASKED) return;
    const level = (e & RTE_LEVEL) !== 0;
    if (level && (e & RTE_REMOTE_IRR)) return;
    const mode = (e >> 8) & 7;
    if (mode === DM_SMI || mode === DM_INIT || mode === DM_STARTUP || mode === DM_EXTINT) return; // not modelled
    const vector = e & 0xff;
    if (mode !== DM_NMI && vector < 16) return; // illegal vector: dropped
    if (level && mode !== DM_NMI) this.lo[pin] = (e | RTE_REMOTE_IRR) >>> 0;
    this.bus.deliver(this.hi[pin] >>> 24, (e & RTE_LOGICAL) !== 0, mode, vector, level);
  }

  /** EOI for `vector` (LAPIC broadcast or the EOI register): clear remote IRR, redeliver if still asserted. */
  eoi(vector: number): void {
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const e = this.lo[pin];
      if ((e & 0xff) === vector && (e & RTE_LEVEL) && (e & RTE_REMOTE_IRR)) {
        this.lo[pin] = (e & ~RTE_REMOTE_IRR) >>> 0;
        if (this.levels[pin]) this.service(pin);
      }
    }
  }

  private readRegister(reg: number): number {
    switch (reg) {
      case 0x00: return (this.id & 0xf) << 24;
      case 0x01: return ((IOAPIC_PINS - 1) << 16) | IOAPIC_VERSION;
      case 0x02: return (this.id & 0xf) << 24; // arbitration ID
    }
    if (reg >= 0x10 && reg < 0x10 + 2 * IOAPIC_PINS) {
      const pin = (reg - 0x10) >> 1;
      return (reg & 1) ? this.hi[pin] : this.lo[pin] & ~RTE_DELIVERY_STATUS;
    }
    return 0;
  }

  private writeRegister(reg: number, value: number): void {
    if (reg === 0x00) { this.id = (value >>> 24) & 0xf; return; }
    if (reg >= 0x10 && reg < 0x10 + 2 * IOAPIC_PINS) {
      const pin = (reg - 0x10) >> 1;
      if (reg & 1) {
        this.hi[pin] = value & 0xff000000;
      } else {
        const old = this.lo[pin];
        let v = (old & ~RTE_WRITABLE_LO) | (value & RTE_WRITABLE_LO);
        if (!(v & RTE_LEVEL)) v &= ~RTE_REMOTE_IRR; // remote IRR is meaningless for edge pins
        this.lo[pin] = v >>> 0;
        // Unmasking (or switching to level) a level pin that is asserted delivers it now.
        if ((v & RTE_LEVEL) && !(v & RTE_MASKED) && this.levels[pin]) this.service(pin);
      }
    }
  }

  mmioRead(offset: number, size: AccessSize): number {
    let v: number;
    if (offset >= 0x00 && offset < 0x04) v = this.select >>> ((offset & 3) * 8);
    else if (offset >= 0x10 && offset < 0x14) v = this.readRegister(this.select) >>> ((offset & 3) * 8);
    else v = 0;
    return size === 4 ? v >>> 0 : v & (size === 2 ? 0xffff : 0xff);
  }

  mmioWrite(offset: number, size: AccessSize, value: number): void {
    if (offset === 0x00) this.select = value & 0xff;
    else if (offset === 0x10 && size === 4) this.writeRegister(this.select, value >>> 0);
    else if (offset === 0x40) this.eoi(value & 0xff);
  }

  saveState(): IoApicState {
    return { id: this.id, select: this.select, lo: [...this.lo], hi: [...this.hi], levels: [...this.levels] };
  }

  restoreState(s: IoApicState): void {
    this.id = s.id; this.select = s.select; this.lo.set(s.lo); this.hi.set(s.hi); this.levels.set(s.levels);
  }
}
