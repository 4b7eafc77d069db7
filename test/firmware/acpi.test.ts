import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../src/platform/memory.js';
import * as L from '../../src/platform/layout.js';
import { writeAcpiTables, buildAcpiTables, checksum, FADT_RESET_REG_SUP, FADT_HW_REDUCED } from '../../src/firmware/acpi/tables.js';

const MiB = 1024 * 1024;
const sig = (m: GuestMemory, a: number, n = 4): string => Buffer.from(m.slice(a, n)).toString('latin1');
const u32 = (m: GuestMemory, a: number): number => m.view.getUint32(a, true);
const u64 = (m: GuestMemory, a: number): number => u32(m, a) + u32(m, a + 4) * 2 ** 32;

/** Find the RSDP the way Linux's legacy scan does: 16-byte steps through 0xE0000-0xFFFFF. */
function scanRsdp(m: GuestMemory): number {
  for (let a = 0xe0000; a < 0x100000; a += 16) if (sig(m, a, 8) === 'RSD PTR ' && checksum(m.bytes, a, 20) === 0) return a;
  return -1;
}

function tableAt(m: GuestMemory, a: number): { sig: string; len: number } {
  const len = u32(m, a + 4);
  assert.equal(checksum(m.bytes, a, len), 0, `checksum of ${sig(m, a)}`);
  return { sig: sig(m, a), len };
}

function load(vcpus = 2, vmbus = true): { m: GuestMemory; rsdp: number } {
  const m = new GuestMemory(32 * MiB);
  const t = writeAcpiTables(m, { vcpus, vmbus });
  return { m, rsdp: t.rsdpAddr };
}

test('acpi: RSDP v2 is found by a legacy scan and checks out', () => {
  const { m, rsdp } = load();
  assert.equal(scanRsdp(m), rsdp);
  assert.ok(rsdp >= L.ACPI_TABLES_ADDR && rsdp < L.ACPI_TABLES_ADDR + L.ACPI_TABLES_SIZE);
  assert.equal(m.bytes[rsdp + 15], 2);
  assert.equal(u32(m, rsdp + 20), 36);
  assert.equal(checksum(m.bytes, rsdp, 36), 0);
  assert.equal(tableAt(m, u32(m, rsdp + 16)).sig, 'RSDT');
});

test('acpi: XSDT -> FADT -> DSDT/FACS and MADT, all checksummed', () => {
  const { m, rsdp } = load();
  const xsdt = u64(m, rsdp + 24);
  const x = tableAt(m, xsdt);
  assert.equal(x.sig, 'XSDT');
  const entries = Array.from({ length: (x.len - 36) / 8 }, (_, i) => u64(m, xsdt + 36 + 8 * i));
  const bySig = new Map(entries.map((e) => [tableAt(m, e).sig, e]));
  assert.deepEqual([...bySig.keys()].sort(), ['APIC', 'FACP']);
  const f = bySig.get('FACP')!;
  assert.equal(m.bytes[f + 8], 6, 'FADT revision');
  assert.equal(u32(m, f + 4), 276);
  const dsdt = u64(m, f + 140);
  assert.equal(u32(m, f + 40), dsdt);
  assert.equal(tableAt(m, dsdt).sig, 'DSDT');
  const facs = u64(m, f + 132);
  assert.equal(u32(m, f + 36), facs);
  assert.equal(sig(m, facs), 'FACS'); assert.equal(facs % 64, 0); assert.equal(u32(m, facs + 4), 64);
  assert.equal(m.view.getUint16(f + 46, true), 9, 'SCI IRQ');
  assert.equal(u32(m, f + 56), L.ACPI_PM1A_EVT_PORT);
  assert.equal(u32(m, f + 64), L.ACPI_PM1A_CNT_PORT);
  assert.equal(u32(m, f + 76), L.ACPI_PM_TMR_PORT);
  assert.equal(u32(m, f + 80), L.ACPI_GPE0_PORT);
  const flags = u32(m, f + 112);
  assert.ok(flags & FADT_RESET_REG_SUP);
  assert.equal(flags & FADT_HW_REDUCED, 0, 'full hardware model');
  assert.equal(m.bytes[f + 116], 1, 'reset register in I/O space');
  assert.equal(u64(m, f + 120), 0xcf9);
  assert.equal(m.bytes[f + 128], 6);
  assert.equal(m.view.getUint16(f + 109, true) & 3, 3, 'LEGACY_DEVICES | 8042');
  assert.equal(u64(m, f + 148 + 4), L.ACPI_PM1A_EVT_PORT, 'X_PM1a_EVT_BLK');
  assert.equal(u64(m, f + 208 + 4), L.ACPI_PM_TMR_PORT, 'X_PM_TMR_BLK');
});

test('acpi: MADT lists every vCPU, the IOAPIC, overrides and LINT1 NMI', () => {
  const { m, rsdp } = load(3);
  const xsdt = u64(m, rsdp + 24);
  const madt = [u64(m, xsdt + 36), u64(m, xsdt + 44)].find((a) => sig(m, a) === 'APIC')!;
  const { len } = tableAt(m, madt);
  assert.equal(u32(m, madt + 36), L.LAPIC_BASE);
  const lapics: number[] = [];
  const isos: Array<[number, number, number]> = [];
  let ioapic: [number, number, number] | null = null, nmi: [number, number] | null = null;
  for (let o = madt + 44; o < madt + len;) {
    const type = m.bytes[o], l = m.bytes[o + 1];
    assert.ok(l >= 2);
    if (type === 0) { assert.equal(u32(m, o + 4) & 1, 1); lapics.push(m.bytes[o + 3]); }
    if (type === 1) ioapic = [m.bytes[o + 2], u32(m, o + 4), u32(m, o + 8)];
    if (type === 2) isos.push([m.bytes[o + 3], u32(m, o + 4), m.view.getUint16(o + 8, true)]);
    if (type === 4) nmi = [m.bytes[o + 2], m.bytes[o + 5]];
    o += l;
  }
  assert.deepEqual(lapics, [0, 1, 2]);
  assert.deepEqual(ioapic, [L.IOAPIC_ID, L.IOAPIC_BASE, 0]);
  assert.deepEqual(isos, [[0, 2, 0], [9, 9, 0x0d]]);
  assert.deepEqual(nmi, [0xff, 1]);
});

function iasl(dir: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync('iasl', args, { cwd: dir });
  return { status: r.status, out: r.stdout.toString() + r.stderr.toString() };
}

/** Disassemble with iasl; strip the comment header so outputs can be compared. */
function disassemble(dir: string, file: string, aml: Uint8Array): string {
  writeFileSync(join(dir, file + '.dat'), aml);
  const r = iasl(dir, ['-d', file + '.dat']);
  assert.equal(r.status, 0, r.out);
  assert.doesNotMatch(r.out, /\bError\b/);
  return readFileSync(join(dir, file + '.dsl'), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
}

test('acpi: iasl disassembles the DSDT; recompiling it gives the same namespace', (t) => {
  if (spawnSync('iasl', ['-v']).status !== 0) { t.skip('iasl (acpica-tools) not installed'); return; }
  const dir = mkdtempSync(join(tmpdir(), 'acpi-'));
  try {
    for (const vmbus of [true, false]) {
      const tables = buildAcpiTables({ vcpus: 1, vmbus });
      const d = tables.tables.find((x) => x.signature === 'DSDT')!;
      const dsdt = tables.bytes.subarray(d.addr - tables.base, d.addr - tables.base + d.length);
      const dsl = disassemble(dir, 'ours', dsdt);
      assert.match(dsl, /Name \(_S5, Package \(0x04\)\s*\{\s*0x05,\s*0x05,\s*Zero,\s*Zero\s*\}/);
      assert.match(dsl, /Device \(COM1\)[\s\S]*EisaId \("PNP0501"\)[\s\S]*IO \(Decode16,\s*0x03F8,\s*0x03F8,\s*0x01,\s*0x08,[\s\S]*IRQNoFlags \(\)\s*\{4\}/);
      assert.match(dsl, /Device \(RTC\)[\s\S]*EisaId \("PNP0B00"\)/);
      assert.match(dsl, /Device \(KBD\)[\s\S]*EisaId \("PNP0303"\)/);
      if (vmbus) assert.match(dsl, /Device \(VMBS\)\s*\{\s*Name \(_HID, "VMBUS"\)[\s\S]*Name \(_CRS, /);
      else assert.doesNotMatch(dsl, /VMBS/);
      // Recompile the disassembly (-f: iasl insists on 7-8 character _HID strings, Linux matches "VMBUS")
      // and disassemble again: the two listings must agree.
      writeFileSync(join(dir, 'again.dsl'), readFileSync(join(dir, 'ours.dsl')));
      const c = iasl(dir, ['-f', '-p', join(dir, 'again'), join(dir, 'again.dsl')]);
      const again = disassemble(dir, 'again2', readFileSync(join(dir, 'again.aml')));
      assert.equal(again, dsl, c.out);
      assert.deepEqual(readFileSync(join(dir, 'again.aml')).subarray(36), Buffer.from(dsdt.subarray(36)), 'iasl emits the same AML');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('acpi: iasl accepts the FADT and MADT', (t) => {
  if (spawnSync('iasl', ['-v']).status !== 0) { t.skip('iasl (acpica-tools) not installed'); return; }
  const dir = mkdtempSync(join(tmpdir(), 'acpi-'));
  try {
    const tables = buildAcpiTables({ vcpus: 2, vmbus: true });
    for (const s of ['FACP', 'APIC']) {
      const x = tables.tables.find((y) => y.signature === s)!;
      const dsl = disassemble(dir, s, tables.bytes.subarray(x.addr - tables.base, x.addr - tables.base + x.length));
      assert.doesNotMatch(dsl, /Invalid|\*\*\*\* Unknown/i, s);
    }
    const facp = readFileSync(join(dir, 'FACP.dsl'), 'utf8');
    assert.match(facp, /Reset Register Supported \(V2\) : 1/);
    assert.match(facp, /Hardware Reduced \(V5\) : 0/);
    assert.match(facp, /8042 Present on ports 60\/64 \(V2\) : 1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
