import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeLinuxGuest, FakeIcGuest, VERSIONS, msg, settle, PAGE, type Offer, type FakeChannel } from './fake-guest.js';

const IC_GUIDS: Record<string, string> = {
  Heartbeat: '57164f39-9115-4e78-ab55-382f3bd5422d',
  Shutdown: '0e0b6031-5213-4934-818b-38d90ced39db',
  'Time Synchronization': '9527e630-d0ae-497b-adce-e80ab0175caf',
  'Key-Value Pair Exchange': 'a9a0f4e7-5a45-4d96-b827-8a841e8c03e6',
  VSS: '35fa2e29-ea23-4236-96ae-3a6ebacba440',
};

test('every version Linux 6.1 offers is accepted on its connection id, with msg_conn_id for 5.x', () => {
  for (const version of VERSIONS) {
    const g = new FakeLinuxGuest();
    g.hypervInit(); g.synicInit();
    assert.equal(g.tryVersion(version), true, `version ${version.toString(16)}`);
    assert.equal(g.vmbus.version, version);
    assert.equal(g.vmbus.state, 'connected');
    assert.equal(g.msgConnId, 1);
    assert.ok(g.requestOffers().length === 5);
  }
});

test('an older host: 5.x on connection 4 gets INVALID_CONNECTION_ID and the guest falls back to 4.0', () => {
  const g = new FakeLinuxGuest(1, { maxVmbusVersion: 0x40000 });
  g.hypervInit(); g.synicInit();
  assert.equal(g.connect(), 0x40000);
  const g2 = new FakeLinuxGuest(1);
  g2.hypervInit(); g2.synicInit();
  assert.equal(g2.tryVersion(0x10001), false, 'unknown version refused with version_supported = 0');
  assert.equal(g2.tryVersion(0x50003), true);
});

test('offers: the five ICs with Hyper-V class GUIDs, dedicated interrupts, no monitor, unique ids', () => {
  const g = new FakeLinuxGuest();
  const offers = g.bootToOffers();
  assert.deepEqual(offers.map((o) => o.type).sort(), Object.values(IC_GUIDS).sort());
  for (const o of offers) {
    assert.equal(o.dedicated, 1); assert.equal(o.monitorAllocated, 0);
    assert.equal(o.connectionId, 16 + o.relid);
    assert.ok(o.relid >= 1 && o.relid < 2048);
  }
  assert.equal(new Set(offers.map((o) => o.relid)).size, 5);
  assert.equal(new Set(offers.map((o) => o.instance)).size, 5);
  // Wire byte order of a class GUID (contract §6.6).
  const hb = offers.find((o) => o.type === IC_GUIDS.Heartbeat)!;
  assert.deepEqual([...hb.raw.subarray(8, 12)], [0x39, 0x4f, 0x16, 0x57]);
});

test('GPADL with bodies, open, close, teardown, reopen; disable rescinds; UNLOAD and re-contact', async () => {
  const g = new FakeLinuxGuest();
  const offers = g.bootToOffers();
  const kvp = offers.find((o) => o.type === IC_GUIDS['Key-Value Pair Exchange'])!;
  // A 100-page GPADL needs a header and 3 bodies.
  const pages = g.allocScattered(100);
  const [h, st] = g.createGpadl(kvp.relid, pages);
  assert.equal(st, 0);
  const ch = g.vmbus.deviceList.find((d) => d.relid === kvp.relid)!;
  assert.ok(ch);
  assert.equal(g.teardownGpadl(kvp.relid, h), true);
  const c = g.open(kvp) as FakeChannel;
  assert.equal(typeof c, 'object');
  assert.equal(g.vmbus.deviceList.find((d) => d.relid === kvp.relid)!.state, 'open');
  g.close(c);
  assert.equal(g.vmbus.deviceList.find((d) => d.relid === kvp.relid)!.state, 'offered');
  const c2 = g.open(kvp);
  assert.equal(typeof c2, 'object', 'reopen after close works');
  // Disable VSS: rescind; after RELID_RELEASED the relid is free.
  const vss = offers.find((o) => o.type === IC_GUIDS.VSS)!;
  g.ics.disable('VSS');
  const r = g.take(2)!;
  assert.equal(r.view.getUint32(8, true), vss.relid);
  const rel = msg(13, 12); rel.view.setUint32(8, vss.relid, true);
  assert.equal(g.post(rel.bytes), 0);
  assert.equal(g.vmbus.deviceList.some((d) => d.provider.name === 'VSS'), false);
  g.ics.enable('VSS');
  const hot = g.take(1);
  assert.ok(hot, 'hot-add offer');
  // UNLOAD: response, channels closed, back to waiting for contact.
  assert.equal(g.post(msg(16, 8).bytes), 0);
  assert.ok(g.take(17));
  assert.equal(g.vmbus.state, 'disconnected');
  assert.equal(g.ics.kvp.channel, null);
  // kexec'ed guest connects again and sees every offer once more.
  g.inbox.length = 0;
  g.connect();
  const re = g.requestOffers();
  assert.equal(re.length, 5);
  // A reboot without UNLOAD: a new INITIATE_CONTACT resets the old session (channels closed).
  const c3 = g.open(re[0]) as FakeChannel;
  assert.equal(typeof c3, 'object');
  g.inbox.length = 0;
  g.connect();
  assert.equal(g.vmbus.deviceList.filter((d) => d.state === 'open').length, 0);
  assert.equal(g.requestOffers().length, 5);
  await settle(g, 2);
});

test('flow control: a guest that stops consuming messages gets INSUFFICIENT_BUFFERS, then recovers', () => {
  const g = new FakeLinuxGuest();
  g.bootToOffers();
  let st = 0, n = 0;
  // REQUESTOFFERS produces 6 messages each; the guest does not pump.
  for (; n < 100 && st === 0; n++) st = g.post(msg(3, 8).bytes);
  assert.equal(st, 19);
  g.pump();
  assert.equal(g.post(msg(3, 8).bytes), 0);
});

function bootWithChannels(g: FakeLinuxGuest): { offers: Offer[]; chans: Map<string, FakeChannel>; ic: FakeIcGuest } {
  const offers = g.bootToOffers();
  const ic = new FakeIcGuest(g);
  const chans = new Map<string, FakeChannel>();
  const types: Record<string, number> = { Heartbeat: 1, Shutdown: 3, 'Time Synchronization': 4, 'Key-Value Pair Exchange': 2, VSS: 5 };
  for (const [name, guid] of Object.entries(IC_GUIDS)) {
    const o = offers.find((x) => x.type === guid)!;
    const c = g.open(o) as FakeChannel;
    ic.attach(c, types[name]);
    chans.set(name, c);
  }
  g.pump();
  return { offers, chans, ic };
}

test('malformed control messages are logged and ignored; the host keeps serving', () => {
  const g = new FakeLinuxGuest();
  // Before contact.
  assert.equal(g.post(msg(3, 8).bytes), 0);
  assert.match(g.vmbus.faults.at(-1)!, /before INITIATE_CONTACT/);
  const { offers } = bootWithChannels(g);
  const before = g.vmbus.faults.length;
  assert.equal(g.post(new Uint8Array(4)), 0);
  assert.equal(g.post(msg(99, 8).bytes), 0);
  assert.equal(g.post(msg(5, 12).bytes), 0, 'OPENCHANNEL too short');
  assert.equal(g.post(msg(15, 16).bytes), 0, 'host->guest type from the guest');
  const close = msg(7, 12); close.view.setUint32(8, 1999, true);
  assert.equal(g.post(close.bytes), 0);
  const rel = msg(13, 12); rel.view.setUint32(8, offers[0].relid, true);
  assert.equal(g.post(rel.bytes), 0, 'RELID_RELEASED of a live channel');
  assert.equal(g.vmbus.faults.length - before, 6);
  assert.equal(g.vmbus.state, 'connected');
  assert.equal(g.vmbus.deviceList.filter((d) => d.state === 'open').length, 5);
});

test('bad GPADLs fail with a status (never a hang) and do not disturb other channels', () => {
  const g = new FakeLinuxGuest();
  const { offers } = bootWithChannels(g);
  const relid = offers[0].relid;
  // PFN outside guest RAM.
  assert.notEqual(g.createGpadl(relid, [0x7000_0000_0000])[1], 0);
  // Unknown channel.
  assert.notEqual(g.createGpadl(1999, g.allocScattered(2))[1], 0);
  // byte_count larger than the pages.
  assert.notEqual(g.createGpadl(relid, g.allocScattered(2), { byteCount: 3 * PAGE })[1], 0);
  // Body with more PFNs than announced.
  const h = msg(8, 28 + 8); h.view.setUint32(8, relid, true); h.view.setUint32(12, 0xabc, true);
  h.view.setUint16(16, 8 + 2 * 8, true); h.view.setUint16(18, 1, true); h.view.setUint32(20, 2 * PAGE, true);
  h.view.setBigUint64(28, BigInt(g.allocPages(1) / PAGE), true);
  g.post(h.bytes);
  const b = msg(9, 16 + 3 * 8); b.view.setUint32(12, 0xabc, true);
  g.post(b.bytes);
  const created = g.take(10)!;
  assert.equal(created.view.getUint32(12, true), 0xabc);
  assert.notEqual(created.view.getUint32(16, true), 0);
  // Duplicate handle and teardown of an unknown GPADL still answered.
  const [ok] = g.createGpadl(relid, g.allocScattered(1));
  const dup = msg(8, 36); dup.view.setUint32(8, relid, true); dup.view.setUint32(12, ok, true);
  dup.view.setUint16(16, 16, true); dup.view.setUint16(18, 1, true); dup.view.setUint32(20, PAGE, true);
  dup.view.setBigUint64(28, BigInt(g.allocPages(1) / PAGE), true);
  g.post(dup.bytes);
  assert.notEqual(g.take(10)!.view.getUint32(16, true), 0);
  assert.equal(g.teardownGpadl(relid, 0x123456), true);
  // OPENCHANNEL with a bad ring split or missing GPADL gets a failure result.
  const heartbeatOffer = offers[0];
  g.close(g.channels.get(heartbeatOffer.relid)!);
  const [ring] = g.createGpadl(heartbeatOffer.relid, g.allocScattered(4));
  const o = msg(5, 28); o.view.setUint32(8, heartbeatOffer.relid, true); o.view.setUint32(16, ring, true); o.view.setUint32(24, 1, true);
  g.post(o.bytes);
  assert.notEqual(g.take(6)!.view.getUint32(16, true), 0);
  o.view.setUint32(16, 0x999999, true); o.view.setUint32(24, 2, true);
  g.post(o.bytes);
  assert.notEqual(g.take(6)!.view.getUint32(16, true), 0);
  assert.equal(g.vmbus.state, 'connected');
  assert.equal(g.vmbus.deviceList.filter((d) => d.state === 'open').length, 4);
  // After the guest reboots, the service is offered again.
  g.inbox.length = 0;
  g.connect();
  assert.equal(g.requestOffers().length, 5);
});

const RING_FAULTS: Array<[string, (g: FakeLinuxGuest, c: FakeChannel) => void, RegExp]> = [
  ['read index out of range', (g, c) => { c.setHdr('out', 0, 8); c.setHdr('out', 4, 1 << 20); g.signal(c.offer.connectionId); }, /indices out of range/],
  ['misaligned write index', (g, c) => { c.setHdr('out', 0, 12); g.signal(c.offer.connectionId); }, /indices out of range/],
  ['descriptor offset past length', (_g, c) => { const p = new Uint8Array(40); const v = new DataView(p.buffer); v.setUint16(0, 6, true); v.setUint16(2, 9, true); v.setUint16(4, 4, true); c.sendRaw(p); }, /malformed packet descriptor/],
  ['length past write index', (_g, c) => { const p = new Uint8Array(40); const v = new DataView(p.buffer); v.setUint16(0, 6, true); v.setUint16(2, 2, true); v.setUint16(4, 200, true); c.sendRaw(p); }, /exceeds the/],
  ['oversized packet', (_g, c) => { c.send(new Uint8Array(4200), 1n); }, /exceeds the channel limit/],
  ['IC packet shorter than the IC header', (_g, c) => { c.send(new Uint8Array(8), 77n); }, /shorter than the IC header/],
];

/** Corrupt the Shutdown channel; check rescind, release, re-offer and that it works again. */
async function faultAndRecover(g: FakeLinuxGuest, corrupt: (g: FakeLinuxGuest, c: FakeChannel) => void, re: RegExp, name: string): Promise<boolean> {
  const c = [...g.channels.values()].find((x) => x.offer.relid === g.vmbus.deviceList.find((d) => d.provider.name === 'Shutdown')?.relid)!;
  const relid = c.offer.relid;
  corrupt(g, c);
  assert.match(g.vmbus.faults.at(-1) ?? '', re, name);
  const resc = g.take(2);
  assert.ok(resc, `${name}: rescinded`);
  assert.equal(resc!.view.getUint32(8, true), relid);
  assert.equal(g.ics.shutdown.channel, null, `${name}: provider saw the close`);
  g.channels.delete(relid);
  const rel = msg(13, 12); rel.view.setUint32(8, relid, true);
  g.post(rel.bytes);
  const again = g.take(1);
  if (!again) return false;
  const offer = { type: '', instance: '', relid: again.view.getUint32(184, true), connectionId: again.view.getUint32(192, true), dedicated: 1, monitorAllocated: 0, raw: again.bytes };
  const nc = g.open(offer) as FakeChannel;
  new FakeIcGuest(g).attach(nc, 3);
  await settle(g);
  assert.equal(g.ics.shutdown.status, 'OK', `${name}: shutdown IC negotiated again after the reset`);
  return true;
}

for (const [name, corrupt, re] of RING_FAULTS) {
  test(`ring fault "${name}" resets only the offending channel`, async () => {
    const g = new FakeLinuxGuest();
    const { chans } = bootWithChannels(g);
    await settle(g);
    assert.equal(g.ics.heartbeat.status, 'OK');
    void chans;
    assert.equal(await faultAndRecover(g, corrupt, re, name), true);
    const answers = g.ics.heartbeat.answers;
    g.time.advance(1000);
    await settle(g);
    assert.ok(g.ics.heartbeat.answers > answers, 'heartbeat keeps running');
    assert.equal(g.ics.heartbeat.status, 'OK');
    assert.equal(g.vmbus.state, 'connected');
    assert.equal(g.vmbus.deviceList.filter((d) => d.state === 'open').length, 5);
  });
}

test('a channel that keeps faulting is reset 3 times, then stays rescinded', async () => {
  const g = new FakeLinuxGuest();
  bootWithChannels(g);
  await settle(g);
  const [, corrupt, re] = RING_FAULTS[0];
  for (let i = 0; i < 3; i++) assert.equal(await faultAndRecover(g, corrupt, re, `reset ${i + 1}`), true);
  assert.equal(await faultAndRecover(g, corrupt, re, 'final'), false);
  assert.equal(g.vmbus.deviceList.find((d) => d.provider.name === 'Shutdown')?.state, 'idle');
  assert.equal(g.ics.shutdown.status, 'Lost Communication');
  await assert.rejects(g.ics.requestShutdown(), /no Shutdown integration service running/);
  assert.equal(g.vmbus.deviceList.filter((d) => d.state === 'open').length, 4);
  // After the guest reboots, the service is offered again.
  g.inbox.length = 0;
  g.connect();
  assert.equal(g.requestOffers().length, 5);
});

test('a service disabled and enabled again before the guest released it is offered afresh after the release', async () => {
  const g = new FakeLinuxGuest();
  bootWithChannels(g);
  await settle(g);
  const relid = g.vmbus.deviceList.find((d) => d.provider.name === 'Shutdown')!.relid;
  g.ics.disable('Shutdown');
  g.ics.enable('Shutdown'); // must not throw "already registered"
  const resc = g.take(2);
  assert.equal(resc?.view.getUint32(8, true), relid);
  assert.equal(g.take(1), undefined, 'no offer before the guest released the old channel');
  g.channels.delete(relid);
  const rel = msg(13, 12); rel.view.setUint32(8, relid, true);
  g.post(rel.bytes);
  const again = g.take(1);
  assert.ok(again, 'offered again after RELID_RELEASED');
  assert.equal(g.ics.list().find((s) => s.name === 'Shutdown')!.enabled, true);
  assert.equal(g.vmbus.deviceList.filter((d) => d.provider.name === 'Shutdown').length, 1);
});
