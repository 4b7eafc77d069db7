/**
 * Save-VM with a synthetic NIC: the adapter's negotiation, buffers and lent receive slots survive a save and
 * restore into a new host (the guest side moves over unchanged), and traffic carries on both ways.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeLinuxGuest, FakeChannel } from '../../vmbus/fake-guest.js';
import { FakeNetvsc, NIC_CLASS, ethernet } from './fake-netvsc.js';
import { NetvspAdapter, type NetvspState } from '../../../src/vsp/netvsp/netvsp.js';
import { VirtualSwitch, type NetworkEndpoint } from '../../../src/net/switch.js';
import { pack, unpack } from '../../../src/platform/saved-state.js';
import type { HyperVStackState } from '../../../src/vsp/hyperv-stack.js';

const MAC = [0x00, 0x15, 0x5d, 0x05, 0x06, 0x07];
const PEER = [0x02, 0, 0, 0, 0, 0x42];
const INSTANCE = 'f8615163-0000-1000-8000-00155d050607';

class Peer implements NetworkEndpoint { got: Uint8Array[] = []; deliver(f: Uint8Array): void { this.got.push(f.slice()); } }

function host(g: FakeLinuxGuest): { adapter: NetvspAdapter; peer: Peer; port: ReturnType<VirtualSwitch['attach']>; device: ReturnType<FakeLinuxGuest['vmbus']['addDevice']> } {
  const adapter = new NetvspAdapter({ mac: Uint8Array.from(MAC), instance: INSTANCE, log: () => {} });
  const sw = new VirtualSwitch('lab');
  const peer = new Peer();
  const port = sw.attach(peer, 'peer');
  const nicPort = sw.attach(adapter, 'nic');
  adapter.plug((f) => nicPort.transmit(f));
  adapter.linkChanged(sw.linkUp);
  const device = g.vmbus.addDevice(adapter);
  return { adapter, peer, port, device };
}

test('a saved NIC restored into a new host: lent slots, buffers and RNDIS state carry on', () => {
  const g = new FakeLinuxGuest(1, {}, 32 << 20);
  const h = host(g);
  const offer = g.bootToOffers().find((o) => o.type === NIC_CLASS)!;
  const nic = new FakeNetvsc(g, offer);
  nic.full();
  nic.autoComplete = false;
  for (let i = 0; i < 5; i++) h.port.transmit(ethernet(MAC, PEER, `before ${i}`));
  nic.pump();
  assert.equal(nic.frames.length, 5);
  assert.equal(nic.unacked.length, 5);

  const state = unpack(JSON.parse(JSON.stringify(pack({ stack: g.stack.saveState(), nic: h.adapter.saveState() })))) as { stack: HyperVStackState; nic: NetvspState };

  // The new host: same memory, the guest's drivers unchanged.
  const g2 = new FakeLinuxGuest(1, {}, 32 << 20);
  g2.memory.bytes.set(g.memory.bytes);
  const src = g as unknown as Record<string, unknown>, dst = g2 as unknown as Record<string, unknown>;
  for (const k of ['simp', 'siefp', 'inputPage', 'version', 'msgConnId', 'nextPage', 'nextGpadl']) dst[k] = src[k];
  const h2 = host(g2);
  g2.stack.restoreState(state.stack);
  h2.adapter.restoreState(state.nic, g2.vmbus.channelOf(h2.device));
  const nic2 = new FakeNetvsc(g2, offer);
  const ch2 = new FakeChannel(g2, offer, nic.ch.out, nic.ch.inn, nic.ch.gpadl);
  g2.channels.set(offer.relid, ch2);
  nic2.adopt(ch2, nic);
  assert.ok(h2.adapter.ready);

  // The guest returns the slots it held across the save; then traffic flows both ways.
  for (const t of nic.unacked) nic2.completeReceive(t);
  nic2.pump();
  const slots = Math.floor(64 * 4096 / 1728);
  for (let i = 0; i < slots * 2; i++) { h2.port.transmit(ethernet(MAC, PEER, `after ${i}`)); if (i % 40 === 39) nic2.pump(); }
  nic2.pump();
  assert.equal(nic2.frames.length, slots * 2, 'every slot came back: nothing leaked across the save');
  assert.equal(h2.adapter.stats.rxDropped, 0);
  nic2.sendRndisSection(FakeNetvsc.packet(ethernet(PEER, MAC, 'from the restored guest')), 2);
  nic2.pump();
  assert.equal(new TextDecoder().decode(h2.peer.got.at(-1)!.subarray(14)), 'from the restored guest');
  assert.deepEqual([...nic2.query(0x01010101).data], MAC);
});

test('a saved state naming a buffer the VMBus state lacks is refused', () => {
  const g = new FakeLinuxGuest(1, {}, 32 << 20);
  const h = host(g);
  const offer = g.bootToOffers().find((o) => o.type === NIC_CLASS)!;
  const nic = new FakeNetvsc(g, offer);
  nic.full();
  const s = h.adapter.saveState();
  assert.throws(() => h.adapter.restoreState({ ...s, recvGpadl: 0x7777 }, g.vmbus.channelOf(h.device)), /receive buffer/);
  assert.throws(() => h.adapter.restoreState({ ...s, free: [0, 0, 1] }, g.vmbus.channelOf(h.device)), /receive slots/);
  assert.throws(() => h.adapter.restoreState({ ...s, version: 0x99 }, g.vmbus.channelOf(h.device)), /NVSP version/);
});
