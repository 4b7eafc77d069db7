/**
 * Disks managed through the service with the real Debian guest: new-vm --new-vhd-path gives the guest a VHDX at
 * SCSI 0:0 (hv_storvsc, sda of the right size); what the guest writes is in the file (checked with qemu-io
 * after turn-off, qemu-img check clean), also from an isolated worker's sandbox; add-/remove-vmharddiskdrive on
 * the running VM appear and disappear in the guest (workers without isolation; an isolated one refuses clearly).
 * One boot, processor auto (KVM where usable; HYPERTS_ACCEPT_PROCESSOR overrides). The worker runs without
 * isolation so hot add is exercised; HYPERTS_TEST_ISOLATION=1 runs it sandboxed (its own disk, hot add refused).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INIT_BANNER } from '../../src/image/init-script.js';
import { GuestSession } from './guest-session.js';
import { openConsole, startService, type Fixture } from '../vmms/helpers.js';
import type { VmView } from '../../src/vmms/service.js';
import type { OperationView } from '../../src/vmms/operations.js';

const LIMIT_MS = 30 * 60_000;
const files = mkdtempSync(join(tmpdir(), 'hyperts-vmms-disks-'));
let f: Fixture | null = null;
after(async () => { await f?.close(); rmSync(files, { recursive: true, force: true }); if (f) rmSync(f.dir, { recursive: true, force: true }); });

const skip = !GuestSession.imageAvailable() ? 'default image not built (npm run setup)' : spawnSync('qemu-io', ['--version']).status !== 0 ? 'qemu-io (qemu-utils) not installed' : false;

test('service-managed disks in the real guest: VHDX at SCSI 0:0, guest writes land in the file, hot add and remove', { skip, timeout: LIMIT_MS }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'hyperts-vmms-'));
  f = await startService(dataDir, { pathRoots: [dataDir, files], isolation: process.env.HYPERTS_TEST_ISOLATION ? 'auto' : 'off' });
  const client = f.client;
  const disk = join(files, 'root-data.vhdx');
  const vm = await client.call<VmView>('POST', '/vms', { name: 'disks', processor: process.env.HYPERTS_ACCEPT_PROCESSOR ?? 'auto', memory: '512M', newVhdPath: disk, newVhdSizeBytes: '64MB' });
  assert.equal(vm.config.hardware.drives[0].path, disk);
  const con = await openConsole(client, 'disks');
  await client.call('POST', '/vms/disks/start', {});
  const wait = async (re: RegExp, from = 0): Promise<string> => {
    const end = Date.now() + LIMIT_MS;
    for (;;) {
      const m = re.exec(con.text().slice(from));
      if (m) return m[0];
      if (Date.now() > end) throw new Error(`guest did not print ${re}; last output:\n${con.text().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  let seq = 0;
  const sh = async (cmd: string): Promise<string> => {
    const n = ++seq;
    const from = con.text().length;
    con.send(`echo "__B""${n}__"; ${cmd}; echo "__E""${n}__ $?"\n`);
    await wait(new RegExp(`__E${n}__ \\d+`), from);
    const t = con.text().slice(from).replace(/\r\n/g, '\n');
    return t.slice(t.indexOf(`__B${n}__\n`) + `__B${n}__\n`.length, t.indexOf(`__E${n}__`));
  };
  await wait(new RegExp(INIT_BANNER.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  await sh('true');
  // Kernel messages on the console would interleave with command output.
  await sh('dmesg -n 1');

  // sda: 64 MiB on hv_storvsc.
  await sh('for i in $(seq 1 100); do [ -e /sys/block/sda ] && break; sleep 0.2; done');
  assert.equal((await sh('cat /sys/block/sda/size')).trim(), String(64 * 2048));
  assert.match(await sh('cat /sys/class/scsi_host/$(ls /sys/block/sda/device/scsi_device | cut -d: -f1 | sed s/^/host/)/proc_name'), /storvsc/);
  await sh('printf guest-wrote-this | dd of=/dev/sda bs=512 conv=sync oflag=direct 2>/dev/null; sync');

  // Hot add through the service: a second VHDX appears as the LUN at 0:0:1; hot remove takes it away.
  const op = await client.call<OperationView>('POST', '/vhds', { path: join(files, 'hot.vhdx'), sizeBytes: '32MB' });
  for (let o = op; o.state === 'Running'; await new Promise((r) => setTimeout(r, 100))) o = await client.call<OperationView>('GET', `/operations/${op.id}`);
  const events = await client.call<{ message: string }[]>('GET', '/vms/disks/events');
  if (!events.some((ev) => /WITHOUT isolation|without isolation/.test(ev.message))) {
    // An isolated worker's sandbox holds only the files it started with: refused, saying what to do.
    await assert.rejects(client.call('POST', '/vms/disks/hard-disk-drives', { path: join(files, 'hot.vhdx') }), /its worker is isolated and sees only the files it started with; stop-vm disks, add the disk/);
  } else {
    await hotAddAndRemove();
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

  await client.call('POST', '/vms/disks/stop', { turnOff: true });
  con.ws.close();
  assert.equal(spawnSync('qemu-img', ['check', '-f', 'vhdx', disk]).status, 0, 'qemu-img check is clean');
  const r = spawnSync('qemu-io', ['-f', 'vhdx', '-r', '-c', 'read -v 0 16', disk], { encoding: 'utf8' });
  // qemu-io's hex dump of the first 16 bytes: "guest-wrote-this".
  assert.match(r.stdout, /^00000000: +67 75 65 73 74 2d 77 72 6f 74 65 2d 74 68 69 73 /m);
});
