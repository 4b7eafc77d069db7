import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { openDisk } from '../../src/storage/open.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fstab, inittab, rcS, rcK, rootfsFiles, shadowWithoutRootPassword, HV_SERVICES, ROOTFS_LABEL, ROOTFS_READY_MARKER, ROOTFS_STOPPED_MARKER } from '../../src/image/rootfs-config.js';
import { rootfsKey, rootfsPaths, pruneDebCache, readRootfsManifest, rawToDynamicVhdx, ROOTFS_CMDLINE, ROOTFS_VHDX_BLOCK } from '../../src/image/rootfs.js';
import { DEFAULT_CMDLINE } from '../../src/image/builder.js';

test('rootfs: fstab mounts the root by label, checked at boot (pass 1)', () => {
  const lines = fstab().split('\n').filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(lines.map((l) => l.split(/\s+/)), [[`LABEL=${ROOTFS_LABEL}`, '/', 'ext4', 'defaults,errors=remount-ro', '0', '1']]);
  assert.equal(ROOTFS_CMDLINE, `${DEFAULT_CMDLINE} root=LABEL=${ROOTFS_LABEL}`);
});

test('rootfs: inittab runs rcS, autologin root on ttyS0, rcK at shutdown', () => {
  const entries = inittab().split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  for (const e of entries) assert.equal(e.length, 4, `busybox inittab entries are id:runlevels:action:process (${e.join(':')})`);
  const byAction = new Map(entries.map((e) => [e[2], e]));
  assert.equal(byAction.get('sysinit')?.[3], '/etc/init.d/rcS');
  assert.equal(byAction.get('shutdown')?.[3], '/etc/init.d/rcK');
  const getty = byAction.get('respawn')!;
  assert.equal(getty[0], 'ttyS0');
  assert.match(getty[3], /agetty --autologin root .*ttyS0/);
});

test('rootfs: rcS and rcK are valid shell; services started at boot, stopped in reverse at shutdown', () => {
  for (const [name, s] of [['rcS', rcS()], ['rcK', rcK()]]) {
    const r = spawnSync('sh', ['-n'], { input: s });
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    assert.ok(s.startsWith('#!/bin/sh\n'));
  }
  const boot = rcS(), stop = rcK();
  assert.ok(boot.includes(`for s in ${HV_SERVICES.join(' ')}; do /etc/init.d/$s start; done`));
  assert.ok(boot.indexOf('remount,rw') < boot.indexOf('/etc/init.d/$s start'), 'services start on a writable root');
  assert.ok(boot.indexOf('fsck.ext4 -p') < boot.indexOf('remount,rw'), 'fsck while read-only');
  assert.ok(boot.trimEnd().endsWith(`echo "${ROOTFS_READY_MARKER}"`));
  assert.ok(stop.includes(`for s in ${[...HV_SERVICES].reverse().join(' ')}; do /etc/init.d/$s stop; done`));
  assert.ok(stop.indexOf('kill -KILL -1') < stop.indexOf('mount -o remount,ro /'), 'processes gone before the root goes read-only');
  assert.ok(stop.includes(`mount -o remount,ro / && echo "${ROOTFS_STOPPED_MARKER}"`));
});

/** Run rcS's fsck decision against stubbed commands: returns the commands it ran. */
function rcsWith(fsckExit: number, mode: 'ro' | 'rw'): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'rcs-'));
  try {
    const mounts = join(dir, 'mounts');
    writeFileSync(mounts, `proc /proc proc rw 0 0\n/dev/sda / ext4 ${mode},relatime 0 0\n`);
    const s = rcS().replaceAll('/proc/mounts', mounts).replace('[ -b "$rootdev" ]', '[ -n "$rootdev" ]');
    const log = join(dir, 'log');
    const stubs = ['mountpoint', 'mount', 'mkdir', 'fsck.ext4', 'reboot', 'hostname', 'busybox'].map((c) =>
      `${c.replace('.', '_')}() { echo "${c} $*" >>${log}; ${c === 'mountpoint' ? 'return 0' : c === 'fsck.ext4' ? `return ${fsckExit}` : 'true'}; }`).join('\n');
    const body = s.replace(/^#!.*\n/, '').replaceAll('fsck.ext4 -p', 'fsck_ext4 -p').replace(/for s in [^\n]*\n/, '');
    spawnSync('sh', [], { input: `${stubs}\n${body}` });
    return spawnSync('cat', [log]).stdout.toString().split('\n').filter(Boolean);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('rootfs: rcS checks a read-only root, remounts it rw unless fsck found what it cannot repair', () => {
  assert.deepEqual(rcsWith(0, 'ro').filter((c) => /fsck|remount|reboot/.test(c)), ['fsck.ext4 -p /dev/sda', 'mount -o remount,rw /']);
  assert.deepEqual(rcsWith(1, 'ro').filter((c) => /fsck|remount|reboot/.test(c)), ['fsck.ext4 -p /dev/sda', 'mount -o remount,rw /']);
  assert.deepEqual(rcsWith(2, 'ro').filter((c) => /fsck|remount|reboot/.test(c)), ['fsck.ext4 -p /dev/sda', 'reboot -f', 'mount -o remount,rw /']);
  assert.deepEqual(rcsWith(4, 'ro').filter((c) => /fsck|remount|reboot/.test(c)), ['fsck.ext4 -p /dev/sda']);
  assert.deepEqual(rcsWith(0, 'rw').filter((c) => /fsck|remount|reboot/.test(c)), [], 'a root mounted rw (rw on the command line) is not checked');
});

test('rootfs: root password emptied for console autologin, other accounts untouched', () => {
  const shadow = 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n';
  assert.equal(shadowWithoutRootPassword(shadow), 'root::19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n');
  assert.throws(() => shadowWithoutRootPassword('daemon:*:1:0:99999:7:::\n'), /no root entry/);
});

test('rootfs: the cache key follows the package index, the mirror and the generated files', () => {
  const a = rootfsKey('Release A', 'http://m/debian');
  assert.equal(a, rootfsKey('Release A', 'http://m/debian'), 'deterministic');
  assert.match(a, /^[0-9a-f]{24}$/);
  assert.notEqual(a, rootfsKey('Release B', 'http://m/debian'));
  assert.notEqual(a, rootfsKey('Release A', 'http://other/debian'));
  const files = rootfsFiles();
  assert.deepEqual(Object.keys(files).sort(), ['etc/fstab', 'etc/hostname', 'etc/hosts', 'etc/init.d/rcK', 'etc/init.d/rcS', 'etc/inittab']);
  assert.equal(files['etc/init.d/rcS'].mode, 0o755);
});

test('rootfs: paths, missing manifest, and pruning the package cache to the installed versions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rootfs-cache-'));
  try {
    const p = rootfsPaths(dir);
    assert.equal(p.disk, join(dir, 'rootfs', 'root.vhdx'));
    assert.equal(readRootfsManifest(dir), null);
    for (const f of ['bash_5.2.15-2+b13_amd64.deb', 'bash_5.2.15-2+b12_amd64.deb', 'bsdutils_1%3a2.38.1-5+deb12u3_amd64.deb', 'gone_1.0_all.deb', 'notes.txt']) writeFileSync(join(dir, f), '');
    pruneDebCache(dir, ['bash 5.2.15-2+b13', 'bsdutils 1:2.38.1-5+deb12u3']);
    assert.deepEqual(readdirSync(dir).filter((f) => f !== 'rootfs').sort(), ['bash_5.2.15-2+b13_amd64.deb', 'bsdutils_1%3a2.38.1-5+deb12u3_amd64.deb', 'notes.txt']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rootfs: raw -> dynamic VHDX keeps every byte, allocates only blocks with data; qemu-img agrees', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rootfs-vhdx-'));
  try {
    const raw = join(dir, 'root.ext4'), vhdx = join(dir, 'root.vhdx');
    const size = 16 * 1024 * 1024;
    const data = Buffer.alloc(size);
    // Data at the start, a lone sector in the middle of a block, and the last sector; zeros elsewhere.
    for (let i = 0; i < 3 * 4096; i++) data[i] = (i * 7 + 1) & 0xff;
    data.fill(0xa5, 9 * 1024 * 1024 + 4096, 9 * 1024 * 1024 + 8192);
    data.fill(0x5a, size - 4096);
    writeFileSync(raw, data);
    let last = 0;
    await rawToDynamicVhdx(raw, vhdx, (f) => { assert.ok(f >= last); last = f; });
    assert.equal(last, 1);
    const disk = await openDisk(vhdx, { readOnly: true });
    try {
      assert.equal(disk.sizeBytes, size);
      const back = new Uint8Array(size);
      await disk.read(0, back);
      assert.ok(Buffer.from(back).equals(data), 'VHDX reads back the raw image');
    } finally {
      await disk.close();
    }
    // 3 of 8 blocks hold data: the file stays far below the virtual size.
    assert.ok(statSync(vhdx).size < 3 * ROOTFS_VHDX_BLOCK + 8 * 1024 * 1024, `file size ${statSync(vhdx).size}`);
    await assert.rejects(rawToDynamicVhdx(raw, vhdx), /exists/, 'never overwrites');
    if (spawnSync('qemu-img', ['--version']).status === 0) {
      const check = spawnSync('qemu-img', ['check', '-f', 'vhdx', vhdx]);
      assert.equal(check.status, 0, `qemu-img check: ${check.stdout}${check.stderr}`);
      const cmp = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'vhdx', raw, vhdx]);
      assert.equal(cmp.status, 0, `qemu-img compare: ${cmp.stdout}${cmp.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
