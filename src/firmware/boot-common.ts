/**
 * Pieces shared by the boot loaders: the physical memory map, the boot GDT and the identity page tables.
 */
import { GuestMemory, FOUR_GIB } from '../platform/memory.js';
import { BOOT_GDT_ADDR, BOOT_PAGE_TABLES_ADDR, EBDA_START, IOAPIC_BASE, IOAPIC_SIZE, LAPIC_BASE, LAPIC_SIZE, KERNEL_LOAD_ADDR } from '../platform/layout.js';

export class BootError extends Error {}

export const E820_RAM = 1;
export const E820_RESERVED = 2;
export interface E820Entry { addr: number; size: number; type: number }

/** Smallest guest we can place boot structures, a kernel and an initrd in. */
export const MIN_GUEST_MEMORY = 16 * 1024 * 1024;

/**
 * The guest's memory map: RAM below the EBDA, reserved EBDA..1 MiB (BIOS area and the ACPI tables at 0xE0000),
 * RAM from 1 MiB to the MMIO hole, the IOAPIC/LAPIC windows reserved, RAM above 4 GiB.
 */
export function e820Map(mem: GuestMemory): E820Entry[] {
  if (mem.lowRamEnd < MIN_GUEST_MEMORY) throw new BootError(`guest memory ${mem.size} bytes is too small (at least ${MIN_GUEST_MEMORY / 1048576} MiB)`);
  const m: E820Entry[] = [
    { addr: 0, size: EBDA_START, type: E820_RAM },
    { addr: EBDA_START, size: KERNEL_LOAD_ADDR - EBDA_START, type: E820_RESERVED },
    { addr: KERNEL_LOAD_ADDR, size: mem.lowRamEnd - KERNEL_LOAD_ADDR, type: E820_RAM },
    { addr: IOAPIC_BASE, size: IOAPIC_SIZE, type: E820_RESERVED },
    { addr: LAPIC_BASE, size: LAPIC_SIZE, type: E820_RESERVED },
  ];
  if (mem.highRamSize > 0) m.push({ addr: FOUR_GIB, size: mem.highRamSize, type: E820_RAM });
  return m;
}

/** GDT selectors written by `writeBootGdt`. */
export const SEL_CODE32 = 0x08;
export const SEL_CODE64 = 0x10;
export const SEL_DATA = 0x18;
export const BOOT_GDT_LIMIT = 4 * 8 - 1;

/** Flat descriptors: 0x08 32-bit code, 0x10 64-bit code, 0x18 data (base 0, limit 4 GiB, accessed bits set). */
export function writeBootGdt(mem: GuestMemory): void {
  const v = mem.view, g = BOOT_GDT_ADDR;
  const put = (sel: number, lo: number, hi: number): void => { v.setUint32(g + sel, lo, true); v.setUint32(g + sel + 4, hi, true); };
  put(0, 0, 0);
  put(SEL_CODE32, 0x0000ffff, 0x00cf9b00);
  put(SEL_CODE64, 0x0000ffff, 0x00af9b00);
  put(SEL_DATA, 0x0000ffff, 0x00cf9300);
}

/** PML4, one PDPT and four page directories of 2 MiB pages identity-mapping the first 4 GiB. */
export const BOOT_PAGE_TABLES_SIZE = 6 * 4096;

export function writeIdentityPageTables(mem: GuestMemory): number {
  const base = BOOT_PAGE_TABLES_ADDR;
  const t = mem.slice(base, BOOT_PAGE_TABLES_SIZE);
  t.fill(0);
  const v = mem.view;
  const pdpt = base + 0x1000, pd0 = base + 0x2000;
  v.setUint32(base, pdpt | 0x3, true); // present, writable
  for (let i = 0; i < 4; i++) {
    v.setUint32(pdpt + i * 8, (pd0 + i * 0x1000) | 0x3, true);
    for (let j = 0; j < 512; j++) {
      const phys = i * 0x4000_0000 + j * 0x20_0000;
      v.setUint32(pd0 + i * 0x1000 + j * 8, (phys | 0x83) >>> 0, true); // present, writable, 2 MiB page
    }
  }
  return base;
}

export const CR0_PE = 1, CR0_MP = 2, CR0_ET = 0x10, CR0_NE = 0x20, CR0_WP = 0x10000, CR0_PG = 0x8000_0000;
export const CR4_PAE = 0x20;
export const EFER_LME = 0x100, EFER_LMA = 0x400;

export function alignUp(x: number, a: number): number { return Math.ceil(x / a) * a; }
export function alignDown(x: number, a: number): number { return Math.floor(x / a) * a; }
