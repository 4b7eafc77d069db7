/**
 * ACPI tables for a firmware-less PC platform: RSDP v2 -> XSDT (and RSDT) -> FADT (rev 6, full hardware model:
 * PM1a, PM timer, GPE0, SCI 9, reset register) -> FACS + DSDT, and MADT. Addresses and ports come from
 * platform/layout.ts so the device models and the guest's view agree.
 */
import type { GuestMemory } from '../../platform/memory.js';
import * as L from '../../platform/layout.js';
import { buildDsdt, type DsdtOptions } from './dsdt.js';

export interface AcpiOptions extends DsdtOptions {
  /** Number of virtual processors (APIC ids 0..n-1). */
  vcpus: number;
  /** Guest-physical base of the table area (default layout.ACPI_TABLES_ADDR). */
  base?: number;
}

export interface AcpiTableInfo { signature: string; addr: number; length: number }
export interface AcpiTables { base: number; bytes: Uint8Array; rsdpAddr: number; tables: AcpiTableInfo[] }

export const OEM_ID = 'HYPRTS';
export const OEM_TABLE_ID = 'HYPERTS ';
const CREATOR_ID = 'HTS ';

/** FADT flags (ACPI 6.4 table 5.10). */
export const FADT_WBINVD = 1 << 0, FADT_PROC_C1 = 1 << 2, FADT_PWR_BUTTON = 1 << 4, FADT_SLP_BUTTON = 1 << 5,
  FADT_RESET_REG_SUP = 1 << 10, FADT_HW_REDUCED = 1 << 20;
/** IA-PC boot architecture flags. */
export const IAPC_LEGACY_DEVICES = 1 << 0, IAPC_8042 = 1 << 1, IAPC_NO_VGA = 1 << 2;
/** MADT interrupt flags: polarity bits 0-1 (1 high, 3 low), trigger bits 2-3 (1 edge, 3 level). */
export const MPS_ACTIVE_HIGH = 1, MPS_LEVEL = 3 << 2;

export function checksum(b: Uint8Array, start: number, len: number): number {
  let s = 0;
  for (let i = start; i < start + len; i++) s = (s + b[i]) & 0xff;
  return s;
}

class Area {
  readonly bytes: Uint8Array;
  readonly v: DataView;
  off = 0;
  constructor(readonly base: number, size: number) { this.bytes = new Uint8Array(size); this.v = new DataView(this.bytes.buffer); }
  alloc(len: number, align: number): number {
    this.off = Math.ceil(this.off / align) * align;
    if (this.off + len > this.bytes.length) throw new RangeError('ACPI tables exceed the reserved area');
    const o = this.off;
    this.off += len;
    return o;
  }
}

function ascii(a: Uint8Array, o: number, s: string, len: number): void {
  for (let i = 0; i < len; i++) a[o + i] = i < s.length ? s.charCodeAt(i) : 0x20;
}
function u64(v: DataView, o: number, x: number): void { v.setUint32(o, x >>> 0, true); v.setUint32(o + 4, Math.floor(x / 2 ** 32), true); }

/** 36-byte system description header; checksum filled by `seal`. */
function header(a: Area, o: number, sig: string, len: number, rev: number): void {
  ascii(a.bytes, o, sig, 4);
  a.v.setUint32(o + 4, len, true);
  a.bytes[o + 8] = rev;
  ascii(a.bytes, o + 10, OEM_ID, 6);
  ascii(a.bytes, o + 16, OEM_TABLE_ID, 8);
  a.v.setUint32(o + 24, 1, true);
  ascii(a.bytes, o + 28, CREATOR_ID, 4);
  a.v.setUint32(o + 32, 1, true);
}
function seal(a: Area, o: number, len: number, csumOff = 9): void {
  a.bytes[o + csumOff] = 0;
  a.bytes[o + csumOff] = (256 - checksum(a.bytes, o, len)) & 0xff;
}

/** Generic Address Structure (12 bytes). */
function gas(a: Area, o: number, space: 0 | 1, bitWidth: number, accessSize: number, addr: number): void {
  a.bytes[o] = space; a.bytes[o + 1] = bitWidth; a.bytes[o + 2] = 0; a.bytes[o + 3] = accessSize; u64(a.v, o + 4, addr);
}

export function buildAcpiTables(opts: AcpiOptions): AcpiTables {
  if (!Number.isInteger(opts.vcpus) || opts.vcpus < 1 || opts.vcpus > 254) throw new RangeError('vcpus must be 1..254');
  const a = new Area(opts.base ?? L.ACPI_TABLES_ADDR, L.ACPI_TABLES_SIZE);
  const tables: AcpiTableInfo[] = [];
  const gpa = (o: number): number => a.base + o;

  // RSDP first: 16-byte aligned at the start of the area, inside the 0xE0000-0xFFFFF legacy scan window.
  const rsdp = a.alloc(36, 16);

  const facs = a.alloc(64, 64);
  ascii(a.bytes, facs, 'FACS', 4);
  a.v.setUint32(facs + 4, 64, true);
  a.bytes[facs + 32] = 2; // version
  tables.push({ signature: 'FACS', addr: gpa(facs), length: 64 });

  const aml = buildDsdt(opts);
  const dsdtLen = 36 + aml.length;
  const dsdt = a.alloc(dsdtLen, 16);
  header(a, dsdt, 'DSDT', dsdtLen, 2);
  a.bytes.set(aml, dsdt + 36);
  seal(a, dsdt, dsdtLen);
  tables.push({ signature: 'DSDT', addr: gpa(dsdt), length: dsdtLen });

  const fadtLen = 276;
  const fadt = a.alloc(fadtLen, 16);
  header(a, fadt, 'FACP', fadtLen, 6);
  const f = (off: number): number => fadt + off;
  a.v.setUint32(f(36), gpa(facs), true);
  a.v.setUint32(f(40), gpa(dsdt), true);
  a.bytes[f(45)] = 0; // preferred PM profile: unspecified
  a.v.setUint16(f(46), L.ACPI_SCI_IRQ, true);
  a.v.setUint32(f(48), L.ACPI_SMI_CMD_PORT, true); // 0: no SMM, always in ACPI mode
  a.v.setUint32(f(56), L.ACPI_PM1A_EVT_PORT, true);
  a.v.setUint32(f(64), L.ACPI_PM1A_CNT_PORT, true);
  a.v.setUint32(f(76), L.ACPI_PM_TMR_PORT, true);
  a.v.setUint32(f(80), L.ACPI_GPE0_PORT, true);
  a.bytes[f(88)] = 4; a.bytes[f(89)] = 2; a.bytes[f(91)] = 4; a.bytes[f(92)] = 8;
  a.v.setUint16(f(96), 101, true); a.v.setUint16(f(98), 1001, true); // no C2/C3
  a.bytes[f(108)] = 0x32; // RTC century register
  let iapc = IAPC_LEGACY_DEVICES | IAPC_NO_VGA;
  if (opts.i8042 !== false) iapc |= IAPC_8042;
  a.v.setUint16(f(109), iapc, true);
  // No fixed-feature sleep button; the power button is the fixed PM1 one (the host can "press" it).
  a.v.setUint32(f(112), FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_RESET_REG_SUP, true);
  gas(a, f(116), 1, 8, 1, L.ACPI_RESET_PORT);
  a.bytes[f(128)] = L.ACPI_RESET_VALUE;
  a.bytes[f(131)] = 1; // FADT minor version (6.1)
  u64(a.v, f(132), gpa(facs));
  u64(a.v, f(140), gpa(dsdt));
  gas(a, f(148), 1, 32, 2, L.ACPI_PM1A_EVT_PORT);
  gas(a, f(172), 1, 16, 2, L.ACPI_PM1A_CNT_PORT);
  gas(a, f(208), 1, 32, 3, L.ACPI_PM_TMR_PORT);
  gas(a, f(220), 1, 64, 1, L.ACPI_GPE0_PORT);
  seal(a, fadt, fadtLen);
  tables.push({ signature: 'FACP', addr: gpa(fadt), length: fadtLen });

  const n = opts.vcpus;
  const madtLen = 44 + 8 * n + 12 + 10 * 2 + 6;
  const madt = a.alloc(madtLen, 16);
  header(a, madt, 'APIC', madtLen, 5);
  a.v.setUint32(madt + 36, L.LAPIC_BASE, true);
  a.v.setUint32(madt + 40, 1, true); // PCAT_COMPAT: dual 8259s present
  let o = madt + 44;
  for (let i = 0; i < n; i++) {
    a.bytes.set([0, 8, i, i], o); a.v.setUint32(o + 4, 1, true); o += 8; // enabled
  }
  a.bytes.set([1, 12, L.IOAPIC_ID, 0], o); a.v.setUint32(o + 4, L.IOAPIC_BASE, true); a.v.setUint32(o + 8, 0, true); o += 12;
  const iso = (src: number, gsi: number, flags: number): void => {
    a.bytes.set([2, 10, 0, src], o); a.v.setUint32(o + 4, gsi, true); a.v.setUint16(o + 8, flags, true); o += 10;
  };
  iso(L.PIT_IRQ, 2, 0);
  iso(L.ACPI_SCI_IRQ, L.ACPI_SCI_IRQ, MPS_ACTIVE_HIGH | MPS_LEVEL);
  a.bytes.set([4, 6, 0xff, 0, 0, 1], o); o += 6; // LAPIC NMI on LINT1 for all processors
  seal(a, madt, madtLen);
  tables.push({ signature: 'APIC', addr: gpa(madt), length: madtLen });

  const entries = [fadt, madt];
  const xsdtLen = 36 + 8 * entries.length;
  const xsdt = a.alloc(xsdtLen, 16);
  header(a, xsdt, 'XSDT', xsdtLen, 1);
  entries.forEach((e, i) => u64(a.v, xsdt + 36 + 8 * i, gpa(e)));
  seal(a, xsdt, xsdtLen);
  tables.push({ signature: 'XSDT', addr: gpa(xsdt), length: xsdtLen });

  const rsdtLen = 36 + 4 * entries.length;
  const rsdt = a.alloc(rsdtLen, 16);
  header(a, rsdt, 'RSDT', rsdtLen, 1);
  entries.forEach((e, i) => a.v.setUint32(rsdt + 36 + 4 * i, gpa(e), true));
  seal(a, rsdt, rsdtLen);
  tables.push({ signature: 'RSDT', addr: gpa(rsdt), length: rsdtLen });

  ascii(a.bytes, rsdp, 'RSD PTR ', 8);
  ascii(a.bytes, rsdp + 9, OEM_ID, 6);
  a.bytes[rsdp + 15] = 2;
  a.v.setUint32(rsdp + 16, gpa(rsdt), true);
  a.v.setUint32(rsdp + 20, 36, true);
  u64(a.v, rsdp + 24, gpa(xsdt));
  seal(a, rsdp, 20, 8);
  seal(a, rsdp, 36, 32);

  return { base: a.base, bytes: a.bytes.subarray(0, a.off), rsdpAddr: gpa(rsdp), tables };
}

/** Build the tables and copy them into guest memory; returns the RSDP address for boot_params. */
export function writeAcpiTables(mem: GuestMemory, opts: AcpiOptions): AcpiTables {
  const t = buildAcpiTables(opts);
  mem.write(t.base, t.bytes);
  return t;
}
