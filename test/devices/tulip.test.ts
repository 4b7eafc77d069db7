/**
 * The legacy network adapter (DEC 21140) driven the way Linux's tulip driver drives it: SROM and MII
 * bit-banged through CSR9, reset, rings, the setup frame, transmit to a switch port, receive into guest
 * buffers, interrupts; then malformed programs (descriptors outside RAM, cycles, zero and huge lengths,
 * garbage register writes) and a fast-check property that no program throws or hangs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory } from '../../src/platform/memory.js';
import { VirtualSwitch } from '../../src/net/switch.js';
import { Tulip, S, M, OWN, TDES1, RDES0, RDES1, MAX_TX_DESCRIPTORS_PER_POLL } from '../../src/devices/tulip.js';
import { buildSrom, etherCrcLe, crc32 } from '../../src/devices/tulip-serial.js';
import { manualClock } from './helpers.js';

const MAC = new Uint8Array([0x00, 0x15, 0x5d, 0x12, 0x34, 0x56]);
const PEER = new Uint8Array([0x00, 0x15, 0x5d, 0xaa, 0xbb, 0xcc]);
const RX_RING = 0x10000, TX_RING = 0x11000, RX_BUF = 0x20000, TX_BUF = 0x60000, SETUP = 0x70000;
const RX_N = 8, TX_N = 8, BUF_SZ = 1540;

interface Rig { dev: Tulip; mem: GuestMemory; irq: () => boolean; sent: Uint8Array[]; sw: VirtualSwitch; peer: { transmit(f: Uint8Array): void }; advance(ns: number): void }

function rig(o: { memBytes?: number; link?: boolean; flowControl?: boolean } = {}): Rig {
  const mem = new GuestMemory(o.memBytes ?? 0x100000);
  const { clock, advance } = manualClock();
  const dev = new Tulip({ mac: MAC, memory: mem, clock });
  let level = false;
  dev.attach({ remap() {}, setIntx(l) { level = l; } });
  dev.writeConfig(0x04, 2, 0x07); // I/O, memory, bus master
  const sw = new VirtualSwitch('test');
  const sent: Uint8Array[] = [];
  const peer = sw.attach({ deliver: (f) => sent.push(f.slice()) }, 'peer');
  if (o.link !== false) {
    const port = sw.attach(dev, 'tulip');
    if (o.flowControl) dev.plug((f) => port.transmit(f), () => port.resume());
    else dev.plug((f) => port.transmit(f));
  }
  return { dev, mem, irq: () => level, sent, sw, peer, advance };
}

const w = (d: Tulip, csr: number, v: number): void => d.writeCsr(csr * 8, 4, v);
const r = (d: Tulip, csr: number): number => d.readCsr(csr * 8, 4);

/** tulip_read_eeprom, bit for bit. */
function readEeprom(d: Tulip, location: number, addrLen: number): number {
  const EE_ENB = 0x4801, CS = 1, CLK = 2, DI = 4, DO = 8;
  const cmd = location | (6 << addrLen);
  let ret = 0;
  w(d, 9, EE_ENB & ~CS); w(d, 9, EE_ENB);
  for (let i = 4 + addrLen; i >= 0; i--) {
    const dv = cmd & (1 << i) ? DI : 0;
    w(d, 9, EE_ENB | dv); w(d, 9, EE_ENB | dv | CLK);
    ret = (ret << 1) | (r(d, 9) & DO ? 1 : 0);
  }
  w(d, 9, EE_ENB);
  for (let i = 16; i > 0; i--) {
    w(d, 9, EE_ENB | CLK);
    ret = (ret << 1) | (r(d, 9) & DO ? 1 : 0);
    w(d, 9, EE_ENB);
  }
  w(d, 9, EE_ENB & ~CS);
  return ret >>> 0;
}

/** tulip_mdio_read / tulip_mdio_write. */
function mdioRead(d: Tulip, phy: number, reg: number): number {
  const cmd = (0xf6 << 10) | (phy << 5) | reg;
  let ret = 0;
  for (let i = 32; i >= 0; i--) { w(d, 9, 0x20000); w(d, 9, 0x30000); }
  for (let i = 15; i >= 0; i--) { const dv = cmd & (1 << i) ? 0x20000 : 0; w(d, 9, dv); w(d, 9, dv | 0x10000); }
  for (let i = 19; i > 0; i--) { w(d, 9, 0x40000); ret = (ret << 1) | (r(d, 9) & 0x80000 ? 1 : 0); w(d, 9, 0x50000); }
  return (ret >> 1) & 0xffff;
}
function mdioWrite(d: Tulip, phy: number, reg: number, val: number): void {
  const cmd = ((0x5002 << 16) | (phy << 23) | (reg << 18) | val) >>> 0;
  for (let i = 32; i >= 0; i--) { w(d, 9, 0x20000); w(d, 9, 0x30000); }
  for (let i = 31; i >= 0; i--) { const dv = cmd & (2 ** i) ? 0x20000 : 0; w(d, 9, dv); w(d, 9, dv | 0x10000); }
  for (let i = 2; i > 0; i--) { w(d, 9, 0x40000); w(d, 9, 0x50000); }
}

/** What tulip_init_ring + tulip_up do: rings with buffer2 = next descriptor, wrap bit on the last, setup frame. */
function bringUp(x: Rig, o: { hash?: boolean } = {}): void {
  const { dev, mem } = x;
  w(dev, 0, 1); w(dev, 0, 0x01a08000);
  for (let i = 0; i < RX_N; i++) {
    const a = RX_RING + 16 * i;
    mem.view.setUint32(a, OWN, true);
    mem.view.setUint32(a + 4, BUF_SZ | (i === RX_N - 1 ? RDES1.RER : 0), true);
    mem.view.setUint32(a + 8, RX_BUF + 2048 * i, true);
    mem.view.setUint32(a + 12, i === RX_N - 1 ? RX_RING : a + 16, true);
  }
  for (let i = 0; i < TX_N; i++) {
    const a = TX_RING + 16 * i;
    mem.view.setUint32(a, 0, true);
    mem.view.setUint32(a + 12, i === TX_N - 1 ? TX_RING : a + 16, true);
  }
  w(dev, 3, RX_RING); w(dev, 4, TX_RING);
  // Setup frame: broadcast everywhere, our address in entry 15 (16-bit words duplicated, as Linux does).
  const sf = mem.bytes.subarray(SETUP, SETUP + 192);
  sf.fill(0xff);
  if (o.hash) {
    sf.fill(0);
    const bits = [etherCrcLe(new Uint8Array(6).fill(0xff), 0, 6) & 0x1ff];
    for (const b of bits) sf[4 * (b >> 4) + ((b & 15) >> 3)] |= 1 << (b & 7);
    for (let k = 0; k < 3; k++) { sf[4 * (39 + k)] = MAC[2 * k]; sf[4 * (39 + k) + 1] = MAC[2 * k + 1]; }
  } else {
    for (let k = 0; k < 3; k++) for (const h of [0, 2]) { sf[4 * (45 + k) + h] = MAC[2 * k]; sf[4 * (45 + k) + h + 1] = MAC[2 * k + 1]; }
  }
  mem.view.setUint32(TX_RING + 4, 0x08000000 | 192 | (o.hash ? TDES1.FT0 : 0), true);
  mem.view.setUint32(TX_RING + 8, SETUP, true);
  mem.view.setUint32(TX_RING, OWN, true);
  w(dev, 6, 0x020e0000 | M.ST);
  w(dev, 5, 0x1ebef); w(dev, 7, 0x1ebef);
  w(dev, 6, 0x020e0000 | M.ST | M.SR);
  w(dev, 2, 0);
}

let txSlot = 1;
function queueTx(x: Rig, frame: Uint8Array, slot = txSlot++ % TX_N, flags = TDES1.FS | TDES1.LS | TDES1.IC): number {
  const a = TX_RING + 16 * slot;
  x.mem.bytes.set(frame, TX_BUF + 2048 * slot);
  x.mem.view.setUint32(a + 4, (frame.length | flags | (slot === TX_N - 1 ? TDES1.TER : 0)) >>> 0, true);
  x.mem.view.setUint32(a + 8, TX_BUF + 2048 * slot, true);
  x.mem.view.setUint32(a, OWN, true);
  return a;
}

function ethFrame(dst: Uint8Array, src: Uint8Array, len: number, fill = 0x5a): Uint8Array {
  const f = new Uint8Array(len).fill(fill);
  f.set(dst, 0); f.set(src, 6); f[12] = 0x08; f[13] = 0x00;
  return f;
}

test('SROM: Linux detects a 93C46 (6 address bits) and reads the MAC at offset 20 and a 21140 MII media block', () => {
  const x = rig();
  assert.equal(readEeprom(x.dev, 0xff, 8) & 0x40000, 0, '6-bit address EEPROM');
  const bytes = new Uint8Array(128);
  for (let i = 0; i < 64; i++) { const v = readEeprom(x.dev, i, 6) & 0xffff; bytes[2 * i] = v & 0xff; bytes[2 * i + 1] = v >> 8; }
  assert.deepEqual(bytes, buildSrom(MAC));
  assert.deepEqual([...bytes.subarray(20, 26)], [...MAC]);
  assert.notDeepEqual([...bytes.subarray(0, 8)], [...bytes.subarray(16, 24)], 'new-style SROM (sa_offset 20)');
  const leaf = bytes[27];
  assert.equal(bytes[leaf] | (bytes[leaf + 1] << 8), 0x0800, 'autosense');
  assert.equal(bytes[leaf + 3], 1, 'one media block');
  assert.equal(bytes[leaf + 4] & 0x80, 0x80, 'extended block');
  assert.equal(bytes[leaf + 5], 1, 'type 1: 21140 MII PHY');
  assert.equal(bytes[126] | (bytes[127] << 8), crc32(bytes.subarray(0, 126)) & 0xffff);
});

test('MII: one PHY at address 1 (tulip_find_mii accepts it), link follows the switch port', () => {
  const x = rig({ link: false });
  for (const phy of [0, 2, 31]) assert.equal(mdioRead(x.dev, phy, 1), 0xffff, `no PHY at ${phy}`);
  let bmsr = mdioRead(x.dev, 1, 1);
  assert.ok((bmsr & 0x8000) === 0 && (bmsr & 0x7800) !== 0, 'tulip_find_mii test');
  assert.equal(bmsr & 4, 0, 'no link while unplugged');
  const port = x.sw.attach(x.dev, 'tulip');
  x.dev.plug((f) => port.transmit(f));
  bmsr = mdioRead(x.dev, 1, 1);
  assert.equal(bmsr & 4, 4, 'link up on a switch port');
  assert.notEqual(mdioRead(x.dev, 1, 5), 0, 'link partner ability');
  mdioWrite(x.dev, 1, 4, 0x0061);
  assert.equal(mdioRead(x.dev, 1, 4), 0x0061, 'advertisement register written through MDIO');
  mdioWrite(x.dev, 1, 0, 0x8000);
  assert.equal(mdioRead(x.dev, 1, 0) & 0x8000, 0, 'reset self-clears');
  assert.equal(mdioRead(x.dev, 1, 4), 0x01e1);
  port.detach();
  assert.equal(mdioRead(x.dev, 1, 1) & 4, 0, 'link down after the port is detached');
});

test('transmit: the setup frame loads the filter, a frame reaches the switch port, TI raises INTA', () => {
  const x = rig();
  bringUp(x);
  assert.equal(x.mem.view.getUint32(TX_RING, true) & OWN, 0, 'setup descriptor handed back');
  assert.equal(x.dev.stats.setupFrames, 1);
  w(x.dev, 5, 0xffffffff);
  assert.equal(x.irq(), false);
  const f = ethFrame(PEER, MAC, 100, 0x42);
  txSlot = 1;
  const d = queueTx(x, f);
  w(x.dev, 1, 0);
  assert.equal(x.sent.length, 1);
  assert.deepEqual(x.sent[0], f);
  assert.equal(x.mem.view.getUint32(d, true), 0, 'status: done, no error');
  const st = r(x.dev, 5);
  assert.ok(st & S.TI && st & S.NIS, `CSR5 ${st.toString(16)}`);
  assert.equal(x.irq(), true);
  w(x.dev, 5, st);
  assert.equal(x.irq(), false, 'acknowledged');
  // A frame over two descriptors (FS then LS), buffers 1 and 2 in ring mode with an explicit buffer 2.
  const big = ethFrame(PEER, MAC, 1514, 7);
  const a = TX_RING + 16 * 2, b = TX_RING + 16 * 3;
  x.mem.bytes.set(big.subarray(0, 600), TX_BUF); x.mem.bytes.set(big.subarray(600, 1000), TX_BUF + 0x1000); x.mem.bytes.set(big.subarray(1000), TX_BUF + 0x2000);
  x.mem.view.setUint32(a + 4, (600 | (400 << 11) | TDES1.FS) >>> 0, true);
  x.mem.view.setUint32(a + 8, TX_BUF, true); x.mem.view.setUint32(a + 12, TX_BUF + 0x1000, true);
  x.mem.view.setUint32(b + 4, (514 | TDES1.LS | TDES1.TCH) >>> 0, true);
  x.mem.view.setUint32(b + 8, TX_BUF + 0x2000, true); x.mem.view.setUint32(b + 12, TX_RING + 16 * 4, true);
  x.mem.view.setUint32(b, OWN, true); x.mem.view.setUint32(a, OWN, true);
  w(x.dev, 1, 0);
  assert.equal(x.sent.length, 2);
  assert.deepEqual(x.sent[1], big);
});

test('receive: a frame for our MAC lands in the first free buffer with FS|LS and length+FCS; others are filtered', () => {
  const x = rig();
  bringUp(x);
  w(x.dev, 5, 0xffffffff);
  const f = ethFrame(MAC, PEER, 200, 0x33);
  x.peer.transmit(f);
  const st0 = x.mem.view.getUint32(RX_RING, true);
  assert.equal(st0 & OWN, 0);
  assert.equal(st0 & (RDES0.FS | RDES0.LS | RDES0.ES), RDES0.FS | RDES0.LS);
  assert.equal(((st0 >>> 16) & 0x7ff) - 4, 200, 'Linux: pkt_len = FL - 4');
  assert.deepEqual(x.mem.bytes.subarray(RX_BUF, RX_BUF + 200), f);
  assert.ok(r(x.dev, 5) & S.RI);
  assert.equal(x.irq(), true);
  // Filtered: a unicast frame for someone else; broadcast passes (the setup frame holds ff:ff:...).
  x.peer.transmit(ethFrame(new Uint8Array([0, 0x15, 0x5d, 9, 9, 9]), PEER, 80));
  assert.ok(x.mem.view.getUint32(RX_RING + 16, true) & OWN, 'not for us: not received');
  x.peer.transmit(ethFrame(new Uint8Array(6).fill(0xff), PEER, 42));
  const st1 = x.mem.view.getUint32(RX_RING + 16, true);
  assert.equal(st1 & OWN, 0);
  assert.equal((st1 >>> 16) & 0x7ff, 64, 'short frames are padded to 60 bytes + FCS');
  assert.ok(st1 & RDES0.MF);
  // Promiscuous mode takes everything.
  w(x.dev, 6, 0x020e0000 | M.ST | M.SR | M.PR);
  x.peer.transmit(ethFrame(new Uint8Array([0, 0x15, 0x5d, 9, 9, 9]), PEER, 80));
  assert.equal(x.mem.view.getUint32(RX_RING + 32, true) & OWN, 0);
  assert.equal(x.dev.stats.rxFrames, 3);
});

test('receive: hash filtering (setup frame FT0) accepts the hashed broadcast and the one perfect address', () => {
  const x = rig();
  bringUp(x, { hash: true });
  x.peer.transmit(ethFrame(MAC, PEER, 60));
  x.peer.transmit(ethFrame(new Uint8Array(6).fill(0xff), PEER, 60));
  x.peer.transmit(ethFrame(new Uint8Array([1, 0, 0x5e, 0, 0, 1]), PEER, 60));
  assert.equal(x.dev.stats.rxFrames, 2);
});

test('receive: out of descriptors sets RU once and holds frames until the guest returns buffers', () => {
  const x = rig();
  bringUp(x);
  for (let i = 0; i < RX_N + 3; i++) x.peer.transmit(ethFrame(MAC, PEER, 100, i));
  assert.equal(x.dev.stats.rxFrames, RX_N);
  assert.ok(r(x.dev, 5) & S.RU);
  w(x.dev, 5, 0xffffffff);
  assert.equal(r(x.dev, 5) & S.RU, 0, 'acknowledged RU is not raised again while still suspended');
  // The guest refills two descriptors and acknowledges: two held frames arrive in order.
  for (const i of [0, 1]) x.mem.view.setUint32(RX_RING + 16 * i, OWN, true);
  w(x.dev, 2, 0);
  assert.equal(x.dev.stats.rxFrames, RX_N + 2);
  assert.equal(x.mem.bytes[RX_BUF + 20], RX_N, 'first held frame in descriptor 0');
  assert.equal(x.mem.bytes[RX_BUF + 2048 + 20], RX_N + 1);
});

test('receive: the FIFO behind a full ring is bounded; overflow is dropped, counted and shows in CSR8 (missed frames)', () => {
  const x = rig();
  bringUp(x);
  const n = RX_N + 1024 + 5;
  for (let i = 0; i < n; i++) x.peer.transmit(ethFrame(MAC, PEER, 100, i & 0xff));
  assert.equal(x.dev.stats.rxFrames, RX_N);
  assert.equal(x.dev.stats.rxNoBuffer, 5);
  assert.equal(r(x.dev, 8) & 0xffff, 5, 'missed frame counter');
  assert.equal(r(x.dev, 8), 0, 'cleared by reading');
});

test('flow control: with no free descriptor the adapter reports full, the switch holds the rest; returned descriptors let it all in', () => {
  const x = rig({ flowControl: true });
  bringUp(x);
  // The guest's MAC is learned, so the peer's frames are unicast to the adapter.
  queueTx(x, ethFrame(PEER, MAC, 60));
  w(x.dev, 1, 0);
  const n = RX_N + 64 + 2000;
  for (let i = 0; i < n; i++) x.peer.transmit(ethFrame(MAC, PEER, 100, i & 0xff));
  assert.equal(x.dev.stats.rxFrames, RX_N);
  assert.equal(x.dev.stats.rxDropped, 0, 'nothing dropped: the switch holds what the FIFO cannot');
  assert.ok(x.sw.stats.queued >= 2000);
  // The guest keeps handing descriptors back (as its interrupt handler does) until everything arrived.
  let seen = 0;
  for (let round = 0; round < 1000 && x.dev.stats.rxFrames < n; round++) {
    for (let i = 0; i < RX_N; i++) {
      const a = RX_RING + 16 * i;
      if (!(x.mem.view.getUint32(a, true) & OWN)) {
        assert.equal(x.mem.bytes[RX_BUF + 2048 * i + 20], seen++ & 0xff, 'in order');
        x.mem.view.setUint32(a, OWN, true);
      }
    }
    w(x.dev, 5, 0xffffffff);
  }
  assert.equal(x.dev.stats.rxFrames, n);
  assert.equal(x.sw.stats.queueDropped, 0);
});

test('oversize frames are dropped and counted both ways; 1518-byte tagged frames pass', () => {
  const x = rig();
  bringUp(x);
  const tagged = ethFrame(PEER, MAC, 1518); tagged[12] = 0x81; tagged[13] = 0x00;
  txSlot = 1;
  queueTx(x, tagged); w(x.dev, 1, 0);
  assert.equal(x.sent.length, 1);
  const d = queueTx(x, ethFrame(PEER, MAC, 1600)); w(x.dev, 1, 0);
  assert.equal(x.sent.length, 1);
  assert.ok(x.mem.view.getUint32(d, true) & 0x8000, 'error summary in the transmit status');
  x.dev.deliver(ethFrame(MAC, PEER, 1515));
  assert.equal(x.dev.stats.oversize, 2);
  assert.equal(x.dev.stats.rxFrames, 0);
});

test('a descriptor outside RAM is a fatal bus error the guest sees, and a reset recovers the chip', () => {
  const x = rig();
  bringUp(x);
  w(x.dev, 5, 0xffffffff);
  txSlot = 1;
  const d = queueTx(x, ethFrame(PEER, MAC, 64));
  x.mem.view.setUint32(d + 8, 0xfffff000, true); // buffer beyond RAM
  w(x.dev, 1, 0);
  const st = r(x.dev, 5);
  assert.ok(st & S.FBE && st & S.AIS, `CSR5 ${st.toString(16)}`);
  assert.equal((st >>> 23) & 7, 1, 'master abort');
  assert.equal((st >>> 17) & 0x3f, 0, 'both processes stopped');
  assert.equal(x.irq(), true);
  assert.equal(x.dev.stats.busErrors, 1);
  // The list base itself outside RAM.
  w(x.dev, 6, 0); w(x.dev, 3, 0x7ffff000); w(x.dev, 6, M.SR);
  x.peer.transmit(ethFrame(MAC, PEER, 64));
  assert.equal(x.dev.stats.busErrors, 2);
  bringUp(x);
  txSlot = 1;
  queueTx(x, ethFrame(PEER, MAC, 64)); w(x.dev, 1, 0);
  assert.equal(x.sent.length, 1, 'works again after a software reset');
});

test('a descriptor cycle that the guest keeps owned cannot hang the host (bounded per poll)', () => {
  const x = rig();
  bringUp(x);
  // One descriptor chained to itself, zero-length buffers, owned forever (status is rewritten below).
  const a = 0x80000;
  x.mem.view.setUint32(a + 4, TDES1.TCH, true);
  x.mem.view.setUint32(a + 12, a, true);
  x.mem.view.setUint32(a, OWN, true);
  w(x.dev, 6, 0); w(x.dev, 4, a); w(x.dev, 6, M.ST);
  // The device cleared OWN; a guest that sets it again on every poll still only costs one bounded poll.
  for (let i = 0; i < 5; i++) { x.mem.view.setUint32(a, OWN, true); w(x.dev, 1, 0); }
  assert.equal(x.sent.length, 0);
  // A ring of 2 in which both are self-owning via buffer1 pointing at the descriptor itself.
  const b = 0x81000;
  x.mem.view.setUint32(b, OWN, true); x.mem.view.setUint32(b + 4, 16 | TDES1.TCH | TDES1.FS | TDES1.LS, true);
  x.mem.view.setUint32(b + 8, b, true); x.mem.view.setUint32(b + 12, b, true);
  w(x.dev, 6, 0); w(x.dev, 4, b); w(x.dev, 6, M.ST);
  assert.ok(x.sent.length <= MAX_TX_DESCRIPTORS_PER_POLL);
  // Receive: a chained self-cycle with zero-sized buffers ends in a descriptor error, not a hang.
  const c = 0x82000;
  x.mem.view.setUint32(c, OWN, true); x.mem.view.setUint32(c + 4, RDES1.RCH, true); x.mem.view.setUint32(c + 12, c, true);
  w(x.dev, 6, 0); w(x.dev, 3, c); w(x.dev, 6, M.SR | M.PR);
  x.peer.transmit(ethFrame(MAC, PEER, 64));
  const st = x.mem.view.getUint32(c, true);
  assert.ok(st & RDES0.ES && st & RDES0.DE, `status ${st.toString(16)}`);
});

test('garbage register writes of every width never throw; narrow reads return the right bytes', () => {
  const x = rig();
  bringUp(x);
  w(x.dev, 7, 0x12345);
  assert.equal(x.dev.readCsr(7 * 8, 1), 0x45);
  assert.equal(x.dev.readCsr(7 * 8 + 1, 2), 0x0123);
  for (let off = 0; off < 128; off++) for (const size of [1, 2, 4] as const) {
    x.dev.writeCsr(off, size, 0xffffffff);
    x.dev.readCsr(off, size);
  }
  x.dev.writeCsr(0, 4, 1);
  assert.equal(r(x.dev, 6), 0, 'software reset clears the mode');
});

test('the general-purpose timer raises GTE (what re-enables interrupts after a busy handler)', () => {
  const x = rig();
  bringUp(x);
  w(x.dev, 5, 0xffffffff);
  w(x.dev, 7, S.GTE | S.AIS);
  w(x.dev, 11, 0x12);
  assert.equal(r(x.dev, 5) & S.GTE, 0);
  x.advance(0x12 * 81_920 + 1);
  assert.ok(r(x.dev, 5) & S.GTE);
  assert.equal(x.irq(), true);
});

test('saved state round-trips the rings, the filter and the PHY', () => {
  const x = rig();
  bringUp(x);
  x.peer.transmit(ethFrame(MAC, PEER, 100));
  const s = JSON.parse(JSON.stringify(x.dev.saveState()));
  const y = rig();
  y.mem.bytes.set(x.mem.bytes);
  y.dev.restoreState(s);
  y.peer.transmit(ethFrame(MAC, PEER, 100, 0x77));
  assert.equal(y.mem.view.getUint32(RX_RING + 16, true) & OWN, 0, 'continues at descriptor 1');
  assert.equal(y.mem.bytes[RX_BUF + 2048 + 20], 0x77);
});

test('property: random register and descriptor programs never throw and never hang', () => {
  const op = fc.oneof(
    fc.record({ k: fc.constant('w' as const), off: fc.integer({ min: 0, max: 127 }), size: fc.constantFrom(1, 2, 4) as fc.Arbitrary<1 | 2 | 4>, v: fc.integer({ min: 0, max: 0xffffffff }) }),
    fc.record({ k: fc.constant('csr' as const), n: fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 7, 9, 11), v: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0x2002, 0x2042, 1, 0x10000, 0x10000 + 0x80000)) }),
    fc.record({ k: fc.constant('mem' as const), addr: fc.integer({ min: 0, max: 0x1fff }), v: fc.integer({ min: 0, max: 0xffffffff }) }),
    fc.record({ k: fc.constant('rx' as const), len: fc.integer({ min: 0, max: 2000 }), bcast: fc.boolean() }),
    fc.record({ k: fc.constant('time' as const), ns: fc.integer({ min: 0, max: 10_000_000 }) }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (prog) => {
    const x = rig({ memBytes: 0x10000 });
    // Descriptor-ish words near the start of RAM: addresses mostly inside the 64 KiB of RAM, some outside.
    for (const o of prog) {
      if (o.k === 'w') x.dev.writeCsr(o.off, o.size, o.v);
      else if (o.k === 'csr') w(x.dev, o.n, o.n === 3 || o.n === 4 ? o.v & 0x1fff : o.v);
      else if (o.k === 'mem') x.mem.view.setUint32(o.addr & ~3, o.v, true);
      else if (o.k === 'rx') x.dev.deliver(ethFrame(o.bcast ? new Uint8Array(6).fill(0xff) : MAC, PEER, Math.max(o.len, 14)).subarray(0, o.len));
      else x.advance(o.ns);
    }
    for (let n = 0; n < 16; n++) r(x.dev, n);
  }), { numRuns: 400 });
});

test('assembly: a legacy adapter in the HardwareConfig is a 1011:0009 function at 00:0a.0 on the Gen 1 bus, on its switch', async () => {
  const { IoBus, MmioBus } = await import('../../src/platform/bus.js');
  const { Gen1Chipset } = await import('../../src/platform/assemble-ide.js');
  const { assembleNetwork, NetworkConfigError } = await import('../../src/platform/assemble-network.js');
  const { LineRecorder } = await import('./helpers.js');
  const { pciIntxGsi } = await import('../../src/devices/pci/bus.js');
  const io = new IoBus(), mmio = new MmioBus(), mem = new GuestMemory(0x400000), lines = new LineRecorder();
  const { clock } = manualClock();
  const chipset = new Gen1Chipset({ io, mmio, irq: lines as never, memory: mem, drives: { media: [[null, null], [null, null]], disks: [] } });
  const hw = { scsiControllers: 0, drives: [], networkAdapters: [{ name: 'Legacy Network Adapter', legacy: true, macAddress: '00:15:5d:12:34:56', switchName: 'lab' }] };
  assert.throws(() => assembleNetwork(null, hw, [{ name: 'lab', type: 'Private' }]), NetworkConfigError, 'no PCI bus: a clear error');
  const net = assembleNetwork(null, hw, [{ name: 'lab', type: 'Private' }],
    { legacyHost: { memory: mem, clock, addPciFunction: (fn, dev) => chipset.addPciFunction(fn, dev) } });
  const cfg = (reg: number): number => { io.write(0xcf8, 4, (0x80000000 | (10 << 11) | reg) >>> 0); return io.read(0xcfc, 4); };
  assert.equal(cfg(0), 0x00091011);
  assert.equal(cfg(8) >>> 8, 0x020000, 'class: Ethernet controller');
  assert.equal(cfg(0x3c) & 0xff, pciIntxGsi(10, 1), 'firmware routed INTA#');
  const bar0 = cfg(0x10) & ~3;
  assert.ok(bar0 >= 0xc000, `I/O BAR0 programmed (${bar0.toString(16)})`);
  assert.ok((cfg(0x14) & ~15) >>> 0 >= 0xc0000000, 'memory BAR1 programmed');
  // CSR writes through the I/O BAR reach the chip: CSR7 reads back.
  io.write(bar0 + 7 * 8, 4, 0x1ebef);
  assert.equal(io.read(bar0 + 7 * 8, 4), 0x1ebef);
  const nic = net.legacyAdapters[0].nic;
  assert.equal(nic.linkUp, true, 'plugged into the Private switch');
  net.connect('Legacy Network Adapter', null);
  assert.equal(nic.linkUp, false, 'Disconnect-VMNetworkAdapter: link down');
  net.connect('legacy network adapter', 'lab');
  assert.equal(nic.linkUp, true);
  const saved = net.saveState();
  assert.ok(saved?.legacy?.length === 1);
  net.stop();
  assert.equal(nic.linkUp, false);
});
