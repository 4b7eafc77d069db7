/**
 * Interrupt routing from device lines to the two interrupt controllers of a PC: the 8259 pair (ISA IRQs
 * 0-15) and the IOAPIC (GSIs 0-23). Device models only know their line number:
 *  - lines 0-15 are ISA IRQs; they reach PIC input `irq` and IOAPIC pin `isaIrqToGsi(irq)`
 *    (IRQ0 -> GSI2 as the MADT's interrupt source override says; every other ISA IRQ is identity);
 *  - lines 16-23 are GSIs wired only to the IOAPIC (e.g. PCI-style level interrupts).
 * Trigger modes live in the controllers (ELCR for the 8259, redirection entries for the IOAPIC); the router
 * only carries pin levels, so edge devices call `pulse` and level devices `setLevel`.
 */
import { ACPI_SCI_IRQ, IOAPIC_PINS } from '../platform/layout.js';

export const ISA_IRQ_COUNT = 16;

/** What the 8259 pair accepts from the router. */
export interface PicInput { setIrq(irq: number, level: boolean): void }
/** What the IOAPIC accepts from the router. */
export interface IoApicInput { setPin(pin: number, level: boolean): void }

/** MADT interrupt source override flags (ACPI MPS INTI flags): polarity bits 1:0, trigger bits 3:2. */
export const MPS_INTI_ACTIVE_HIGH = 0x1;
export const MPS_INTI_EDGE = 0x4;
export const MPS_INTI_LEVEL = 0xc;

/**
 * The interrupt source overrides the firmware's MADT must list so the guest agrees with this routing:
 * ISA IRQ0 (PIT) on GSI2, and the ACPI SCI level-triggered, active-high.
 */
export const ISA_INTERRUPT_OVERRIDES: ReadonlyArray<{ isaIrq: number; gsi: number; flags: number }> = [
  { isaIrq: 0, gsi: 2, flags: MPS_INTI_EDGE | MPS_INTI_ACTIVE_HIGH },
  { isaIrq: ACPI_SCI_IRQ, gsi: ACPI_SCI_IRQ, flags: MPS_INTI_LEVEL | MPS_INTI_ACTIVE_HIGH },
];

export function isaIrqToGsi(irq: number): number { return irq === 0 ? 2 : irq; }

export class IrqRouter {
  pic: PicInput | null = null;
  ioapic: IoApicInput | null = null;
  private readonly levels = new Uint8Array(IOAPIC_PINS);

  constructor(pic?: PicInput | null, ioapic?: IoApicInput | null) {
    this.pic = pic ?? null;
    this.ioapic = ioapic ?? null;
  }

  /** Drive `line` (ISA IRQ for 0-15, GSI for 16-23) to `level`. Out-of-range lines are ignored. */
  setLevel(line: number, level: boolean): void {
    if (!(line >= 0 && line < IOAPIC_PINS)) return;
    this.levels[line] = level ? 1 : 0;
    if (line < ISA_IRQ_COUNT) {
      this.pic?.setIrq(line, level);
      this.ioapic?.setPin(isaIrqToGsi(line), level);
    } else {
      this.ioapic?.setPin(line, level);
    }
  }

  /** A rising then falling edge: what edge-triggered ISA devices (PIT, RTC) produce per event. */
  pulse(line: number): void {
    this.setLevel(line, true);
    this.setLevel(line, false);
  }

  level(line: number): boolean { return this.levels[line] === 1; }
}
