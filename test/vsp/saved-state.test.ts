/**
 * Saved state of the Hyper-V stack (hypervisor MSRs, SynIC, VMBus host, integration services) with the
 * test-side Linux guest: save mid-conversation, restore into a new stack on a copy of guest memory, and the
 * guest's drivers carry on as if nothing happened (heartbeat sequence, an unanswered KVP negotiation, shutdown).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeLinuxGuest, FakeIcGuest, FakeChannel, settle } from '../vmbus/fake-guest.js';
import { pack, unpack } from '../../src/platform/saved-state.js';
import type { HyperVStackState } from '../../src/vsp/hyperv-stack.js';

const TYPES: Record<string, number> = {
  '57164f39-9115-4e78-ab55-382f3bd5422d': 1, '0e0b6031-5213-4934-818b-38d90ced39db': 3,
  '9527e630-d0ae-497b-adce-e80ab0175caf': 4, 'a9a0f4e7-5a45-4d96-b827-8a841e8c03e6': 2, '35fa2e29-ea23-4236-96ae-3a6ebacba440': 5,
};

async function boot(g: FakeLinuxGuest): Promise<{ ic: FakeIcGuest; chans: Map<number, FakeChannel> }> {
  const offers = g.bootToOffers();
  const ic = new FakeIcGuest(g);
  const chans = new Map<number, FakeChannel>();
  for (const o of offers) chans.set(TYPES[o.type], g.open(o) as FakeChannel);
  chans.get(2)!.paused = true; // hv_kvp_daemon not running yet: the KVP negotiation waits in the ring
  for (const [t, c] of chans) ic.attach(c, t);
  g.pump();
  await settle(g);
  return { ic, chans };
}

/** The guest side moves to the new host as it is: same memory, same driver state. */
function moveGuest(g: FakeLinuxGuest, chans: Map<number, FakeChannel>, ic: FakeIcGuest): { g2: FakeLinuxGuest; chans2: Map<number, FakeChannel>; ic2: FakeIcGuest } {
  const g2 = new FakeLinuxGuest(g.vpCount);
  g2.memory.bytes.set(g.memory.bytes);
  g2.time.ns = g.time.ns;
  const src = g as unknown as Record<string, unknown>, dst = g2 as unknown as Record<string, unknown>;
  for (const k of ['simp', 'siefp', 'inputPage', 'version', 'msgConnId', 'nextPage', 'nextGpadl']) dst[k] = src[k];
  const ic2 = new FakeIcGuest(g2);
  for (const [k, v] of ic.negotiated) ic2.negotiated.set(k, v);
  const chans2 = new Map<number, FakeChannel>();
  for (const [t, c] of chans) {
    const c2 = new FakeChannel(g2, c.offer, c.out, c.inn, c.gpadl);
    c2.paused = c.paused;
    g2.channels.set(c.offer.relid, c2);
    ic2.attach(c2, t);
    chans2.set(t, c2);
  }
  return { g2, chans2, ic2 };
}

test('a saved Hyper-V stack restored into a new one: heartbeat, a pending KVP negotiation and shutdown carry on', async () => {
  const g = new FakeLinuxGuest(2);
  const { ic, chans } = await boot(g);
  for (let i = 0; i < 3; i++) { g.time.advance(1000); await settle(g, 4); }
  const answers = g.ics.heartbeat.answers;
  assert.ok(answers >= 3);
  assert.equal(g.ics.kvp.status, 'No Contact');
  // Through the file encoding, as a real save does.
  const state = unpack(JSON.parse(JSON.stringify(pack(g.stack.saveState())))) as HyperVStackState;
  const osId = g.hv.guestOsIdentity;

  const { g2, chans2, ic2 } = moveGuest(g, chans, ic);
  g2.stack.restoreState(state);
  assert.deepEqual(g2.hv.guestOsIdentity, osId);
  assert.ok(g2.hv.hypercallPageEnabled);
  assert.equal(g2.vmbus.state, 'connected');
  assert.equal(g2.vmbus.version, g.vmbus.version);
  // The instance GUIDs the guest knows its devices by come back.
  assert.deepEqual(g2.vmbus.deviceList.map((d) => d.provider.instance).sort(), g.vmbus.deviceList.map((d) => d.provider.instance).sort());
  assert.equal(g2.ics.heartbeat.status, 'OK');
  assert.equal(g2.ics.heartbeat.answers, answers);

  // Heartbeats keep going: the timers were re-armed against the restored clock.
  for (let i = 0; i < 3; i++) { g2.time.advance(1000); await settle(g2, 4); }
  assert.ok(g2.ics.heartbeat.answers >= answers + 3, `answers ${g2.ics.heartbeat.answers} after ${answers}`);
  assert.equal(g2.ics.heartbeat.status, 'OK');
  assert.deepEqual(g2.faults, []);

  // The daemon starts after the restore and answers the NEGOTIATE sent before the save.
  const kvp = chans2.get(2)!;
  kvp.paused = false;
  kvp.onInterrupt();
  await settle(g2);
  assert.equal(g2.ics.kvp.status, 'OK');
  const info = g2.ics.kvp.guestIntrinsics();
  await settle(g2, 40);
  assert.equal((await info).OSName, 'Debian GNU/Linux');

  const sd = g2.ics.requestShutdown();
  await settle(g2);
  await sd;
  assert.equal(ic2.shutdowns.length, 1);
  // The old host is not involved any more.
  assert.equal(ic.shutdowns.length, 0);
});

test('a Hyper-V stack state that does not match guest memory or this VM is refused', async () => {
  const g = new FakeLinuxGuest(2);
  const { ic, chans } = await boot(g);
  const good = (): HyperVStackState => unpack(JSON.parse(JSON.stringify(pack(g.stack.saveState())))) as HyperVStackState;
  const s1 = good();
  s1.vmbus!.devices.find((d) => d.channel)!.channel!.ringGpadl = 0xdead;
  assert.throws(() => moveGuest(g, chans, ic).g2.stack.restoreState(s1), /ring GPADL is missing/);
  const s2 = good();
  s2.vmbus!.gpadls[0].pfns[0] = 0x7fffffff; // not guest RAM
  assert.throws(() => moveGuest(g, chans, ic).g2.stack.restoreState(s2), /is not guest RAM/);
  const s3 = good();
  assert.throws(() => new FakeLinuxGuest(1).stack.restoreState(s3), /for 2 VPs, this partition has 1/);
  const s4 = good();
  s4.ics!.ics.Heartbeat.instance = 'not-a-guid';
  assert.throws(() => moveGuest(g, chans, ic).g2.stack.restoreState(s4), /instance GUID is malformed/);
});
