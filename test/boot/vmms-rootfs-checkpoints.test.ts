/**
 * Issues 13 and 14 with the real Debian guest on its root VHDX, under the service; one VM, four boots.
 * Boot 1: the root is the SCSI disk (hv_storvsc, ext4, Debian's packages, hyperv-daemons as services, KVP), a
 * data disk is hot-added; the guest appends numbered records to /root/log in a loop (each followed by sync)
 * while a production checkpoint is taken (it freezes the guest's file systems through hv_vss_daemon and moves
 * both disks onto new AVHDX files without the guest noticing: it reads and writes the data disk right after);
 * a second checkpoint is deleted while the guest writes a known file on the data disk (online merge); a third,
 * then export-vm of the running VM. A file written last on the root survives the host-initiated shutdown (rcK
 * leaves the root clean) and is read by boot 2 of the same disk, which powers off from its shell. Applying the
 * production checkpoint gives an Off VM whose root passes e2fsck -fn and holds every record synced before the
 * checkpoint, and whose data disk holds what was written before it; boot 3 is that checkpoint (rcS finds the
 * root clean, the guest reads the same file). Deleting the checkpoints merges everything back into the two base
 * files. After the VM is removed, import-vm of the export gives the same checkpoint tree, a clean root with the
 * records, and a VM that boots (boot 4) and reads them.
 * (This was three files, vmms-rootfs-checkpoints, vmms-checkpoint-disks and rootfs, with six boots between them.)
 * On the emulated processor (HYPERTS_ACCEPT_PROCESSOR=auto|kvm picks another). The worker is isolated
 * (bubblewrap) where it can be, as with the service's defaults (HYPERTS_TEST_ISOLATION=off runs it plain).
 * Waits poll the state that proves the behaviour; their limits are safety nets only.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, ftruncateSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { GuestSession } from './guest-session.js';
import { startService, waitFor, type Fixture } from '../vmms/helpers.js';
import { guestConsole, type GuestConsole } from '../vmms/guest-console.js';
import type { CheckpointView, VmView } from '../../src/vmms/service.js';
import type { DriveView } from '../../src/vmms/drives.js';
import type { VmEvent } from '../../src/vmms/store.js';
import type { OperationView } from '../../src/vmms/operations.js';
import { openDisk, diskChainPaths } from '../../src/storage/open.js';
import { checkVhd } from '../../src/storage/vhdx/ops.js';
import { isolationSupport } from '../../src/vmms/sandbox.js';
import { readRootfsManifest, rootfsPaths, ROOTFS_ROOT_OPTION } from '../../src/image/rootfs.js';
import { ROOTFS_HOSTNAME, ROOTFS_READY_MARKER, ROOTFS_STOPPED_MARKER } from '../../src/image/rootfs-config.js';
import { ROOT_SWITCH_MARKER } from '../../src/image/init-script.js';

const LIMIT_MS = 40 * 60_000;
const files = mkdtempSync(join(tmpdir(), 'hyperts-rootfs-cp-'));
let f: Fixture | null = null;
after(async () => { await f?.close(); rmSync(files, { recursive: true, force: true }); if (f) rmSync(f.dir, { recursive: true, force: true }); });

const skip = !GuestSession.imageAvailable() ? 'default image not built (npm run setup)'
  : !readRootfsManifest() ? 'root disk not built (npm run setup as root: hyperts image build --rootfs)' : false;

/** Appends "rec <i>" to /root/log and syncs, i counting on from /run/n, until /run/stop appears; then /run/stopped. */
const RECORD_WRITER = '(read i < /run/n; while [ ! -e /run/stop ]; do i=$((i+1)); echo "rec $i" >> /root/log; sync; echo $i > /run/n; done; echo done > /run/stopped) >/dev/null 2>&1 & true';
/** Blocks the data-disk writer writes before the merging checkpoint is deleted, and after. */
const MERGE_BLOCKS_BEFORE = 200, MERGE_BLOCKS_AFTER = 60;
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

async function sha256Of(path: string, offset: number, length: number): Promise<string> {
  const d = await openDisk(path, { readOnly: true, lock: false });
  try { const b = Buffer.alloc(length); await d.read(offset, b); return createHash('sha256').update(b).digest('hex'); } finally { await d.close(); }
}

/** The first 16 bytes of the disk (chain) under `path`. */
async function firstBytes(path: string): Promise<string> {
  const d = await openDisk(path, { readOnly: true, lock: false });
  try { const b = Buffer.alloc(512); await d.read(0, b); return b.toString('latin1', 0, 16); } finally { await d.close(); }
}

/** The root chain after a clean shutdown: test-vhd of each file, qemu-img check of the base, e2fsck -fn of the whole. */
async function checkRootClean(vhd: string, base: string): Promise<void> {
  for (const x of await diskChainPaths(vhd)) assert.deepEqual(await checkVhd(x), [], `test-vhd ${x}`);
  const check = spawnSync('qemu-img', ['check', '-f', 'vhdx', base], { encoding: 'utf8' });
  assert.equal(check.status, 0, `qemu-img check: ${check.stdout}${check.stderr}`);
  await rootLog(vhd); // e2fsck -fn must pass
}

const vhdFiles = (dir: string): string[] => readdirSync(dir).filter((x) => /\.a?vhdx$/.test(x)).sort();

test('Debian root disk: on hv_storvsc, production checkpoint under continuous writes, online merge of a data disk, shutdown and next boot, apply, boot; export running VM with two checkpoints, remove, import, boot', { skip, timeout: 3 * LIMIT_MS }, async (t) => {
  for (const tool of ['e2fsck', 'debugfs', 'qemu-img']) assert.ok(!spawnSync(tool, ['-V']).error, `${tool} missing: apt-get install e2fsprogs qemu-utils`);
  const t0 = Date.now();
  const phase = (what: string): void => t.diagnostic(`${what} at ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const dataDir = mkdtempSync(join(tmpdir(), 'hyperts-vmms-'));
  f = await startService(dataDir, { pathRoots: [dataDir, files], isolation: process.env.HYPERTS_TEST_ISOLATION === 'off' ? 'off' : 'auto' });
  const client = f.client;
  const disk = join(files, 'root.vhdx');
  const data = join(files, 'data.vhdx');
  copyFileSync(rootfsPaths().disk, disk);
  await client.call<VmView>('POST', '/vms', { name: 'deb', processor: process.env.HYPERTS_ACCEPT_PROCESSOR ?? 'emulated', memory: '512M', cmdline: ROOTFS_ROOT_OPTION });
  await client.call('POST', '/vms/deb/hard-disk-drives', { path: disk, controllerType: 'scsi' });
  const finished = async (op: OperationView): Promise<void> => {
    for (let o = op; o.state === 'Running'; await new Promise((r) => setTimeout(r, 100))) o = await client.call<OperationView>('GET', `/operations/${op.id}`);
  };
  await finished(await client.call<OperationView>('POST', '/vhds', { path: data, sizeBytes: '64MB' }));
  const state = async (): Promise<string> => (await client.call<VmView>('GET', '/vms/deb')).state;
  const drives = async (): Promise<DriveView[]> => client.call<DriveView[]>('GET', '/vms/deb/hard-disk-drives');
  const drive = async (): Promise<string> => (await drives()).find((d) => d.controllerLocation === 0)!.path!;
  const dataDrive = async (): Promise<string> => (await drives()).find((d) => d.controllerLocation === 1)!.path!;

  /** Starts the VM and waits for the root disk's autologin shell; returns the console output of this boot. */
  const boot = async (con: GuestConsole): Promise<() => string> => {
    const from = con.text().length;
    await client.call('POST', '/vms/deb/start', {});
    await con.wait(PROMPT, from);
    await con.sh('true');
    await con.sh('dmesg -n 1');
    return () => con.text().slice(from);
  };
  /** Shutdown through the Shutdown service; rcK leaves the root read-only and the kernel powers off. */
  const shutDown = async (out: () => string): Promise<void> => {
    await client.call('POST', '/vms/deb/stop', {});
    await waitFor('Off after the shutdown', async () => (await state()) === 'Off', LIMIT_MS);
    assert.ok(out().includes(ROOTFS_STOPPED_MARKER), `rcK did not make the root read-only:\n${out().slice(-3000)}`);
    assert.match(out().slice(out().lastIndexOf(ROOTFS_STOPPED_MARKER)), /reboot: Power down/, 'a clean power-off after rcK');
  };
  const counter = async (sh: (c: string) => Promise<string>): Promise<number> => {
    // `read`, a shell builtin: polling runs no program in the guest (it would compete with the writers).
    for (;;) { const v = (await sh('read v < /run/n; echo "$v"')).trim(); if (/^\d+$/.test(v)) return Number(v); } // (a read may meet it mid-rewrite)
  };
  /** Runs `cmd` in the guest and fails the test on a non-zero status. */
  let con = await guestConsole(client, 'deb', LIMIT_MS);
  const sh = async (cmd: string): Promise<string> => {
    const out = await con.sh(`${cmd}; echo "__rc=$?"`);
    const rc = /__rc=(\d+)\s*$/.exec(out);
    assert.equal(rc?.[1], '0', `'${cmd}' failed:\n${out}`);
    return out.slice(0, rc!.index);
  };

  // Boot 1: the writer runs throughout the checkpoints and the export.
  let out = await boot(con);
  phase('boot 1: shell');
  t.diagnostic(`processor ${(await client.call<VmView>('GET', '/vms/deb')).backend}`);

  // The root disk (issue 13; this was rootfs.test.ts): the initramfs switched to the SCSI disk.
  assert.ok(out().includes(`${ROOT_SWITCH_MARKER}/dev/sda`), 'the initramfs switched root to /dev/sda');
  assert.equal((await sh('findmnt -n -o SOURCE,FSTYPE /')).trim().split(/\s+/).join(' '), '/dev/sda ext4');
  assert.match(await sh('findmnt -n -o OPTIONS /'), /^rw,/);
  assert.match((await sh('readlink -f /sys/block/sda/device/driver')).trim(), /\/sd$/);
  const host = /\/(host\d+)\//.exec(await sh('readlink -f /sys/block/sda'))?.[1];
  assert.ok(host, 'sda sits below a SCSI host');
  assert.match(await sh(`cat /sys/class/scsi_host/${host}/proc_name`), /storvsc/);
  assert.equal((await sh('cat /proc/1/comm')).trim(), 'init');
  assert.match((await sh('readlink /sbin/init')).trim(), /busybox$/);
  // Debian packages: dpkg knows the installed system, hyperv-daemons and busybox among them.
  const nPkgs = Number((await sh('dpkg -l | wc -l')).trim());
  assert.ok(nPkgs > 80, `dpkg -l lists ${nPkgs} lines`);
  const st = await sh("dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' hyperv-daemons busybox base-files");
  for (const p of ['hyperv-daemons', 'busybox', 'base-files']) assert.match(st, new RegExp(`^${p} ii `, 'm'));
  assert.match(await sh('cat /etc/debian_version'), /^12\./);
  // hyperv-daemons run as services of the init (Debian's init scripts, pid files) and KVP answers the host.
  assert.ok(out().includes(ROOTFS_READY_MARKER));
  for (const d of ['hv_kvp_daemon', 'hv_vss_daemon']) {
    const pid = (await sh(`cat /run/${d}.pid`)).trim();
    assert.match(pid, /^\d+$/);
    assert.match(await sh(`cat /proc/${pid}/cmdline | tr '\\0' ' '`), new RegExp(`/usr/sbin/${d} -n`));
  }
  const kv = await waitFor('KVP from the guest', async () => {
    const k = await client.call<{ guest: Record<string, string> }>('GET', '/vms/deb/kvp').catch(() => null);
    return k?.guest.OSName ? k.guest : null;
  }, LIMIT_MS);
  assert.equal(kv.OSName, 'Debian GNU/Linux');
  assert.match(kv.FullyQualifiedDomainName, new RegExp(`^${ROOTFS_HOSTNAME}`));
  // The worker runs in its sandbox where bubblewrap works (a hot-added disk then reaches it as a descriptor).
  const isolated = !(await client.call<VmEvent[]>('GET', '/events?name=deb')).some((e) => /without isolation/i.test(e.message));
  t.diagnostic(`worker ${isolated ? 'isolated' : 'not isolated'}`);
  if (process.env.HYPERTS_TEST_ISOLATION !== 'off' && isolationSupport().available) assert.ok(isolated, 'the worker runs in its sandbox');

  // The data disk (this was vmms-checkpoint-disks.test.ts), hot-added at SCSI 0:1.
  await client.call('POST', '/vms/deb/hard-disk-drives', { path: data, controllerLocation: 1 });
  const dataDev = (await sh('for i in $(seq 1 150); do ls /sys/bus/scsi/devices/*:0:0:1/block >/dev/null 2>&1 && break; sleep 0.2; done; ls /sys/bus/scsi/devices/*:0:0:1/block')).trim().split('\n').pop()!.trim();
  assert.match(dataDev, /^sd[b-z]$/, 'the hot-added data disk has a block device');
  const dev = `/dev/${dataDev}`;
  await sh(`printf before-checkpoint | dd of=${dev} bs=512 conv=sync oflag=direct 2>/dev/null; sync`);
  phase('boot 1: root checked, data disk added');

  await sh('for i in $(seq 1 300); do pidof hv_vss_daemon >/dev/null && break; sleep 0.2; done; pidof hv_vss_daemon || echo no-vss-daemon');
  await sh(`rm -f /run/stop /run/stopped /root/log; echo 0 > /run/n; ${RECORD_WRITER}`);
  await waitFor('the guest writing', async () => (await counter(sh)) >= 20, LIMIT_MS);

  const beforeProd = await counter(sh);
  const prod = await client.call<CheckpointView>('POST', '/vms/deb/snapshots', { name: 'prod' });
  const events = (await client.call<VmEvent[]>('GET', '/events?name=deb')).map((e) => e.message).join('\n');
  assert.equal(prod.snapshotType, 'Production', `the guest froze its file systems (no fallback; events:\n${events})`);
  assert.equal(prod.runningState, false, 'no memory state');
  assert.equal(await state(), 'Running');
  const afterProd = await counter(sh);
  phase('production checkpoint taken');
  const child = await dataDrive();
  assert.match(basename(child), /^data_[0-9A-F-]{36}\.avhdx$/);
  // The guest goes on with the data disk: it reads what it wrote before and writes anew (now into the child).
  assert.match(await sh(`dd if=${dev} bs=512 count=1 iflag=direct 2>/dev/null | head -c 17`), /before-checkpoint/);
  await sh(`printf after--checkpoint | dd of=${dev} bs=512 conv=sync oflag=direct 2>/dev/null; sync`);
  assert.match(await sh(`dd if=${dev} bs=512 count=1 iflag=direct 2>/dev/null | head -c 17`), /after--checkpoint/);
  await waitFor('the guest writing after the thaw', async () => (await counter(sh)) >= afterProd + 10, LIMIT_MS);
  await sh('touch /run/stop; while [ ! -e /run/stopped ]; do sleep 0.2; done');

  // Online merge: another checkpoint, then the guest writes a "file" (known 4 KiB blocks from 1 MiB on) on the
  // data disk in a loop while the checkpoint is deleted, so its AVHDX files merge into the first children under
  // the running guest (the root's too, with the record writer going on). A block is "blk<i>\n" over and over, made
  // by the shell's printf and written by busybox' dd (yes would write each line with a write() of its own: 500 pipe
  // round trips per block; and a dynamically linked program costs the emulated guest far more to start). The
  // record writer pauses meanwhile, so the blocks come fast enough for some to land while the merge runs.
  await client.call<CheckpointView>('POST', '/vms/deb/snapshots', { name: 'merge-me' });
  const leaf = await dataDrive();
  assert.notEqual(leaf, child);
  await sh(`rm -f /run/bstop /run/finished; echo 0 > /run/b; (n=$(seq 1 1000); i=0; while [ ! -e /run/bstop ] && [ $i -lt 4000 ]; do printf "blk$i\\n%.0s" $n > /run/blk; busybox dd if=/run/blk of=${dev} bs=4096 count=1 seek=$((256+i)) conv=notrunc oflag=direct 2>/dev/null; i=$((i+1)); echo $i > /run/b; done; sync; echo done > /run/finished) >/dev/null 2>&1 & true`);
  const blocks = async (): Promise<number> => {
    for (;;) { const v = (await sh('read v < /run/b; echo "$v"')).trim(); if (/^\d+$/.test(v)) return Number(v); } // (a read may meet the file mid-rewrite)
  };
  await waitFor('the guest writing blocks', async () => (await blocks()) >= MERGE_BLOCKS_BEFORE, LIMIT_MS);
  const atDelete = await blocks();
  await client.call('DELETE', '/vms/deb/snapshots/merge-me');
  const afterDelete = await blocks();
  assert.equal(await dataDrive(), child, 'the guest runs on the first child again');
  assert.equal(await state(), 'Running');
  await waitFor('more writes after the merge', async () => (await blocks()) >= afterDelete + MERGE_BLOCKS_AFTER, LIMIT_MS);
  await sh('touch /run/bstop; while [ ! -e /run/finished ]; do sleep 0.2; done');
  const nBlocks = await blocks();
  assert.ok(nBlocks < 4000 && atDelete < afterDelete, `the guest wrote before, during and after the merge (${atDelete}, ${afterDelete}, ${nBlocks} blocks)`);
  const expected = createHash('sha256');
  for (let i = 0; i < nBlocks; i++) expected.update(Buffer.from(`blk${i}\n`.repeat(Math.ceil(4096 / `blk${i}\n`.length))).subarray(0, 4096));
  const want = expected.digest('hex');
  assert.match(await sh(`dd if=${dev} bs=4096 skip=256 count=${nBlocks} iflag=direct 2>/dev/null | sha256sum`), new RegExp(want), 'the guest reads its file back');
  assert.ok(!readdirSync(files).includes(basename(leaf)), 'the merged AVHDX is gone');
  phase('online merge done');

  await sh(`rm -f /run/stop /run/stopped; ${RECORD_WRITER}`); // on from the last record
  await waitFor('the guest writing again', async () => (await counter(sh)) >= afterProd + 20, LIMIT_MS);
  const beforeSecond = await counter(sh);
  const second = await client.call<CheckpointView>('POST', '/vms/deb/snapshots', { name: 'second' });
  assert.equal(second.snapshotType, 'Production');
  const afterSecond = await counter(sh);
  await waitFor('the guest writing after the second checkpoint', async () => (await counter(sh)) >= afterSecond + 10, LIMIT_MS);
  const tree = (await client.call<CheckpointView[]>('GET', '/vms/deb/snapshots')).map((c) => ({ id: c.id, name: c.name, parent: c.parentSnapshotName, type: c.snapshotType }));
  assert.deepEqual(tree.map((c) => [c.name, c.parent]), [['prod', null], ['second', 'prod']]);

  const beforeExport = await counter(sh);
  const exportsDir = join(files, 'exports');
  const { path: exported } = await client.call<{ path: string }>('POST', '/vms/deb/export', { path: exportsDir });
  assert.equal(await state(), 'Running', 'export-vm leaves the VM running');
  const afterExport = await counter(sh);
  await waitFor('the guest writing after the export', async () => (await counter(sh)) >= afterExport + 10, LIMIT_MS);
  assert.deepEqual((await client.call<CheckpointView[]>('GET', '/vms/deb/snapshots')).map((c) => c.name), ['prod', 'second'], 'the export\'s own checkpoint is gone again');
  t.diagnostic(`records synced before: prod ${beforeProd}, second ${afterSecond}, export ${beforeExport}`);
  phase('export done');

  // A file written on the root disk survives a host-initiated shutdown (Shutdown service -> /sbin/poweroff ->
  // busybox init -> rcK) and the next boot; the disk stays clean.
  await sh('touch /run/stop; while [ ! -e /run/stopped ]; do sleep 0.2; done');
  const token = `persisted-${randomBytes(6).toString('hex')}`;
  await sh(`echo ${token} > /root/persist && sync`);
  await shutDown(out);
  phase('boot 1: shut down');
  await checkRootClean(await drive(), disk);

  // The data disk's chain, offline: the checkpoint's file keeps what the guest wrote before it, the child what came
  // after, and the merged chain the guest's file.
  assert.equal(await firstBytes(data), 'before-checkpoin', 'the checkpoint\'s file holds the state at the checkpoint');
  assert.equal(await firstBytes(child), 'after--checkpoin', 'the child holds what the guest wrote afterwards');
  assert.equal(await sha256Of(child, 1 << 20, nBlocks * 4096), want, 'the file\'s checksum is right on the merged chain');
  for (const x of vhdFiles(files)) assert.deepEqual(await checkVhd(join(files, x)), [], `test-vhd ${x}`);

  // Boot 2: the same disk again; rcS finds the root clean and the file there; poweroff from the guest's shell.
  out = await boot(con);
  assert.match(out(), /root: clean/, 'rcS found the file system clean');
  assert.equal((await sh('cat /root/persist')).trim(), token);
  const since = (await client.call<VmEvent[]>('GET', '/vms/deb/events?limit=1'))[0]?.seq ?? 0;
  con.send('poweroff\n');
  await waitFor('Off after poweroff in the guest', async () => (await state()) === 'Off', LIMIT_MS);
  const offEvents = (await client.call<VmEvent[]>('GET', `/vms/deb/events?after=${since}`)).map((e) => `${e.from} -> ${e.to}: ${e.message}`).join('\n');
  assert.match(offEvents, /Running -> Off: the guest powered off/, `the VM ended with exit code 0 (events:\n${offEvents})`);
  assert.ok(out().lastIndexOf(ROOTFS_STOPPED_MARKER) > out().lastIndexOf(token), 'rcK ran after the file was read');
  phase('boot 2: powered off');
  await checkRootClean(await drive(), disk);

  // Apply the production checkpoint: Off, a clean root holding every record synced before it.
  const applied = await client.call<VmView>('POST', '/vms/deb/snapshots/prod/restore', {});
  assert.equal(applied.state, 'Off', 'applying a production checkpoint gives an Off VM');
  const prodLog = await rootLog(await drive());
  const n = records(prodLog);
  assert.ok(n >= beforeProd, `the checkpoint holds the ${beforeProd} records synced before it (has ${n})`);
  assert.ok(n <= afterProd + 1, `and nothing written after it (${n} records, ${afterProd} when it returned)`);

  assert.equal(await firstBytes(await dataDrive()), 'before-checkpoin', 'the applied checkpoint\'s data disk');

  // Boot 3: the applied checkpoint boots; the guest finds the root clean and reads the same file.
  out = await boot(con);
  assert.match(out(), /root: clean/, 'rcS found the file system clean');
  assert.match(await sh('sha256sum /root/log'), new RegExp(sha256(prodLog)));
  await shutDown(out);
  con.close();
  phase('boot 3: shut down');

  // Deleting the checkpoints of the Off VM merges its disks back into the two base files.
  await client.call('DELETE', '/vms/deb/snapshots/second');
  await client.call('DELETE', '/vms/deb/snapshots/prod');
  assert.deepEqual(vhdFiles(files), ['data.vhdx', 'root.vhdx']);
  assert.equal(await drive(), disk);
  assert.equal(await firstBytes(data), 'before-checkpoin');

  // Remove the VM, import the export in place: the same tree; a clean root with the records; boot 4.
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
  const secondDisk = (await client.call<CheckpointView[]>('GET', '/vms/deb/snapshots')).find((c) => c.name === 'second')!.disks.find((d) => basename(d.path).startsWith('root'))!.path;
  const secondLog = records(await rootLog(secondDisk));
  assert.ok(secondLog >= beforeSecond && secondLog <= afterSecond + 1 && secondLog <= m, `checkpoint 'second' holds ${secondLog} records (${beforeSecond} synced before it)`);

  con = await guestConsole(client, 'deb', LIMIT_MS);
  out = await boot(con);
  assert.match(out(), /root: clean/, 'rcS found the imported file system clean');
  assert.match(await sh('sha256sum /root/log'), new RegExp(sha256(exportLog)));
  await shutDown(out);
  con.close();
  phase('boot 4: shut down');

  // Every file of the imported chains: test-vhd; the base VHDX also qemu-img check.
  const vhds = join(exported, 'Virtual Hard Disks');
  const chain = await diskChainPaths(await drive());
  assert.ok(chain.length >= 3, `the imported disk chain: ${chain.join(' <- ')}`);
  for (const x of readdirSync(vhds)) assert.deepEqual(await checkVhd(join(vhds, x)), [], `test-vhd ${x}`);
  const base = spawnSync('qemu-img', ['check', '-f', 'vhdx', join(vhds, 'root.vhdx')], { encoding: 'utf8' });
  assert.equal(base.status, 0, `qemu-img check root.vhdx: ${base.stdout}${base.stderr}`);
});
