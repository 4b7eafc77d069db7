import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryDisk, DiskError, type Disk } from '../../src/storage/disk.js';
import { ScsiDisk } from '../../src/scsi/disk-target.js';
import { ArrayDataBuffer, NO_DATA, type ScsiResult } from '../../src/scsi/target.js';
import { Asc, SenseKey, ScsiStatus } from '../../src/scsi/protocol.js';

const MiB = 1 << 20;

function cdb(...b: number[]): Uint8Array { return Uint8Array.from(b); }
function be(n: number, bytes: number): number[] { const out: number[] = []; for (let i = bytes - 1; i >= 0; i--) out.push(Number((BigInt(n) >> BigInt(8 * i)) & 0xffn)); return out; }
const rw10 = (op: number, lba: number, count: number, flags = 0): Uint8Array => cdb(op, flags, ...be(lba, 4), 0, ...be(count, 2), 0);
const rw16 = (op: number, lba: number, count: number, flags = 0): Uint8Array => cdb(op, flags, ...be(lba, 8), ...be(count, 4), 0, 0);

function sense(r: ScsiResult): { key: number; asc: number } {
  assert.equal(r.status, ScsiStatus.CHECK_CONDITION, 'expected CHECK CONDITION');
  const s = r.sense!;
  assert.equal(s.length, 18);
  assert.equal(s[0] & 0x7f, 0x70, 'fixed format, current error');
  assert.equal(s[7], 10, 'additional sense length');
  return { key: s[2] & 0xf, asc: (s[12] << 8) | s[13] };
}
function checkSense(r: ScsiResult, key: SenseKey, asc: Asc): void { assert.deepEqual(sense(r), { key, asc }); }

async function run(t: ScsiDisk, c: Uint8Array, len = 4096): Promise<{ r: ScsiResult; data: Uint8Array }> {
  const buf = new ArrayDataBuffer(new Uint8Array(len));
  const r = await t.execute(c, buf);
  return { r, data: buf.bytes.subarray(0, r.transferred) };
}

/** Counts calls so tests see which backend operations a command caused. */
class SpyDisk extends MemoryDisk {
  calls: string[] = [];
  override async write(o: number, d: Uint8Array, fua?: boolean): Promise<void> { this.calls.push(`write ${o} ${d.length}${fua ? ' fua' : ''}`); return super.write(o, d); }
  override async flush(): Promise<void> { this.calls.push('flush'); return super.flush(); }
  override async unmap(o: number, l: number): Promise<void> { this.calls.push(`unmap ${o} ${l}`); return super.unmap(o, l); }
}

test('standard INQUIRY: direct-access disk, SPC-4, Msft Virtual Disk, truncated to the allocation length', async () => {
  const t = new ScsiDisk(new MemoryDisk(MiB));
  const { r, data } = await run(t, cdb(0x12, 0, 0, 0, 96, 0));
  assert.equal(r.status, ScsiStatus.GOOD);
  assert.equal(data.length, 96);
  assert.equal(data[0], 0x00);
  assert.equal(data[2], 0x06);
  assert.equal(data[4] + 5, 96);
  assert.equal(Buffer.from(data.subarray(8, 16)).toString(), 'Msft    ');
  assert.equal(Buffer.from(data.subarray(16, 32)).toString().trim(), 'Virtual Disk');
  const short = await run(t, cdb(0x12, 0, 0, 0, 36, 0));
  assert.equal(short.r.transferred, 36);
  checkSense((await run(t, cdb(0x12, 0, 0x80, 0, 36, 0))).r, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB); // page without EVPD
});

test('VPD pages 0x00, 0x80, 0x83 (disk identifier), 0xB0, 0xB1, 0xB2; unknown pages are invalid fields', async () => {
  const id = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
  const t = new ScsiDisk(new MemoryDisk(MiB, { diskId: id }), { maxTransferBytes: 0x80000 });
  const page = async (p: number): Promise<Uint8Array> => {
    const { r, data } = await run(t, cdb(0x12, 1, p, 0, 255, 0));
    assert.equal(r.status, ScsiStatus.GOOD, `page ${p}`);
    assert.equal(data[1], p);
    assert.equal((data[2] << 8) | data[3], data.length - 4);
    return data;
  };
  assert.deepEqual([...(await page(0x00)).subarray(4)], [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
  assert.equal(Buffer.from((await page(0x80)).subarray(4)).toString(), 'a0a1a2a3a4a5a6a7a8a9');
  const ident = Buffer.from((await page(0x83)).subarray(8)).toString();
  assert.equal(ident, 'Msft    a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
  const b0 = new DataView((await page(0xb0)).buffer);
  assert.equal(b0.getUint32(8), 0x80000 / 512, 'maximum transfer length in blocks');
  assert.ok(b0.getUint32(20) > 0 && b0.getUint32(24) > 0, 'UNMAP limits advertised');
  assert.equal((await page(0xb1))[5], 1, 'non-rotating medium');
  assert.equal((await page(0xb2))[5] & 0x80, 0x80, 'LBPU: UNMAP supported');
  checkSense((await run(t, cdb(0x12, 1, 0x89, 0, 255, 0))).r, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
  // A read-only disk does not offer unmapping.
  const ro = new ScsiDisk(new MemoryDisk(MiB, { readOnly: true }));
  assert.equal((await run(ro, cdb(0x12, 1, 0xb2, 0, 255, 0))).data[5], 0);
});

test('READ CAPACITY(10) and (16): last LBA, block size, provisioning bits, exponent of physical blocks', async () => {
  const t = new ScsiDisk(new MemoryDisk(8 * MiB, { logicalSectorSize: 512, physicalSectorSize: 4096 }));
  const rc10 = new DataView((await run(t, cdb(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0))).data.slice().buffer);
  assert.equal(rc10.getUint32(0), 8 * MiB / 512 - 1);
  assert.equal(rc10.getUint32(4), 512);
  const { data } = await run(t, cdb(0x9e, 0x10, ...be(0, 8), ...be(32, 4), 0, 0));
  const v = new DataView(data.slice().buffer);
  assert.equal(Number(v.getBigUint64(0)), 8 * MiB / 512 - 1);
  assert.equal(v.getUint32(8), 512);
  assert.equal(data[13] & 0xf, 3, '8 logical per physical block');
  assert.equal(data[14] & 0xc0, 0xc0, 'LBPME and LBPRZ');
  checkSense((await run(t, cdb(0x9e, 0x11, ...be(0, 8), ...be(32, 4), 0, 0))).r, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
  const big = new ScsiDisk(new MemoryDisk(4096, { logicalSectorSize: 4096 }));
  assert.equal(new DataView((await run(big, cdb(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0))).data.slice().buffer).getUint32(4), 4096);
});

test('READ/WRITE 6, 10, 12 and 16 move the right bytes; FUA reaches the disk', async () => {
  const d = new SpyDisk(MiB);
  const t = new ScsiDisk(d);
  const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
  const cases: Array<[Uint8Array, Uint8Array, number]> = [
    [cdb(0x0a, 0, 0, 3, 2, 0), cdb(0x08, 0, 0, 3, 2, 0), 3],
    [rw10(0x2a, 10, 4), rw10(0x28, 10, 4), 10],
    [cdb(0xaa, 0, ...be(20, 4), ...be(3, 4), 0, 0), cdb(0xa8, 0, ...be(20, 4), ...be(3, 4), 0, 0), 20],
    [rw16(0x8a, 2047, 1), rw16(0x88, 2047, 1), 2047],
  ];
  for (const [[w, r, lba], seed] of cases.map((c, i) => [c, i] as const)) {
    const n = (w[0] === 0x0a ? w[4] : w[0] === 0x2a ? w[8] : w[0] === 0xaa ? w[9] : w[13]) * 512;
    const data = pattern(n, seed);
    const wr = await t.execute(w, new ArrayDataBuffer(data.slice()));
    assert.equal(wr.status, ScsiStatus.GOOD);
    assert.equal(wr.transferred, n);
    assert.deepEqual(d.bytes.subarray(lba * 512, lba * 512 + n), data);
    const back = await run(t, r, n);
    assert.equal(back.r.transferred, n);
    assert.deepEqual(back.data, data);
  }
  d.calls = [];
  await t.execute(rw10(0x2a, 0, 1, 0x08), new ArrayDataBuffer(new Uint8Array(512)));
  assert.deepEqual(d.calls, ['write 0 512 fua']);
  // READ(6) with count 0 means 256 blocks.
  assert.equal((await run(t, cdb(0x08, 0, 0, 0, 0, 0), 256 * 512)).r.transferred, 256 * 512);
});

test('LBA out of range, transfer larger than the buffer, and zero-length transfers', async () => {
  const t = new ScsiDisk(new MemoryDisk(MiB));
  const blocks = MiB / 512;
  checkSense((await run(t, rw10(0x28, blocks - 1, 2))).r, SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE);
  checkSense((await run(t, rw16(0x88, 2 ** 60, 1))).r, SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE);
  checkSense((await run(t, rw16(0x8a, 0xffffffffffff, 1))).r, SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE);
  checkSense((await run(t, rw10(0x28, 0, 16), 4096)).r, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
  const z = await run(t, rw10(0x28, blocks, 0));
  assert.equal(z.r.status, ScsiStatus.GOOD);
  assert.equal(z.r.transferred, 0);
});

test('read-only disks: writes, UNMAP and WRITE SAME are write protected; MODE SENSE says WP', async () => {
  const t = new ScsiDisk(new MemoryDisk(MiB, { readOnly: true }));
  checkSense((await run(t, rw10(0x2a, 0, 1))).r, SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
  checkSense((await run(t, cdb(0x0a, 0, 0, 0, 1, 0))).r, SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
  checkSense((await run(t, cdb(0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0))).r, SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
  checkSense((await run(t, rw16(0x93, 0, 1, 0x08))).r, SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
  const ms6 = (await run(t, cdb(0x1a, 0, 0x3f, 0, 255, 0))).data;
  assert.equal(ms6[2] & 0x80, 0x80);
  const ms10 = (await run(t, cdb(0x5a, 0, 0x3f, 0, 0, 0, 0, 1, 0, 0))).data;
  assert.equal(ms10[3] & 0x80, 0x80);
  const rw = new ScsiDisk(new MemoryDisk(MiB));
  assert.equal((await run(rw, cdb(0x1a, 0, 0x3f, 0, 255, 0))).data[2] & 0x80, 0);
});

test('MODE SENSE: caching page with WCE, block descriptor, DBD, changeable mask, saved values unsupported', async () => {
  const t = new ScsiDisk(new MemoryDisk(MiB));
  const { data } = await run(t, cdb(0x1a, 0, 0x08, 0, 255, 0));
  assert.equal(data[0], data.length - 1);
  assert.equal(data[2] & 0x10, 0x10, 'DPOFUA');
  assert.equal(data[3], 8, 'block descriptor length');
  assert.equal(new DataView(data.slice().buffer).getUint32(4 + 4) & 0xffffff, 512);
  assert.equal(data[12], 0x08);
  assert.equal(data[13], 18);
  assert.equal(data[14] & 0x04, 0x04, 'WCE');
  const dbd = (await run(t, cdb(0x1a, 0x08, 0x08, 0, 255, 0))).data;
  assert.equal(dbd[3], 0);
  assert.equal(dbd[4], 0x08);
  assert.equal((await run(t, cdb(0x1a, 0x08, 0x48, 0, 255, 0))).data[6] & 0x04, 0, 'nothing is changeable');
  checkSense((await run(t, cdb(0x1a, 0, 0xc8, 0, 255, 0))).r, SenseKey.ILLEGAL_REQUEST, Asc.SAVING_PARAMETERS_NOT_SUPPORTED);
  checkSense((await run(t, cdb(0x1a, 0, 0x19, 0, 255, 0))).r, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
  // The 4-byte header alone when the allocation length is 4 (Linux probes this way).
  assert.equal((await run(t, cdb(0x1a, 0, 0x3f, 0, 4, 0))).r.transferred, 4);
});

test('SYNCHRONIZE CACHE flushes; TEST UNIT READY, START STOP UNIT, VERIFY are accepted', async () => {
  const d = new SpyDisk(MiB);
  const t = new ScsiDisk(d);
  assert.equal((await t.execute(cdb(0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0))).status, ScsiStatus.GOOD);
  assert.equal((await t.execute(cdb(0x91, ...new Array(15).fill(0)))).status, ScsiStatus.GOOD);
  assert.deepEqual(d.calls, ['flush', 'flush']);
  assert.equal((await t.execute(cdb(0, 0, 0, 0, 0, 0))).status, ScsiStatus.GOOD);
  assert.equal((await t.execute(cdb(0x1b, 0, 0, 0, 1, 0))).status, ScsiStatus.GOOD);
  assert.equal((await t.execute(rw10(0x2f, 0, 8))).status, ScsiStatus.GOOD);
});

test('invalid opcodes and short CDBs are ILLEGAL REQUEST', async () => {
  const t = new ScsiDisk(new MemoryDisk(MiB));
  checkSense(await t.execute(cdb(0xc0, 0, 0, 0, 0, 0)), SenseKey.ILLEGAL_REQUEST, Asc.INVALID_COMMAND_OPCODE);
  checkSense(await t.execute(cdb(0x28, 0, 0)), SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
  checkSense(await t.execute(new Uint8Array(0)), SenseKey.ILLEGAL_REQUEST, Asc.INVALID_COMMAND_OPCODE);
});

test('REQUEST SENSE reports NO SENSE, or a pending unit attention once; REPORT LUNS lists the LUNs', async () => {
  const t = new ScsiDisk(new MemoryDisk(MiB), { luns: () => [0, 3] });
  const none = await run(t, cdb(0x03, 0, 0, 0, 18, 0));
  assert.equal(none.data[2] & 0xf, SenseKey.NO_SENSE);
  t.raiseUnitAttention(Asc.REPORTED_LUNS_DATA_CHANGED);
  // INQUIRY does not consume it; the next other command does.
  assert.equal((await t.execute(cdb(0x12, 0, 0, 0, 36, 0), new ArrayDataBuffer(new Uint8Array(36)))).status, ScsiStatus.GOOD);
  checkSense(await t.execute(cdb(0, 0, 0, 0, 0, 0)), SenseKey.UNIT_ATTENTION, Asc.REPORTED_LUNS_DATA_CHANGED);
  assert.equal((await t.execute(cdb(0, 0, 0, 0, 0, 0))).status, ScsiStatus.GOOD);
  t.raiseUnitAttention(Asc.CAPACITY_DATA_CHANGED);
  const ua = await run(t, cdb(0x03, 0, 0, 0, 18, 0));
  assert.equal(ua.data[2] & 0xf, SenseKey.UNIT_ATTENTION);
  assert.equal((ua.data[12] << 8) | ua.data[13], Asc.CAPACITY_DATA_CHANGED);
  const rl = await run(t, cdb(0xa0, 0, 0, 0, 0, 0, ...be(256, 4), 0, 0));
  assert.deepEqual([...rl.data], [0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0]);
  checkSense((await run(t, cdb(0xa0, 0, 0, 0, 0, 0, ...be(8, 4), 0, 0))).r, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
});

test('UNMAP: descriptors reach the backend and read back as zeros; malformed parameter lists are rejected', async () => {
  const d = new SpyDisk(MiB);
  d.bytes.fill(0xee);
  const t = new ScsiDisk(d);
  const list = (descs: Array<[number, number]>, total?: number): Uint8Array => {
    const b = new Uint8Array(total ?? 8 + 16 * descs.length);
    const v = new DataView(b.buffer);
    v.setUint16(0, 6 + 16 * descs.length); v.setUint16(2, 16 * descs.length);
    descs.forEach(([lba, n], i) => { v.setBigUint64(8 + i * 16, BigInt(lba)); v.setUint32(16 + i * 16, n); });
    return b;
  };
  const unmap = (p: Uint8Array, len = p.length): Promise<ScsiResult> => t.execute(cdb(0x42, 0, 0, 0, 0, 0, 0, ...be(len, 2), 0), new ArrayDataBuffer(p));
  assert.equal((await unmap(list([[8, 8], [100, 4]]))).status, ScsiStatus.GOOD);
  assert.deepEqual(d.calls, [`unmap ${8 * 512} ${8 * 512}`, `unmap ${100 * 512} ${4 * 512}`]);
  assert.ok(d.bytes.subarray(8 * 512, 16 * 512).every((x) => x === 0));
  assert.equal(d.bytes[7 * 512], 0xee);
  checkSense(await unmap(list([[2047, 2]])), SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE);
  const bad = list([[0, 1]]); new DataView(bad.buffer).setUint16(2, 15);
  checkSense(await unmap(bad), SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_PARAMETER_LIST);
  checkSense(await unmap(list([[0, 1]]), 4), SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR);
  checkSense(await unmap(list([[0, 1]]), 100), SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR);
});

test('WRITE SAME(16): with UNMAP and a zero block it unmaps; without it the block is repeated', async () => {
  const d = new SpyDisk(MiB);
  d.bytes.fill(0xee);
  const t = new ScsiDisk(d);
  assert.equal((await t.execute(rw16(0x93, 16, 8, 0x08), new ArrayDataBuffer(new Uint8Array(512)))).status, ScsiStatus.GOOD);
  assert.deepEqual(d.calls, [`unmap ${16 * 512} ${8 * 512}`]);
  const block = Uint8Array.from({ length: 512 }, (_, i) => i & 0xff);
  assert.equal((await t.execute(rw16(0x93, 40, 3), new ArrayDataBuffer(block.slice()))).status, ScsiStatus.GOOD);
  for (let i = 0; i < 3; i++) assert.deepEqual(d.bytes.subarray((40 + i) * 512, (41 + i) * 512), block);
  checkSense(await t.execute(rw16(0x93, 40, 3, 0x08), new ArrayDataBuffer(block.slice())), SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
  checkSense(await t.execute(rw16(0x93, 2040, 16), new ArrayDataBuffer(block.slice())), SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE);
});

test('backend failures map to sense data: I/O error to MEDIUM ERROR, closed disk to NOT READY', async () => {
  const d = new MemoryDisk(MiB);
  const failing: Disk = Object.assign(Object.create(d) as Disk, {
    read: async () => { throw new DiskError('io', 'EIO'); },
    write: async () => { throw new DiskError('io', 'ENOSPC'); },
  });
  const t = new ScsiDisk(failing);
  checkSense((await run(t, rw10(0x28, 0, 1))).r, SenseKey.MEDIUM_ERROR, Asc.UNRECOVERED_READ_ERROR);
  checkSense((await run(t, rw10(0x2a, 0, 1))).r, SenseKey.MEDIUM_ERROR, Asc.WRITE_ERROR);
  await d.close();
  checkSense((await run(new ScsiDisk(d), rw10(0x28, 0, 1))).r, SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT);
});

test('a buffer that throws (bad guest memory) rejects the command instead of answering wrong data', async () => {
  const t = new ScsiDisk(new MemoryDisk(MiB));
  const broken = { length: 4096, read: () => { throw new RangeError('not RAM'); }, write: () => { throw new RangeError('not RAM'); } };
  await assert.rejects(t.execute(rw10(0x28, 0, 1), broken), /not RAM/);
  await assert.rejects(t.execute(rw10(0x2a, 0, 1), broken), /not RAM/);
});

test('DVD flavour: CD-ROM type, 2048-byte blocks, read-only, medium not present when empty, READ TOC', async () => {
  const iso = new MemoryDisk(4 * MiB, { readOnly: true });
  iso.bytes.set([1, 2, 3], 2048 * 16);
  const t = new ScsiDisk(iso, { kind: 'dvd' });
  const inq = (await run(t, cdb(0x12, 0, 0, 0, 36, 0))).data;
  assert.equal(inq[0], 0x05);
  assert.equal(inq[1] & 0x80, 0x80, 'removable');
  const cap = new DataView((await run(t, cdb(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0))).data.slice().buffer);
  assert.equal(cap.getUint32(0), 4 * MiB / 2048 - 1);
  assert.equal(cap.getUint32(4), 2048);
  const r = await run(t, rw10(0x28, 16, 1), 2048);
  assert.deepEqual([...r.data.subarray(0, 3)], [1, 2, 3]);
  checkSense((await run(t, rw10(0x2a, 16, 1), 2048)).r, SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
  const toc = (await run(t, cdb(0x43, 0, 0, 0, 0, 0, 0, 0, 20, 0))).data;
  assert.equal(toc[14], 0xaa);
  assert.equal(new DataView(toc.slice().buffer).getUint32(16), 4 * MiB / 2048);
  // Eject, then the drive is empty.
  assert.equal((await t.execute(cdb(0x1b, 0, 0, 0, 2, 0))).status, ScsiStatus.GOOD);
  checkSense(await t.execute(cdb(0, 0, 0, 0, 0, 0)), SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT);
  t.changeMedium(iso);
  checkSense(await t.execute(cdb(0, 0, 0, 0, 0, 0)), SenseKey.UNIT_ATTENTION, Asc.MEDIUM_MAY_HAVE_CHANGED);
  assert.equal((await t.execute(cdb(0, 0, 0, 0, 0, 0))).status, ScsiStatus.GOOD);
});

test('many commands in flight complete independently; idle() waits for all of them', async () => {
  const d = new MemoryDisk(MiB);
  const t = new ScsiDisk(d);
  const results = Array.from({ length: 64 }, (_, i) => t.execute(rw10(0x2a, i * 4, 4), new ArrayDataBuffer(new Uint8Array(2048).fill(i + 1))));
  await t.idle();
  for (const r of await Promise.all(results)) assert.equal(r.status, ScsiStatus.GOOD);
  for (let i = 0; i < 64; i++) assert.equal(d.bytes[i * 2048], i + 1);
});

test('property: any CDB up to 16 bytes gets GOOD or CHECK CONDITION with well-formed sense, never a throw', async () => {
  const d = new MemoryDisk(64 * 1024);
  const t = new ScsiDisk(d, { luns: () => [0] });
  await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 16 }), fc.integer({ min: 0, max: 70000 }), async (c, len) => {
    const r = await t.execute(c, new ArrayDataBuffer(new Uint8Array(len)));
    assert.ok(r.transferred <= len);
    if (r.status === ScsiStatus.GOOD) assert.equal(r.sense, null);
    else { assert.equal(r.status, ScsiStatus.CHECK_CONDITION); sense(r); }
  }), { numRuns: 3000 });
  // Random CDBs may have written; the disk is still intact in size and open.
  assert.equal((await t.execute(cdb(0, 0, 0, 0, 0, 0), NO_DATA)).status, ScsiStatus.GOOD);
});
