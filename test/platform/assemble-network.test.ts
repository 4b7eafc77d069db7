/**
 * Adapters added to and removed from a running VM (Hyper-V's hot add/remove of a synthetic NIC): the new
 * adapter is offered on VMBus with the instance GUID the guest names it by, its guest-side driver gets
 * going and frames flow; a removed adapter's channel is rescinded, its switch port goes, and the guest can
 * release it. Connecting and disconnecting follow the partition's hardware description.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeLinuxGuest, msg, parseOffer } from '../vmbus/fake-guest.js';
import { FakeNetvsc, NIC_CLASS, ethernet } from '../vsp/netvsp/fake-netvsc.js';
import { assembleNetwork, NetworkConfigError } from '../../src/platform/assemble-network.js';

const macBytes = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));

test('hot add: a second adapter is offered to the running guest, negotiates and carries frames; hot remove rescinds it', () => {
  const g = new FakeLinuxGuest(1, {}, 48 << 20);
  const first = '00:15:5d:00:00:01', second = '00:15:5d:00:00:02';
  const net = assembleNetwork(g.vmbus, { scsiControllers: 0, drives: [], networkAdapters: [{ name: 'Network Adapter', legacy: false, macAddress: first, switchName: 'lab' }] },
    [{ name: 'lab', type: 'Private' }]);
  const offers = g.bootToOffers().filter((o) => o.type === NIC_CLASS);
  assert.equal(offers.length, 1);
  const a = new FakeNetvsc(g, offers[0]);
  a.full();

  net.add({ name: 'hot', legacy: false, macAddress: second, switchName: 'lab' });
  const m = g.take(1);
  assert.ok(m, 'the running guest receives an offer for the new adapter');
  const offer = parseOffer(m);
  assert.equal(offer.type, NIC_CLASS);
  assert.equal(offer.instance, 'f8615163-0000-1000-8000-00155d000002', 'the instance GUID derives from the MAC, as at boot');
  const b = new FakeNetvsc(g, offer);
  b.full();
  assert.equal(net.adapters.length, 2);
  assert.ok(net.adapters[1].adapter.ready && net.adapters[1].adapter.linkUp);
  a.sendRndisPages(FakeNetvsc.packet(ethernet(macBytes(second), macBytes(first), 'to the hot one')), 0);
  a.pump(); b.pump();
  assert.equal(new TextDecoder().decode(b.frames.at(-1)!.subarray(14)), 'to the hot one');

  assert.throws(() => net.add({ name: 'HOT', legacy: false, macAddress: '00:15:5d:00:00:03', switchName: null }), NetworkConfigError);
  assert.throws(() => net.add({ name: 'other', legacy: false, macAddress: '00-15-5D-00-00-02', switchName: null }), /already has an adapter with MAC/);
  assert.throws(() => net.add({ name: 'x', legacy: false, macAddress: 'zz', switchName: null }), /MAC/);
  assert.throws(() => net.remove('nope'), /no network adapter named 'nope'/);

  net.remove('hot');
  const r = g.take(2);
  assert.ok(r, 'the guest is told the adapter is gone (rescind)');
  assert.equal(r.view.getUint32(8, true), offer.relid);
  assert.equal(net.adapters.length, 1);
  // Added again before the guest let go of the old channel: refused with a clear message, nothing left behind.
  assert.throws(() => net.add({ name: 'hot', legacy: false, macAddress: second, switchName: 'lab' }), /the guest still holds a removed adapter with this MAC; try again/);
  assert.equal(net.adapters.length, 1);
  assert.equal(net.switches.get('lab')!.portCount, 1, 'no stray switch port');
  const before = b.frames.length;
  a.sendRndisPages(FakeNetvsc.packet(ethernet(macBytes(second), macBytes(first), 'nobody home')), 0);
  a.pump(); b.pump();
  assert.equal(b.frames.length, before, 'a removed adapter receives nothing');
  // The guest releases the relid (Linux's vmbus_onoffer_rescind path); the host forgets the device.
  const rel = msg(13, 12); rel.view.setUint32(8, offer.relid, true);
  assert.equal(g.post(rel.bytes), 0);
  assert.equal(g.vmbus.deviceList.filter((d) => d.provider.interfaceType === NIC_CLASS).length, 1);
  assert.deepEqual(g.faults, []);
  // Added again (same MAC): offered afresh.
  net.add({ name: 'hot', legacy: false, macAddress: second, switchName: null });
  assert.ok(g.take(1), 'offered again');
  net.stop();
});
