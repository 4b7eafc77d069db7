import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IoBus, MmioBus } from '../../src/platform/bus.js';
import { GuestMemory } from '../../src/platform/memory.js';
import { MemoryDisk } from '../../src/storage/disk.js';
import { ScsiDisk } from '../../src/scsi/disk-target.js';
import { Gen1Chipset, type IdeDrives } from '../../src/platform/assemble-ide.js';
import type { IrqRouter } from '../../src/devices/irq.js';
import { LineRecorder } from './helpers.js';

const MiB = 1024 * 1024;
const BM = 0xc000; // where the firmware puts BAR4
const P = 0x1f0, CTL = 0x3f6, S = 0x170;
const PRD = 0x10000, BUF = 0x20000;

interface Rig { io: IoBus; mem: GuestMemory; disk: MemoryDisk; iso: MemoryDisk; lines: LineRecorder; chipset: Gen1Chipset; idle(): Promise<void> }

function rig(diskBytes = 8 * MiB): Rig {
  const io = new IoBus(), mmio = new MmioBus(), mem = new GuestMemory(4 * MiB), lines = new LineRecorder();
  const disk = new MemoryDisk(diskBytes);
  for (let i = 0; i < disk.bytes.length; i += 512) disk.bytes[i] = (i / 512) & 0xff, disk.bytes[i + 1] = (i / 512 / 256) & 0xff;
  const iso = new MemoryDisk(2 * MiB, { readOnly: true });
  for (let i = 0; i < iso.bytes.length; i += 2048) iso.bytes.fill((i / 2048) & 0xff, i, i + 2048);
  const drives: IdeDrives = {
    media: [[{ kind: 'disk', disk }, null], [{ kind: 'dvd', target: new ScsiDisk(iso, { kind: 'dvd' }) }, null]], disks: [],
  };
  const chipset = new Gen1Chipset({ io, mmio, irq: lines as unknown as IrqRouter, memory: mem, drives });
  return { io, mem, disk, iso, lines, chipset, idle: () => chipset.idle() };
}

const status = (r: Rig, base = P): number => r.io.read(base + 7, 1);
function task(r: Rig, regs: { feature?: number; nsect?: number; lba?: number; device?: number }, base = P): void {
  const lba = regs.lba ?? 0;
  r.io.write(base + 6, 1, regs.device ?? (0x40 | ((lba >>> 24) & 0x0f)));
  r.io.write(base + 1, 1, regs.feature ?? 0);
  r.io.write(base + 2, 1, regs.nsect ?? 1);
  r.io.write(base + 3, 1, lba & 0xff);
  r.io.write(base + 4, 1, (lba >>> 8) & 0xff);
  r.io.write(base + 5, 1, (lba >>> 16) & 0xff);
}
function task48(r: Rig, lba: number, count: number, base = P): void {
  r.io.write(base + 6, 1, 0x40);
  const hi = Math.floor(lba / 0x1000000);
  r.io.write(base + 2, 1, count >> 8); r.io.write(base + 3, 1, hi & 0xff); r.io.write(base + 4, 1, (hi >> 8) & 0xff); r.io.write(base + 5, 1, (hi >> 16) & 0xff);
  r.io.write(base + 2, 1, count & 0xff); r.io.write(base + 3, 1, lba & 0xff); r.io.write(base + 4, 1, (lba >> 8) & 0xff); r.io.write(base + 5, 1, (lba >> 16) & 0xff);
}
function readWords(r: Rig, n: number, base = P): Uint8Array {
  const out = new Uint8Array(n * 2);
  for (let i = 0; i < n; i++) { const w = r.io.read(base, 2); out[2 * i] = w & 0xff; out[2 * i + 1] = w >> 8; }
  return out;
}
function writeWords(r: Rig, data: Uint8Array, base = P): void {
  for (let i = 0; i < data.length; i += 2) r.io.write(base, 2, data[i] | (data[i + 1] << 8));
}
function prd(r: Rig, entries: Array<[number, number, boolean]>, at = PRD): void {
  entries.forEach(([addr, len, eot], i) => {
    r.mem.view.setUint32(at + 8 * i, addr, true);
    r.mem.view.setUint32(at + 8 * i + 4, (len & 0xffff) | (eot ? 0x80000000 : 0), true);
  });
  r.io.write(BM + 4, 4, at);
}
const sectorOf = (r: Rig, lba: number): Uint8Array => r.disk.bytes.slice(lba * 512, lba * 512 + 512);

test('ide: PCI function 00:07.1 is the PIIX4 IDE in compatibility mode with BAR4 bus master', () => {
  const r = rig();
  r.io.write(0xcf8, 4, 0x80003900);
  assert.equal(r.io.read(0xcfc, 4), 0x71118086);
  r.io.write(0xcf8, 4, 0x80003908);
  assert.equal(r.io.read(0xcfc, 4) >>> 8, 0x010180);
  r.io.write(0xcf8, 4, 0x80003920);
  assert.equal(r.io.read(0xcfc, 4), BM | 1);
  r.io.write(0xcf8, 4, 0x80003940);
  assert.equal((r.io.read(0xcfc, 4) & 0x80008000) >>> 0, 0x80008000, 'IDETIM decode enable on both channels');
  // Clearing the primary decode bit hides the legacy ports (floating bus).
  r.io.write(0xcfc + 1, 1, 0x00);
  assert.equal(status(r), 0xff);
  r.io.write(0xcfc + 1, 1, 0x80);
  assert.equal(status(r) & 0x50, 0x50);
});

test('ide: IDENTIFY DEVICE describes the disk (LBA28/48 capacity, model, checksum) and raises IRQ 14', async () => {
  const r = rig();
  task(r, {});
  r.io.write(P + 7, 1, 0xec);
  assert.equal(r.lines.levels.get(14), true);
  assert.equal(status(r) & 0x08, 0x08, 'DRQ');
  assert.equal(r.lines.levels.get(14), false, 'status read acknowledges');
  const id = readWords(r, 256);
  const w = (i: number): number => id[2 * i] | (id[2 * i + 1] << 8);
  assert.equal(w(60) | (w(61) << 16), 16384);
  assert.equal(w(100) + w(101) * 65536, 16384);
  assert.ok(w(83) & 0x0400, 'LBA48');
  let model = '';
  for (let i = 27; i < 47; i++) model += String.fromCharCode(w(i) >> 8, w(i) & 0xff);
  assert.equal(model.trim(), 'Virtual HD');
  assert.equal(id.reduce((a, b) => (a + b) & 0xff, 0), 0, 'integrity word');
  assert.equal(status(r) & 0x88, 0, 'not busy, no DRQ after the last word');
});

test('ide: READ SECTORS (PIO, LBA28) returns the disk data with one interrupt per sector', async () => {
  const r = rig();
  task(r, { nsect: 3, lba: 1000 });
  r.io.write(P + 7, 1, 0x20);
  assert.equal(r.io.read(CTL, 1) & 0x80, 0x80, 'BSY while the disk read is in flight');
  await r.idle();
  for (let s = 0; s < 3; s++) {
    assert.equal(r.lines.levels.get(14), true, `interrupt for sector ${s}`);
    assert.equal(status(r) & 0x89, 0x08);
    assert.deepEqual(readWords(r, 256), sectorOf(r, 1000 + s));
  }
  assert.equal(r.lines.levels.get(14), false, 'no interrupt after the last PIO-in block');
  assert.equal(status(r), 0x50);
});

test('ide: WRITE SECTORS then WRITE/READ MULTIPLE (after SET MULTIPLE MODE) move PIO data with 32-bit accesses too', async () => {
  const r = rig();
  const data = Uint8Array.from({ length: 512 * 2 }, (_, i) => (i * 7) & 0xff);
  task(r, { nsect: 2, lba: 5 });
  r.io.write(P + 7, 1, 0x30);
  assert.equal(status(r) & 0x08, 0x08, 'DRQ for the first block without an interrupt');
  writeWords(r, data.subarray(0, 512));
  assert.equal(status(r) & 0x08, 0x08);
  for (let i = 512; i < 1024; i += 4) r.io.write(P, 4, data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
  await r.idle();
  assert.equal(status(r), 0x50);
  assert.deepEqual(r.disk.bytes.subarray(5 * 512, 7 * 512), data);

  task(r, { nsect: 40, lba: 100 });
  r.io.write(P + 7, 1, 0xc4); // READ MULTIPLE before SET MULTIPLE MODE
  assert.equal(status(r) & 0x01, 0x01);
  assert.equal(r.io.read(P + 1, 1), 0x04, 'ABRT');
  task(r, { nsect: 16 });
  r.io.write(P + 7, 1, 0xc6);
  assert.equal(status(r), 0x50);
  const big = Uint8Array.from({ length: 40 * 512 }, (_, i) => (i * 13 + 1) & 0xff);
  task(r, { nsect: 40, lba: 100 });
  r.io.write(P + 7, 1, 0xc5);
  for (let blk = 0; blk < 3; blk++) {
    const n = Math.min(16, 40 - 16 * blk) * 512;
    writeWords(r, big.subarray(blk * 16 * 512, blk * 16 * 512 + n));
    await r.idle();
  }
  assert.equal(status(r), 0x50);
  assert.deepEqual(r.disk.bytes.subarray(100 * 512, 140 * 512), big);
  task(r, { nsect: 40, lba: 100 });
  r.io.write(P + 7, 1, 0xc4);
  await r.idle();
  const back = new Uint8Array(40 * 512);
  for (let blk = 0; blk < 3; blk++) {
    assert.equal(status(r) & 0x08, 0x08);
    const n = Math.min(16, 40 - 16 * blk) * 256;
    back.set(readWords(r, n), blk * 16 * 512);
  }
  assert.deepEqual(back, big);
});

test('ide: READ DMA EXT and WRITE DMA (bus master, PRD scatter-gather) move data; BM status reports completion', async () => {
  const r = rig();
  prd(r, [[BUF, 1024, false], [BUF + 0x3000, 512, false], [BUF + 0x5000, 2048, true]]);
  task48(r, 2000, 7);
  r.io.write(P + 7, 1, 0x25);
  r.io.write(BM, 1, 0x09); // start, to memory
  await r.idle();
  assert.equal(r.lines.levels.get(14), true);
  assert.equal(r.io.read(BM + 2, 1) & 0x07, 0x04, 'interrupt, not active, no error');
  assert.equal(status(r), 0x50);
  const got = new Uint8Array([...r.mem.slice(BUF, 1024), ...r.mem.slice(BUF + 0x3000, 512), ...r.mem.slice(BUF + 0x5000, 2048)]);
  assert.deepEqual(got, r.disk.bytes.subarray(2000 * 512, 2007 * 512));
  r.io.write(BM + 2, 1, 0x04);
  r.io.write(BM, 1, 0);
  assert.equal(r.io.read(BM + 2, 1) & 0x04, 0, 'interrupt bit cleared by writing one');

  r.mem.slice(BUF, 4096).fill(0x5a);
  prd(r, [[BUF, 4096, true]]);
  task(r, { nsect: 8, lba: 3000 });
  r.io.write(BM, 1, 0x01); // start before the command this time
  r.io.write(P + 7, 1, 0xca);
  await r.idle();
  assert.equal(status(r), 0x50);
  assert.ok(r.disk.bytes.subarray(3000 * 512, 3008 * 512).every((b) => b === 0x5a));
  // A PRD table longer than the transfer leaves the engine active (SFF-8038i), data still right.
  prd(r, [[BUF, 8192, true]]);
  task(r, { nsect: 1, lba: 7 });
  r.io.write(BM, 1, 0);
  r.io.write(BM, 1, 0x09);
  r.io.write(P + 7, 1, 0xc8);
  await r.idle();
  assert.equal(r.io.read(BM + 2, 1) & 0x05, 0x05);
  assert.deepEqual(r.mem.slice(BUF, 512), sectorOf(r, 7));
});

test('ide: LBA48 addressing and HOB readback; addresses past the end fail with IDNF', async () => {
  const big = rig();
  const r = big;
  task48(r, 0x1000000 + 3, 1); // beyond this 8 MiB disk
  r.io.write(P + 7, 1, 0x24);
  await r.idle();
  assert.equal(status(r) & 0x01, 0x01);
  assert.equal(r.io.read(P + 1, 1) & 0x10, 0x10, 'IDNF');
  task(r, { nsect: 2, lba: 16383 });
  r.io.write(P + 7, 1, 0x20);
  assert.equal(status(r) & 0x01, 0x01, 'a transfer that runs off the end is refused up front');
  // HOB readback: with HOB set in device control, the previous (high-order) bytes come back.
  task48(r, 0x0203_0405_0607, 0x0102);
  r.io.write(CTL, 1, 0x80);
  assert.equal(r.io.read(P + 3, 1), 0x04, 'LBA bits 31:24');
  assert.equal(r.io.read(P + 2, 1), 0x01);
  r.io.write(CTL, 1, 0x00);
  assert.equal(r.io.read(P + 3, 1), 0x07);
});

test('ide: malformed PRD tables abort the DMA with the error bit, never touching memory outside RAM', async () => {
  const cases: Array<{ name: string; setup: (r: Rig) => void }> = [
    { name: 'table outside RAM', setup: (r) => r.io.write(BM + 4, 4, 0xfff00000) },
    { name: 'buffer outside RAM', setup: (r) => prd(r, [[0xf0000000, 4096, true]]) },
    { name: 'buffer running past the end of RAM', setup: (r) => prd(r, [[4 * MiB - 512, 4096, true]]) },
    { name: 'table shorter than the transfer', setup: (r) => prd(r, [[BUF, 1024, true]]) },
  ];
  for (const write of [false, true]) {
    for (const c of cases) {
      const r = rig();
      const before = r.disk.bytes.slice();
      c.setup(r);
      task(r, { nsect: 8, lba: 10 });
      r.io.write(P + 7, 1, write ? 0xca : 0xc8);
      r.io.write(BM, 1, write ? 0x01 : 0x09);
      await r.idle();
      assert.equal(status(r) & 0x01, 0x01, `${c.name}: ERR`);
      assert.equal(r.io.read(P + 1, 1), 0x04, `${c.name}: ABRT`);
      assert.equal(r.io.read(BM + 2, 1) & 0x03, 0x02, `${c.name}: BM error, not active`);
      assert.deepEqual(r.disk.bytes, before, `${c.name}: disk unchanged`);
    }
  }
  // No end-of-table bit: 8192 two-byte entries cover 16 KiB of a 32 KiB transfer; the walk stops at the bound.
  const r = rig(64 * MiB);
  for (let i = 0; i < 8192; i++) { r.mem.view.setUint32(PRD + 8 * i, BUF, true); r.mem.view.setUint32(PRD + 8 * i + 4, 2, true); }
  r.io.write(BM + 4, 4, PRD);
  task48(r, 0, 64);
  r.io.write(P + 7, 1, 0x25);
  r.io.write(BM, 1, 0x09);
  await r.idle();
  assert.equal(status(r) & 0x01, 0x01, 'no end-of-table within 8192 entries');
  assert.equal(r.io.read(BM + 2, 1) & 0x02, 0x02);
});

test('ide: DMA with bus mastering disabled in PCI command is refused', async () => {
  const r = rig();
  r.io.write(0xcf8, 4, 0x80003904);
  r.io.write(0xcfc, 2, 0x0001);
  prd(r, [[BUF, 4096, true]]);
  task(r, { nsect: 8, lba: 0 });
  r.io.write(P + 7, 1, 0xc8);
  r.io.write(BM, 1, 0x09);
  await r.idle();
  assert.equal(status(r) & 0x01, 0x01);
});

test('ide: FLUSH CACHE reaches the disk; unknown commands and commands to an absent device are handled', async () => {
  const r = rig();
  r.io.write(P + 7, 1, 0xe7);
  await r.idle();
  assert.equal(r.disk.flushes, 1);
  r.io.write(P + 7, 1, 0xea);
  await r.idle();
  assert.equal(r.disk.flushes, 2);
  assert.equal(status(r), 0x50);
  r.io.write(P + 7, 1, 0x5c); // not a command
  assert.equal(status(r) & 0x01, 0x01);
  task(r, { device: 0x50 }); // device 1: absent
  assert.equal(status(r), 0x00, 'absent device 1 reads status 0');
  r.io.write(P + 7, 1, 0xec);
  assert.equal(status(r), 0x00, 'ignored');
  task(r, { device: 0x40, feature: 0x03, nsect: 0x42 });
  r.io.write(P + 7, 1, 0xef);
  assert.equal(status(r), 0x50, 'SET FEATURES UDMA2');
  task(r, { device: 0x40, feature: 0x03, nsect: 0x47 });
  r.io.write(P + 7, 1, 0xef);
  assert.equal(status(r) & 0x01, 0x01, 'UDMA7 refused');
});

test('ide: software reset puts the signatures back (ATA on the primary, ATAPI on the secondary)', () => {
  const r = rig();
  for (const [base, ctl, lbam, lbah, st] of [[P, CTL, 0, 0, 0x50], [S, 0x376, 0x14, 0xeb, 0x00]]) {
    r.io.write(ctl, 1, 0x04);
    assert.equal(r.io.read(ctl, 1) & 0x80, 0x80);
    r.io.write(ctl, 1, 0x00);
    assert.deepEqual([r.io.read(base + 2, 1), r.io.read(base + 3, 1), r.io.read(base + 4, 1), r.io.read(base + 5, 1)], [1, 1, lbam, lbah]);
    assert.equal(r.io.read(base + 1, 1), 1);
    assert.equal(r.io.read(base + 7, 1), st);
  }
});

/** Sends a 12-byte packet command to the DVD on the secondary channel. */
function packet(r: Rig, cdb: number[], dma: boolean, byteLimit = 0xfffe): void {
  r.io.write(S + 6, 1, 0x00);
  r.io.write(S + 1, 1, dma ? 1 : 0);
  r.io.write(S + 4, 1, byteLimit & 0xff);
  r.io.write(S + 5, 1, byteLimit >> 8);
  r.io.write(S + 7, 1, 0xa0);
  assert.equal(r.io.read(S + 7, 1) & 0x08, 0x08, 'DRQ for the packet');
  assert.equal(r.io.read(S + 2, 1) & 3, 1, 'CoD');
  const b = [...cdb, ...new Array(12 - cdb.length).fill(0)];
  writeWords(r, Uint8Array.from(b), S);
}

test('ide: ATAPI DVD: IDENTIFY DEVICE aborts with the packet signature; INQUIRY over PIO; READ(10) over DMA; sense after a failure', async () => {
  const r = rig();
  r.io.write(S + 6, 1, 0);
  r.io.write(S + 7, 1, 0xec);
  assert.equal(r.io.read(S + 7, 1) & 0x01, 0x01);
  assert.deepEqual([r.io.read(S + 4, 1), r.io.read(S + 5, 1)], [0x14, 0xeb]);
  r.io.write(S + 7, 1, 0xa1);
  assert.equal(r.io.read(S + 7, 1) & 0x08, 0x08);
  const id = readWords(r, 256, S);
  assert.equal(id[1] & 0xc0, 0x80, 'ATAPI device');

  packet(r, [0x12, 0, 0, 0, 36, 0], false, 16);
  await r.idle();
  const inq: number[] = [];
  while (r.io.read(S + 7, 1) & 0x08) {
    const n = r.io.read(S + 4, 1) | (r.io.read(S + 5, 1) << 8);
    assert.ok(n <= 16, 'chunks respect the byte count limit');
    inq.push(...readWords(r, n / 2, S));
  }
  assert.equal(inq.length, 36);
  assert.equal(inq[0], 0x05, 'CD/DVD device');
  assert.equal(r.io.read(S + 2, 1) & 3, 3, 'completion: IO|CoD');

  // READ CAPACITY(10) has no allocation length field: its 8 bytes must still arrive (sr sizes the disc from it).
  packet(r, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], false);
  await r.idle();
  assert.equal(r.io.read(S + 4, 1), 8);
  const cap = readWords(r, 4, S);
  assert.deepEqual([...cap], [0, 0, 0x03, 0xff, 0, 0, 0x08, 0x00], '1024 blocks of 2048 bytes');
  // MODE SENSE(10) of the capabilities page: sr learns it is a DVD-ROM drive.
  packet(r, [0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 64, 0], false);
  await r.idle();
  const ms = readWords(r, (r.io.read(S + 4, 1)) / 2, S);
  assert.equal(ms[8], 0x2a);
  assert.equal(ms[10] & 0x08, 0x08);

  prd(r, [[BUF, 4096, true]]);
  r.io.write(BM + 8 + 4, 4, PRD); // secondary channel's PRD register
  packet(r, [0x28, 0, 0, 0, 0, 5, 0, 0, 2, 0], true);
  r.io.write(BM + 8, 1, 0x09);
  await r.idle();
  assert.equal(r.io.read(S + 7, 1) & 0x01, 0);
  assert.deepEqual(r.mem.slice(BUF, 4096), r.iso.bytes.subarray(5 * 2048, 7 * 2048));
  r.io.write(BM + 8, 1, 0);

  packet(r, [0x28, 0, 0x7f, 0, 0, 0, 0, 0, 1, 0], false); // far past the end
  await r.idle();
  assert.equal(r.io.read(S + 7, 1) & 0x01, 0x01);
  assert.equal(r.io.read(S + 1, 1) >> 4, 0x5, 'ILLEGAL REQUEST in the error register');
  packet(r, [0x03, 0, 0, 0, 18, 0], false);
  await r.idle();
  const sense = readWords(r, 9, S);
  assert.equal(sense[2] & 0x0f, 0x5);
  assert.equal(sense[12], 0x21, 'LBA OUT OF RANGE');
});

test('ide: save and restore in the middle of a PIO read continue the transfer; saving waits for disk I/O', async () => {
  const a = rig();
  task(a, { nsect: 2, lba: 40 });
  a.io.write(P + 7, 1, 0x20);
  assert.throws(() => a.chipset.saveState(), /in flight/);
  await a.idle();
  assert.deepEqual(readWords(a, 100), sectorOf(a, 40).subarray(0, 200));
  const saved = JSON.parse(JSON.stringify(a.chipset.saveState()));
  const b = rig();
  b.chipset.restoreState(saved);
  const rest = readWords(b, 156 + 256);
  assert.deepEqual(rest.subarray(0, 312), sectorOf(b, 40).subarray(200));
  assert.deepEqual(rest.subarray(312), sectorOf(b, 41));
  assert.equal(status(b), 0x50);
});

test('ide: random register traffic (fast-check) never throws, never hangs BSY, and keeps the disk in range', async () => {
  const ports = [P, P + 1, P + 2, P + 3, P + 4, P + 5, P + 6, P + 7, CTL, S, S + 2, S + 4, S + 5, S + 6, S + 7, 0x376, BM, BM + 2, BM + 4, BM + 8, BM + 10, BM + 12, 0xcf8, 0xcfc];
  const op = fc.record({ port: fc.constantFrom(...ports), write: fc.boolean(), size: fc.constantFrom(1, 2, 4) as fc.Arbitrary<1 | 2 | 4>, value: fc.nat(0xffffffff) });
  await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 200 }), fc.uint8Array({ minLength: 64, maxLength: 64 }), async (ops, prdBytes) => {
    const r = rig(1 * MiB);
    r.mem.bytes.set(prdBytes, 0);
    for (const o of ops) {
      if (o.write) r.io.write(o.port, o.size, o.port === 0xcf8 ? (0x80003800 | (o.value & 0x1fc)) >>> 0 : o.value);
      else r.io.read(o.port, o.size);
      if (o.value % 7 === 0) await r.idle();
    }
    await r.idle();
    for (const base of [CTL, 0x376]) {
      r.io.write(base, 1, 0); // release a software reset the traffic may have left asserted
      const st = r.io.read(base, 1);
      assert.ok(st === 0xff || (st & 0x80) === 0, `not stuck BSY: ${st.toString(16)}`);
    }
    return true;
  }), { numRuns: 150 });
});
