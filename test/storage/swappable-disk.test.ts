/**
 * SwappableDisk (online checkpoints): detach lets the requests in flight finish and closes the file; requests
 * that arrive meanwhile wait and are served by the file attached next; a file with another guest view is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDisk } from '../../src/storage/disk.js';
import { SwappableDisk } from '../../src/storage/swappable-disk.js';

const ticks = async (n = 5): Promise<void> => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

/** A memory disk whose writes complete only when released. */
class HeldWrites extends MemoryDisk {
  private releases: (() => void)[] = [];
  wasClosed = false;
  override async write(offset: number, data: Uint8Array): Promise<void> {
    await new Promise<void>((r) => this.releases.push(r));
    await super.write(offset, data);
  }
  release(): void { for (const r of this.releases.splice(0)) r(); }
  override async close(): Promise<void> { this.wasClosed = true; await super.close(); }
}

test('detach waits for in-flight I/O and holds new requests; attach serves them from the new file', async () => {
  const old = new HeldWrites(1 << 20, { path: 'old' });
  const s = new SwappableDisk(old);
  const inflight = s.write(0, new Uint8Array(512).fill(7));
  let detached = false;
  const d = s.detach().then(() => { detached = true; });
  await ticks();
  assert.equal(detached, false, 'detach waits for the write in flight');
  let readDone = false;
  const buf = new Uint8Array(512);
  const held = s.read(0, buf).then(() => { readDone = true; });
  old.release();
  await inflight;
  await d;
  assert.ok(detached && old.wasClosed, 'the old file is closed once its I/O finished');
  assert.equal(old.bytes[0], 7, 'the in-flight write landed in the old file');
  await ticks();
  assert.equal(readDone, false, 'a request during the switch waits');

  const next = new MemoryDisk(1 << 20, { path: 'new' });
  next.bytes.set(old.bytes);
  next.bytes[1] = 9;
  assert.throws(() => s.attach(new MemoryDisk(2 << 20, { path: 'bigger' })), /does not match/);
  s.attach(next);
  await held;
  assert.equal(buf[0], 7);
  assert.equal(buf[1], 9, 'served by the new file');
  assert.equal(s.path, 'new');
  await s.write(512, new Uint8Array(512).fill(3));
  assert.equal(next.bytes[512], 3, 'later writes go to the new file');
});

test('closing while detached fails the held requests instead of leaving them hanging', async () => {
  const s = new SwappableDisk(new MemoryDisk(1 << 20));
  await s.detach();
  const held = s.read(0, new Uint8Array(512));
  await s.close();
  await assert.rejects(held, /closed/);
});

test('online merge support: writes are reported when they complete; hold keeps the file open, unhold carries on', async () => {
  const disk = new HeldWrites(1 << 20, { path: 'one' });
  const s = new SwappableDisk(disk);
  const seen: [number, number][] = [];
  s.onWrite = (o, l) => seen.push([o, l]);
  const w = s.write(4096, new Uint8Array(1024).fill(3));
  await ticks();
  assert.deepEqual(seen, [], 'not before the write completed (a copy racing with it is always followed by another)');
  let held = false;
  const h = s.hold().then(() => { held = true; });
  await ticks();
  assert.equal(held, false, 'hold waits for the write in flight');
  disk.release();
  await w; await h;
  assert.deepEqual(seen, [[4096, 1024]]);
  assert.equal(s.detached, false, 'held, not detached: the file stays open');
  assert.equal(s.current, disk);
  let read = false;
  const r = s.read(4096, new Uint8Array(512)).then(() => { read = true; });
  await ticks();
  assert.equal(read, false, 'requests wait while held');
  s.unhold();
  await r;
  assert.equal(disk.wasClosed, false);
  await s.unmap(0, 4096);
  assert.deepEqual(seen.at(-1), [0, 4096], 'unmaps are reported too');
  await s.hold();
  await s.detach();
  assert.equal(disk.wasClosed, true, 'detach after hold closes the file');
});
