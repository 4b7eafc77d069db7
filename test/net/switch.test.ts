/** The virtual switch: learning, flooding, link state, bounded tables. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualSwitch, type NetworkEndpoint } from '../../src/net/switch.js';
import { parseMac, formatMac, randomHyperVMac, MacError } from '../../src/net/mac.js';

class Ep implements NetworkEndpoint {
  got: Uint8Array[] = []; link: boolean[] = [];
  deliver(f: Uint8Array): void { this.got.push(f); }
  linkChanged(up: boolean): void { this.link.push(up); }
}
const mac = (n: number): number[] => [0x00, 0x15, 0x5d, 0, 0, n];
const frame = (dst: number[], src: number[], tag = 0): Uint8Array => Uint8Array.from([...dst, ...src, 0x88, 0xb5, tag]);
const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

test('unknown destinations and broadcasts flood to every other port; learned ones go to one port', () => {
  const sw = new VirtualSwitch('s');
  const [a, b, c] = [new Ep(), new Ep(), new Ep()];
  const pa = sw.attach(a, 'a'), pb = sw.attach(b, 'b'); sw.attach(c, 'c');
  pa.transmit(frame(mac(2), mac(1), 1)); // b unknown: flood
  assert.deepEqual([a.got.length, b.got.length, c.got.length], [0, 1, 1]);
  pb.transmit(frame(mac(1), mac(2), 2)); // a was learned: only a
  assert.deepEqual([a.got.length, b.got.length, c.got.length], [1, 1, 1]);
  pa.transmit(frame(mac(2), mac(1), 3)); // b now learned
  assert.deepEqual([a.got.length, b.got.length, c.got.length], [1, 2, 1]);
  pa.transmit(frame(BCAST, mac(1), 4));
  assert.deepEqual([a.got.length, b.got.length, c.got.length], [1, 3, 2]);
  assert.equal(sw.portOf(Uint8Array.from(mac(2))), pb.id);
});

test('a station that moves is relearned; a detached port is forgotten and sees its link go down', () => {
  const sw = new VirtualSwitch('s');
  const [a, b, c] = [new Ep(), new Ep(), new Ep()];
  const pa = sw.attach(a, 'a'), pb = sw.attach(b, 'b'), pc = sw.attach(c, 'c');
  pb.transmit(frame(BCAST, mac(9)));
  pc.transmit(frame(BCAST, mac(9))); // moved to c
  pa.transmit(frame(mac(9), mac(1)));
  assert.equal(c.got.filter((f) => f[12] === 0x88).length, 2);
  pc.detach();
  assert.equal(c.link.at(-1), false);
  assert.equal(sw.portOf(Uint8Array.from(mac(9))), undefined);
  pc.transmit(frame(BCAST, mac(9)));
  assert.equal(b.got.length, 1, 'a detached port cannot send');
});

test('runt and giant frames are dropped; multicast sources are not learned', () => {
  const sw = new VirtualSwitch('s');
  const [a, b] = [new Ep(), new Ep()];
  const pa = sw.attach(a, 'a'); sw.attach(b, 'b');
  pa.transmit(new Uint8Array(13));
  pa.transmit(new Uint8Array(65536));
  assert.equal(b.got.length, 0);
  assert.equal(sw.stats.dropped, 2);
  pa.transmit(frame(BCAST, [0x01, 0, 0x5e, 0, 0, 1]));
  assert.equal(sw.portOf(Uint8Array.from([0x01, 0, 0x5e, 0, 0, 1])), undefined);
});

test('the learning table stays bounded under a source-address flood', () => {
  const sw = new VirtualSwitch('s');
  const [a, b] = [new Ep(), new Ep()];
  const pa = sw.attach(a, 'a'); sw.attach(b, 'b');
  for (let i = 0; i < 20000; i++) pa.transmit(frame(BCAST, [0x02, 0, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff, 1]));
  let learned = 0;
  for (let i = 0; i < 20000; i++) if (sw.portOf(Uint8Array.from([0x02, 0, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff, 1])) !== undefined) learned++;
  assert.ok(learned <= 4096, `${learned} entries`);
  assert.ok(sw.portOf(Uint8Array.from([0x02, 0, 0, (19999 >> 8) & 0xff, 19999 & 0xff, 1])) !== undefined, 'the newest is kept');
});

test('uplink state reaches adapters (not the uplink itself)', () => {
  const sw = new VirtualSwitch('s');
  const [nic, up] = [new Ep(), new Ep()];
  sw.attach(nic, 'nic');
  sw.attach(up, 'uplink', { uplink: true });
  sw.setUplinkState(false);
  sw.setUplinkState(true);
  assert.deepEqual(nic.link, [true, false, true]);
  assert.deepEqual(up.link, []);
});

test('MAC addresses: parsing, formatting, Hyper-V\'s dynamic range, clear errors', () => {
  assert.equal(formatMac(parseMac('00-15-5D-0A-0B-0C')), '00:15:5d:0a:0b:0c');
  assert.equal(formatMac(parseMac('00155d0a0b0c')), '00:15:5d:0a:0b:0c');
  assert.match(randomHyperVMac(), /^00:15:5d:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
  assert.throws(() => parseMac('00:15:5d:0a:0b'), MacError);
  assert.throws(() => parseMac('01:00:5e:00:00:01'), /multicast/);
});
