import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeLinuxGuest, FakeIcGuest, settle, type FakeChannel } from '../vmbus/fake-guest.js';

const TYPES: Record<string, number> = {
  '57164f39-9115-4e78-ab55-382f3bd5422d': 1, '0e0b6031-5213-4934-818b-38d90ced39db': 3,
  '9527e630-d0ae-497b-adce-e80ab0175caf': 4, 'a9a0f4e7-5a45-4d96-b827-8a841e8c03e6': 2, '35fa2e29-ea23-4236-96ae-3a6ebacba440': 5,
};

async function boot(g = new FakeLinuxGuest(), prepare?: (ic: FakeIcGuest, c: Map<number, FakeChannel>) => void) {
  const offers = g.bootToOffers();
  const ic = new FakeIcGuest(g);
  const chans = new Map<number, FakeChannel>();
  for (const o of offers) {
    const c = g.open(o) as FakeChannel;
    assert.equal(typeof c, 'object');
    chans.set(TYPES[o.type], c);
  }
  prepare?.(ic, chans);
  for (const [t, c] of chans) ic.attach(c, t);
  g.pump();
  await settle(g);
  return { g, ic, chans };
}

test('all five ICs negotiate the versions of contract §12.1 and report OK', async () => {
  const { g, ic } = await boot();
  assert.deepEqual(Object.fromEntries(ic.negotiated), { 1: '3.0/3.0', 3: '3.0/3.2', 4: '3.0/4.0', 2: '3.0/4.0', 5: '3.0/5.0' });
  const list = g.ics.list();
  assert.deepEqual(list.map((s) => [s.name, s.status, s.protocol]), [
    ['Heartbeat', 'OK', '3.0/3.0'], ['Shutdown', 'OK', '3.0/3.2'], ['Time Synchronization', 'OK', '3.0/4.0'],
    ['Key-Value Pair Exchange', 'OK', '3.0/4.0'], ['VSS', 'OK', '3.0/5.0'],
  ]);
});

test('status before contact is No Contact; disabled services say Disabled and are not offered', async () => {
  const g = new FakeLinuxGuest(2, { integrationServices: { enabled: { VSS: false } } });
  assert.equal(g.ics.list().find((s) => s.name === 'Heartbeat')!.status, 'No Contact');
  const offers = g.bootToOffers();
  assert.equal(offers.length, 4);
  assert.equal(g.ics.list().find((s) => s.name === 'VSS')!.status, 'Disabled');
  await assert.rejects(g.ics.vss.freeze(), /no VSS integration service running .*hv_vss_daemon/);
});

test('heartbeat: OK while the guest answers, Lost Communication a few seconds after it stops', async () => {
  const { g, ic, chans } = await boot();
  for (let i = 0; i < 5; i++) { g.time.advance(1000); await settle(g, 4); }
  assert.ok(g.ics.heartbeat.answers >= 5, `answers ${g.ics.heartbeat.answers}`);
  assert.equal(g.ics.heartbeat.status, 'OK');
  const seqBefore = chans.get(1)!.received.length;
  ic.alive = false; // the guest kernel stops answering
  for (let i = 0; i < 3; i++) { g.time.advance(1000); await settle(g, 4); }
  assert.equal(g.ics.heartbeat.status, 'OK', 'still inside the grace period');
  for (let i = 0; i < 4; i++) { g.time.advance(1000); await settle(g, 4); }
  assert.equal(g.ics.heartbeat.status, 'Lost Communication');
  assert.equal(chans.get(1)!.received.length, seqBefore + 1, 'one outstanding heartbeat, no pile-up');
});

test('heartbeat protocol mismatch is reported as Hyper-V does', async () => {
  const saved = FakeIcGuest.PREFS[1];
  FakeIcGuest.PREFS[1] = { fw: ['9.0'], msg: ['9.0'] };
  try {
    const { g } = await boot();
    assert.equal(g.ics.heartbeat.status, 'Protocol Mismatch');
    assert.equal(g.ics.list()[0].status, 'Protocol Mismatch');
  } finally { FakeIcGuest.PREFS[1] = saved; }
});

test('graceful shutdown and reboot go through the Shutdown IC; a clear error without it', async () => {
  const { g, ic } = await boot();
  const p = g.ics.requestShutdown();
  await settle(g);
  await p;
  assert.deepEqual(ic.shutdowns, [{ flags: 0 }]);
  const r = g.ics.requestShutdown({ reboot: true, force: true });
  await settle(g);
  await r;
  assert.deepEqual(ic.shutdowns[1], { flags: 3 });
  g.ics.disable('Shutdown');
  await assert.rejects(g.ics.requestShutdown(), /Shutdown integration service is disabled for this VM/);
  const g2 = new FakeLinuxGuest();
  g2.bootToOffers(); // hv_utils never opened the channel
  await assert.rejects(g2.ics.requestShutdown(), /guest has no Shutdown integration service running \(status: No Contact\)/);
});

test('KVP: read the guest intrinsics, add/change/remove host keys in pool 0', async () => {
  const { g, ic } = await boot();
  const p = g.ics.kvp.guestIntrinsics();
  await settle(g, 40);
  const info = await p;
  assert.equal(info.OSName, 'Debian GNU/Linux');
  assert.equal(info.OSVersion, '6.1.0');
  assert.equal(info.NetworkAddressIPv4, '10.0.2.15');
  assert.equal(Object.keys(info).length, 10);
  const s = g.ics.kvp.setHostKey('VirtualMachineName', 'débian-vm');
  await settle(g);
  await s;
  assert.equal(ic.pool0.get('VirtualMachineName'), 'débian-vm');
  const s2 = g.ics.kvp.setHostKey('VirtualMachineName', 'renamed');
  await settle(g);
  await s2;
  assert.equal(ic.pool0.get('VirtualMachineName'), 'renamed');
  const d = g.ics.kvp.removeHostKey('VirtualMachineName');
  await settle(g);
  await d;
  assert.equal(ic.pool0.has('VirtualMachineName'), false);
  const d2 = assert.rejects(g.ics.kvp.removeHostKey('missing'), /did not remove key "missing"/);
  await settle(g);
  await d2;
  await assert.rejects(g.ics.kvp.setHostKey('x'.repeat(300), 'v'), /longer than 255 characters/);
});

test('KVP waits for the daemon: requests are refused until the guest negotiates', async () => {
  const { g, chans, ic } = await boot(undefined, (_ic, c) => { c.get(2)!.paused = true; });
  assert.equal(g.ics.kvp.status, 'No Contact');
  await assert.rejects(g.ics.kvp.guestIntrinsics(), /hv_kvp_daemon/);
  // The daemon may start minutes later (slow boot, missing daemon fixed by hand): the host keeps waiting.
  for (let i = 0; i < 10; i++) { g.time.advance(60_000); await settle(g, 2); }
  assert.equal(g.ics.kvp.status, 'No Contact');
  // The daemon registers: the driver reads the NEGOTIATE that waited in the ring.
  const c = chans.get(2)!;
  c.paused = false;
  c.onInterrupt();
  await settle(g);
  assert.equal(g.ics.kvp.status, 'OK');
  void ic;
});

test('VSS freeze and thaw report the guest result', async () => {
  const { g, ic } = await boot();
  const f = g.ics.vss.freeze();
  await settle(g);
  assert.deepEqual((await f).ok, true);
  assert.equal(ic.frozen, true);
  const t = g.ics.vss.thaw();
  await settle(g);
  assert.equal((await t).ok, true);
  assert.equal(ic.frozen, false);
  ic.vssDaemon = false;
  const f2 = g.ics.vss.freeze();
  await settle(g);
  const r = await f2;
  assert.equal(r.ok, false);
  assert.match(r.statusText, /0x80004005/);
});

test('time sync: SYNC after negotiation and on demand, samples tied to the reference counter', async () => {
  let hostTime = 133_000_000_000_000_000n;
  const g = new FakeLinuxGuest(1, { integrationServices: { hostTime: () => hostTime } });
  const { ic } = await boot(g);
  assert.equal(ic.timeSamples[0].flags, 1);
  assert.equal(ic.timeSamples[0].guestTime100ns, hostTime - 116444736000000000n);
  // Paused VM: host time moves on, the guest's reference counter does not; SYNC corrects it.
  g.time.clock.pause();
  hostTime += 600_000_000n; // 60 s
  g.time.clock.resume();
  const s = g.ics.timeSync.syncNow();
  await settle(g);
  const sample = await s;
  assert.equal(sample.acknowledged, true);
  assert.equal(ic.timeSamples.at(-1)!.flags, 1);
  assert.equal(ic.timeSamples.at(-1)!.guestTime100ns, hostTime - 116444736000000000n);
  g.time.advance(5000);
  await settle(g);
  assert.equal(ic.timeSamples.at(-1)!.flags, 2, 'periodic SAMPLE');
});

test('a guest that does not answer makes the host call time out instead of hanging', async () => {
  const { g, chans } = await boot(undefined, (_ic, c) => { void c; });
  chans.get(3)!.onPacket = () => undefined; // hv_utils ignores it
  const p = assert.rejects(g.ics.requestShutdown(), /did not answer within 60 s/);
  await settle(g);
  g.time.advance(61_000);
  await p;
});

test('malformed IC replies from the guest fault only their own channel; the host keeps serving the others', async () => {
  const { g, ic, chans } = await boot(undefined, (fake) => {
    // Heartbeat: the guest "chooses" versions the host never offered.
    const attach = fake.attach.bind(fake);
    fake.attach = (hb, type) => {
      attach(hb, type);
      if (type !== 1) return;
      hb.onPacket = (p) => {
        const b = p.payload.slice(), v = new DataView(b.buffer);
        v.setUint16(28, 1, true); v.setUint16(30, 1, true);
        v.setUint16(36, 9, true); v.setUint16(38, 9, true); v.setUint16(40, 9, true); v.setUint16(42, 9, true);
        v.setUint8(25, 1 | 4);
        hb.send(b, p.transId);
      };
    };
  });
  assert.match(g.vmbus.faults.join('\n'), /did not offer/);
  assert.notEqual(g.ics.heartbeat.status, 'OK');
  assert.equal(g.ics.kvp.status, 'OK');
  // KVP: a reply of the wrong message type to an enumerate.
  const kvp = chans.get(2)!;
  kvp.onPacket = (p) => {
    const b = p.payload.slice(), v = new DataView(b.buffer);
    v.setUint16(12, 1, true); v.setUint8(25, 1 | 4);
    kvp.send(b, p.transId);
  };
  const r = assert.rejects(g.ics.kvp.guestIntrinsics(), /malformed reply/);
  await settle(g);
  await r;
  assert.match(g.vmbus.faults.at(-1)!, /malformed Key-Value Pair Exchange reply/);
  assert.equal(g.ics.kvp.channel, null, 'the KVP channel was reset');
  // The rest still works.
  const f = g.ics.vss.freeze();
  await settle(g);
  assert.equal((await f).ok, true);
  assert.equal(ic.frozen, true);
  assert.equal(g.ics.shutdown.status, 'OK');
  assert.equal(g.vmbus.state, 'connected');
});
