/**
 * Checkpoints of a running Debian guest with a disk: a production checkpoint (the default) freezes the guest's
 * file systems through hv_vss_daemon, moves the disk onto a new AVHDX without the guest noticing (it goes on
 * reading and writing sda), and thaws; the checkpoint's file keeps what the guest had written before. Applying
 * it gives an Off VM with that content; deleting it merges the child back. Deleting a second checkpoint while
 * the guest writes a file in a loop merges online: the file's checksum is right, the chain passes test-vhd.
 * One boot, processor auto. The worker is isolated (bubblewrap) where it can be, as with the service's defaults:
 * the new AVHDX files and the merge's parent reach it as descriptors (HYPERTS_TEST_ISOLATION=off runs it plain).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { GuestSession } from './guest-session.js';
import { startService, waitFor, type Fixture } from '../vmms/helpers.js';
import { guestConsole } from '../vmms/guest-console.js';
import type { CheckpointView, VmView } from '../../src/vmms/service.js';
import type { DriveView } from '../../src/vmms/drives.js';
import type { VmEvent } from '../../src/vmms/store.js';
import { openDisk } from '../../src/storage/open.js';
import { checkVhd } from '../../src/storage/vhdx/ops.js';
import { createHash } from 'node:crypto';
import { isolationSupport } from '../../src/vmms/sandbox.js';

const LIMIT_MS = 30 * 60_000;
const files = mkdtempSync(join(tmpdir(), 'hyperts-cp-disks-'));
let f: Fixture | null = null;
after(async () => { await f?.close(); rmSync(files, { recursive: true, force: true }); if (f) rmSync(f.dir, { recursive: true, force: true }); });

const skip = !GuestSession.imageAvailable() ? 'default image not built (npm run setup)' : false;

async function sha256Of(path: string, offset: number, length: number): Promise<string> {
  const d = await openDisk(path, { readOnly: true, lock: false });
  try { const b = Buffer.alloc(length); await d.read(offset, b); return createHash('sha256').update(b).digest('hex'); } finally { await d.close(); }
}

async function firstBytes(path: string): Promise<string> {
  const d = await openDisk(path, { readOnly: true, lock: false });
  try { const b = Buffer.alloc(512); await d.read(0, b); return b.toString('latin1', 0, 16); } finally { await d.close(); }
}

test('online production checkpoint of a running guest with a disk; the guest keeps using sda; apply and delete', { skip, timeout: LIMIT_MS }, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'hyperts-vmms-'));
  f = await startService(dataDir, { pathRoots: [dataDir, files], isolation: process.env.HYPERTS_TEST_ISOLATION === 'off' ? 'off' : 'auto' });
  const client = f.client;
  const disk = join(files, 'data.vhdx');
  await client.call<VmView>('POST', '/vms', { name: 'cpd', processor: process.env.HYPERTS_ACCEPT_PROCESSOR ?? 'auto', memory: '512M', newVhdPath: disk, newVhdSizeBytes: '64MB' });
  const con = await guestConsole(client, 'cpd', LIMIT_MS);
  const sh = con.sh;
  await client.call('POST', '/vms/cpd/start', {});
  await con.booted(0);
  const isolated = !(await client.call<VmEvent[]>('GET', '/events?name=cpd')).some((e) => /without isolation/i.test(e.message));
  t.diagnostic(`worker ${isolated ? 'isolated' : 'not isolated'}`);
  if (process.env.HYPERTS_TEST_ISOLATION !== 'off' && isolationSupport().available) assert.ok(isolated, 'the worker runs in its sandbox');
  await sh('for i in $(seq 1 100); do [ -e /sys/block/sda ] && break; sleep 0.2; done');
  await sh('printf before-checkpoint | dd of=/dev/sda bs=512 conv=sync oflag=direct 2>/dev/null; sync');
  // The VSS daemon must be up for a production checkpoint (it starts with the other hyperv-daemons).
  await sh('for i in $(seq 1 100); do pidof hv_vss_daemon >/dev/null && break; sleep 0.2; done; pidof hv_vss_daemon || echo no-vss-daemon');

  const c = await client.call<CheckpointView>('POST', '/vms/cpd/snapshots', { name: 'prod' });
  const events = (await client.call<VmEvent[]>('GET', '/events?name=cpd')).map((e) => e.message).join('\n');
  assert.equal(c.snapshotType, 'Production', `a production checkpoint (events:\n${events})`);
  assert.equal(c.runningState, false, 'no memory state');
  assert.equal((await client.call<VmView>('GET', '/vms/cpd')).state, 'Running');
  const child = (await client.call<DriveView[]>('GET', '/vms/cpd/hard-disk-drives'))[0].path!;
  assert.match(basename(child), /^data_[0-9A-F-]{36}\.avhdx$/);

  // The guest goes on with sda: it reads what it wrote before and writes anew (now into the child).
  assert.match(await sh('dd if=/dev/sda bs=512 count=1 iflag=direct 2>/dev/null | head -c 17'), /before-checkpoint/);
  await sh('printf after--checkpoint | dd of=/dev/sda bs=512 conv=sync oflag=direct 2>/dev/null; sync');
  assert.match(await sh('dd if=/dev/sda bs=512 count=1 iflag=direct 2>/dev/null | head -c 17'), /after--checkpoint/);

  // Online merge: a second checkpoint, then the guest writes a "file" (known 4 KiB blocks from 1 MiB on) in a
  // loop while the checkpoint is deleted, so its AVHDX merges into the first child under the running guest.
  await client.call<CheckpointView>('POST', '/vms/cpd/snapshots', { name: 'merge-me' });
  const leaf = (await client.call<DriveView[]>('GET', '/vms/cpd/hard-disk-drives'))[0].path!;
  assert.notEqual(leaf, child);
  await sh('rm -f /tmp/stop; echo 0 > /tmp/n; (i=0; while [ ! -e /tmp/stop ] && [ $i -lt 4000 ]; do yes "blk$i" | head -c 4096 > /tmp/blk; dd if=/tmp/blk of=/dev/sda bs=4096 seek=$((256+i)) conv=notrunc oflag=direct 2>/dev/null; i=$((i+1)); echo $i > /tmp/n; done; sync; echo done > /tmp/finished) >/dev/null 2>&1 & true');
  const blocks = async (): Promise<number> => {
    for (;;) { const t = (await sh('cat /tmp/n')).trim(); if (/^\d+$/.test(t)) return Number(t); } // (a read may meet the file mid-rewrite)
  };
  await waitFor('the guest writing', async () => (await blocks()) >= 200, LIMIT_MS);
  const atDelete = await blocks();
  await client.call('DELETE', '/vms/cpd/snapshots/merge-me');
  const afterDelete = await blocks();
  assert.equal((await client.call<DriveView[]>('GET', '/vms/cpd/hard-disk-drives'))[0].path, child, 'the guest runs on the first child again');
  assert.equal((await client.call<VmView>('GET', '/vms/cpd')).state, 'Running');
  await waitFor('more writes after the merge', async () => (await blocks()) >= afterDelete + 60, LIMIT_MS);
  await sh('touch /tmp/stop; while [ ! -e /tmp/finished ]; do sleep 0.2; done');
  const n = await blocks();
  assert.ok(n < 4000 && atDelete < afterDelete, `the guest wrote before, during and after the merge (${atDelete}, ${afterDelete}, ${n} blocks)`);
  const expected = createHash('sha256');
  for (let i = 0; i < n; i++) expected.update(Buffer.from(`blk${i}\n`.repeat(Math.ceil(4096 / `blk${i}\n`.length))).subarray(0, 4096));
  const want = expected.digest('hex');
  assert.match(await sh(`dd if=/dev/sda bs=4096 skip=256 count=${n} iflag=direct 2>/dev/null | sha256sum`), new RegExp(want), 'the guest reads its file back');
  assert.ok(!readdirSync(files).includes(basename(leaf)), 'the merged AVHDX is gone');
  await client.call('POST', '/vms/cpd/stop', { turnOff: true });
  await waitFor('Off', async () => (await client.call<VmView>('GET', '/vms/cpd')).state === 'Off', 60_000);
  con.close();
  assert.equal(await firstBytes(disk), 'before-checkpoin', 'the checkpoint\'s file holds the state at the checkpoint');
  assert.equal(await firstBytes(child), 'after--checkpoin', 'the child holds what the guest wrote afterwards');
  assert.equal(await sha256Of(child, 1 << 20, n * 4096), want, 'the file\'s checksum is right on the merged chain');
  for (const x of readdirSync(files).filter((y) => !y.startsWith('.'))) assert.deepEqual(await checkVhd(join(files, x)), [], `test-vhd ${x}`);

  const applied = await client.call<VmView>('POST', '/vms/cpd/snapshots/prod/restore', {});
  assert.equal(applied.state, 'Off', 'applying a production checkpoint gives an Off VM');
  assert.equal(await firstBytes((await client.call<DriveView[]>('GET', '/vms/cpd/hard-disk-drives'))[0].path!), 'before-checkpoin');
  await client.call('DELETE', '/vms/cpd/snapshots/prod');
  assert.deepEqual(readdirSync(files).filter((x) => !x.startsWith('.')), ['data.vhdx']);
  assert.equal(await firstBytes(disk), 'before-checkpoin');
});
