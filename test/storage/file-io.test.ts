/**
 * NodeFile reads (page-cache hits through preadv2(RWF_NOWAIT), the rest through the thread pool) return the file's
 * bytes whatever the cache holds; writes (small ones on the event loop, the rest and paused ones through the pool)
 * land exactly where asked and report errors; the guard that pauses event-loop writes reacts only to writes that
 * slept; and the deferred flush of a VHDX header's second copy never leaves a file that a
 * power loss makes unreadable or that loses a flushed write.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { loopWriteGuard, NodeFile } from '../../src/storage/file-io.js';
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

test('NodeFile writes land exactly where asked, on the event loop or through the pool, into any view', async () => {
  const path = join(t.dir, 'writes.bin');
  const size = 2 * MiB;
  const model = new Uint8Array(size + 200 * 1024);
  writeFileSync(path, model.subarray(0, size));
  let fileSize = size;
  const f = await NodeFile.open(path, false);
  const saved = loopWriteGuard.pausedUntil;
  try {
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 0, max: size + 100 * 1024 }), fc.integer({ min: 1, max: 100 * 1024 }), fc.integer({ min: 0, max: 4095 }),
      fc.boolean(), fc.boolean(), fc.integer(),
      async (pos, len, viewOffset, shared, paused, seed) => {
        loopWriteGuard.pausedUntil = paused ? Infinity : 0; // paused: small writes take the pool too
        const backing = shared ? new SharedArrayBuffer(viewOffset + len + 4) : new ArrayBuffer(viewOffset + len + 4);
        const data = new Uint8Array(backing, viewOffset, len);
        data.set(pattern(seed, pos, (len + 3) & ~3).subarray(0, len));
        await f.write(data, pos);
        model.set(data, pos);
        fileSize = Math.max(fileSize, pos + len);
        const onDisk = readFileSync(path); // another descriptor: what the file holds, not what NodeFile remembers
        assert.equal(onDisk.length, fileSize, `size after writing ${len} at ${pos}`);
        assert.ok(onDisk.equals(model.subarray(0, fileSize)), `file bytes after writing ${len} at ${pos}`);
      }), { numRuns: 150, seed: 5 });
  } finally {
    loopWriteGuard.pausedUntil = saved;
    await f.close();
  }
});

test('a failing write rejects with the system error instead of vanishing (both paths)', async () => {
  const path = join(t.dir, 'ro.bin');
  writeFileSync(path, new Uint8Array(8192));
  const f = await NodeFile.open(path, true); // read-only descriptor: every write fails with EBADF
  const saved = loopWriteGuard.pausedUntil;
  try {
    for (const [paused, len] of [[false, 4096], [true, 4096], [false, 256 * 1024]] as const) {
      loopWriteGuard.pausedUntil = paused ? Infinity : 0;
      await assert.rejects(f.write(new Uint8Array(len).fill(1), 0), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
    }
    assert.ok(readFileSync(path).every((x) => x === 0), 'the file is unchanged');
  } finally {
    loopWriteGuard.pausedUntil = saved;
    await f.close();
  }
});

test('event-loop write guard: pauses after a slow write that slept, doubling while they recur; preemption alone never pauses', () => {
  const g = { ...loopWriteGuard, pausedUntil: 0, pauseMs: 100, lastSlow: -Infinity, slowWrites: 0 };
  g.record(50, 1000, false); // slow but never slept: preempted on a busy host
  assert.ok(g.allowed(1000), 'preemption does not pause');
  g.record(0.01, 1000, true); // fast
  assert.ok(g.allowed(1000));
  g.record(5, 2000, true);
  assert.ok(!g.allowed(2050) && g.allowed(2100), 'first pause: 100 ms');
  g.record(5, 2100, true);
  assert.ok(!g.allowed(2250) && g.allowed(2300), 'recurring: 200 ms');
  g.record(0.01, 2400, true); // a fast write soon after does not forget the recurrence
  g.record(5, 2500, true);
  assert.ok(!g.allowed(2850) && g.allowed(2900), 'then 400 ms');
  for (let k = 0; k < 20; k++) g.record(5, 3000 + k, true);
  assert.equal(g.pausedUntil - 3019, 30_000, 'capped at 30 s');
  g.record(0.01, 3019 + 10_001, false); // calm for 10 s
  g.record(5, 20_000, true);
  assert.equal(g.pausedUntil, 20_100, 'back to the shortest pause after a calm spell');
  assert.equal(g.slowWrites, 24);
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
