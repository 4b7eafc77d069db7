/** Firmware entry points: what a partition calls to put a guest's boot environment in memory. */
import type { GuestMemory } from '../platform/memory.js';
import { writeAcpiTables, type AcpiTables } from './acpi/tables.js';
import { loadLinux, type LinuxBootResult } from './linux-boot.js';

export { loadLinux, parseBzImageHeader, type LinuxBootOptions, type LinuxBootResult } from './linux-boot.js';
export { loadMultiboot, findMultibootHeader, type MultibootOptions, type MultibootResult } from './multiboot.js';
export { buildAcpiTables, writeAcpiTables, type AcpiOptions, type AcpiTables } from './acpi/tables.js';
export { BootError, e820Map, type E820Entry } from './boot-common.js';

export interface LinuxPartitionBoot {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline?: string;
  vcpus: number;
  /** Enlightened partition: describe the VMBus device in the DSDT. */
  vmbus: boolean;
}

/** ACPI tables + Linux direct boot in one step; boot_params.acpi_rsdp_addr points at the tables. */
export function prepareLinuxBoot(mem: GuestMemory, o: LinuxPartitionBoot): LinuxBootResult & { acpi: AcpiTables } {
  const acpi = writeAcpiTables(mem, { vcpus: o.vcpus, vmbus: o.vmbus });
  const r = loadLinux(mem, { kernel: o.kernel, initrd: o.initrd, cmdline: o.cmdline, acpiRsdpAddr: acpi.rsdpAddr });
  return { ...r, acpi };
}
