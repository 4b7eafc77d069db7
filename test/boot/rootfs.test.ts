/**
 * Issue 13, Debian on a disk: the cached rootfs (hyperts image build --rootfs), a copy of it as the SCSI root
 * disk of a VM that boots the stock cloud kernel with our initramfs and root=LABEL=root. Two boots of the same
 * copy: the first writes a file and is shut down by the host (Shutdown service -> /sbin/poweroff -> busybox
 * init -> rcK); the second finds the file and powers off from its shell. After each clean shutdown the VHDX
 * passes qemu-img check and its raw conversion e2fsck -fn.
 *
 * Waits below poll the state that proves the behaviour; their limits are safety nets, not timing assertions.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { GuestSession } from './guest-session.js';
import { readRootfsManifest, rootfsPaths, ROOTFS_ROOT_OPTION } from '../../src/image/rootfs.js';
import { ROOTFS_READY_MARKER, ROOTFS_STOPPED_MARKER, ROOTFS_HOSTNAME } from '../../src/image/rootfs-config.js';
import { ROOT_SWITCH_MARKER, ROOT_FAILED_MARKER } from '../../src/image/init-script.js';
import type { HardwareConfig } from '../../src/platform/hardware.js';
import { diskOpener } from '../../src/platform/assemble-storage.js';

const BOOT_LIMIT = 40 * 60_000;
const openVhdx = diskOpener('the rootfs boot test');

async function until<T>(what: string, f: () => T | Promise<T>, limitMs = 10 * 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - t0 > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Boot with `disk` as SCSI 0:0 and wait for the autologin shell of the root disk's init. */
async function bootRootDisk(disk: string): Promise<GuestSession> {
  const hardware: HardwareConfig = {
    scsiControllers: 1, networkAdapters: [],
    drives: [{ controllerType: 'scsi', controllerNumber: 0, controllerLocation: 0, kind: 'disk', path: disk }],
  };
  const g = await GuestSession.boot({ hardware, openDisk: openVhdx }, ROOTFS_ROOT_OPTION);
  const prompt = await g.waitFor(new RegExp(`root@${ROOTFS_HOSTNAME}:[^#\\n]*# |${ROOT_FAILED_MARKER}|Kernel panic`), 0, BOOT_LIMIT);
  assert.ok(prompt.startsWith('root@'), `no shell on the root disk:\n${g.output.slice(-3000)}`);
  await g.run('true'); // in step with the shell
  return g;
}

/** The disk after a clean shutdown: qemu-img check on the VHDX, e2fsck -fn on its raw conversion. */
function checkDiskClean(vhdx: string, dir: string): void {
  const check = spawnSync('qemu-img', ['check', '-f', 'vhdx', vhdx], { encoding: 'utf8' });
  assert.equal(check.status, 0, `qemu-img check: ${check.stdout}${check.stderr}`);
  const raw = join(dir, 'check.raw');
  rmSync(raw, { force: true });
  const conv = spawnSync('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', vhdx, raw], { encoding: 'utf8' });
  assert.equal(conv.status, 0, `qemu-img convert: ${conv.stderr}`);
  const fsck = spawnSync('e2fsck', ['-fn', raw], { encoding: 'utf8' });
  rmSync(raw, { force: true });
  assert.equal(fsck.status, 0, `e2fsck -fn after a clean shutdown (exit ${fsck.status}):\n${fsck.stdout}${fsck.stderr}`);
}

describe('Debian root disk on synthetic SCSI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-rootfs-'));
  const disk = join(dir, 'root.vhdx');
  const token = `persisted-${randomBytes(6).toString('hex')}`;
  let g: GuestSession | null = null;
  const sh = async (cmd: string): Promise<string> => {
    const r = await g!.run(cmd);
    assert.equal(r.status, 0, `'${cmd}' failed (${r.status}):\n${r.out}`);
    return r.out;
  };

  before(async () => {
    if (!GuestSession.imageAvailable()) throw new Error("default guest image missing: run 'npm run setup' (hyperts image build) first");
    if (!readRootfsManifest()) throw new Error("root disk missing: run 'npm run setup' as root (hyperts image build --rootfs) first");
    for (const tool of ['qemu-img', 'e2fsck']) if (spawnSync(tool, ['--help']).error) throw new Error(`${tool} missing: apt-get install qemu-utils e2fsprogs`);
    copyFileSync(rootfsPaths().disk, disk);
    g = await bootRootDisk(disk);
  }, { timeout: BOOT_LIMIT });

  after(async () => {
    if (g && !g.exit) { g.vm.turnOff('test end'); await g.exited; }
    rmSync(dir, { recursive: true, force: true });
  });

  test('the initramfs switched to the SCSI disk: / is /dev/sda, ext4, read-write, on hv_storvsc', async () => {
    assert.ok(g!.output.includes(`${ROOT_SWITCH_MARKER}/dev/sda`));
    assert.equal((await sh('findmnt -n -o SOURCE,FSTYPE /')).trim().split(/\s+/).join(' '), '/dev/sda ext4');
    assert.match(await sh('findmnt -n -o OPTIONS /'), /^rw,/);
    assert.match((await sh('readlink -f /sys/block/sda/device/driver')).trim(), /\/sd$/);
    // sda's SCSI host is a storvsc host.
    const host = /\/(host\d+)\//.exec(await sh('readlink -f /sys/block/sda'))?.[1];
    assert.ok(host, 'sda sits below a SCSI host');
    assert.match(await sh(`cat /sys/class/scsi_host/${host}/proc_name`), /storvsc/);
    assert.equal((await sh('cat /proc/1/comm')).trim(), 'init');
    assert.match((await sh('readlink /sbin/init')).trim(), /busybox$/);
  });

  test('Debian packages: dpkg knows the installed system, hyperv-daemons and busybox among them', async () => {
    const n = Number((await sh('dpkg -l | wc -l')).trim());
    assert.ok(n > 80, `dpkg -l lists ${n} lines`);
    const st = await sh("dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' hyperv-daemons busybox base-files");
    for (const p of ['hyperv-daemons', 'busybox', 'base-files']) assert.match(st, new RegExp(`^${p} ii `, 'm'));
    assert.match(await sh('cat /etc/debian_version'), /^12\./);
  });

  test('hyperv-daemons run as services of the init (Debian\'s init scripts, pid files) and KVP answers the host', async () => {
    assert.ok(g!.output.includes(ROOTFS_READY_MARKER));
    for (const d of ['hv_kvp_daemon', 'hv_vss_daemon']) {
      const pid = (await sh(`cat /run/${d}.pid`)).trim();
      assert.match(pid, /^\d+$/);
      assert.match(await sh(`cat /proc/${pid}/cmdline | tr '\\0' ' '`), new RegExp(`/usr/sbin/${d} -n`));
    }
    const ics = g!.vm.integrationServices!;
    await until('KVP negotiation', () => ics.kvp.status === 'OK');
    const kv = await ics.kvp.guestIntrinsics();
    assert.equal(kv.OSName, 'Debian GNU/Linux');
    assert.match(kv.FullyQualifiedDomainName, new RegExp(`^${ROOTFS_HOSTNAME}`));
  });

  test('a file written on the root disk survives a host-initiated shutdown and the next boot; the disk stays clean', async () => {
    await sh(`echo ${token} > /root/persist && sync`);
    const ics = g!.vm.integrationServices!;
    await until('Shutdown negotiation', () => ics.shutdown.status === 'OK');
    await ics.requestShutdown();
    const exit = await g!.exited;
    assert.equal(exit.code, 0, `exit: ${exit.reason}`);
    assert.ok(g!.output.includes(ROOTFS_STOPPED_MARKER), `rcK did not make the root read-only:\n${g!.output.slice(-3000)}`);
    checkDiskClean(disk, dir);

    g = await bootRootDisk(disk);
    assert.match(g.output, /root: clean/, 'rcS found the file system clean');
    assert.equal((await sh('cat /root/persist')).trim(), token);
    g.vm.consoleInput(new TextEncoder().encode('poweroff\n'));
    const exit2 = await g.exited;
    assert.equal(exit2.code, 0, `exit: ${exit2.reason}`);
    assert.ok(g.output.lastIndexOf(ROOTFS_STOPPED_MARKER) > g.output.lastIndexOf(token));
    checkDiskClean(disk, dir);
  });
});
