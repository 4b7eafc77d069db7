/**
 * The DSDT of the PCI-less platform: \_S5 for ACPI power-off, and under \_SB the legacy ISA devices
 * (COM1, RTC, optionally the i8042 keyboard) and, for enlightened partitions, the VMBus device
 * (hyperv-guest-contract.md section 5: _HID "VMBUS" with a _CRS, which hv_vmbus requires).
 */
import * as L from '../../platform/layout.js';
import { name, scope, device, packageOf, eisaId, resourceTemplate, io, irq, string, method, returnOf, type Aml } from './aml.js';

export interface DsdtOptions {
  /** Describe the VMBus device (enlightened partition). */
  vmbus: boolean;
  /** Describe the i8042 keyboard controller (default true). */
  i8042?: boolean;
  /** Describe COM2 as well (default false). */
  com2?: boolean;
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
