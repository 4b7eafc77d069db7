/**
 * Disks managed through the service with the real Debian guest: new-vm --new-vhd-path gives the guest a VHDX at
 * SCSI 0:0 (hv_storvsc, sda of the right size); what the guest writes is in the file (checked with qemu-io
 * after turn-off, qemu-img check clean), also from an isolated worker's sandbox; add-/remove-vmharddiskdrive on
 * the running VM appear and disappear in the guest (an isolated worker gets the file as a descriptor).
 * Then data safety: the worker is SIGKILLed while the guest writes and syncs files on a dynamic VHDX in a loop;
 * every write the guest saw synced is there after the next start, and Test-VHD passes.
 * Two boots, processor auto (KVM where usable; HYPERTS_ACCEPT_PROCESSOR overrides). The worker runs without
 * isolation by default; HYPERTS_TEST_ISOLATION=1 runs it sandboxed (disks bound at start, the hot-added one passed as a descriptor).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { holderRecordPath } from '../../src/storage/lock.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestSession } from './guest-session.js';
import { startService, waitFor, type Fixture } from '../vmms/helpers.js';
import { guestConsole } from '../vmms/guest-console.js';
import type { VmView } from '../../src/vmms/service.js';
import type { OperationView } from '../../src/vmms/operations.js';

const LIMIT_MS = 30 * 60_000;
const files = mkdtempSync(join(tmpdir(), 'hyperts-vmms-disks-'));
let f: Fixture | null = null;
after(async () => { await f?.close(); rmSync(files, { recursive: true, force: true }); if (f) rmSync(f.dir, { recursive: true, force: true }); });

const skip = !GuestSession.imageAvailable() ? 'default image not built (npm run setup)' : spawnSync('qemu-io', ['--version']).status !== 0 ? 'qemu-io (qemu-utils) not installed'
  : spawnSync('e2fsck', ['-V']).status !== 0 ? 'e2fsck (e2fsprogs) not installed' : false;

test('service-managed disks in the real guest: VHDX at SCSI 0:0, guest writes land in the file, hot add and remove', { skip, timeout: LIMIT_MS }, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'hyperts-vmms-'));
  f = await startService(dataDir, { pathRoots: [dataDir, files], isolation: process.env.HYPERTS_TEST_ISOLATION ? 'auto' : 'off' });
  const client = f.client;
  const disk = join(files, 'root-data.vhdx');
  const vm = await client.call<VmView>('POST', '/vms', { name: 'disks', processor: process.env.HYPERTS_ACCEPT_PROCESSOR ?? 'auto', memory: '512M', newVhdPath: disk, newVhdSizeBytes: '64MB' });
  assert.equal(vm.config.hardware.drives[0].path, disk);
  // The data-safety disk: a second dynamic VHDX at SCSI 0:2 (hot add below takes the free 0:1).
  const safe = join(files, 'safe.vhdx');
  await finished(await client.call<OperationView>('POST', '/vhds', { path: safe, sizeBytes: '48MB' }));
  await client.call('POST', '/vms/disks/hard-disk-drives', { path: safe, controllerLocation: 2 });
  const con = await guestConsole(client, 'disks', LIMIT_MS);
  const sh = con.sh;
  await client.call('POST', '/vms/disks/start', {});
  await con.booted(0);

  // The disk at LUN 0: 64 MiB on hv_storvsc. (Names are looked up by LUN: sdX follow the order of discovery.)
  const lunDev = async (lun: number): Promise<string> => (await sh(`for i in $(seq 1 100); do ls /sys/bus/scsi/devices/*:0:0:${lun}/block >/dev/null 2>&1 && break; sleep 0.2; done; ls /sys/bus/scsi/devices/*:0:0:${lun}/block`)).trim().split('\n').pop()!.trim();
  const d0 = await lunDev(0);
  assert.match(d0, /^sd[a-z]$/, 'the disk at SCSI 0:0 has a block device');
  assert.equal((await sh(`cat /sys/block/${d0}/size`)).trim(), String(64 * 2048));
  assert.match(await sh(`cat /sys/class/scsi_host/$(ls /sys/block/${d0}/device/scsi_device | cut -d: -f1 | sed s/^/host/)/proc_name`), /storvsc/);
  // conv=fsync: the block device's fsync makes the guest flush (SYNCHRONIZE CACHE), so the write is durable.
  await sh(`printf guest-wrote-this | dd of=/dev/${d0} bs=512 conv=sync,fsync oflag=direct 2>/dev/null`);

  // Hot add through the service: a second VHDX appears as the LUN at 0:0:1; hot remove takes it away.
  await finished(await client.call<OperationView>('POST', '/vhds', { path: join(files, 'hot.vhdx'), sizeBytes: '32MB' }));
  // An isolated worker gets the hot-added file as a descriptor from the service (HYPERTS_TEST_ISOLATION=1).
  await hotAddAndRemove();
  async function finished(op: OperationView): Promise<void> {
    for (let o = op; o.state === 'Running'; await new Promise((r) => setTimeout(r, 100))) o = await client.call<OperationView>('GET', `/operations/${op.id}`);
  }
  async function hotAddAndRemove(): Promise<void> {
  await client.call('POST', '/vms/disks/hard-disk-drives', { path: join(files, 'hot.vhdx') });
  const present = 'for i in $(seq 1 150); do ls /sys/bus/scsi/devices/*:0:0:1/block >/dev/null 2>&1 && break; sleep 0.2; done; ls /sys/bus/scsi/devices/*:0:0:1/block';
  const name = (await sh(present)).trim().split('\n').map((l) => l.trim()).filter((l) => /^sd[b-z]$/.test(l)).pop();
  assert.ok(name, 'the hot-added disk has a block device');
  assert.equal((await sh(`cat /sys/block/${name}/size`)).trim(), String(32 * 2048));
  await client.call('DELETE', '/vms/disks/hard-disk-drives/SCSI/0/1');
  await sh('for i in $(seq 1 150); do ls /sys/bus/scsi/devices/*:0:0:1 >/dev/null 2>&1 || break; sleep 0.2; done');
  assert.equal((await sh(`[ -e /sys/block/${name} ] && echo still-there || echo gone`)).trim(), 'gone');
  }

  // Data safety: the worker is SIGKILLed while the guest writes records into files of an ext4 file system on a
  // dynamic VHDX and syncs after each. Every record the guest reported synced before the kill is there, intact,
  // after the next start (ext4's journal and the VHDX log replayed), and Test-VHD passes.
  const sdev = await lunDev(2);
  assert.match(sdev, /^sd[a-z]$/, 'the data-safety disk at SCSI 0:2 has a block device');
  assert.equal((await sh(`cat /sys/block/${sdev}/size`)).trim(), String(48 * 2048));
  await sh(`mkfs.ext4 -q -F /dev/${sdev} && mkdir -p /mnt/s && mount -t ext4 /dev/${sdev} /mnt/s`);
  const record = (i: number): string => `record ${i} ${'x'.repeat(i % 700)} end ${i}`;
  const from = con.text().length;
  con.send(`i=1; while :; do echo "record $i $(head -c $((i % 700)) /dev/zero | tr '\\000' x) end $i" > /mnt/s/f.$i; sync; echo "synced-$i"; i=$((i+1)); done &\n`);
  await con.wait(/synced-25\b/, from);
  const pid = f.service.workerPid('disks');
  assert.ok(pid && pid > 0, 'the running VM has a worker process');
  assert.equal(JSON.parse(readFileSync(holderRecordPath(safe), 'utf8')).pid, pid, 'the running worker is named as the disk\'s lock holder');
  process.kill(pid, 'SIGKILL');
  // What the harness saw before the kill is all the guest can have reported.
  const acked = Math.max(...[...con.text().slice(from).matchAll(/synced-(\d+)/g)].map((m) => Number(m[1])));
  await waitFor('the VM to turn Off after its worker was killed', async () => (await client.call<VmView>('GET', '/vms/disks')).state === 'Off', 60_000);
  const killed = (await client.call<{ message: string }[]>('GET', '/vms/disks/events')).map((ev) => ev.message).join('\n');
  assert.match(killed, new RegExp(`worker process ${pid} ended unexpectedly \\(signal SIGKILL\\)`));

  t.diagnostic(`${acked} records synced before the kill`);
  assert.ok(!existsSync(holderRecordPath(safe)), 'the dead worker is no longer named as the holder of the disk');
  // The kill left committed metadata in the VHDX log: Test-VHD says so; the next open replays it.
  const dirty = await client.call<{ ok: boolean; message: string }>('POST', '/vhds/test', { path: safe });
  assert.match(dirty.message, /log holds changes not yet applied/);
  const restart = con.text().length;
  await client.call('POST', '/vms/disks/start', {});
  await con.booted(restart);
  const sdev2 = await lunDev(2);
  await sh(`mkdir -p /mnt/s && mount -t ext4 /dev/${sdev2} /mnt/s`);
  const back = (await sh(`i=1; while [ $i -le ${acked} ]; do cat /mnt/s/f.$i 2>/dev/null || echo "missing $i"; i=$((i+1)); done`)).trim().split('\n').map((l) => l.trim());
  assert.equal(back.length, acked, `one line per record 1..${acked}`);
  back.forEach((l, k) => assert.equal(l, record(k + 1), `record ${k + 1} of the ${acked} synced before the kill`));
  await sh('umount /mnt/s');
  assert.match(await sh(`dd if=/dev/${await lunDev(0)} bs=512 count=1 iflag=direct 2>/dev/null | head -c 16`), /guest-wrote-this/, 'the flushed write to LUN 0 survived the kill too');

  await client.call('POST', '/vms/disks/stop', { turnOff: true });
  con.close();
  const tv = await client.call<{ ok: boolean; message: string }>('POST', '/vhds/test', { path: safe });
  assert.ok(tv.ok, tv.message);
  assert.equal(spawnSync('qemu-img', ['check', '-f', 'vhdx', safe]).status, 0, 'qemu-img check of the data-safety disk is clean');
  const raw = join(files, 'safe.raw');
  assert.equal(spawnSync('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', safe, raw]).status, 0);
  const fsck = spawnSync('e2fsck', ['-fn', raw], { encoding: 'utf8' });
  assert.equal(fsck.status, 0, `the guest's file system is clean after its journal replay:\n${fsck.stdout}${fsck.stderr}`);
  assert.equal(spawnSync('qemu-img', ['check', '-f', 'vhdx', disk]).status, 0, 'qemu-img check is clean');
  const r = spawnSync('qemu-io', ['-f', 'vhdx', '-r', '-c', 'read -v 0 16', disk], { encoding: 'utf8' });
  // qemu-io's hex dump of the first 16 bytes: "guest-wrote-this".
  assert.match(r.stdout, /^00000000: +67 75 65 73 74 2d 77 72 6f 74 65 2d 74 68 69 73 /m);
});
