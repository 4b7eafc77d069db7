/**
 * Issue 13 acceptance with the real guest: Debian's hv_storvsc and sd on our synthetic SCSI controller. One
 * boot with two SCSI disks (one read-only) and an IDE disk serves every check; a third disk is hot-added and
 * removed while the guest runs, and the VM is saved and restored while the guest writes. The IDE disk comes
 * through Hyper-V's IDE accelerator channel (hv_storvsc), ata_piix leaving it alone as on Hyper-V.
 *
 * Waits below poll the state that proves the behaviour; their limits are safety nets, not timing assertions.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { GuestSession } from './guest-session.js';
import { diskOpener, type DiskOpener } from '../../src/platform/assemble-storage.js';
import type { Disk } from '../../src/storage/disk.js';
import type { HardwareConfig } from '../../src/platform/hardware.js';

const BOOT_LIMIT = 40 * 60_000;
const MiB = 1 << 20;

/** Backend calls seen per image path (unmaps prove fstrim reached the host). */
const unmaps = new Map<string, number>();
const counting: DiskOpener = async (path, readOnly) => {
  const d = await diskOpener('storage boot test')(path, readOnly);
  return new Proxy(d, {
    get(t, k) {
      if (k === 'unmap') return (o: number, l: number) => { unmaps.set(path, (unmaps.get(path) ?? 0) + 1); return t.unmap(o, l); };
      const v = Reflect.get(t, k) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  }) as Disk;
};

function readHost(path: string, offset: number, n: number): Buffer {
  const fd = openSync(path, 'r');
  try { const b = Buffer.alloc(n); readSync(fd, b, 0, n, offset); return b; } finally { closeSync(fd); }
}

describe('synthetic SCSI: hv_storvsc and sd on storvsp', () => {
  let g: GuestSession;
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-storvsp-'));
  const rw = join(dir, 'data.img'), ro = join(dir, 'readonly.img'), hot = join(dir, 'hot.img'), ide = join(dir, 'ide.img');
  const sh = async (cmd: string): Promise<string> => {
    const r = await g.run(cmd);
    assert.equal(r.status, 0, `'${cmd}' failed (${r.status}):\n${r.out}`);
    return r.out;
  };
  /** The guest's block device name of LUN `lun` on our controller, '' while absent. */
  const dev = async (lun: number): Promise<string> => (await g.run(`ls /sys/bus/scsi/devices/*:0:0:${lun}/block 2>/dev/null`)).out.trim();
  /** Poll in the guest (its own clock) until `cond` holds; safety limit only. */
  const guestUntil = async (what: string, cond: string): Promise<void> => {
    const r = await g.run(`i=0; until ${cond}; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.5; done`);
    assert.equal(r.status, 0, `gave up waiting for ${what}`);
  };

  before(async () => {
    if (!GuestSession.imageAvailable()) throw new Error("default guest image missing: run 'npm run setup' (hyperts image build) first");
    writeFileSync(rw, Buffer.alloc(64 * MiB));
    const roData = Buffer.alloc(32 * MiB);
    roData.write('read-only-disk-marker', 4096);
    writeFileSync(ro, roData);
    writeFileSync(hot, Buffer.alloc(16 * MiB));
    const ideData = Buffer.alloc(8 * MiB);
    ideData.write('ide-disk-marker', 4096);
    writeFileSync(ide, ideData);
    const hardware: HardwareConfig = {
      scsiControllers: 1, networkAdapters: [],
      drives: [
        { controllerType: 'scsi', controllerNumber: 0, controllerLocation: 0, kind: 'disk', path: rw },
        { controllerType: 'scsi', controllerNumber: 0, controllerLocation: 1, kind: 'disk', path: ro, readOnly: true },
        { controllerType: 'ide', controllerNumber: 0, controllerLocation: 1, kind: 'disk', path: ide },
      ],
    };
    g = await GuestSession.boot({ hardware, openDisk: counting });
    // Debug aid: HYPERTS_TEST_CONSOLE=FILE mirrors the guest console (the test runner shows output only at the end).
    const mirror = process.env.HYPERTS_TEST_CONSOLE;
    if (mirror) setInterval(() => writeFileSync(mirror, g.output), 2000).unref();
    await g.waitForShell();
  }, { timeout: BOOT_LIMIT });

  after(async () => {
    if (g && !g.exit) { g.vm.turnOff('test end'); await g.exited; }
    rmSync(dir, { recursive: true, force: true });
  });

  test('hv_storvsc binds the SCSI controller offered with Hyper-V\'s class GUID', async () => {
    const out = await sh('for d in /sys/bus/vmbus/drivers/hv_storvsc/*-*; do cat $d/class_id; done');
    assert.match(out, /\{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f\}/);
    const bad = (await sh('dmesg -r')).split('\n').filter((l) => /^<[0-3]>/.test(l) && /storvsc|scsi|sd /i.test(l));
    assert.deepEqual(bad, []);
  });

  test('the IDE disk comes through the IDE accelerator channel (hv_storvsc, target = its IDE location); ata_piix ignores it on Hyper-V\'s SMBIOS identity', async () => {
    assert.equal((await sh('cat /sys/class/dmi/id/sys_vendor /sys/class/dmi/id/product_name')).trim(), 'Microsoft Corporation\nVirtual Machine');
    assert.match(await sh('for d in /sys/bus/vmbus/drivers/hv_storvsc/*-*; do cat $d/class_id; done'), /\{32412632-86cb-44a2-9b5c-50d1417354f5\}/);
    // storvsc adds the disk at channel 0, target = the drive (IDE 0:1 -> target 1), LUN 0; its host is a VMBus device.
    const blk = (await sh('ls -d /sys/bus/scsi/devices/*:0:1:0/block/* 2>/dev/null')).trim().split('/').pop()!;
    assert.match(blk, /^sd[a-z]$/);
    assert.match(await sh(`readlink -f /sys/block/${blk}`), /VMBUS:00\/00000000-0001-8899-0000-000000000000\//);
    assert.equal(await sh(`dd if=/dev/${blk} bs=512 skip=8 count=1 2>/dev/null | head -c 15`), 'ide-disk-marker');
    await sh(`printf ide-write-through > /tmp/iw && dd if=/tmp/iw of=/dev/${blk} bs=512 seek=16 conv=sync,fsync 2>/dev/null`);
    assert.equal(readHost(ide, 16 * 512, 17).toString(), 'ide-write-through');
    // ata_piix (loaded if the image did not) sees the identity and leaves ATA disks alone: no second path to the file.
    await g.run('modprobe ata_piix 2>/dev/null; true');
    await guestUntil('ata_piix probed', "dmesg | grep -q 'ata_piix 0000:00:07.1'");
    assert.match(await sh('dmesg'), /ata_piix 0000:00:07\.1: Hyper-V Virtual Machine detected, ATA device ignore set/);
    assert.equal((await sh(`ls -d /sys/block/sd* | wc -l`)).trim(), '3', 'two SCSI disks and the IDE disk, each once');
  });

  test('lsblk shows both disks with their sizes and the read-only one as RO', async () => {
    const [d0, d1] = [await dev(0), await dev(1)];
    assert.match(d0, /^sd[a-z]$/);
    assert.match(d1, /^sd[a-z]$/);
    const rows = new Map((await sh('lsblk -b -d -n -o NAME,SIZE,RO')).trim().split('\n').map((l) => l.trim().split(/\s+/)).map(([n, s, r]) => [n, [Number(s), r]] as const));
    assert.deepEqual(rows.get(d0), [64 * MiB, '0']);
    assert.deepEqual(rows.get(d1), [32 * MiB, '1']);
    assert.equal((await sh(`dd if=/dev/${d1} bs=512 skip=8 count=1 2>/dev/null | head -c 21`)), 'read-only-disk-marker');
  });

  test('mkfs.ext4, mount, write, sync, remount and read back the same sha256; the data is in the host file', async () => {
    const d0 = await dev(0);
    await sh(`mkfs.ext4 -q -F /dev/${d0} && mkdir -p /mnt/d && mount -t ext4 /dev/${d0} /mnt/d`);
    await sh('dd if=/dev/urandom of=/mnt/d/file bs=1M count=8 2>/dev/null && sync');
    const sum = (await sh('sha256sum /mnt/d/file')).split(' ')[0];
    await sh('umount /mnt/d && echo 3 > /proc/sys/vm/drop_caches');
    // The superblock reached the image file (ext4 magic 0xEF53 at byte 1024 + 56).
    assert.equal(readHost(rw, 1024 + 56, 2).readUInt16LE(0), 0xef53);
    await sh(`mount -t ext4 /dev/${d0} /mnt/d`);
    assert.equal((await sh('sha256sum /mnt/d/file')).split(' ')[0], sum);
  });

  test('fstrim reaches the backend as unmap calls', async () => {
    const d0 = await dev(0);
    assert.ok(Number((await sh(`cat /sys/block/${d0}/queue/discard_max_bytes`)).trim()) > 0, 'discard advertised');
    await sh('rm /mnt/d/file && sync');
    const before = unmaps.get(rw) ?? 0;
    const out = await sh('fstrim -v /mnt/d');
    assert.match(out, /trimmed/);
    assert.ok((unmaps.get(rw) ?? 0) > before, `no unmap calls reached the disk (fstrim said: ${out.trim()})`);
    await sh('umount /mnt/d');
  });

  test('the read-only disk refuses writes: sd sees Write Protect, and the device itself answers DATA PROTECT', async () => {
    const d1 = await dev(1);
    assert.match(await sh('dmesg'), new RegExp(`\\[${d1}\\] Write Protect is on`));
    const r = await g.run(`dd if=/dev/zero of=/dev/${d1} bs=4096 count=1 oflag=direct`);
    assert.notEqual(r.status, 0, 'the block layer must refuse to open it for writing');
    assert.match(r.out, /Read-only file system/);
    // Past the block layer: a raw WRITE(10) of one block through SG_IO (root may send it on a read-only open).
    const raw = await g.run(`sg_raw -R -s 512 -i /dev/zero /dev/${d1} 2a 00 00 00 00 08 00 00 01 00 2>&1`);
    assert.notEqual(raw.status, 0);
    assert.match(raw.out, /Data Protect/i);
    assert.match(raw.out, /Write protected/i);
    assert.equal(readHost(ro, 4096, 21).toString(), 'read-only-disk-marker');
  });

  test('hot add: a disk attached while the guest runs appears; hot remove: it disappears', async () => {
    await g.vm.addDrive({ controllerType: 'scsi', controllerNumber: 0, controllerLocation: 3, kind: 'disk', path: hot });
    await guestUntil('the hot-added disk', 'ls /sys/bus/scsi/devices/*:0:0:3/block >/dev/null 2>&1');
    const d3 = await dev(3);
    assert.equal((await sh(`cat /sys/block/${d3}/size`)).trim(), String(16 * MiB / 512));
    await sh(`echo hot-data | dd of=/dev/${d3} bs=512 conv=sync oflag=direct 2>/dev/null`);
    assert.equal(readHost(hot, 0, 8).toString(), 'hot-data');
    await g.vm.removeDrive(0, 3);
    await guestUntil('the removed disk to go', `[ ! -e /sys/block/${d3} ]`);
    assert.equal(await dev(3), '');
    // The other disks are unaffected.
    assert.match(await dev(0), /^sd[a-z]$/);
  });

  test('Save-VM while the guest writes with O_DIRECT: after the restore every byte is on the disk', async () => {
    const d0 = await dev(0);
    await sh('dd if=/dev/urandom of=/tmp/src bs=64k count=128 2>/dev/null');
    const want = (await sh('sha256sum /tmp/src')).split(' ')[0];
    await sh(`(i=0; while [ $i -lt 4 ]; do dd if=/tmp/src of=/dev/${d0} bs=64k oflag=direct 2>/dev/null; i=$((i+1)); done; echo done > /tmp/writer) >/dev/null 2>&1 & true`);
    const { session } = await g.saveAndRestore();
    g = session;
    await guestUntil('the writer to finish', '[ -e /tmp/writer ]');
    assert.equal((await sh(`dd if=/dev/${d0} bs=64k count=128 iflag=direct 2>/dev/null | sha256sum`)).split(' ')[0], want);
    assert.equal(createHashOf(readHost(rw, 0, 128 * 65536)), want);
  });
});

function createHashOf(b: Buffer): string { return createHash('sha256').update(b).digest('hex'); }
