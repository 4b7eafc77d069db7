/**
 * SMBIOS tables: found and read the way Linux's DMI scan does (anchor on a 16-byte boundary in 0xF0000-0xFFFFF,
 * both checksums, structures walked by their lengths and string sets), and decoded by dmidecode, the outside
 * reference, from a dump of the same bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../src/platform/memory.js';
import { buildSmbios, partitionIdentity, serialFromUuid, stableVmUuid, writeSmbios } from '../../src/firmware/smbios.js';
import { buildAcpiTables } from '../../src/firmware/acpi/tables.js';
import { ACPI_TABLES_ADDR, SMBIOS_ADDR } from '../../src/platform/layout.js';

const UUID = '6f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4a5b';

interface Struct { type: number; formatted: Uint8Array; strings: string[] }

/** What drivers/firmware/dmi_scan.c does: scan, check, walk. */
function scan(mem: Uint8Array): { version: number; structs: Struct[] } {
  for (let q = 0xf0000; q < 0x100000; q += 16) {
    if (String.fromCharCode(...mem.subarray(q, q + 4)) !== '_SM_') continue;
    const len = mem[q + 5];
    assert.ok(len >= 30 && len <= 32, 'entry point length');
    assert.equal(mem.subarray(q, q + len).reduce((a, b) => (a + b) & 0xff, 0), 0, 'entry point checksum');
    const dmi = q + 16;
    assert.equal(String.fromCharCode(...mem.subarray(dmi, dmi + 5)), '_DMI_');
    assert.equal(mem.subarray(dmi, dmi + 15).reduce((a, b) => (a + b) & 0xff, 0), 0, 'intermediate checksum');
    const v = new DataView(mem.buffer, mem.byteOffset);
    const tableLen = v.getUint16(dmi + 6, true), base = v.getUint32(dmi + 8, true), count = v.getUint16(dmi + 12, true);
    const structs: Struct[] = [];
    let o = base;
    for (let i = 0; i < count; i++) {
      const type = mem[o], slen = mem[o + 1];
      assert.ok(slen >= 4, 'structure length');
      let s = o + slen;
      const strings: string[] = [];
      if (mem[s] === 0 && mem[s + 1] === 0) s += 2;
      else {
        for (;;) {
          let e = s;
          while (mem[e] !== 0) e++;
          strings.push(Buffer.from(mem.subarray(s, e)).toString('latin1'));
          s = e + 1;
          if (mem[s] === 0) { s++; break; }
        }
      }
      structs.push({ type, formatted: mem.slice(o + 4, o + slen), strings });
      o = s;
    }
    assert.equal(o - base, tableLen, 'the table length covers the structures exactly');
    return { version: (mem[q + 6] << 8) | mem[q + 7], structs };
  }
  throw new Error('no SMBIOS anchor');
}

const str = (s: Struct, index: number): string => (index === 0 ? '' : s.strings[index - 1]);

test('an enlightened partition presents Hyper-V\'s identity where Linux looks for it', () => {
  const mem = new GuestMemory(64 << 20);
  writeSmbios(mem, partitionIdentity({ enlightened: true, uuid: UUID }));
  const { version, structs } = scan(mem.bytes);
  assert.equal(version, 0x0208);
  assert.deepEqual(structs.map((s) => s.type), [0, 1, 2, 3, 127]);
  const sys = structs[1];
  assert.equal(str(sys, sys.formatted[0]), 'Microsoft Corporation');
  assert.equal(str(sys, sys.formatted[1]), 'Virtual Machine');
  // ata_piix's Virtual PC exception must not apply.
  assert.notEqual(str(sys, sys.formatted[2]), 'VS2005R2');
  // UUID: first three fields little-endian.
  const u = sys.formatted.subarray(4, 20);
  assert.equal(Buffer.from([u[3], u[2], u[1], u[0]]).toString('hex'), UUID.slice(0, 8));
  assert.equal(Buffer.from(u.subarray(8)).toString('hex'), UUID.slice(19, 23) + UUID.slice(24));
  assert.match(str(sys, sys.formatted[3]), /^\d{4}-\d{4}-\d{4}-\d{4}-\d{4}-\d{4}-\d{2}$/);
  // BIOS: the "virtual machine" characteristic (extension byte 2, bit 4).
  assert.equal(structs[0].formatted[15] & 0x10, 0x10);
});

test('an unenlightened partition does not match Hyper-V (its IDE disks must stay with ata_piix)', () => {
  const mem = new GuestMemory(64 << 20);
  writeSmbios(mem, partitionIdentity({ enlightened: false, uuid: UUID }));
  const sys = scan(mem.bytes).structs[1];
  assert.ok(!str(sys, sys.formatted[0]).includes('Microsoft Corporation'));
});

test('the SMBIOS area does not overlap the ACPI tables', () => {
  const acpi = buildAcpiTables({ vcpus: 64, vmbus: true, pci: true });
  assert.ok(ACPI_TABLES_ADDR + acpi.bytes.length <= SMBIOS_ADDR);
});

test('a VM without an id gets the same UUID on every run (icount boots must repeat), another name another one', () => {
  assert.equal(stableVmUuid('a'), stableVmUuid('a'));
  assert.notEqual(stableVmUuid('a'), stableVmUuid('b'));
  assert.match(stableVmUuid(''), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const mem = () => { const m = new GuestMemory(64 << 20); writeSmbios(m, partitionIdentity({ enlightened: true, uuid: stableVmUuid('x') })); return m.bytes.subarray(SMBIOS_ADDR, SMBIOS_ADDR + 4096); };
  assert.deepEqual(mem(), mem(), 'the same tables byte for byte');
});

test('serial numbers are stable per UUID and differ between UUIDs', () => {
  assert.equal(serialFromUuid(UUID), serialFromUuid(UUID));
  assert.notEqual(serialFromUuid(UUID), serialFromUuid('0f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4a5c'));
});

test('dmidecode decodes the same tables (outside reference)', { skip: spawnSync('dmidecode', ['--version']).status !== 0 ? 'dmidecode is not installed (Debian package dmidecode, in .ci/packages.txt)' : false }, () => {
  const b = buildSmbios(partitionIdentity({ enlightened: true, uuid: UUID }), 0);
  // A --dump-bin file: entry point at 0, table at 0x20 (buildSmbios' layout with base 0).
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-smbios-'));
  try {
    const f = join(dir, 'dmi.bin');
    writeFileSync(f, b);
    const r = spawnSync('dmidecode', ['--from-dump', f], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /invalid|corrupt|wrong/i);
    assert.match(r.stdout, /SMBIOS 2\.8 present/);
    assert.match(r.stdout, /System Information\n\s+Manufacturer: Microsoft Corporation\n\s+Product Name: Virtual Machine/);
    assert.match(r.stdout, new RegExp(`UUID: ${UUID}`, 'i'));
    assert.match(r.stdout, /Base Board Information\n\s+Manufacturer: Microsoft Corporation/);
    assert.match(r.stdout, /Chassis Information\n\s+Manufacturer: Microsoft Corporation\n\s+Type: Desktop/);
    assert.match(r.stdout, /System is a virtual machine/);
    assert.match(r.stdout, /Vendor: hyperts/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
