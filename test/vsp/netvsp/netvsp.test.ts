/**
 * The synthetic NIC against a test-side hv_netvsc (contract §10): negotiation as Linux 6.1 does it, the
 * RNDIS queries the driver insists on, frames both ways through a switch, link indications; then a hostile
 * guest: malformed NVSP/RNDIS, bad section indexes, oversize frames, a guest that never returns receive slots.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FakeLinuxGuest } from '../../vmbus/fake-guest.js';
import { FakeNetvsc, NIC_CLASS, ethernet } from './fake-netvsc.js';
import { NetvspAdapter } from '../../../src/vsp/netvsp/netvsp.js';
import { VirtualSwitch, type NetworkEndpoint } from '../../../src/net/switch.js';

const MAC = [0x00, 0x15, 0x5d, 0x01, 0x02, 0x03];
const PEER = [0x02, 0x00, 0x00, 0x00, 0x00, 0x09];

class Peer implements NetworkEndpoint {
  readonly got: Uint8Array[] = [];
  deliver(f: Uint8Array): void { this.got.push(f.slice()); }
}

/** A peer the switch may pause (passt). */
class PausablePeer extends Peer {
  readonly pauses: boolean[] = [];
  setPaused(p: boolean): void { this.pauses.push(p); }
}

function setup(o: { plug?: boolean; flowControl?: boolean; peer?: Peer } = {}): { g: FakeLinuxGuest; nic: FakeNetvsc; adapter: NetvspAdapter; sw: VirtualSwitch; peer: Peer; peerPort: ReturnType<VirtualSwitch['attach']> } {
  const g = new FakeLinuxGuest(1, {}, 32 << 20);
  const adapter = new NetvspAdapter({ mac: Uint8Array.from(MAC), log: () => {} });
  const sw = new VirtualSwitch('test');
  const peer = o.peer ?? new Peer();
  const peerPort = sw.attach(peer, 'peer');
  if (o.plug ?? true) {
    const port = sw.attach(adapter, 'nic');
    if (o.flowControl) adapter.plug((f) => port.transmit(f), () => port.resume());
    else adapter.plug((f) => port.transmit(f));
    adapter.linkChanged(sw.linkUp);
  }
  g.vmbus.addDevice(adapter);
  const offers = g.bootToOffers();
  const offer = offers.find((x) => x.type === NIC_CLASS);
  assert.ok(offer, 'the NIC is offered with Hyper-V\'s network class GUID');
  return { g, nic: new FakeNetvsc(g, offer), adapter, sw, peer, peerPort };
}

describe('netvsp: what Linux 6.1 hv_netvsc does at probe', () => {
  test('NVSP: the first version Linux tries (6.1) is accepted; completions are full-size', () => {
    const { nic, adapter } = setup();
    nic.open();
    assert.equal(nic.negotiate(), 0x60001);
    assert.equal(adapter.negotiatedVersion, 0x60001);
  });

  test('NVSP: a version outside the host list is refused with a non-success status', () => {
    const { nic } = setup();
    nic.open();
    assert.notEqual(nic.init(0x70000), 1);
    assert.equal(nic.init(0x50000), 1);
  });

  test('buffers: one receive section of 1728-byte sub-allocations and 6144-byte send sections', () => {
    const { nic } = setup();
    nic.open(); nic.negotiate();
    const { recv, send } = nic.setupBuffers(64, 16);
    assert.ok(recv.byteLength >= 28 && send.byteLength >= 28);
    assert.equal(recv.getUint32(0, true), 102);
    assert.equal(recv.getUint32(4, true), 1);
    assert.equal(recv.getUint32(8, true), 1, 'num_sections');
    assert.equal(recv.getUint32(12, true), 0, 'offset');
    const size = recv.getUint32(16, true), count = recv.getUint32(20, true);
    assert.equal(size, 1728);
    assert.ok(size * count <= 64 * 4096 && count === Math.floor(64 * 4096 / 1728));
    assert.equal(send.getUint32(0, true), 105);
    assert.equal(send.getUint32(4, true), 1);
    assert.equal(send.getUint32(8, true), 6144);
  });

  test('RNDIS: INIT, MAC, offload capabilities, offload SET, media status, link speed, no RSS', () => {
    const { nic } = setup();
    nic.open(); nic.negotiate(); nic.setupBuffers();
    const init = nic.request(2, (id) => [id, 1, 0, 0x4000]);
    assert.equal(init.bytes.length, 52);
    assert.equal(init.view.getUint32(12, true), 0, 'status');
    assert.equal(init.view.getUint32(16, true), 1, 'major');
    assert.ok(init.view.getUint32(32, true) >= 1, 'max packets per message');
    const mac = nic.query(0x01010101);
    assert.deepEqual([...mac.data], MAC);
    // Linux asks with an ndis_offload header of revision 3 / 156 bytes for NVSP >= 5.
    const ask = new Uint8Array(156); ask[0] = 0xa7; ask[1] = 3; new DataView(ask.buffer).setUint16(2, 156, true);
    const caps = nic.query(0xfc01020d, ask);
    assert.equal(caps.data[0], 0xa7);
    assert.ok(caps.data[1] >= 1);
    const size = new DataView(caps.data.buffer).getUint16(2, true);
    assert.ok(size >= 112 && size <= caps.data.length && caps.data.length <= 156);
    assert.ok(caps.data.subarray(4).every((b) => b === 0), 'no offloads claimed');
    assert.equal(nic.set(0xfc01020c, new Uint8Array(28)), 0);
    assert.deepEqual([...nic.query(0x00010114).data], [0, 0, 0, 0], 'connected');
    assert.equal(new DataView(nic.query(0x00010107).data.buffer).getUint32(0, true), 100_000_000);
    const rss = nic.query(0x00010203, new Uint8Array(16));
    assert.notEqual(rss.status, 0);
    assert.equal(rss.data.length, 0);
    const keep = nic.request(8, (id) => [id]);
    assert.equal(keep.view.getUint32(12, true), 0);
  });

  test('frames: guest -> switch (section and page buffers), switch -> guest as transfer-page packets', () => {
    const { nic, peer, peerPort, adapter } = setup();
    nic.full();
    const out1 = ethernet(PEER, MAC, 'hello from the section');
    const t1 = nic.sendRndisSection(FakeNetvsc.packet(out1), 3);
    const big = ethernet(PEER, MAC, new Uint8Array(1400).fill(7));
    const t2 = nic.sendRndisPages(FakeNetvsc.packet(big), 0);
    nic.pump();
    assert.deepEqual(peer.got.map((f) => [...f]), [[...out1], [...big]]);
    for (const t of [t1, t2]) {
      const c = nic.completions.get(t);
      assert.ok(c, 'every send is completed');
      assert.equal(c.getUint32(0, true), 108);
      assert.equal(c.getUint32(4, true), 1);
    }
    // The switch learned the guest's MAC: a unicast reply reaches only the guest.
    const back = ethernet(MAC, PEER, 'reply');
    peerPort.transmit(back);
    nic.pump();
    assert.deepEqual(nic.frames.map((f) => [...f]), [[...back]]);
    assert.equal(adapter.stats.txFrames, 2);
    assert.equal(adapter.stats.rxFrames, 1);
    assert.equal(nic.badXfer, 0);
  });

  test('receive slots are reused once the guest completes them (many more frames than slots)', () => {
    const { nic, peerPort, adapter } = setup();
    nic.full();
    for (let i = 0; i < 1000; i++) { peerPort.transmit(ethernet(MAC, PEER, `frame ${i}`)); if (i % 50 === 49) nic.pump(); }
    nic.pump();
    assert.equal(nic.frames.length, 1000);
    assert.equal(new TextDecoder().decode(nic.frames[999].subarray(14)), 'frame 999');
    assert.equal(adapter.stats.rxDropped, 0);
  });

  test('link: unplugging indicates MEDIA_DISCONNECT, replugging MEDIA_CONNECT; frames wait for neither', () => {
    const { nic, adapter, sw, peerPort } = setup();
    nic.full();
    adapter.plug(null);
    nic.pump();
    const last = (): number => nic.rndis.filter((m) => m.type === 7).at(-1)!.view.getUint32(8, true);
    assert.equal(last(), 0x4001000c);
    assert.deepEqual([...nic.query(0x00010114).data], [1, 0, 0, 0]);
    peerPort.transmit(ethernet(MAC, PEER, 'while unplugged'));
    nic.pump();
    assert.equal(nic.frames.length, 0);
    const port = sw.attach(adapter, 'nic');
    adapter.plug((f) => port.transmit(f));
    adapter.linkChanged(sw.linkUp);
    nic.pump();
    assert.equal(last(), 0x4001000b);
    sw.setUplinkState(false);
    nic.pump();
    assert.equal(last(), 0x4001000c, 'an uplink that goes away brings the link down');
  });

  test('the guest detaches and reattaches (MTU change): close, new channel, renegotiation works', () => {
    const { g, nic, peerPort } = setup();
    nic.full();
    nic.sendRndisPages(nic.rndisMsg(3, [99]));
    nic.nvsp((v) => { v.setUint32(0, 103, true); v.setUint16(4, 0xcafe, true); }, { flags: 0 });
    nic.nvsp((v) => { v.setUint32(0, 106, true); v.setUint16(4, 0, true); }, { flags: 0 });
    nic.pump();
    g.close(nic.ch);
    assert.ok(g.teardownGpadl(nic.offer.relid, nic.recvGpadl));
    assert.ok(g.teardownGpadl(nic.offer.relid, nic.sendGpadl));
    const again = new FakeNetvsc(g, nic.offer);
    again.full();
    peerPort.transmit(ethernet(MAC, PEER, 'after reattach'));
    again.pump();
    assert.equal(again.frames.length, 1);
  });
});

describe('netvsp: a hostile guest', () => {
  test('malformed RNDIS data messages are dropped, counted and completed with a failure status', () => {
    const { nic, peer, adapter, g } = setup();
    nic.full();
    const frame = ethernet(PEER, MAC, 'x');
    const bad: Uint8Array[] = [];
    // data_offset beyond the message, data_len beyond the message, a runt frame, msg_len larger than the bytes.
    let m = FakeNetvsc.packet(frame); new DataView(m.buffer).setUint32(8, 5000, true); bad.push(m);
    m = FakeNetvsc.packet(frame); new DataView(m.buffer).setUint32(12, 5000, true); bad.push(m);
    m = FakeNetvsc.packet(frame.subarray(0, 10)); bad.push(m);
    m = FakeNetvsc.packet(frame); new DataView(m.buffer).setUint32(4, 9000, true); bad.push(m);
    m = FakeNetvsc.packet(frame); new DataView(m.buffer).setUint32(0, 0x77, true); bad.push(m);
    m = FakeNetvsc.packet(frame); new DataView(m.buffer).setUint32(4, 3, true); bad.push(m);
    const tids = bad.map((b) => nic.sendRndisPages(b, 0));
    nic.pump();
    for (const t of tids) assert.equal(nic.completions.get(t)?.getUint32(4, true), 5, 'INVALID_RNDIS_PKT');
    assert.equal(peer.got.length, 0);
    assert.equal(adapter.stats.malformed, bad.length);
    assert.equal(g.vmbus.faults.length, 0, 'data errors do not reset the channel');
    // And the adapter still works.
    nic.sendRndisPages(FakeNetvsc.packet(frame), 0);
    nic.pump();
    assert.equal(peer.got.length, 1);
  });

  test('bad send-buffer section indexes and sizes are dropped', () => {
    const { nic, peer, adapter } = setup();
    nic.full();
    const pkt = FakeNetvsc.packet(ethernet(PEER, MAC, 'y'));
    const sections = Math.floor(16 * 4096 / 6144);
    const tids = [
      nic.nvsp((v) => { v.setUint32(0, 107, true); v.setUint32(8, sections, true); v.setUint32(12, pkt.length, true); }),
      nic.nvsp((v) => { v.setUint32(0, 107, true); v.setUint32(8, 0x7fffffff, true); v.setUint32(12, pkt.length, true); }),
      nic.nvsp((v) => { v.setUint32(0, 107, true); v.setUint32(8, 0, true); v.setUint32(12, 6145, true); }),
      nic.nvsp((v) => { v.setUint32(0, 107, true); v.setUint32(8, 0xffffffff, true); v.setUint32(12, 0, true); }),
    ];
    nic.pump();
    for (const t of tids) assert.equal(nic.completions.get(t)?.getUint32(4, true), 5);
    assert.equal(peer.got.length, 0);
    assert.equal(adapter.stats.malformed, tids.length);
  });

  test('oversize frames (above the MTU the guest configured) are dropped', () => {
    const { nic, peer, adapter } = setup();
    nic.full();
    const huge = ethernet(PEER, MAC, new Uint8Array(1501));
    const t = nic.sendRndisPages(FakeNetvsc.packet(huge), 0);
    nic.pump();
    assert.equal(nic.completions.get(t)?.getUint32(4, true), 5);
    assert.equal(peer.got.length, 0);
    assert.equal(adapter.stats.malformed, 1);
  });

  test('GPA ranges naming non-RAM or too much memory are dropped', () => {
    const { nic, peer, g } = setup();
    nic.full();
    const n = new Uint8Array(40); const v = new DataView(n.buffer);
    v.setUint32(0, 107, true); v.setUint32(8, 0xffffffff, true);
    const t1 = nic.gpaDirect(n, [{ gpa: 0x7fff_0000_0000, len: 100 }]);
    const t2 = nic.gpaDirect(n, [{ gpa: 0x200000, len: 0xffffffff }]);
    const t3 = nic.gpaDirect(n, [{ gpa: 0x200000, len: 100 }], undefined, 1000); // more ranges than the packet holds
    nic.pump();
    for (const t of [t1, t2, t3]) assert.equal(nic.completions.get(t)?.getUint32(4, true), 5);
    assert.equal(peer.got.length, 0);
    assert.equal(g.vmbus.faults.length, 0);
  });

  test('protocol violations reset the channel (never a host exception)', () => {
    for (const [what, send] of [
      ['short NVSP message', (nic: FakeNetvsc) => nic.nvsp(() => {}, { size: 2 })],
      ['RNDIS before INIT', (nic: FakeNetvsc) => nic.nvsp((v) => { v.setUint32(0, 107, true); })],
      ['bogus packet type', (nic: FakeNetvsc) => nic.ch.send(new Uint8Array(40), 5n, 0x8, 0)],
      ['short receive-buffer message', (nic: FakeNetvsc) => { nic.init(0x60001); nic.nvsp((v) => { v.setUint32(0, 101, true); }, { size: 6 }); }],
    ] as const) {
      const { g, nic, adapter } = setup();
      nic.open();
      send(nic);
      nic.pump();
      assert.ok(g.vmbus.faults.some((f) => /Network Adapter/.test(f)), `${what}: ${g.vmbus.faults.join('; ')}`);
      assert.equal(adapter.stats.resets, 1, what);
    }
  });

  test('a receive buffer that is not a GPADL of this channel, or has the wrong id, is refused', () => {
    const { nic } = setup();
    nic.open(); nic.negotiate();
    const t1 = nic.nvsp((v) => { v.setUint32(0, 101, true); v.setUint32(4, 0x12345, true); v.setUint16(8, 0xcafe, true); });
    nic.pump();
    assert.equal(nic.completions.get(t1)?.getUint32(4, true), 2);
    const pages = nic.g.allocScattered(8);
    const [h] = nic.g.createGpadl(nic.offer.relid, pages);
    const t2 = nic.nvsp((v) => { v.setUint32(0, 101, true); v.setUint32(4, h, true); v.setUint16(8, 0xbeef, true); });
    nic.pump();
    assert.equal(nic.completions.get(t2)?.getUint32(4, true), 2);
  });

  test('a guest that never completes receives: frames are dropped and counted, control replies still fit', () => {
    const { nic, peerPort, adapter } = setup();
    nic.full();
    nic.autoComplete = false;
    const slots = Math.floor(64 * 4096 / 1728);
    for (let i = 0; i < slots * 3; i++) peerPort.transmit(ethernet(MAC, PEER, `f${i}`));
    nic.pump();
    assert.ok(nic.frames.length < slots, `${nic.frames.length} frames delivered with ${slots} slots`);
    assert.equal(adapter.stats.rxDropped, slots * 3 - nic.frames.length);
    // The reserve keeps control replies flowing.
    assert.deepEqual([...nic.query(0x01010101).data], MAC);
    // Returning the slots lets frames through again.
    for (const t of nic.unacked.splice(0)) nic.completeReceive(t);
    nic.autoComplete = true;
    nic.pump();
    const before = nic.frames.length;
    peerPort.transmit(ethernet(MAC, PEER, 'after'));
    nic.pump();
    assert.equal(nic.frames.length, before + 1);
  });

  test('with flow control, a guest that holds every receive slot: frames wait in the switch, the peer is paused, none is lost', () => {
    const peer = new PausablePeer();
    const { nic, peerPort, adapter, sw } = setup({ flowControl: true, peer });
    nic.full();
    nic.autoComplete = false;
    nic.sendRndisSection(FakeNetvsc.packet(ethernet(PEER, MAC, 'learn me')), 0); // the adapter's MAC is learned: the peer's frames are unicast to it
    nic.pump();
    const slots = Math.floor(64 * 4096 / 1728);
    const n = slots + 2000;
    for (let i = 0; i < n; i++) peerPort.transmit(ethernet(MAC, PEER, `f${i}`));
    nic.pump();
    assert.ok(nic.frames.length < slots, `${nic.frames.length} frames delivered with ${slots} slots`);
    assert.equal(adapter.stats.rxDropped, 0, 'nothing dropped: the rest waits in the switch');
    assert.deepEqual(peer.pauses, [true]);
    // The reserve keeps control replies flowing while data waits.
    assert.deepEqual([...nic.query(0x01010101).data], MAC);
    // The guest returns its slots: everything queued arrives, in order, and the peer may send again.
    nic.autoComplete = true;
    for (const t of nic.unacked.splice(0)) nic.completeReceive(t);
    nic.pump();
    const texts = nic.frames.map((f) => Buffer.from(f.subarray(14)).toString());
    assert.deepEqual(texts, Array.from({ length: n }, (_, i) => `f${i}`));
    assert.deepEqual(peer.pauses, [true, false]);
    assert.equal(sw.stats.queueDropped, 0);
  });

  test('a flooding guest: a full ring of sends is bounded work per signal and every send completes', () => {
    const { nic, peer } = setup();
    nic.full();
    const frame = FakeNetvsc.packet(ethernet(PEER, MAC, new Uint8Array(1000)));
    const tids: bigint[] = [];
    for (let i = 0; i < 200; i++) { tids.push(nic.sendRndisSection(frame, i % 10)); if (i % 20 === 19) nic.pump(); }
    nic.pump();
    assert.equal(peer.got.length, 200);
    assert.ok(tids.every((t) => nic.completions.get(t)?.getUint32(4, true) === 1));
  });
});
