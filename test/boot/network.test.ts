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

const BOOT_LIMIT = 40 * 60_000;
const MAC = '00:15:5d:00:15:01';

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
