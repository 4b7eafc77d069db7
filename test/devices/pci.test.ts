import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoBus, MmioBus } from '../../src/platform/bus.js';
import { PciBus, pciIntxGsi, programPciLikeFirmware } from '../../src/devices/pci/bus.js';
import { PciFunction } from '../../src/devices/pci/function.js';
import { I440bxHostBridge, Piix4IsaBridge } from '../../src/devices/pci/chipset.js';
import type { IrqRouter } from '../../src/devices/irq.js';
import { buildAcpiTables } from '../../src/firmware/acpi/tables.js';
import { LineRecorder } from './helpers.js';

const cfgAddr = (dev: number, fn: number, reg: number, bus = 0): number => (0x80000000 | (bus << 16) | (dev << 11) | (fn << 8) | reg) >>> 0;

function setup(): { io: IoBus; mmio: MmioBus; pci: PciBus; lines: LineRecorder; read: (d: number, f: number, r: number, s?: 1 | 2 | 4) => number; write: (d: number, f: number, r: number, v: number, s?: 1 | 2 | 4) => void } {
  const io = new IoBus(), mmio = new MmioBus(), lines = new LineRecorder();
  const pci = new PciBus(io, mmio, lines as unknown as IrqRouter);
  const read = (d: number, f: number, r: number, s: 1 | 2 | 4 = 4): number => { io.write(0xcf8, 4, cfgAddr(d, f, r & 0xfc)); return io.read(0xcfc + (r & 3), s); };
  const write = (d: number, f: number, r: number, v: number, s: 1 | 2 | 4 = 4): void => { io.write(0xcf8, 4, cfgAddr(d, f, r & 0xfc)); io.write(0xcfc + (r & 3), s, v); };
  return { io, mmio, pci, lines, read, write };
}

/** A test function with an I/O BAR, a memory BAR and INTA. */
class TestFunction extends PciFunction {
  ioAccesses: number[] = [];
  constructor() {
    super('test', { vendorId: 0x1234, deviceId: 0x5678, revision: 1, classCode: 0x02, subclass: 0, progIf: 0, interruptPin: 1 }, [
      { kind: 'io', size: 32, name: 'regs', io: { pioRead: (o) => { this.ioAccesses.push(o); return 0xab; }, pioWrite: () => {} } },
      { kind: 'mem32', size: 0x1000, name: 'mmio', mmio: { mmioRead: (o) => 0x1000 + o, mmioWrite: () => {} } },
    ]);
  }
  irq(level: boolean): void { this.setInterrupt(level); }
}

test('pci: mechanism #1 finds the Gen 1 chipset functions; empty slots and other buses read all ones', () => {
  const { pci, read, io } = setup();
  pci.add(new I440bxHostBridge(), 0);
  pci.add(new Piix4IsaBridge(), 7, 0);
  assert.equal(read(0, 0, 0), 0x71928086);
  assert.equal(read(0, 0, 8) >>> 8, 0x060000);
  assert.equal(read(7, 0, 0), 0x71108086);
  assert.equal(read(7, 0, 0x0c) >>> 16 & 0xff, 0x80, 'PIIX4 is multi-function');
  assert.equal(read(3, 0, 0), 0xffffffff);
  assert.equal(read(7, 1, 0), 0xffffffff);
  assert.equal(read(0, 0, 0, 2), 0x8086);
  assert.equal(read(0, 0, 2, 2), 0x7192);
  io.write(0xcf8, 4, cfgAddr(0, 0, 0, 1));
  assert.equal(io.read(0xcfc, 4), 0xffffffff, 'bus 1 does not exist');
  // Linux's pci_check_type1: CONFIG_ADDRESS reads back a dword; byte writes to 0xCFB do not change it.
  io.write(0xcf8, 4, 0x80000000);
  io.write(0xcfb, 1, 0x01);
  assert.equal(io.read(0xcf8, 4), 0x80000000);
  io.write(0xcf8, 4, 0);
  assert.equal(io.read(0xcfc, 4), 0xffffffff, 'disabled CONFIG_ADDRESS');
});

test('pci: read-only fields stay read-only; status bits are write-one-to-clear', () => {
  const { pci, read, write } = setup();
  pci.add(new TestFunction(), 3);
  write(3, 0, 0, 0xdeadbeef);
  assert.equal(read(3, 0, 0), 0x56781234);
  write(3, 0, 0x3c, 0xffffffff);
  assert.equal(read(3, 0, 0x3c) & 0xffff, 0x01ff, 'interrupt line writable, pin not');
  write(3, 0, 0x08, 0);
  assert.equal(read(3, 0, 0x08) >>> 8, 0x020000, 'class code read-only');
});

test('pci: BAR sizing reports the size; I/O and memory BARs decode only while enabled, and move', () => {
  const { pci, read, write, io, mmio } = setup();
  const f = new TestFunction();
  pci.add(f, 3);
  write(3, 0, 0x10, 0xffffffff);
  assert.equal(read(3, 0, 0x10), 0xffffffe1, 'I/O BAR of 32 ports');
  write(3, 0, 0x14, 0xffffffff);
  assert.equal(read(3, 0, 0x14), 0xfffff000, 'memory BAR of 4 KiB');
  write(3, 0, 0x10, 0xd000);
  write(3, 0, 0x14, 0xe0000000);
  assert.equal(io.read(0xd004, 1), 0xff, 'not decoded before I/O space is enabled');
  assert.equal(mmio.read(0xe0000010, 4), 0xffffffff);
  write(3, 0, 0x04, 0x3, 2);
  assert.equal(io.read(0xd004, 1), 0xab);
  assert.deepEqual(f.ioAccesses, [4]);
  assert.equal(mmio.read(0xe0000010, 4), 0x1010);
  write(3, 0, 0x10, 0xd100);
  assert.equal(io.read(0xd004, 1), 0xff, 'old range released');
  assert.equal(io.read(0xd104, 1), 0xab);
  write(3, 0, 0x04, 0x0, 2);
  assert.equal(io.read(0xd104, 1), 0xff);
  assert.equal(mmio.read(0xe0000010, 4), 0xffffffff);
  // Moving a BAR many times must not exhaust the I/O bus's table.
  write(3, 0, 0x04, 0x1, 2);
  for (let i = 0; i < 70000; i++) write(3, 0, 0x10, 0xd000 + (i & 0xff) * 0x20);
  assert.equal(io.read(0xd000 + (69999 & 0xff) * 0x20, 1), 0xab);
});

test('pci: a BAR programmed over another device stays unmapped (no host error)', () => {
  const { pci, write, io } = setup();
  const conflicts: string[] = [];
  pci.onConflict = (m) => conflicts.push(m);
  io.register(0x3f8, 8, { pioRead: () => 0x55, pioWrite: () => {} }, 'com1');
  pci.add(new TestFunction(), 3);
  write(3, 0, 0x10, 0x3e0);
  write(3, 0, 0x04, 0x1, 2);
  assert.equal(io.read(0x3f8, 1), 0x55, 'COM1 keeps its ports');
  assert.equal(conflicts.length, 1);
  write(3, 0, 0x10, 0xcf0); // over the config ports themselves
  assert.equal(io.read(0xcf8, 4) >>> 31, 1);
});

test('pci: INTx follows the _PRT swizzle, is wired-OR and masked by INTx disable', () => {
  const { pci, write, lines } = setup();
  const a = new TestFunction(), b = new TestFunction();
  pci.add(a, 4); pci.add(b, 8);
  const gsi = pciIntxGsi(4, 1);
  assert.equal(gsi, pciIntxGsi(8, 1), 'devices 4 and 8 share PIRQ');
  a.irq(true); b.irq(true);
  assert.equal(lines.levels.get(gsi), true);
  a.irq(false);
  assert.equal(lines.levels.get(gsi), true, 'still asserted by the other function');
  write(8, 0, 0x04, 0x400, 2);
  assert.equal(lines.levels.get(gsi), false, 'INTx disable');
  write(8, 0, 0x04, 0, 2);
  assert.equal(lines.levels.get(gsi), true);
});

test('pci: firmware programming assigns aligned BARs, enables decoding and sets the interrupt line', () => {
  const { pci, read, io } = setup();
  pci.add(new I440bxHostBridge(), 0);
  pci.add(new TestFunction(), 5);
  programPciLikeFirmware(pci, 0xc010, 0xc0000000);
  assert.equal(read(5, 0, 0x10), 0xc021, 'aligned to 32 ports');
  assert.equal(read(5, 0, 0x14), 0xc0000000);
  assert.equal(read(5, 0, 0x04) & 0x7, 0x7);
  assert.equal(read(5, 0, 0x3c) & 0xff, pciIntxGsi(5, 1));
  assert.equal(io.read(0xc020, 1), 0xab);
});

test('pci: save and restore bring back what the guest programmed', () => {
  const a = setup();
  a.pci.add(new TestFunction(), 3);
  a.write(3, 0, 0x10, 0xd000); a.write(3, 0, 0x04, 1, 2);
  const s = a.pci.saveState();
  const b = setup();
  b.pci.add(new TestFunction(), 3);
  b.pci.restoreState(JSON.parse(JSON.stringify(s)));
  assert.equal(b.io.read(0xd000, 1), 0xab);
  assert.equal(b.read(3, 0, 0), 0x56781234);
});

test('acpi: the DSDT describes PCI0 (PNP0A03, windows, _PRT) and iasl round-trips it', (t) => {
  if (spawnSync('iasl', ['-v']).status !== 0) { t.skip('iasl (acpica-tools) not installed'); return; }
  const dir = mkdtempSync(join(tmpdir(), 'pci-acpi-'));
  try {
    const tables = buildAcpiTables({ vcpus: 1, vmbus: false, pci: true });
    const d = tables.tables.find((x) => x.signature === 'DSDT')!;
    const dsdt = tables.bytes.subarray(d.addr - tables.base, d.addr - tables.base + d.length);
    writeFileSync(join(dir, 'd.dat'), dsdt);
    const r = spawnSync('iasl', ['-d', 'd.dat'], { cwd: dir });
    assert.equal(r.status, 0, r.stdout.toString() + r.stderr.toString());
    const dsl = readFileSync(join(dir, 'd.dsl'), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    assert.match(dsl, /Device \(PCI0\)[\s\S]*EisaId \("PNP0A03"\)/);
    assert.match(dsl, /WordBusNumber \(ResourceProducer, MinFixed, MaxFixed, PosDecode,\s*0x0000,\s*0x0000,\s*0x00FF/);
    assert.match(dsl, /WordIO \(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,\s*0x0000,\s*0x0D00,\s*0xFFFF/);
    assert.match(dsl, /DWordMemory \(ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,\s*0x00000000,\s*0xC0000000,\s*0xFEBFFFFF/);
    assert.match(dsl, /Package \(0x04\)\s*\{\s*0x0007FFFF,\s*Zero,\s*Zero,\s*0x13\s*\}/, 'device 7 INTA -> GSI 19');
    const c = spawnSync('iasl', ['-f', '-p', join(dir, 'again'), join(dir, 'd.dsl')], { cwd: dir });
    assert.equal(c.status, 0, c.stdout.toString() + c.stderr.toString());
    assert.deepEqual(readFileSync(join(dir, 'again.aml')).subarray(36), Buffer.from(dsdt.subarray(36)), 'iasl emits the same AML');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
