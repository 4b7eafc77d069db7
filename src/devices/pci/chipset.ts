/**
 * The PCI functions of Hyper-V's Generation 1 chipset that carry no I/O of their own: the Intel 440BX host
 * bridge at 00:00.0 and the PIIX4 PCI-to-ISA bridge at 00:07.0 (its IDE function, 00:07.1, lives in
 * devices/ide). lspci in a Gen 1 guest shows "440BX/ZX/DX - 82443BX/ZX/DX Host bridge (AGP disabled)"
 * (8086:7192) and "82371AB/EB/MB PIIX4 ISA" (8086:7110).
 */
import { PciFunction } from './function.js';

export const INTEL_VENDOR_ID = 0x8086;
/** 82443BX host bridge with AGP disabled (no AGP bridge at 00:01.0, as on Hyper-V). */
export const I440BX_DEVICE_ID = 0x7192;
export const PIIX4_ISA_DEVICE_ID = 0x7110;
/** Where Hyper-V Gen 1 puts the PIIX4 (ISA bridge function 0, IDE function 1). */
export const PIIX4_PCI_DEVICE = 7;

export class I440bxHostBridge extends PciFunction {
  constructor() {
    super('i440bx-host', { vendorId: INTEL_VENDOR_ID, deviceId: I440BX_DEVICE_ID, revision: 0x03, classCode: 0x06, subclass: 0x00, progIf: 0x00 });
    // Chipset registers a BIOS programs (PAM, DRB, SMRAM...): stored, with no effect on this platform's
    // fixed memory map, so a guest poking them reads back what it wrote.
    this.writable(0x50, 0x30);
  }
}

export class Piix4IsaBridge extends PciFunction {
  constructor() {
    super('piix4-isa', { vendorId: INTEL_VENDOR_ID, deviceId: PIIX4_ISA_DEVICE_ID, revision: 0x01, classCode: 0x06, subclass: 0x01, progIf: 0x00, multiFunction: true });
    // PIRQ route control 0x60-0x63: disabled (bit 7), since the DSDT's _PRT routes INTx to IOAPIC inputs
    // directly; the registers keep whatever the guest writes.
    this.setResetValue(0x60, [0x80, 0x80, 0x80, 0x80]);
    this.writable(0x60, 4, 0x8f);
    // Top of memory, misc status, deterministic latency, APIC base: stored only.
    this.writable(0x69, 0x17);
    this.writable(0x80, 4);
    this.writable(0xb0, 4);
  }
}
