/**
 * The partition's fixed platform layout: I/O ports, MMIO windows, IRQ lines and firmware areas.
 * Device models, ACPI table generation and boot loaders all read these so they agree.
 */
export const COM1_PORT = 0x3f8;
export const COM1_IRQ = 4;
export const COM2_PORT = 0x2f8;
export const COM2_IRQ = 3;

export const PIC_MASTER_PORT = 0x20;
export const PIC_SLAVE_PORT = 0xa0;
export const PIC_ELCR_PORT = 0x4d0; // 2 ports
export const PIT_PORT = 0x40; // 4 ports
export const PIT_IRQ = 0;
export const PORT61 = 0x61; // PIT channel 2 gate / speaker, NMI status
export const I8042_DATA_PORT = 0x60;
export const I8042_CMD_PORT = 0x64;
export const I8042_KBD_IRQ = 1;
export const I8042_AUX_IRQ = 12;
export const RTC_PORT = 0x70; // 2 ports
export const RTC_IRQ = 8;
export const POST_PORT = 0x80;
export const FAST_A20_PORT = 0x92;
export const DEBUG_EXIT_PORT = 0xf4; // QEMU isa-debug-exit, exit code = (value << 1) | 1
export const RESET_CONTROL_PORT = 0xcf9;

/** ACPI fixed hardware (FADT points here). */
export const ACPI_PM1A_EVT_PORT = 0x600; // 4 ports: PM1a_STS, PM1a_EN
export const ACPI_PM1A_CNT_PORT = 0x604; // 2 ports
export const ACPI_PM_TMR_PORT = 0x608; // 4 ports, 24-bit 3.579545 MHz counter
export const ACPI_GPE0_PORT = 0x620; // 8 ports (STS 4, EN 4)
export const ACPI_SCI_IRQ = 9;
export const ACPI_SMI_CMD_PORT = 0; // no SMM: ACPI mode is always on (SCI_EN set)
export const ACPI_RESET_PORT = RESET_CONTROL_PORT;
export const ACPI_RESET_VALUE = 0x06;
/** SLP_TYP value for S5 in \_S5 and the PM1 control register. */
export const ACPI_S5_SLP_TYP = 5;

export const IOAPIC_BASE = 0xfec0_0000;
export const IOAPIC_SIZE = 0x1000;
export const IOAPIC_PINS = 24;
export const IOAPIC_ID = 1; // LAPIC ids are the VP indexes (0..N-1); keep clear of them for small N
export const LAPIC_BASE = 0xfee0_0000;
export const LAPIC_SIZE = 0x1000;

/** Hyper-V VMBus: the SINT the guest's VMBus uses and the ACPI device's interrupt. */
export const VMBUS_SINT = 2;

/** Guest-physical areas used by the boot loaders (below 1 MiB, all marked reserved or used in e820). */
export const BOOT_GDT_ADDR = 0x500;
export const BOOT_PARAMS_ADDR = 0x7000; // Linux zero page
export const BOOT_CMDLINE_ADDR = 0x20000; // up to 64 KiB
export const BOOT_PAGE_TABLES_ADDR = 0x9000; // PML4 + PDPT + PDs (identity map for the 64-bit entry)
export const EBDA_START = 0x9fc00;
export const ACPI_TABLES_ADDR = 0xe0000; // RSDP and tables, 64 KiB (0xE0000-0xFFFFF is reserved in e820)
export const ACPI_TABLES_SIZE = 0x10000;
/** SMBIOS entry point and structures (Linux scans 0xF0000-0xFFFFF for the anchor). */
export const SMBIOS_ADDR = 0xf0000;
export const SMBIOS_SIZE = 0x1000;
export const KERNEL_LOAD_ADDR = 0x100000;

/** PCI (Hyper-V Gen 1 chipset): configuration mechanism #1 at 0xCF8/0xCFC; the root bridge's windows. */
export const PCI_CONFIG_PORT = 0xcf8; // 8 ports, 0xCF9 (reset control) inside is not PCI's
/** Where the firmware starts handing out I/O BARs (above every fixed legacy port). */
export const PCI_IO_BAR_BASE = 0xc000;
/** The memory window for PCI BARs: the MMIO hole below the IOAPIC (RAM below 4 GiB ends at 0xC0000000 at most). */
export const PCI_MMIO_BASE = 0xc000_0000;
export const PCI_MMIO_END = 0xfebf_ffff;

/** The PIIX4 IDE controller's legacy (compatibility mode) channels. */
export const IDE_PRIMARY_PORT = 0x1f0; // 8 ports
export const IDE_PRIMARY_CTRL_PORT = 0x3f6;
export const IDE_PRIMARY_IRQ = 14;
export const IDE_SECONDARY_PORT = 0x170;
export const IDE_SECONDARY_CTRL_PORT = 0x376;
export const IDE_SECONDARY_IRQ = 15;
