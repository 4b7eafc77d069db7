/**
 * File grants: descriptors sent over a SOCK_SEQPACKET socketpair with SCM_RIGHTS (fd-passing.ts), the worker's
 * pool of granted files (worker-files.ts) and the service's opening of them (worker-grants.ts). Malformed
 * messages are dropped with their descriptors closed; the worker cannot send anything back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, unlinkSync, writeFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dupFd, fdChannelPair, fdPassingAvailable, GRANT_HEADER, GRANT_MAGIC, GRANT_WRITABLE, receiveFd, sendFd, sendRaw } from '../../src/vmms/fd-passing.js';
import { WorkerFiles } from '../../src/vmms/worker-files.js';
import { FileChannel, filesFor } from '../../src/vmms/worker-grants.js';
import { createVhdx, openDisk } from '../../src/storage/open.js';

const skip = !fdPassingAvailable() && 'koffi cannot load libc here';
const openFds = (): number => readdirSync('/proc/self/fd').length;
const tmp = (): string => mkdtempSync(join(tmpdir(), 'hyperts-fdpass-'));

function readAll(fd: number): string {
  const b = Buffer.alloc(64);
  const n = readSync(fd, b, 0, 64, 0);
  return b.subarray(0, n).toString();
}

test('a descriptor sent with its grant number arrives as the same open file, with its access mode', { skip }, () => {
  const d = tmp();
  const [svc, wrk] = fdChannelPair();
  try {
    const f = join(d, 'a');
    writeFileSync(f, 'hello');
    const fd = openSync(f, 'r+');
    sendFd(svc, fd, 42, GRANT_WRITABLE);
    closeSync(fd);
    unlinkSync(f); // only the descriptor reaches it now
    const r = receiveFd(wrk);
    assert.ok(r);
    assert.equal(r.grant, 42);
    assert.equal(r.writable, true);
    assert.equal(readAll(r.fd), 'hello');
    closeSync(r.fd);
    assert.equal(receiveFd(wrk), null, 'nothing else queued');
  } finally { closeSync(svc); closeSync(wrk); rmSync(d, { recursive: true, force: true }); }
});

test('the worker cannot send data or descriptors back: its end gets EPIPE, nothing queues at the service', { skip }, () => {
  const d = tmp();
  const [svc, wrk] = fdChannelPair();
  try {
    const f = join(d, 'secret');
    writeFileSync(f, 'x');
    const fd = openSync(f, 'r');
    const header = Buffer.alloc(GRANT_HEADER);
    header.writeUInt32LE(GRANT_MAGIC, 0);
    assert.equal(sendRaw(wrk, header, [fd]), -32, 'EPIPE');
    assert.equal(sendRaw(wrk, header, []), -32, 'EPIPE');
    closeSync(fd);
    assert.equal(receiveFd(svc), null);
  } finally { closeSync(svc); closeSync(wrk); rmSync(d, { recursive: true, force: true }); }
});

test('malformed messages are dropped and every descriptor they carried is closed; a good one after them arrives', { skip }, () => {
  const d = tmp();
  const [svc, wrk] = fdChannelPair();
  try {
    const f = join(d, 'f');
    writeFileSync(f, 'data');
    const a = openSync(f, 'r'), b = openSync(f, 'r');
    const good = Buffer.alloc(GRANT_HEADER);
    good.writeUInt32LE(GRANT_MAGIC, 0);
    good.writeUInt32LE(7, 4);
    const badMagic = Buffer.from(good); badMagic.writeUInt32LE(0xdeadbeef, 0);
    assert.equal(sendRaw(svc, badMagic, [a]), GRANT_HEADER); // wrong magic
    assert.equal(sendRaw(svc, good, [a, b]), GRANT_HEADER); // two descriptors
    assert.equal(sendRaw(svc, good, []), GRANT_HEADER); // none
    assert.equal(sendRaw(svc, Buffer.concat([good, Buffer.alloc(40)]), [a]), GRANT_HEADER + 40); // too long
    assert.equal(sendRaw(svc, good.subarray(0, 8), [a]), 8); // too short
    assert.equal(sendRaw(svc, Buffer.alloc(0), [b]), 0); // empty
    const many = Array.from({ length: 20 }, () => a); // more than the receiver's control buffer holds
    assert.equal(sendRaw(svc, good, many), GRANT_HEADER);
    sendFd(svc, a, 8);
    closeSync(a); closeSync(b);
    const before = openFds();
    const stats = { rejected: 0 };
    const r = receiveFd(wrk, stats);
    assert.ok(r);
    assert.equal(r.grant, 8);
    assert.equal(stats.rejected, 7);
    assert.equal(openFds(), before + 1, 'only the good descriptor is left open');
    closeSync(r.fd);
  } finally { closeSync(svc); closeSync(wrk); rmSync(d, { recursive: true, force: true }); }
});

test('WorkerFiles: granted paths open from their descriptors during the request only; other requests\' grants wait for them', { skip }, async () => {
  const d = tmp();
  const ch = FileChannel.create();
  assert.ok(ch);
  const files = new WorkerFiles(ch.workerEnd);
  try {
    const p1 = join(d, 'one'), p2 = join(d, 'two');
    writeFileSync(p1, 'first'); writeFileSync(p2, 'second');
    const g = ch.send([{ path: p1, writable: true }, { path: p2, writable: false }], [d]);
    const later = ch.send([{ path: p2, writable: false }], [d]); // a second request's, queued behind
    unlinkSync(p1); unlinkSync(p2);
    const base = openFds();
    const got = await files.with(g.filter((x) => x.path === p1), async () => {
      assert.equal(files.hasFile(p1), true);
      assert.equal(files.hasFile(p2), false);
      const f = await files.openFile(p1, false); // for writing
      const b = new Uint8Array(5);
      await f.read(b, 0);
      await f.write(Buffer.from('FIRST'), 0);
      await f.close();
      await assert.rejects(files.openFile(p2, true), /ENOENT/, 'not granted to this request: by path, and the path is gone');
      return Buffer.from(b).toString();
    });
    assert.equal(got, 'first');
    assert.equal(files.hasFile(p1), false, 'closed when the request ended');
    await files.with([...g.filter((x) => x.path === p2), ...later], async () => {
      const ro = await files.openFile(p2, true);
      await assert.rejects(ro.write(Buffer.from('x'), 0), /EBADF/, 'a read-only grant cannot be written');
      await ro.close();
      await assert.rejects(files.openFile(p2, false), /read-only/, 'nor opened for writing');
    });
    assert.equal(openFds(), base, 'all three granted descriptors (in flight when counted first) closed again');
    assert.equal(files.stats.rejected, 0);
  } finally { ch.close(); rmSync(d, { recursive: true, force: true }); }
});

test('concurrent requests: a grant drained by another request is parked for its own, which still gets it', { skip }, async () => {
  const d = tmp();
  const [svc, wrk] = fdChannelPair();
  const files = new WorkerFiles(wrk);
  try {
    const pa = join(d, 'a'), pb = join(d, 'b');
    writeFileSync(pa, 'AAA'); writeFileSync(pb, 'BBB');
    const read = async (p: string): Promise<string> => { const f = await files.openFile(p, true); const b = new Uint8Array(3); await f.read(b, 0); await f.close(); return Buffer.from(b).toString(); };
    // A's message came first, its file not yet: A waits. Then both files arrive, and B's request drains A's.
    const a = files.with([{ grant: 1, path: pa, writable: false }], () => read(pa));
    await new Promise((r) => setTimeout(r, 20));
    for (const [p, g] of [[pa, 1], [pb, 2]] as const) { const fd = openSync(p, 'r'); sendFd(svc, fd, g); closeSync(fd); }
    const b = files.with([{ grant: 2, path: pb, writable: false }], () => read(pb));
    assert.deepEqual(await Promise.all([a, b]), ['AAA', 'BBB']);
  } finally { closeSync(svc); closeSync(wrk); rmSync(d, { recursive: true, force: true }); }
});

test('a grant that never arrives fails the request with the file named; a mode that does not match is refused', { skip }, async () => {
  const d = tmp();
  const ch = FileChannel.create()!;
  const files = new WorkerFiles(ch.workerEnd, 200);
  try {
    const p = join(d, 'f');
    writeFileSync(p, 'x');
    const [g] = ch.send([{ path: p, writable: false }], [d]);
    await assert.rejects(files.with([{ ...g!, writable: true }], async () => 1), /wrong access mode/);
    await assert.rejects(files.with([{ grant: 999, path: '/nowhere', writable: false }], async () => 1), /did not arrive \(\/nowhere\)/);
  } finally { ch.close(); rmSync(d, { recursive: true, force: true }); }
});

test('the service grants only regular files inside its roots: no FIFO, folder, device, link out, or parent outside', { skip }, async () => {
  const d = tmp(), elsewhere = tmp();
  const ch = FileChannel.create()!;
  try {
    const fifo = join(d, 'fifo');
    execFileSync('mkfifo', [fifo]);
    assert.throws(() => ch.send([{ path: fifo, writable: false }], [d]), /is not a regular file/);
    assert.throws(() => ch.send([{ path: d, writable: false }], [d]), /is not a regular file/);
    assert.throws(() => ch.send([{ path: '/dev/null', writable: true }], [d]), /outside the folders this host allows/);
    assert.throws(() => ch.send([{ path: '/proc/self/environ', writable: false }], [d]), /outside the folders this host allows/);
    symlinkSync('/etc/passwd', join(d, 'out'));
    assert.throws(() => ch.send([{ path: join(d, 'out'), writable: false }], [d]), /outside the folders this host allows/);
    // A differencing disk inside the roots whose parent lies elsewhere: its chain is not handed over.
    const parent = join(elsewhere, 'parent.vhdx'), child = join(d, 'child.avhdx');
    await createVhdx({ path: parent, sizeBytes: 8 << 20, type: 'dynamic' });
    await createVhdx({ path: child, sizeBytes: 8 << 20, type: 'differencing', parentPath: parent });
    const wanted = await filesFor({ op: 'mergeCopy', child: join(d, 'x.avhdx'), parent: child });
    assert.deepEqual(wanted.map((w) => w.path), [child, parent]);
    assert.throws(() => ch.send(wanted, [d]), /parent\.vhdx' is outside the folders this host allows/);
    const fd = join(d, 'f');
    writeFileSync(fd, 'abc');
    assert.equal(ch.send([{ path: fd, writable: true }], [d]).length, 1, 'a regular file inside is granted');
  } finally { ch.close(); rmSync(d, { recursive: true, force: true }); rmSync(elsewhere, { recursive: true, force: true }); }
});

test('a differencing disk opens in the worker from granted descriptors alone: parents found by their locator in the grants', { skip }, async () => {
  const d = tmp();
  const ch = FileChannel.create()!;
  const files = new WorkerFiles(ch.workerEnd);
  try {
    const base = join(d, 'base.vhdx'), mid = join(d, 'mid.avhdx'), top = join(d, 'top.avhdx');
    await createVhdx({ path: base, sizeBytes: 8 << 20, type: 'dynamic' });
    const b = await openDisk(base); await b.write(0, Buffer.alloc(4096, 1)); await b.close();
    await createVhdx({ path: mid, sizeBytes: 8 << 20, type: 'differencing', parentPath: base });
    await createVhdx({ path: top, sizeBytes: 8 << 20, type: 'differencing', parentPath: mid });
    const wanted = await filesFor({ op: 'attachDrive', drive: { kind: 'disk', path: top, controllerType: 'scsi', controllerNumber: 0, controllerLocation: 1 } });
    assert.deepEqual(wanted, [{ path: top, writable: true }, { path: mid, writable: false }, { path: base, writable: false }]);
    const grants = ch.send(wanted, [d]);
    // Moved away: the paths exist no more here, as in a sandbox that never had them.
    const moved = mkdtempSync(join(tmpdir(), 'hyperts-fdpass-moved-'));
    execFileSync('mv', [base, mid, top, moved]);
    await files.with(grants, async () => {
      const disk = await openDisk(top, { openFile: files.openFile, hasFile: files.hasFile, purpose: 'test' });
      const r = Buffer.alloc(4096);
      await disk.read(0, r);
      assert.ok(r.equals(Buffer.alloc(4096, 1)), 'base data through two parents');
      await disk.write(4096, Buffer.alloc(4096, 2));
      await disk.close();
    });
    await assert.rejects(openDisk(top, { openFile: files.openFile, hasFile: files.hasFile }), /ENOENT|not found|cannot open/);
    const check = await openDisk(join(moved, 'top.avhdx'), { readOnly: true, lock: false });
    const r = Buffer.alloc(4096);
    await check.read(4096, r);
    assert.ok(r.equals(Buffer.alloc(4096, 2)), 'the write went to the granted file');
    await check.close();
    rmSync(moved, { recursive: true, force: true });
  } finally { ch.close(); rmSync(d, { recursive: true, force: true }); }
});

test('dupFd gives a second descriptor of the same open file', { skip }, () => {
  const d = tmp();
  try {
    const f = join(d, 'f');
    writeFileSync(f, 'dup');
    const fd = openSync(f, 'r');
    const fd2 = dupFd(fd);
    closeSync(fd);
    assert.equal(readAll(fd2), 'dup');
    closeSync(fd2);
  } finally { rmSync(d, { recursive: true, force: true }); }
});
