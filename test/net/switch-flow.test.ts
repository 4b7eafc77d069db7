/** The virtual switch's flow control: queues for full ports, pausing sources, bounds, per-source fairness. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { VirtualSwitch, type NetworkEndpoint, type SwitchPort } from '../../src/net/switch.js';
import { EgressQueues } from '../../src/net/egress-queues.js';

/** An adapter with `room` receive buffers; `give(n)` hands n back and signals its port like netvsp does. */
class Nic implements NetworkEndpoint {
  got: Uint8Array[] = [];
  port!: SwitchPort;
  constructor(public room = Infinity) {}
  canReceive(): boolean { return this.room > 0; }
  deliver(f: Uint8Array): void {
    if (this.room <= 0) throw new Error('delivered to a full adapter');
    this.room--; this.got.push(f);
  }
  give(n: number): void { this.room += n; this.port.resume(); }
}

/** A source that can be paused (passt); it records the requests. */
class Source implements NetworkEndpoint {
  got: Uint8Array[] = []; pauses: boolean[] = [];
  deliver(f: Uint8Array): void { this.got.push(f); }
  setPaused(p: boolean): void { this.pauses.push(p); }
  get paused(): boolean { return this.pauses.at(-1) ?? false; }
}

const mac = (n: number): number[] => [0x00, 0x15, 0x5d, 0, 0, n];
const frame = (dst: number, src: number, seq: number): Uint8Array => Uint8Array.from([...mac(dst), ...mac(src), 0x88, 0xb5, seq >> 8, seq & 0xff]);
const seqOf = (f: Uint8Array): number => (f[14] << 8) | f[15];

function plug(sw: VirtualSwitch, nic: Nic, name: string, m: number): SwitchPort {
  nic.port = sw.attach(nic, name);
  nic.port.transmit(frame(0xff, m, 0)); // announce its MAC (learned), the broadcast floods elsewhere
  return nic.port;
}

test('frames for a full adapter wait in order, the source is paused and resumed, nothing is lost', () => {
  let t = 0;
  const sw = new VirtualSwitch('s', () => t);
  const vm = new Nic(10), passt = new Source();
  plug(sw, vm, 'vm', 1);
  const up = sw.attach(passt, 'passt');
  const n = EgressQueues.PAUSE_AT + 100;
  for (let i = 1; i <= n; i++) { if (!passt.paused) up.transmit(frame(1, 2, i)); else up.transmit(frame(1, 2, i)); }
  assert.equal(vm.got.length, 10, 'the adapter took what it had room for');
  assert.deepEqual(passt.pauses, [true], 'paused once its queue reached the pause mark');
  assert.equal(sw.portFlow(vm.port.id)?.queuedFrames, n - 10);
  assert.equal(sw.stats.queueDropped, 0);
  // The guest returns buffers a few at a time; the source resumes once the queue is below the resume mark.
  while (vm.got.length < n) { vm.give(50); t += 1; }
  assert.deepEqual(passt.pauses, [true, false]);
  assert.deepEqual(vm.got.map(seqOf), Array.from({ length: n }, (_, i) => i + 1), 'every frame, in order');
  assert.equal(sw.portFlow(vm.port.id)?.queuedFrames, 0);
  // Room and an empty queue: straight through again.
  up.transmit(frame(1, 2, 9999));
  assert.equal(seqOf(vm.got.at(-1)!), 9999);
});

test('the queue per source is bounded: beyond it frames are dropped for that port and counted', () => {
  const sw = new VirtualSwitch('s');
  const vm = new Nic(), other = new Nic();
  plug(sw, vm, 'vm', 1); plug(sw, other, 'other', 3);
  const flood = new Nic(); // a guest flooding (cannot be paused)
  const p = plug(sw, flood, 'flood', 2);
  vm.room = 0;
  const extra = 500;
  for (let i = 0; i < EgressQueues.MAX_FRAMES + extra; i++) p.transmit(frame(1, 2, i));
  assert.equal(sw.portFlow(vm.port.id)?.queuedFrames, EgressQueues.MAX_FRAMES);
  assert.equal(sw.portFlow(vm.port.id)?.queueDropped, extra);
  assert.equal(sw.stats.queueDropped, extra);
  // Another port is not affected.
  p.transmit(frame(3, 2, 1));
  assert.equal(seqOf(other.got.at(-1)!), 1);
  // Bytes are bounded too (jumbo frames).
  const sw2 = new VirtualSwitch('b');
  const full = new Nic();
  plug(sw2, full, 'vm', 1);
  const q = new Nic(); const qp = plug(sw2, q, 'q', 2);
  full.room = 0;
  const big = new Uint8Array(60000); big.set(frame(1, 2, 0));
  for (let i = 0; i < 200; i++) qp.transmit(big);
  assert.ok(sw2.portFlow(full.port.id)!.queuedFrames * big.length <= EgressQueues.MAX_BYTES);
  assert.ok(sw2.portFlow(full.port.id)!.queueDropped > 0);
});

test('per-source fairness: a flooding source does not crowd out another one feeding the same port', () => {
  const sw = new VirtualSwitch('s');
  const vm = new Nic();
  plug(sw, vm, 'vm', 1);
  const a = new Nic(), b = new Nic();
  const pa = plug(sw, a, 'a', 2), pb = plug(sw, b, 'b', 3);
  vm.room = 0; vm.got = [];
  for (let i = 0; i < EgressQueues.MAX_FRAMES * 2; i++) pa.transmit(frame(1, 2, i));
  for (let i = 0; i < 10; i++) pb.transmit(frame(1, 3, i));
  assert.equal(sw.portFlow(vm.port.id)?.queueDropped, EgressQueues.MAX_FRAMES, 'only the flooder lost frames');
  vm.give(20);
  const fromB = vm.got.filter((f) => f[11] === 3).map(seqOf);
  assert.deepEqual(fromB, Array.from({ length: 10 }, (_, i) => i), 'b\'s frames go in turn with a\'s, not after them');
});

test('a stalled VM does not stall another VM fed by the same source (shared NAT switch)', () => {
  let t = 0;
  const sw = new VirtualSwitch('s', () => t);
  const stalled = new Nic(), busy = new Nic();
  plug(sw, stalled, 'stalled', 1); plug(sw, busy, 'busy', 3);
  const passt = new Source();
  const up = sw.attach(passt, 'passt');
  // Both VMs talk to passt; passt answers both. The stalled one's queue fills; passt keeps going for the other.
  stalled.port.transmit(frame(2, 1, 0)); busy.port.transmit(frame(2, 3, 0));
  up.transmit(frame(0xff, 2, 0)); // passt's MAC is learned
  stalled.room = 0;
  for (let i = 1; i <= EgressQueues.MAX_FRAMES + 100; i++) { up.transmit(frame(1, 2, i)); up.transmit(frame(3, 2, i)); }
  assert.deepEqual(passt.pauses, [], 'not paused while the busy VM has room');
  assert.equal(busy.got.filter((f) => f[11] === 2 && seqOf(f) > 0).length, EgressQueues.MAX_FRAMES + 100);
  assert.equal(sw.portFlow(stalled.port.id)?.queueDropped, 100, 'drops for the stalled port only');
  // The busy VM goes quiet for a while: passt, now only feeding the stalled VM, is paused...
  t += 5000;
  stalled.port.transmit(frame(2, 1, 1));
  up.transmit(frame(1, 2, 1));
  assert.deepEqual(passt.pauses, [true]);
  // ...until the busy VM speaks to it again.
  busy.port.transmit(frame(2, 3, 2));
  assert.deepEqual(passt.pauses, [true, false]);
});

test('detaching a full port releases its sources; adapters without flow control get every frame', () => {
  const sw = new VirtualSwitch('s');
  const vm = new Nic(0);
  plug(sw, vm, 'vm', 1);
  const passt = new Source();
  const up = sw.attach(passt, 'passt');
  for (let i = 0; i < EgressQueues.PAUSE_AT; i++) up.transmit(frame(1, 2, i));
  assert.equal(passt.paused, true);
  vm.port.detach();
  assert.equal(passt.paused, false);
  const plain: Uint8Array[] = [];
  sw.attach({ deliver: (f) => plain.push(f) }, 'plain').transmit(frame(0xff, 4, 0));
  for (let i = 0; i < 3000; i++) up.transmit(frame(4, 2, i));
  assert.equal(plain.length, 3000);
});

test('property: whatever the order of sends and returned buffers, each source\'s frames arrive once, in order, within the bounds', () => {
  const op = fc.oneof(
    fc.record({ k: fc.constant('send' as const), src: fc.integer({ min: 0, max: 2 }), n: fc.integer({ min: 1, max: 600 }) }),
    fc.record({ k: fc.constant('give' as const), n: fc.integer({ min: 0, max: 700 }) }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
    const sw = new VirtualSwitch('p');
    const vm = new Nic();
    plug(sw, vm, 'vm', 1);
    const srcs = [new Nic(), new Nic(), new Nic()];
    const ports = srcs.map((s, i) => plug(sw, s, `s${i}`, 10 + i));
    vm.room = 0; vm.got = [];
    const sent = [0, 0, 0];
    for (const o of ops) {
      if (o.k === 'send') for (let i = 0; i < o.n; i++) ports[o.src].transmit(frame(1, 10 + o.src, sent[o.src]++));
      else vm.give(o.n);
      assert.ok(sw.portFlow(vm.port.id)!.queuedFrames <= 3 * EgressQueues.MAX_FRAMES);
    }
    vm.give(1e9);
    const dropped = sw.portFlow(vm.port.id)!.queueDropped;
    assert.equal(vm.got.length + dropped, sent.reduce((a, b) => a + b, 0));
    for (let s = 0; s < 3; s++) {
      const seqs = vm.got.filter((f) => f[11] === 10 + s).map(seqOf);
      for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], 'in order, no duplicates');
    }
  }), { numRuns: 60 });
});
