/**
 * Issue 14 with the real Debian guest on its root VHDX, under the service. The guest appends numbered records
 * to /root/log in a loop (each followed by sync) while a production checkpoint is taken: applying it gives an
 * Off VM whose root passes e2fsck -fn and holds every record synced before the checkpoint, and that boots
 * (rcS finds the file system clean, the guest reads the same file). A second checkpoint, then export-vm of the
 * running VM (through a checkpoint taken for the purpose); after the VM is removed, import-vm of the export
 * gives the same checkpoint tree, a clean root with the records, and a VM that boots and reads them.
 * Three boots in all, on the emulated processor (HYPERTS_ACCEPT_PROCESSOR=auto|kvm picks another). Waits poll the state that proves the behaviour; their limits are safety nets only.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, ftruncateSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { GuestSession } from './guest-session.js';
import { startService, waitFor, type Fixture } from '../vmms/helpers.js';
import { guestConsole, type GuestConsole } from '../vmms/guest-console.js';
import type { CheckpointView, VmView } from '../../src/vmms/service.js';
import type { DriveView } from '../../src/vmms/drives.js';
import type { VmEvent } from '../../src/vmms/store.js';
import { openDisk, diskChainPaths } from '../../src/storage/open.js';
import { checkVhd } from '../../src/storage/vhdx/ops.js';
import { readRootfsManifest, rootfsPaths, ROOTFS_ROOT_OPTION } from '../../src/image/rootfs.js';
import { ROOTFS_HOSTNAME } from '../../src/image/rootfs-config.js';

const LIMIT_MS = 40 * 60_000;
const files = mkdtempSync(join(tmpdir(), 'hyperts-rootfs-cp-'));
let f: Fixture | null = null;
after(async () => { await f?.close(); rmSync(files, { recursive: true, force: true }); if (f) rmSync(f.dir, { recursive: true, force: true }); });

const skip = !GuestSession.imageAvailable() ? 'default image not built (npm run setup)'
  : !readRootfsManifest() ? 'root disk not built (npm run setup as root: hyperts image build --rootfs)' : false;

const PROMPT = new RegExp(`root@${ROOTFS_HOSTNAME}:[^#\\n]*# `);
const ZERO = Buffer.alloc(1 << 20);

/** The disk chain under `vhd` as a sparse raw image (qemu-img cannot open differencing VHDX). */
async function rawImage(vhd: string, raw: string): Promise<void> {
  const d = await openDisk(vhd, { readOnly: true, lock: false });
  const fd = openSync(raw, 'w');
  try {
    ftruncateSync(fd, d.sizeBytes);
    const buf = Buffer.alloc(ZERO.length);
    for (let off = 0; off < d.sizeBytes; off += buf.length) {
      const b = buf.subarray(0, Math.min(buf.length, d.sizeBytes - off));
      await d.read(off, b);
      if (!b.equals(ZERO.subarray(0, b.length))) writeSync(fd, b, 0, b.length, off);
    }
  } finally { closeSync(fd); await d.close(); }
}

/** e2fsck -fn of the chain under `vhd` (must be clean), then /root/log read with debugfs. */
async function rootLog(vhd: string): Promise<string> {
  const raw = join(files, 'check.raw');
  rmSync(raw, { force: true });
  try {
    await rawImage(vhd, raw);
    const fsck = spawnSync('e2fsck', ['-fn', raw], { encoding: 'utf8' });
    assert.equal(fsck.status, 0, `e2fsck -fn of ${vhd} (exit ${fsck.status}):\n${fsck.stdout}${fsck.stderr}`);
    const cat = spawnSync('debugfs', ['-R', 'cat /root/log', raw], { encoding: 'utf8', maxBuffer: 256 << 20 });
    assert.equal(cat.status, 0, `debugfs: ${cat.stderr}`);
    return cat.stdout;
  } finally { rmSync(raw, { force: true }); }
}

/** The number of records in `log`, which must be exactly "rec 1\n" .. "rec N\n" (nothing torn, nothing missing). */
function records(log: string): number {
  assert.ok(log.length > 0 && log.endsWith('\n'), `the log ends with a whole record: ${JSON.stringify(log.slice(-40))}`);
  const lines = log.slice(0, -1).split('\n');
  lines.forEach((l, i) => assert.equal(l, `rec ${i + 1}`, `record ${i + 1}`));
  return lines.length;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

test('Debian root disk: production checkpoint under continuous writes, apply, boot; export running VM with two checkpoints, remove, import, boot', { skip, timeout: 3 * LIMIT_MS }, async (t) => {
  for (const tool of ['e2fsck', 'debugfs', 'qemu-img']) assert.ok(!spawnSync(tool, ['-V']).error, `${tool} missing: apt-get install e2fsprogs qemu-utils`);
  const dataDir = mkdtempSync(join(tmpdir(), 'hyperts-vmms-'));
  f = await startService(dataDir, { pathRoots: [dataDir, files], isolation: process.env.HYPERTS_TEST_ISOLATION === 'off' ? 'off' : 'auto' });
  const client = f.client;
  const disk = join(files, 'root.vhdx');
  copyFileSync(rootfsPaths().disk, disk);
  await client.call<VmView>('POST', '/vms', { name: 'deb', processor: process.env.HYPERTS_ACCEPT_PROCESSOR ?? 'emulated', memory: '512M', cmdline: ROOTFS_ROOT_OPTION });
  await client.call('POST', '/vms/deb/hard-disk-drives', { path: disk, controllerType: 'scsi' });
  const state = async (): Promise<string> => (await client.call<VmView>('GET', '/vms/deb')).state;
  const drive = async (): Promise<string> => (await client.call<DriveView[]>('GET', '/vms/deb/hard-disk-drives'))[0].path!;

  /** Starts the VM and waits for the root disk's autologin shell; returns the console output of this boot. */
  const boot = async (con: GuestConsole): Promise<() => string> => {
    const from = con.text().length;
    await client.call('POST', '/vms/deb/start', {});
    await con.wait(PROMPT, from);
    await con.sh('true');
    await con.sh('dmesg -n 1');
    return () => con.text().slice(from);
  };
  const shutDown = async (): Promise<void> => {
    await client.call('POST', '/vms/deb/stop', {});
    await waitFor('Off after the shutdown', async () => (await state()) === 'Off', LIMIT_MS);
  };
  const counter = async (sh: (c: string) => Promise<string>): Promise<number> => {
    for (;;) { const v = (await sh('cat /run/n')).trim(); if (/^\d+$/.test(v)) return Number(v); } // (a read may meet it mid-rewrite)
  };

  // Boot 1: the writer runs throughout both checkpoints and the export.
  let con = await guestConsole(client, 'deb', LIMIT_MS);
  await boot(con);
  t.diagnostic(`processor ${(await client.call<VmView>('GET', '/vms/deb')).backend}`);
  await con.sh('for i in $(seq 1 300); do pidof hv_vss_daemon >/dev/null && break; sleep 0.2; done; pidof hv_vss_daemon || echo no-vss-daemon');
  await con.sh('rm -f /run/stop /root/log; echo 0 > /run/n; (i=0; while [ ! -e /run/stop ]; do i=$((i+1)); echo "rec $i" >> /root/log; sync; echo $i > /run/n; done) >/dev/null 2>&1 & true');
  await waitFor('the guest writing', async () => (await counter(con.sh)) >= 20, LIMIT_MS);

  const beforeProd = await counter(con.sh);
  const prod = await client.call<CheckpointView>('POST', '/vms/deb/snapshots', { name: 'prod' });
  const events = (await client.call<VmEvent[]>('GET', '/events?name=deb')).map((e) => e.message).join('\n');
  assert.equal(prod.snapshotType, 'Production', `the guest froze its file systems (no fallback; events:\n${events})`);
  assert.equal(prod.runningState, false);
  assert.equal(await state(), 'Running');
  const afterProd = await counter(con.sh);
  await waitFor('the guest writing after the thaw', async () => (await counter(con.sh)) >= afterProd + 20, LIMIT_MS);

  const beforeSecond = await counter(con.sh);
  const second = await client.call<CheckpointView>('POST', '/vms/deb/snapshots', { name: 'second' });
  assert.equal(second.snapshotType, 'Production');
  const afterSecond = await counter(con.sh);
  await waitFor('the guest writing after the second checkpoint', async () => (await counter(con.sh)) >= afterSecond + 20, LIMIT_MS);
  const tree = (await client.call<CheckpointView[]>('GET', '/vms/deb/snapshots')).map((c) => ({ id: c.id, name: c.name, parent: c.parentSnapshotName, type: c.snapshotType }));
  assert.deepEqual(tree.map((c) => [c.name, c.parent]), [['prod', null], ['second', 'prod']]);

  const beforeExport = await counter(con.sh);
  const exportsDir = join(files, 'exports');
  const { path: exported } = await client.call<{ path: string }>('POST', '/vms/deb/export', { path: exportsDir });
  assert.equal(await state(), 'Running', 'export-vm leaves the VM running');
  const afterExport = await counter(con.sh);
  await waitFor('the guest writing after the export', async () => (await counter(con.sh)) >= afterExport + 20, LIMIT_MS);
  assert.deepEqual((await client.call<CheckpointView[]>('GET', '/vms/deb/snapshots')).map((c) => c.name), ['prod', 'second'], 'the export\'s own checkpoint is gone again');
  t.diagnostic(`records synced before: prod ${beforeProd}, second ${afterSecond}, export ${beforeExport}`);
  await con.sh('touch /run/stop');
  await client.call('POST', '/vms/deb/stop', { turnOff: true });
  await waitFor('Off', async () => (await state()) === 'Off', 120_000);

  // Apply the production checkpoint: Off, a clean root holding every record synced before it.
  const applied = await client.call<VmView>('POST', '/vms/deb/snapshots/prod/restore', {});
  assert.equal(applied.state, 'Off', 'applying a production checkpoint gives an Off VM');
  const prodLog = await rootLog(await drive());
  const n = records(prodLog);
  assert.ok(n >= beforeProd, `the checkpoint holds the ${beforeProd} records synced before it (has ${n})`);
  assert.ok(n <= afterProd + 1, `and nothing written after it (${n} records, ${afterProd} when it returned)`);

  // Boot 2: the applied checkpoint boots; the guest finds the root clean and reads the same file.
  let out = await boot(con);
  assert.match(out(), /root: clean/, 'rcS found the file system clean');
  assert.match(await con.sh('sha256sum /root/log'), new RegExp(sha256(prodLog)));
  await shutDown();
  con.close();

  // Remove the VM, import the export in place: the same tree; a clean root with the records; boot 3.
  await client.call('DELETE', '/vms/deb');
  const imported = await client.call<VmView>('POST', '/imports', { path: exported });
  assert.equal(imported.state, 'Off', 'a VM exported from a production checkpoint imports Off');
  const tree2 = (await client.call<CheckpointView[]>('GET', '/vms/deb/snapshots')).map((c) => ({ id: c.id, name: c.name, parent: c.parentSnapshotName, type: c.snapshotType }));
  assert.deepEqual(tree2, tree, 'the same checkpoint tree');
  const current = await drive();
  assert.ok(current.startsWith(join(exported, 'Virtual Hard Disks')), `the import uses the export's files (${current})`);
  const exportLog = await rootLog(current);
  const m = records(exportLog);
  assert.ok(m >= beforeExport, `the export holds the ${beforeExport} records synced before it (has ${m})`);
  assert.ok(m <= afterExport + 1, `and nothing written after it (${m} records, ${afterExport} when it returned)`);
  const secondDisk = (await client.call<CheckpointView[]>('GET', '/vms/deb/snapshots')).find((c) => c.name === 'second')!.disks[0].path;
  const secondLog = records(await rootLog(secondDisk));
  assert.ok(secondLog >= beforeSecond && secondLog <= afterSecond + 1 && secondLog <= m, `checkpoint 'second' holds ${secondLog} records (${beforeSecond} synced before it)`);

  con = await guestConsole(client, 'deb', LIMIT_MS);
  out = await boot(con);
  assert.match(out(), /root: clean/, 'rcS found the imported file system clean');
  assert.match(await con.sh('sha256sum /root/log'), new RegExp(sha256(exportLog)));
  await shutDown();
  con.close();

  // Every file of the imported chains: test-vhd; the base VHDX also qemu-img check.
  const vhds = join(exported, 'Virtual Hard Disks');
  const chain = await diskChainPaths(await drive());
  assert.ok(chain.length >= 3, `the imported disk chain: ${chain.join(' <- ')}`);
  for (const x of readdirSync(vhds)) assert.deepEqual(await checkVhd(join(vhds, x)), [], `test-vhd ${x}`);
  const base = spawnSync('qemu-img', ['check', '-f', 'vhdx', join(vhds, 'root.vhdx')], { encoding: 'utf8' });
  assert.equal(base.status, 0, `qemu-img check root.vhdx: ${base.stdout}${base.stderr}`);
});
