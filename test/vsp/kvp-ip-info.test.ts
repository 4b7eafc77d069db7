/**
 * Guest addresses through KVP (KVP_OP_GET_IP_INFO, as hv_kvp_daemon answers it) against a fake guest:
 * the request names the adapter by its MAC as the daemon compares it, the answer's lists are parsed, and
 * whatever the guest writes that is not an address is dropped. Then the monitor that polls it for a VM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FakeLinuxGuest, FakeIcGuest, settle, type FakeChannel } from '../vmbus/fake-guest.js';
import { parseIpInfo, type GuestIpInfo } from '../../src/vsp/ic/kvp.js';
import { GuestAddressMonitor, type IpInfoSource } from '../../src/net/guest-addresses.js';

const KVP_TYPE = 'a9a0f4e7-5a45-4d96-b827-8a841e8c03e6';

async function bootKvp(): Promise<{ g: FakeLinuxGuest; ic: FakeIcGuest; chan: FakeChannel }> {
  const g = new FakeLinuxGuest();
  const offers = g.bootToOffers();
  const ic = new FakeIcGuest(g);
  const o = offers.find((x) => x.type === KVP_TYPE)!;
  const chan = g.open(o) as FakeChannel;
  ic.attach(chan, 2);
  g.pump();
  await settle(g);
  assert.equal(g.ics.kvp.status, 'OK');
  return { g, ic, chan };
}

async function ask(g: FakeLinuxGuest, mac: string): Promise<GuestIpInfo | null> {
  const p = g.ics.kvp.getIpInfo(mac);
  await settle(g, 40);
  return p;
}

test('GET_IP_INFO: asked by the MAC in the daemon\'s form, the answer\'s addresses, subnets, gateway, DNS and DHCP flag', async () => {
  const { g, ic } = await bootKvp();
  ic.ipInfo.set('00:15:5D:00:15:01', { addresses: '192.0.2.2;fe80::215:5dff:fe00:1501', subnets: '255.255.255.0;/64', gateways: '192.0.2.1', dns: '192.0.2.1;2001:db8::53', dhcp: 1 });
  const info = await ask(g, '00-15-5d-00-15-01');
  assert.deepEqual(ic.ipInfoAsked, ['00:15:5D:00:15:01']);
  assert.deepEqual(info, {
    addresses: ['192.0.2.2', 'fe80::215:5dff:fe00:1501'], subnets: ['255.255.255.0', '/64'], gateways: ['192.0.2.1'],
    dnsServers: ['192.0.2.1', '2001:db8::53'], dhcpEnabled: true,
  });
  // No interface with that MAC in the guest: the daemon fails the request; the host reports nothing.
  assert.equal(await ask(g, '00:15:5d:99:99:99'), null);
  await assert.rejects(g.ics.kvp.getIpInfo('not-a-mac'), /not a MAC address/);
});

test('GET_IP_INFO: what is not an address is dropped; duplicates and unterminated strings are bounded', async () => {
  const { g, ic } = await bootKvp();
  ic.ipInfo.set('00:15:5D:00:00:02', { addresses: `10.0.0.7;<script>;999.1.1.1;10.0.0.7;;${'1'.repeat(600)}`, subnets: '/129;255.0.0.0;x', gateways: 'gw', dns: '', dhcp: 7 });
  const info = await ask(g, '00:15:5D:00:00:02');
  assert.deepEqual(info, { addresses: ['10.0.0.7'], subnets: ['255.0.0.0'], gateways: [], dnsServers: [], dhcpEnabled: false });
  assert.equal(g.ics.kvp.status, 'OK', 'odd strings are the guest\'s business, not a protocol error');
});

test('GET_IP_INFO: a reply shorter than the message faults the KVP channel', async () => {
  const { g, chan } = await bootKvp();
  chan.onPacket = (p) => { const b = p.payload.slice(0, 200); const v = new DataView(b.buffer); v.setUint32(20, 0, true); v.setUint8(25, 5); chan.send(b, p.transId); };
  const r = assert.rejects(g.ics.kvp.getIpInfo('00:15:5d:00:00:01'), /malformed/);
  await settle(g, 40);
  await r;
  assert.equal(g.ics.kvp.channel, null, 'the KVP channel was reset');
});

test('property: any bytes in the IP-info fields parse into bounded lists of valid addresses', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 7428, maxLength: 7428 }), (b) => {
    const r = parseIpInfo(b);
    for (const l of [r.addresses, r.gateways, r.dnsServers]) {
      assert.ok(l.length <= 64);
      for (const a of l) assert.match(a, /^[0-9a-fA-F.:%\w-]+$/);
    }
    assert.equal(typeof r.dhcpEnabled, 'boolean');
  }), { numRuns: 200 });
  assert.throws(() => parseIpInfo(new Uint8Array(100)), RangeError);
});

test('monitor: polls each adapter, answers reads from its cache without waiting, forgets removed adapters and a silent daemon', async () => {
  let now = 1_000_000;
  const answers = new Map<string, GuestIpInfo | null>([['00:15:5D:00:00:01', { addresses: ['192.0.2.2'], subnets: [], gateways: [], dnsServers: [], dhcpEnabled: true }]]);
  const waiting: Array<() => void> = [];
  let calls = 0;
  const source: IpInfoSource = {
    getIpInfo: async (mac) => { calls++; await new Promise<void>((r) => waiting.push(r)); return answers.get(mac) ?? null; },
  };
  /** The guest answers everything asked until the round ends. */
  const answerAll = async (round: Promise<void>): Promise<void> => {
    let done = false;
    void round.then(() => { done = true; });
    while (!done) { waiting.splice(0).forEach((r) => r()); await new Promise((r) => setImmediate(r)); }
  };
  let daemon = true;
  let macs = ['00:15:5d:00:00:01', '00:15:5d:00:00:02'];
  const m = new GuestAddressMonitor({ source: () => (daemon ? source : null), macs: () => macs, now: () => now });
  assert.equal(m.get('00:15:5d:00:00:01'), null);
  m.request();
  assert.equal(m.get('00:15:5d:00:00:01'), null, 'a read never waits for the guest');
  m.request(); // a round is running: no second one
  assert.equal(calls, 1);
  await answerAll(m.refresh());
  assert.deepEqual(m.get('00-15-5D-00-00-01')?.addresses, ['192.0.2.2']);
  assert.equal(m.get('00:15:5d:00:00:02'), null, 'the guest has no interface with that MAC');
  // A read soon after a round does not start another.
  calls = 0; m.request(); assert.equal(calls, 0);
  // The adapter is removed: its addresses go with it.
  now += 5000; macs = ['00:15:5d:00:00:02'];
  await answerAll(m.refresh());
  assert.equal(m.get('00:15:5d:00:00:01'), null);
  // The daemon stops answering (guest rebooting): nothing stale is shown.
  macs = ['00:15:5d:00:00:01'];
  now += 5000; await answerAll(m.refresh());
  assert.ok(m.get('00:15:5d:00:00:01'));
  daemon = false; now += 5000; await m.refresh();
  assert.equal(m.get('00:15:5d:00:00:01'), null);
});
