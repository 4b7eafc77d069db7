/**
 * Issue 15 acceptance with the real guest: Debian's hv_netvsc on our netvsp, NAT through passt. One boot:
 * hv_netvsc binds, DHCP gives an address, the guest fetches a file from an HTTP server on the host's
 * loopback (through passt's gateway mapping), a host client reaches a TCP server in the guest through a port
 * mapping, and hv_kvp_daemon reports the address to the host.
 *
 * Waits poll the state that proves the behaviour; their limits are safety nets, not timing assertions.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { GuestSession } from './guest-session.js';
import { until, freePort, fileServer } from './net-helpers.js';
import { natNetwork } from '../../src/platform/assemble-network.js';
import { adapterStatus } from '../../src/vmms/adapter-status.js';
import { spawn, spawnSync } from 'node:child_process';
import { TapBackend } from '../../src/net/tap.js';
import { ensureBridge, ip } from '../../src/net/host-bridge.js';
import { inNetns } from './netns.js';

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

describe('enlightened guest with a synthetic network adapter (NAT through passt)', () => {
  let g: GuestSession;
  let http: Server;
  let httpPort = 0;
  let forwardPort = 0;
  const payload = `hello from the host ${process.pid} ${'x'.repeat(20000)}`;
  const sh = async (cmd: string): Promise<string> => {
    const r = await g.run(cmd);
    assert.equal(r.status, 0, `'${cmd}' failed (${r.status}):\n${r.out}`);
    return r.out;
  };

  before(async () => {
    if (!GuestSession.imageAvailable()) throw new Error("default guest image missing: run 'npm run setup' (hyperts image build) first");
    ({ server: http, port: httpPort } = await fileServer(payload));
    forwardPort = await freePort();
    g = await GuestSession.boot(natNetwork(MAC, [{ protocol: 'tcp', hostPort: forwardPort, guestPort: 7777 }]));
    await g.waitForShell();
  }, { timeout: BOOT_LIMIT });

  after(() => { if (g && !g.exit) g.vm.turnOff('test end'); http?.close(); });

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
