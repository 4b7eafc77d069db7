/**
 * Issues 13 and 15 acceptance with the real guest, one boot: Debian's hv_netvsc on our netvsp (NAT through
 * passt) and hv_storvsc and sd on our synthetic SCSI controller, in one enlightened guest with a synthetic
 * network adapter, two SCSI disks (one read-only) and an IDE disk. Network: hv_netvsc binds, DHCP gives an address, the guest
 * fetches a file from an HTTP server on the host's loopback (through passt's gateway mapping), a host client
 * reaches a TCP server in the guest through a port mapping, adapters come and go while it runs, and
 * hv_kvp_daemon reports the address to the host. Storage: the disks' sizes and modes, a file system written and
 * read back, fstrim reaching the backend, a third disk hot-added and removed; the IDE disk comes through Hyper-V's
 * IDE accelerator channel (hv_storvsc), ata_piix leaving it alone as on Hyper-V. The VM is saved and restored twice
 * (once while the guest writes to a disk); the restored guest then checks issue 3's host-initiated shutdown
 * through the Shutdown service, which ends it. (This was network.test.ts and storage.test.ts, a boot each.)
 *
 * Waits poll the state that proves the behaviour; their limits are safety nets, not timing assertions.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, openSync, readSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { GuestSession } from './guest-session.js';
import { until, freePort, fileServer } from './net-helpers.js';
import { natNetwork } from '../../src/platform/assemble-network.js';
import { adapterStatus } from '../../src/vmms/adapter-status.js';
import { spawn, spawnSync } from 'node:child_process';
import { TapBackend } from '../../src/net/tap.js';
import { ensureBridge, ip } from '../../src/net/host-bridge.js';
import { inNetns } from './netns.js';
import { SHUTDOWN_MARKER, SHUTDOWN_DONE_MARKER } from '../../src/image/init-script.js';
import { diskOpener, type DiskOpener } from '../../src/platform/assemble-storage.js';
import type { Disk } from '../../src/storage/disk.js';
import type { HardwareConfig } from '../../src/platform/hardware.js';

const BOOT_LIMIT = 40 * 60_000;
const MAC = '00:15:5d:00:15:01';
const HOT_MAC = '00:15:5d:00:15:02';
const BRIDGED_MAC = '00:15:5d:00:15:03';

/** Root and `ip netns` are needed to put a TAP device and a bridge in namespaces of the test's own. */
function hostSwitchSkip(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (TAP devices and bridges)';
  const probe = `hvt-probe-${process.pid % 10000}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `ip netns is unavailable here: ${(r.stderr || r.error?.message || '').trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return false;
}
const hostSkip = hostSwitchSkip();
if (hostSkip) console.log(`# skipping the External/Internal switch check with the guest: ${hostSkip}`);

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


let g: GuestSession;
let http: Server;
let httpPort = 0;
let forwardPort = 0;
const payload = `hello from the host ${process.pid} ${'x'.repeat(20000)}`;
const dir = mkdtempSync(join(tmpdir(), 'hyperts-storvsp-'));
const rw = join(dir, 'data.img'), ro = join(dir, 'readonly.img'), hot = join(dir, 'hot.img'), ide = join(dir, 'ide.img');

before(async () => {
  if (!GuestSession.imageAvailable()) throw new Error("default guest image missing: run 'npm run setup' (hyperts image build) first");
  ({ server: http, port: httpPort } = await fileServer(payload));
  forwardPort = await freePort();
  writeFileSync(rw, Buffer.alloc(64 * MiB));
  const roData = Buffer.alloc(32 * MiB);
  roData.write('read-only-disk-marker', 4096);
  writeFileSync(ro, roData);
  writeFileSync(hot, Buffer.alloc(16 * MiB));
  const ideData = Buffer.alloc(8 * MiB);
  ideData.write('ide-disk-marker', 4096);
  writeFileSync(ide, ideData);
  const net = natNetwork(MAC, [{ protocol: 'tcp', hostPort: forwardPort, guestPort: 7777 }]);
  const hardware: HardwareConfig = {
    scsiControllers: 1, networkAdapters: net.hardware.networkAdapters,
    drives: [
      { controllerType: 'scsi', controllerNumber: 0, controllerLocation: 0, kind: 'disk', path: rw },
      { controllerType: 'scsi', controllerNumber: 0, controllerLocation: 1, kind: 'disk', path: ro, readOnly: true },
      { controllerType: 'ide', controllerNumber: 0, controllerLocation: 1, kind: 'disk', path: ide },
    ],
  };
  g = await GuestSession.boot({ hardware, switches: net.switches, openDisk: counting });
  // Debug aid: HYPERTS_TEST_CONSOLE=FILE mirrors the guest console (the test runner shows output only at the end).
  const mirror = process.env.HYPERTS_TEST_CONSOLE;
  if (mirror) setInterval(() => writeFileSync(mirror, g.output), 2000).unref();
  await g.waitForShell();
}, { timeout: BOOT_LIMIT });

after(async () => {
  if (g && !g.exit) { g.vm.turnOff('test end'); await g.exited; }
  http?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('enlightened guest with a synthetic network adapter (NAT through passt)', () => {
  const sh = async (cmd: string): Promise<string> => {
    const r = await g.run(cmd);
    assert.equal(r.status, 0, `'${cmd}' failed (${r.status}):\n${r.out}`);
    return r.out;
  };

  test('hv_netvsc binds the adapter, with our MAC, and the host sees the link up', async () => {
    const out = await sh('for d in /sys/class/net/eth*; do echo "$(basename $(readlink $d/device/driver)) $(cat $d/address) $(cat $d/operstate)"; done');
    assert.match(out, new RegExp(`^hv_netvsc ${MAC} up$`, 'm'));
    const a = g.vm.network.adapters[0].adapter;
    assert.ok(a.ready && a.linkUp);
    const bad = (await sh('dmesg -r')).split('\n').filter((l) => /^<[0-3]>/.test(l) && /hv_netvsc|netvsc/i.test(l));
    assert.deepEqual(bad, []);
  });

  test('DHCP (passt) gave the adapter an address, a default route and resolvers', async () => {
    await g.waitFor(/hyperts-guest: eth0 has \d+\.\d+\.\d+\.\d+/);
    const addr = await sh('ip -4 -o addr show dev eth0');
    assert.match(addr, /inet \d+\.\d+\.\d+\.\d+\/\d+/);
    assert.match(await sh('ip route'), /^default via \d+\.\d+\.\d+\.\d+ dev eth0/m);
    assert.match(await sh('cat /etc/resolv.conf'), /^nameserver /m);
  });

  test('get-vmnetworkadapter shows the DHCP address, as the guest\'s KVP daemon reports it for the adapter\'s MAC', async () => {
    const ip = /inet (\d+\.\d+\.\d+\.\d+)/.exec(await sh('ip -4 -o addr show dev eth0'))![1];
    // The worker answers get-vmnetworkadapter from this; each read asks the guest again in the background.
    const st = (await until('the adapter\'s addresses from KVP', () => {
      const a = adapterStatus(g.vm, { refresh: true })[0];
      return a.ipAddresses.includes(ip) ? a : null;
    }))!;
    assert.equal(st.macAddress, MAC);
    assert.ok(st.ipConfiguration, 'the rest of the answer is there too');
    const gw = /default via (\S+)/.exec(await sh('ip route'))![1];
    assert.ok(st.ipConfiguration!.gateways.includes(gw), `gateways ${st.ipConfiguration!.gateways} include ${gw}`);
  });

  test('disconnect and connect while running: the guest sees its link go down and come back up, and the network works again', async () => {
    const operstate = async (): Promise<string> => (await sh('cat /sys/class/net/eth0/operstate')).trim();
    g.vm.connectNetworkAdapter('Network Adapter', null);
    assert.equal(g.vm.network.adapters[0].adapter.linkUp, false);
    await until('link down in the guest', async () => (await operstate()) === 'down');
    g.vm.connectNetworkAdapter('Network Adapter', 'Default Switch');
    await until('link up in the guest', async () => (await operstate()) === 'up');
    const gw = /default via (\S+)/.exec(await sh('ip route'))![1];
    await until('a fetch after reconnecting', async () => (await g.run(`wget -q -O - http://${gw}:${httpPort}/file | wc -c`)).out.trim() === String(Buffer.byteLength(payload)));
  });

  test('an adapter added while running appears as a new interface bound by hv_netvsc; removed, it disappears', async () => {
    const ifaceOf = async (mac: string): Promise<string> =>
      (await g.run(`for d in /sys/class/net/*; do [ "$(cat $d/address)" = "${mac}" ] && basename $d; done; true`)).out.trim();
    g.vm.addNetworkAdapter({ name: 'hot', legacy: false, macAddress: HOT_MAC, switchName: null });
    const name = await until('the new interface', () => ifaceOf(HOT_MAC));
    assert.match(name, /^eth\d+$/);
    assert.notEqual(name, 'eth0');
    assert.equal((await sh(`basename $(readlink /sys/class/net/${name}/device/driver)`)).trim(), 'hv_netvsc');
    assert.equal((await ifaceOf(MAC)), 'eth0', 'the first adapter is untouched');
    g.vm.removeNetworkAdapter('hot');
    await until('the interface to go away', async () => (await ifaceOf(HOT_MAC)) === '');
    assert.deepEqual(g.vm.network.adapters.map((a) => a.config.name), ['Network Adapter']);
    assert.deepEqual(g.vm.config.hardware!.networkAdapters.map((a) => a.name), ['Network Adapter'], 'the hardware description follows');
  });

  test('TAP and bridge (root, in namespaces the test makes): the host\'s address on the bridge (Internal) and a peer behind the bridged veth (External) reach the guest', { skip: hostSkip }, async () => {
    const NS = `hvt-br-${process.pid % 10000}`, PEER = `hvt-pr-${process.pid % 10000}`;
    const BR = 'hvbr-boottest';
    const nsIp = (...a: string[]): void => { const r = spawnSync('ip', a, { encoding: 'utf8' }); assert.equal(r.status, 0, `ip ${a.join(' ')}: ${r.stderr}`); };
    nsIp('netns', 'add', NS); nsIp('netns', 'add', PEER);
    let tap: TapBackend | null = null;
    try {
      nsIp('-n', NS, 'link', 'add', 'hvt-phys', 'type', 'veth', 'peer', 'name', 'hvt-wire');
      nsIp('-n', NS, 'link', 'set', 'hvt-wire', 'netns', PEER);
      nsIp('-n', PEER, 'addr', 'add', '10.199.2.3/24', 'dev', 'hvt-wire');
      nsIp('-n', PEER, 'link', 'set', 'hvt-wire', 'up');
      // The guest's new adapter on a switch whose uplink is a TAP device in the test's namespace.
      g.vm.addNetworkAdapter({ name: 'bridged', legacy: false, macAddress: BRIDGED_MAC, switchName: 'bridged' }, { name: 'bridged', type: 'Private' });
      const vsw = g.vm.network.switches.get('bridged')!;
      inNetns(NS, () => {
        ensureBridge(BR, 'hvt-phys');
        ip('addr', 'add', '10.199.2.1/24', 'dev', BR);
        tap = new TapBackend(vsw, { bridge: BR, tap: 'hvtap-boottest' });
        tap.start();
      });
      assert.ok(tap!.running, 'the TAP device is up on the bridge');
      const ifname = await until('the bridged interface in the guest', async () =>
        (await g.run(`for d in /sys/class/net/*; do [ "$(cat $d/address)" = "${BRIDGED_MAC}" ] && basename $d; done; true`)).out.trim());
      await sh(`ip addr add 10.199.2.2/24 dev ${ifname} && ip link set ${ifname} up`);
      const reach = (ns: string, port: number): Promise<string> => new Promise((resolve) => {
        const js = `const c=require('net').connect(${port},'10.199.2.2');let d='';c.on('data',x=>d+=x);c.on('close',()=>{console.log(d.trim());process.exit(0)});c.on('error',()=>process.exit(1));setTimeout(()=>process.exit(2),15000)`;
        const c = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js], { stdio: ['ignore', 'pipe', 'ignore'] });
        let o = '';
        c.stdout.on('data', (x: Buffer) => { o += x; });
        c.on('close', () => resolve(o.trim()));
      });
      for (const [ns, port, word] of [[NS, 7101, 'internal'], [PEER, 7102, 'external']] as const) {
        await sh(`(echo hello-${word} | nc -l -p ${port} >/dev/null 2>&1 &) ; sleep 1`);
        const got = await until(`the guest's answer from ${ns}`, () => reach(ns, port));
        assert.equal(got, `hello-${word}`);
      }
    } finally {
      (tap as TapBackend | null)?.stop();
      if (g.vm.network.adapters.some((a) => a.config.name === 'bridged')) g.vm.removeNetworkAdapter('bridged');
      spawnSync('ip', ['netns', 'del', NS]); spawnSync('ip', ['netns', 'del', PEER]);
    }
  });

  test('the guest fetches a file with wget from an HTTP server on the host\'s loopback (gateway mapping)', async () => {
    const gw = /default via (\S+)/.exec(await sh('ip route'))![1];
    const out = await sh(`wget -q -O /tmp/file http://${gw}:${httpPort}/file && wc -c < /tmp/file && head -c 40 /tmp/file`);
    const [size, head] = out.trim().split('\n');
    assert.equal(Number(size), Buffer.byteLength(payload));
    assert.equal(head, payload.slice(0, 40));
  });

  test('a host client reaches a TCP server in the guest through the port mapping', async () => {
    await sh("(echo hello-from-the-guest | nc -l -p 7777 >/tmp/nc-in 2>&1 &) ; sleep 1");
    const got = await until('an answer through the port mapping', () => new Promise<string>((resolve) => {
      const c = connect(forwardPort, '127.0.0.1');
      let data = '';
      c.on('data', (d) => { data += d.toString(); });
      c.on('connect', () => c.write('hello-from-the-host\n'));
      c.on('close', () => resolve(data));
      c.on('error', () => resolve(''));
      setTimeout(() => c.destroy(), 20_000).unref();
    }));
    assert.equal(got.trim(), 'hello-from-the-guest');
    await until('the guest to log what the host sent', async () => (await g.run('cat /tmp/nc-in')).out.includes('hello-from-the-host'));
  });

  test('saved state: saved and restored into a new partition, the guest keeps its address and fetches again', async () => {
    const ip = /inet (\d+\.\d+\.\d+\.\d+)/.exec(await sh('ip -4 -o addr show dev eth0'))![1];
    const { session } = await g.saveAndRestore();
    g = session;
    assert.ok(g.vm.network.adapters[0].adapter.ready, 'the restored adapter carries on without renegotiating');
    assert.match(await sh('ip -4 -o addr show dev eth0'), new RegExp(`inet ${ip.replace(/\./g, '\\.')}/`));
    const gw = /default via (\S+)/.exec(await sh('ip route'))![1];
    const out = await sh(`wget -q -O - http://${gw}:${httpPort}/file | wc -c`);
    assert.equal(Number(out.trim()), Buffer.byteLength(payload));
  });

  test('KVP: hv_kvp_daemon reports the DHCP address as NetworkAddressIPv4', async () => {
    const ip = /inet (\d+\.\d+\.\d+\.\d+)/.exec(await sh('ip -4 -o addr show dev eth0'))![1];
    const ics = g.vm.integrationServices!;
    await until('KVP negotiation', () => ics.kvp.status === 'OK');
    const kv = await ics.kvp.guestIntrinsics();
    assert.ok(kv.NetworkAddressIPv4.split(';').includes(ip), `NetworkAddressIPv4 = ${kv.NetworkAddressIPv4}, eth0 has ${ip}`);
  });
});

describe('synthetic SCSI: hv_storvsc and sd on storvsp', () => {
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

  // Last: it ends the guest (issue 3; this was the second boot of hyperv.test.ts).
  test('without the Shutdown service the host gets a clear error; with it the guest powers off cleanly', async () => {
    const ics = g.vm.integrationServices!;
    await until('Shutdown negotiation', () => ics.shutdown.status === 'OK');
    ics.disable('Shutdown'); // rescinds the channel in the running guest
    await assert.rejects(ics.requestShutdown(), /Shutdown integration service is disabled/);
    ics.enable('Shutdown'); // offered again: hv_utils binds it again
    await until('Shutdown renegotiation', () => ics.shutdown.status === 'OK');
    await ics.requestShutdown();
    const exit = await g.exited;
    assert.equal(exit.code, 0, `exit: ${exit.reason}`);
    const out = g.output;
    const a = out.indexOf(`${SHUTDOWN_MARKER}poweroff`), b = out.indexOf(`${SHUTDOWN_DONE_MARKER}poweroff`);
    assert.ok(a >= 0 && b > a, `init's shutdown path did not run:\n${out.slice(-3000)}`);
    assert.match(out.slice(b), /reboot: Power down/);
  });
});

function createHashOf(b: Buffer): string { return createHash('sha256').update(b).digest('hex'); }
