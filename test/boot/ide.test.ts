/**
 * The emulated devices of an unenlightened guest (Hyper-V Gen 1 without integration services): ONE boot of
 * the generic-kernel image (Debian's generic kernel: the cloud kernel has no tulip) with --enlightenments
 * off, a raw disk on IDE 0:0, an ISO in the DVD drive on IDE 1:0, and a legacy network adapter (DEC 21140)
 * on the NAT switch. The guest's own drivers (ata_piix, sd_mod, sr_mod, isofs, tulip) are the reference.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, closeSync, openSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { GuestSession } from './guest-session.js';
import { until, fileServer } from './net-helpers.js';
import { imagePaths } from '../../src/image/builder.js';
import { natNetwork } from '../../src/platform/assemble-network.js';

let g: GuestSession;
let dir: string;
let disk: string;
const isoFile = randomBytes(1536 * 1024);
const isoHash = createHash('sha256').update(isoFile).digest('hex');
const NIC_MAC = '00:15:5d:00:15:21';
const payload = `hello through the legacy adapter ${process.pid} ${'y'.repeat(30000)}`;
let http: Server;
let httpPort = 0;

before(async () => {
  // The generic-kernel image, built by 'npm run setup' like the default one. (Not buildDefaultImage here: its
  // up-to-date check asks apt about every package and hashes every .deb, half a minute on a busy host.)
  const img = imagePaths('generic');
  if (!existsSync(img.kernel) || !existsSync(img.initrd)) throw new Error("generic-kernel image missing: run 'npm run setup' (hyperts image build --generic) first");
  ({ server: http, port: httpPort } = await fileServer(payload));
  const x = spawnSync('xorriso', ['-version']);
  if (x.status !== 0) throw new Error('xorriso is not installed (Debian package xorriso, listed in .ci/packages.txt)');
  dir = mkdtempSync(join(tmpdir(), 'hyperts-ide-'));
  mkdirSync(join(dir, 'iso'));
  writeFileSync(join(dir, 'iso', 'hello.txt'), 'hello from the DVD drive\n');
  writeFileSync(join(dir, 'iso', 'blob.bin'), isoFile);
  const mk = spawnSync('xorriso', ['-as', 'mkisofs', '-quiet', '-o', join(dir, 'test.iso'), join(dir, 'iso')]);
  assert.equal(mk.status, 0, mk.stderr.toString());
  disk = join(dir, 'disk.img');
  const fd = openSync(disk, 'w');
  ftruncateSync(fd, 64 * 1024 * 1024);
  closeSync(fd);
  const net = natNetwork(NIC_MAC, [], true);
  g = await GuestSession.boot({
    enlightened: false, kernel: img.kernel, initrd: img.initrd, switches: net.switches,
    hardware: {
      scsiControllers: 0, networkAdapters: net.hardware.networkAdapters,
      drives: [
        { controllerType: 'ide', controllerNumber: 0, controllerLocation: 0, kind: 'disk', path: disk },
        { controllerType: 'ide', controllerNumber: 1, controllerLocation: 0, kind: 'dvd', path: join(dir, 'test.iso'), readOnly: true },
      ],
    },
  });
  await g.waitForShell();
}, { timeout: 40 * 60_000 });

after(async () => {
  if (g && !g.exit) { g.vm.turnOff('test end'); await g.exited; }
  if (dir) rmSync(dir, { recursive: true, force: true });
  http?.close();
});

test('the guest enumerates the Gen 1 PCI chipset from ACPI without errors', async () => {
  const { out } = await g.run('for d in /sys/bus/pci/devices/*; do echo "$(basename $d) $(cat $d/vendor):$(cat $d/device) $(cat $d/class)"; done');
  assert.match(out, /^0000:00:00\.0 0x8086:0x7192 0x060000$/m);
  assert.match(out, /^0000:00:07\.0 0x8086:0x7110 0x060100$/m);
  assert.match(out, /^0000:00:07\.1 0x8086:0x7111 0x010180$/m);
  assert.match(out, /^0000:00:0a\.0 0x1011:0x0009 0x020000$/m, 'the legacy network adapter (DEC 21140)');
  const { out: dmesg } = await g.run('dmesg');
  assert.match(dmesg, /ACPI: PCI Root Bridge \[PCI0\]/);
  assert.doesNotMatch(dmesg, /PCI: Fatal|ACPI Error|ACPI BIOS Error|pci .* can't claim|BAR \d+: no space|irq \d+: nobody cared/);
});

test('ata_piix drives the IDE disk with bus-master DMA (no Hyper-V SMBIOS identity, so it does not ignore ATA disks)', async () => {
  const { out } = await g.run('ls /sys/bus/pci/drivers/ata_piix; cat /sys/block/sda/device/model; cat /sys/class/ata_device/dev1.0/xfer_mode; cat /sys/class/dmi/id/sys_vendor');
  assert.match(out, /^hyperts$/m);
  assert.match(out, /0000:00:07\.1/);
  assert.match(out, /Virtual HD/);
  assert.match(out, /XFER_UDMA_2/, "UDMA mode 2 (UDMA/33, what PIIX4 offers)");
});

test('the guest makes a file system on the IDE disk, writes, syncs and reads it back; the host sees the data', async () => {
  const bytes = 3_000_000;
  // The stream of `yes hyperts-ide | head -c 3000000` from whole 64 KiB chunks of lines and the start of one more
  // (busybox yes writes each 12-byte line with a write() of its own, and busybox head -c copies byte by byte).
  const chunk = 12 * Math.floor(65536 / 12);
  const stream = `yes hyperts-ide | head -c ${chunk} > /tmp/chunk && { i=0; while [ $i -lt ${Math.floor(bytes / chunk)} ]; do cat /tmp/chunk; i=$((i+1)); done; head -c ${bytes % chunk} /tmp/chunk; }`;
  const r = await g.run(`mke2fs -q /dev/sda && mkdir -p /mnt/d && mount -t ext4 /dev/sda /mnt/d && ${stream} > /mnt/d/f && sync && umount /mnt/d && echo 3 > /proc/sys/vm/drop_caches && mount -t ext4 /dev/sda /mnt/d && sha256sum /mnt/d/f && umount /mnt/d`);
  assert.equal(r.status, 0, r.out);
  const line = 'hyperts-ide\n';
  const expected = createHash('sha256').update(line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes)).digest('hex');
  assert.match(r.out, new RegExp(`^${expected}\\s+/mnt/d/f`, 'm'));
  // The guest synced: the file's bytes are in the host's disk image now (debugfs reads the ext2 image).
  const dbg = spawnSync('debugfs', ['-R', 'cat /f', disk], { maxBuffer: 16 * 1024 * 1024 });
  assert.equal(dbg.status, 0, `debugfs (e2fsprogs): ${dbg.stderr}`);
  assert.equal(createHash('sha256').update(dbg.stdout).digest('hex'), expected, 'the host reads the same file from the image');
});

test('the DVD drive (ATAPI, sr_mod) reads files from the ISO image', async () => {
  const r = await g.run('mkdir -p /mnt/cd && mount -t iso9660 -o ro /dev/sr0 /mnt/cd && cat /mnt/cd/hello.txt && sha256sum /mnt/cd/blob.bin && umount /mnt/cd');
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /hello from the DVD drive/);
  assert.match(r.out, new RegExp(`^${isoHash}\\s+/mnt/cd/blob.bin`, 'm'));
});

test('tulip binds the legacy network adapter with our MAC, reads the MII link, and the interface is up', async () => {
  const r = await g.run('readlink /sys/class/net/eth0/device/driver; cat /sys/class/net/eth0/address; cat /sys/class/net/eth0/carrier; dmesg | grep -i tulip');
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /\/tulip$/m);
  assert.match(r.out, new RegExp(`^${NIC_MAC}$`, 'm'));
  assert.match(r.out, /^1$/m, 'carrier');
  assert.match(r.out, /Digital DS21140 Tulip rev 32 at Port 0x[0-9a-f]+, 00:15:5d:00:15:21, IRQ \d+/i);
  assert.match(r.out, /MII transceiver #1 config [0-9a-f]{4} status [0-9a-f]{4} advertising [0-9a-f]{4}/);
  assert.doesNotMatch(r.out, /EEPROM not present|Missing EEPROM|System Error|timed out/i);
});

test('DHCP through the legacy adapter gives an address, and wget fetches a file from the host\'s loopback', async () => {
  await g.waitFor(/hyperts-guest: eth0 has \d+\.\d+\.\d+\.\d+/);
  const route = await g.run('ip route');
  const gw = /default via (\S+) dev eth0/.exec(route.out)?.[1];
  assert.ok(gw, route.out);
  const r = await g.run(`wget -q -O /tmp/file http://${gw}:${httpPort}/file && wc -c < /tmp/file && head -c 40 /tmp/file`);
  assert.equal(r.status, 0, r.out);
  const [size, head] = r.out.trim().split('\n');
  assert.equal(Number(size), Buffer.byteLength(payload));
  assert.equal(head, payload.slice(0, 40));
  const nic = g.vm.network.legacyAdapters[0].nic;
  assert.ok(nic.stats.rxFrames > 20 && nic.stats.txFrames > 10, JSON.stringify(nic.stats));
  assert.equal(nic.stats.busErrors, 0);
});

test('Disconnect-VMNetworkAdapter: the guest driver sees the carrier go (its media timer polls the PHY), and come back', async () => {
  g.vm.network.connect('Legacy Network Adapter', null);
  await until('carrier off in the guest', async () => (await g.run('cat /sys/class/net/eth0/carrier')).out.trim() === '0', 5 * 60_000);
  g.vm.network.connect('Legacy Network Adapter', 'Default Switch');
  await until('carrier on in the guest', async () => (await g.run('cat /sys/class/net/eth0/carrier')).out.trim() === '1', 5 * 60_000);
});

test('poweroff ends the VM cleanly with the disk closed', async () => {
  g.vm.consoleInput(new TextEncoder().encode('poweroff -f\n'));
  const exit = await g.exited;
  assert.equal(exit.code, 0, exit.reason);
});
