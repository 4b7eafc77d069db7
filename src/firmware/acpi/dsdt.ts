/**
 * The DSDT of the PCI-less platform: \_S5 for ACPI power-off, and under \_SB the legacy ISA devices
 * (COM1, RTC, optionally the i8042 keyboard) and, for enlightened partitions, the VMBus device
 * (hyperv-guest-contract.md section 5: _HID "VMBUS" with a _CRS, which hv_vmbus requires).
 */
import * as L from '../../platform/layout.js';
import {
  name, scope, device, packageOf, eisaId, resourceTemplate, io, irq, string, method, returnOf, wordBusNumber, wordIo,
  dwordMemoryWindow, type Aml,
} from './aml.js';
import { pciIntxGsi, PCI_DEVICES } from '../../devices/pci/bus.js';

export interface DsdtOptions {
  /** Describe the VMBus device (enlightened partition). */
  vmbus: boolean;
  /** Describe the i8042 keyboard controller (default true). */
  i8042?: boolean;
  /** Describe COM2 as well (default false). */
  com2?: boolean;
  /** Describe the PCI root bridge PCI0 (bus 0 behind 0xCF8/0xCFC) with its windows and _PRT (default false). */
  pci?: boolean;
}

/**
 * \_SB.PCI0: the host bridge (PNP0A03) of the Gen 1 chipset. _CRS gives the bus range, the config ports it
 * consumes, and the I/O and memory windows it forwards; _PRT maps every device's INTA-D to the IOAPIC
 * inputs the bus drives (pciIntxGsi), so Linux routes PCI interrupts without link devices.
 */
export function pciRootBridge(): Aml {
  const prt: Aml[] = [];
  for (let dev = 0; dev < PCI_DEVICES; dev++) {
    for (let pin = 1; pin <= 4; pin++) prt.push(packageOf([dev * 0x10000 + 0xffff, pin - 1, 0, pciIntxGsi(dev, pin)]));
  }
  return device('PCI0', [
    name('_HID', eisaId('PNP0A03')),
    name('_ADR', 0),
    name('_UID', 0),
    name('_CRS', resourceTemplate([
      wordBusNumber(0, 0xff),
      io(L.PCI_CONFIG_PORT, L.PCI_CONFIG_PORT, 1, 8),
      wordIo(0x0000, L.PCI_CONFIG_PORT - 1),
      wordIo(L.PCI_CONFIG_PORT + 8, 0xffff),
      dwordMemoryWindow(L.PCI_MMIO_BASE, L.PCI_MMIO_END),
    ])),
    name('_PRT', packageOf(prt)),
  ]);
}

export function buildDsdt(opts: DsdtOptions): Uint8Array {
  const sb: Aml[] = [
    device('COM1', [
      name('_HID', eisaId('PNP0501')),
      name('_UID', 1),
      name('_CRS', resourceTemplate([io(L.COM1_PORT, L.COM1_PORT, 1, 8), irq([L.COM1_IRQ])])),
    ]),
    device('RTC', [
      name('_HID', eisaId('PNP0B00')),
      name('_CRS', resourceTemplate([io(L.RTC_PORT, L.RTC_PORT, 1, 2), irq([L.RTC_IRQ])])),
    ]),
  ];
  if (opts.com2) {
    sb.push(device('COM2', [
      name('_HID', eisaId('PNP0501')),
      name('_UID', 2),
      name('_CRS', resourceTemplate([io(L.COM2_PORT, L.COM2_PORT, 1, 8), irq([L.COM2_IRQ])])),
    ]));
  }
  if (opts.i8042 !== false) {
    sb.push(device('KBD', [
      name('_HID', eisaId('PNP0303')),
      name('_CRS', resourceTemplate([io(L.I8042_DATA_PORT, L.I8042_DATA_PORT, 1, 1), io(L.I8042_CMD_PORT, L.I8042_CMD_PORT, 1, 1), irq([L.I8042_KBD_IRQ])])),
    ]));
  }
  if (opts.pci) sb.push(pciRootBridge());
  if (opts.vmbus) {
    sb.push(device('VMBS', [
      name('_HID', string('VMBUS')),
      name('_UID', 0),
      name('_DDN', string('VMBUS')),
      method('_STA', 0, false, [returnOf(0x0f)]),
      name('_CRS', resourceTemplate([])),
    ]));
  }
  const body: Aml[] = [
    name('_S5', packageOf([L.ACPI_S5_SLP_TYP, L.ACPI_S5_SLP_TYP, 0, 0])),
    scope('_SB', sb),
  ];
  return Uint8Array.from(body.flat());
}
