/**
 * NodeFile reads (page-cache hits through preadv2(RWF_NOWAIT), the rest through the thread pool) return the file's
 * bytes whatever the cache holds; and the deferred flush of a VHDX header's second copy never leaves a file that a
 * power loss makes unreadable or that loses a flushed write.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { NodeFile } from '../../src/storage/file-io.js';
import { createVhdx } from '../../src/storage/open.js';
import { VhdxDisk } from '../../src/storage/vhdx/vhdx-disk.js';
import { pattern, tempDir } from './helpers.js';
import { PowerLossFile } from './mem-file.js';

const t = tempDir('file-io');
after(() => t.cleanup());
const MiB = 1024 * 1024;

/** Drops the file's clean pages from the page cache (GNU dd: nocache with count=0 covers the whole file). */
function evict(path: string): void {
  spawnSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
}

test('NodeFile reads return the file bytes, cached or not, at any offset, into any view', async () => {
  const path = join(t.dir, 'data.bin');
  const size = 3 * MiB + 1234; // not a page multiple: reads across the end of the file
  const bytes = pattern(7, 0, size + 2); // pattern() wants a multiple of 4
  writeFileSync(path, bytes.subarray(0, size));
  const f = await NodeFile.open(path, true);
  try {
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 0, max: size + 8192 }), fc.integer({ min: 1, max: 400 * 1024 }), fc.integer({ min: 0, max: 4095 }),
      fc.boolean(), fc.boolean(),
      async (pos, len, viewOffset, shared, dropCache) => {
        if (dropCache) evict(path);
        const backing = shared ? new SharedArrayBuffer(viewOffset + len) : new ArrayBuffer(viewOffset + len);
        const buf = new Uint8Array(backing, viewOffset, len);
        buf.fill(0xee);
        const n = await f.read(buf, pos);
        const want = Math.max(0, Math.min(len, size - pos));
        assert.equal(n, want, `read ${len} at ${pos}`);
        assert.ok(Buffer.from(buf.subarray(0, n)).equals(bytes.subarray(pos, pos + n)), `bytes of ${len} at ${pos}`);
        assert.ok(buf.subarray(n).every((x) => x === 0xee), 'nothing written past what was read');
        assert.ok(new Uint8Array(backing, 0, viewOffset).every((x) => x === 0), 'nothing written before the view');
      }), { numRuns: 300, seed: 12 });
  } finally {
    await f.close();
  }
});

test('NodeFile sees its own writes at once through the page-cache path', async () => {
  const path = join(t.dir, 'rw.bin');
  writeFileSync(path, new Uint8Array(MiB));
  const f = await NodeFile.open(path, false);
  try {
    for (let k = 0; k < 64; k++) {
      const pos = (k * 7919 * 512) % (MiB - 8192);
      const data = pattern(k, pos, 4096 + (k % 4) * 512);
      await f.write(data, pos);
      const got = new Uint8Array(data.length);
      assert.equal(await f.read(got, pos), data.length);
      assert.ok(Buffer.from(got).equals(data), `write ${k} reads back`);
    }
  } finally {
    await f.close();
  }
});

test('power loss around header updates (second copy flushed late) keeps a valid header and every flushed write', async () => {
  const p = join(t.dir, 'hdr.vhdx');
  await createVhdx({ path: p, sizeBytes: 64 * MiB, type: 'dynamic', blockSizeBytes: MiB });
  const init = readFileSync(p);
  let checked = 0;
  for (let crashAt = 1; crashAt < 70; crashAt++) {
    for (const keepSome of [false, true]) {
      const f = new PowerLossFile(p, init, crashAt);
      let flushed = 0;
      try {
        const d = await VhdxDisk.open(p, { file: f, lock: false });
        for (let k = 0; k < 3; k++) {
          await d.write(k * 3 * MiB, pattern(k, k * 3 * MiB, 8192));
          await d.flush();
          flushed = k + 1;
        }
        await d.close(); // clears the LogGuid: two more header writes
      } catch { /* power lost */ }
      let r = crashAt * 7 + (keepSome ? 1 : 0);
      const img = await f.afterPowerLoss(() => keepSome && ((r = (r * 1103515245 + 12345) >>> 0) & 1) === 1);
      const q = join(t.dir, 'hdr-after.vhdx');
      writeFileSync(q, img);
      const d = await VhdxDisk.open(q, { lock: false });
      try {
        assert.deepEqual(d.warnings, [], `crash at call ${crashAt}: both header copies stay valid`);
        for (let k = 0; k < flushed; k++) {
          const got = new Uint8Array(8192);
          await d.read(k * 3 * MiB, got);
          assert.ok(Buffer.from(got).equals(pattern(k, k * 3 * MiB, 8192)), `crash at call ${crashAt}: flushed write ${k} survives`);
        }
      } finally {
        await d.close();
      }
      checked++;
    }
  }
  assert.equal(checked, 138);
});
