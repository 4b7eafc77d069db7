import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createVhdx, openDisk, VhdxDisk, VhdxFormatError } from '../../src/storage/open.js';
import { checkVhd } from '../../src/storage/vhdx/ops.js';
import { crcWithZeroField, MiB } from '../../src/storage/vhdx/format.js';
import { findItemOffset } from '../../src/storage/vhdx/metadata.js';
import { FILE_PARAMETERS_GUID, LOGICAL_SECTOR_GUID } from '../../src/storage/vhdx/format.js';
import { haveQemu, pattern, run, tempDir } from './helpers.js';
import { PowerLossFile } from './mem-file.js';

const t = tempDir('vhdx-bad');
process.on('exit', t.cleanup);

async function validDynamic(name: string): Promise<string> {
  const p = join(t.dir, name);
  await createVhdx({ path: p, sizeBytes: 8 * MiB, type: 'dynamic', blockSizeBytes: MiB });
  const d = await openDisk(p);
  await d.write(0, pattern(1, 0, 8192));
  await d.write(3 * MiB, pattern(2, 3 * MiB, 4096));
  await d.close();
  return p;
}

function patch(p: string, at: number, bytes: Uint8Array): void {
  const b = readFileSync(p);
  b.set(bytes, at);
  writeFileSync(p, b);
}
function u32(v: number): Uint8Array { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; }
function u64(v: number): Uint8Array { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; }
function fixCrc(p: string, at: number, len: number): void {
  const b = readFileSync(p);
  const s = b.subarray(at, at + len);
  s.writeUInt32LE(crcWithZeroField(s, 4), 4);
  writeFileSync(p, b);
}
function fingerprint(p: string): string {
  return `${statSync(p).mtimeMs}:${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
}

/** Opening (read-only and writable) and checking fail with a message naming the file and the problem; the file is untouched. */
async function expectBad(p: string, problem: RegExp): Promise<void> {
  const before = fingerprint(p);
  for (const readOnly of [true, false]) {
    await assert.rejects(openDisk(p, { readOnly }), (e: unknown) => {
      assert.ok(e instanceof VhdxFormatError, `expected VhdxFormatError, got ${String(e)}`);
      assert.ok((e as Error).message.startsWith(p), `message names the file: ${(e as Error).message}`);
      assert.match((e as Error).message, problem);
      return true;
    });
  }
  const problems = await checkVhd(p);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, problem);
  assert.equal(fingerprint(p), before, 'the file was not written');
}

// Our layout: log at 1 MiB, metadata at 2 MiB, BAT at 3 MiB.
const BAT = 3 * MiB;

test('truncated files', async () => {
  const a = await validDynamic('trunc1.vhdx'); truncateSync(a, 300 * 1024);
  await expectBad(a, /too short/);
  const b = await validDynamic('trunc2.vhdx'); truncateSync(b, 3 * MiB + 4096);
  await expectBad(b, /BAT region lies past the end|past the end of the file/);
  const c = await validDynamic('trunc3.vhdx'); truncateSync(c, statSync(c).size - MiB + 4096);
  await expectBad(c, /points past the end of the file/);
});

test('wrong signatures', async () => {
  const a = await validDynamic('sig1.vhdx'); patch(a, 0, Buffer.from('vhdxfilX'));
  await expectBad(a, /not a VHDX file/);
  const b = await validDynamic('sig2.vhdx'); patch(b, 2 * MiB, Buffer.from('metadatX'));
  await expectBad(b, /metadata table has a bad signature/);
});

test('one bad header or region table still opens; both bad is an error', async () => {
  const a = await validDynamic('h1.vhdx'); patch(a, 64 * 1024 + 100, Buffer.from([0xff]));
  const d = await VhdxDisk.open(a, { readOnly: true });
  assert.match(d.warnings.join(), /header 1: checksum mismatch/);
  const buf = new Uint8Array(8192); await d.read(0, buf);
  assert.ok(Buffer.from(buf).equals(pattern(1, 0, 8192)));
  await d.close();
  patch(a, 128 * 1024 + 100, Buffer.from([0xff]));
  await expectBad(a, /no valid VHDX header/);
  const b = await validDynamic('r1.vhdx'); patch(b, 192 * 1024 + 200, Buffer.from([0x77]));
  const e = await VhdxDisk.open(b, { readOnly: true });
  assert.match(e.warnings.join(), /region table 1: checksum mismatch/);
  await e.close();
  patch(b, 256 * 1024 + 200, Buffer.from([0x77]));
  await expectBad(b, /no valid region table/);
});

test('BAT entries outside the file, overlapping each other or the metadata', async () => {
  const a = await validDynamic('bat1.vhdx'); patch(a, BAT, u64(6 + 4000 * MiB / MiB * 2 ** 20));
  await expectBad(a, /points past the end of the file/);
  const b = await validDynamic('bat2.vhdx');
  const first = Buffer.from(readFileSync(b).subarray(BAT, BAT + 8));
  patch(b, BAT + 3 * 8, first);
  await expectBad(b, /block \d overlaps block \d/);
  const c = await validDynamic('bat3.vhdx'); patch(c, BAT, u64(6 + 2 * 2 ** 20));
  await expectBad(c, /overlaps|metadata region/);
  const d = await validDynamic('bat4.vhdx'); patch(d, BAT + 8, u64(5));
  await expectBad(d, /invalid state 5/);
});

test('block and sector sizes out of range', async () => {
  for (const [name, guid, value, re] of [
    ['bs1.vhdx', FILE_PARAMETERS_GUID, 3 * MiB, /block size 3145728/],
    ['bs2.vhdx', FILE_PARAMETERS_GUID, 512 * MiB, /block size/],
    ['ss1.vhdx', LOGICAL_SECTOR_GUID, 1024, /logical sector size 1024/],
  ] as const) {
    const p = await validDynamic(name);
    const md = readFileSync(p).subarray(2 * MiB, 3 * MiB);
    patch(p, 2 * MiB + findItemOffset(md, guid), u32(value));
    await expectBad(p, re);
  }
});

test('parent chains: a loop, a missing parent, a changed parent', async () => {
  const base = await validDynamic('pbase.vhdx');
  const c1 = join(t.dir, 'pc1.vhdx'), c2 = join(t.dir, 'pc2.vhdx');
  await createVhdx({ path: c1, type: 'differencing', parentPath: base });
  await createVhdx({ path: c2, type: 'differencing', parentPath: c1 });
  const ok = await openDisk(c2, { readOnly: true });
  const b = new Uint8Array(4096); await ok.read(3 * MiB, b);
  assert.ok(Buffer.from(b).equals(pattern(2, 3 * MiB, 4096)));
  await ok.close();
  // Loop: c1's parent name now resolves to c2, whose parent is c1.
  renameSync(base, join(t.dir, 'pbase-moved.vhdx'));
  renameSync(c2, base);
  await expectBad(c1, /parent chain loops/);
  renameSync(base, c2);
  await expectBad(c1, /parent disk not found/);
  renameSync(join(t.dir, 'pbase-moved.vhdx'), base);
  const w = await openDisk(base); await w.write(0, new Uint8Array(512)); await w.close();
  await expectBad(c1, /has changed since this differencing disk was created/);
});

test('a dirty log replays (in memory when read-only); a torn log entry is refused', async () => {
  const p = await validDynamic('log.vhdx');
  // Lose power after the log entry and the header naming it are durable, before the BAT is updated in place.
  for (let crashAt = 1; crashAt < 40; crashAt++) {
    const f = new PowerLossFile(p, readFileSync(p), crashAt);
    const d = await VhdxDisk.open(p, { file: f, lock: false });
    try {
      await d.write(5 * MiB, pattern(3, 5 * MiB, 4096));
      await d.flush();
      await d.close();
    } catch { /* power lost */ }
    const img = await f.afterPowerLoss();
    const dirty = Buffer.from(img).subarray(64 * 1024, 64 * 1024 + 4096);
    const dirty2 = Buffer.from(img).subarray(128 * 1024, 128 * 1024 + 4096);
    const seq = (h: Buffer) => h.readBigUInt64LE(8);
    const cur = seq(dirty) > seq(dirty2) ? dirty : dirty2;
    const logGuidSet = !cur.subarray(48, 64).every((x) => x === 0);
    const batApplied = Buffer.from(img).readUInt32LE(BAT + 5 * 8) !== 0;
    if (!logGuidSet || batApplied) continue;
    const q = join(t.dir, 'dirty.vhdx');
    writeFileSync(q, img);
    const before = fingerprint(q);
    const ro = await openDisk(q, { readOnly: true });
    const got = new Uint8Array(4096); await ro.read(5 * MiB, got);
    assert.ok(Buffer.from(got).equals(pattern(3, 5 * MiB, 4096)), 'read-only open replays in memory');
    await ro.close();
    assert.equal(fingerprint(q), before, 'read-only replay does not write');
    assert.match((await checkVhd(q)).join(), /log holds changes not yet applied/);
    const torn = join(t.dir, 'torn.vhdx');
    const tb = Buffer.from(img); tb[MiB + 4096 + 10]! ^= 0xff; tb[MiB + 30]! ^= 0xff;
    writeFileSync(torn, tb);
    await expectBad(torn, /torn or corrupt log/);
    if (haveQemu) {
      // QEMU replays the log hyperts wrote and sees the same data.
      const qq = join(t.dir, 'dirty-qemu.vhdx');
      writeFileSync(qq, img);
      const r = run('qemu-img', ['check', '-r', 'all', '-f', 'vhdx', qq]);
      assert.ok(r.status === 0, r.out);
      assert.equal(run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', qq, `${qq}.raw`]).status, 0);
      assert.ok(readFileSync(`${qq}.raw`).subarray(5 * MiB, 5 * MiB + 4096).equals(pattern(3, 5 * MiB, 4096)), 'qemu replayed our log');
    }
    const rw = await openDisk(q);
    await rw.read(5 * MiB, got);
    assert.ok(Buffer.from(got).equals(pattern(3, 5 * MiB, 4096)), 'writable open replays');
    await rw.close();
    assert.deepEqual(await checkVhd(q), []);
    return;
  }
  assert.fail('no crash point left a dirty log');
});
