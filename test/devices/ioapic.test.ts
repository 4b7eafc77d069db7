import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IoApic } from '../../src/devices/ioapic.js';
import { IrqRouter } from '../../src/devices/irq.js';
import { ApicBus, LocalApic } from '../../src/devices/lapic.js';
import { Pic } from '../../src/devices/pic.js';
import { manualClock } from './helpers.js';

function setup() {
  const { clock } = manualClock();
  const bus = new ApicBus();
  const l = new LocalApic(0, clock, bus);
  l.mmioWrite(0xf0, 4, 0x1ff);
  const io = new IoApic(bus);
  l.onEoiBroadcast = (v) => io.eoi(v);
  const pic = new Pic();
  const router = new IrqRouter(pic, io);
  const sel = (r: number) => io.mmioWrite(0, 4, r);
  const rte = (pin: number, lo: number, hi = 0) => { sel(0x10 + 2 * pin + 1); io.mmioWrite(0x10, 4, hi); sel(0x10 + 2 * pin); io.mmioWrite(0x10, 4, lo); };
  const readReg = (r: number) => { sel(r); return io.mmioRead(0x10, 4); };
  return { l, io, router, rte, readReg, pic };
}

test('ID, version (0x20, 24 entries) and masked entries at reset', () => {
  const { readReg } = setup();
  assert.equal(readReg(0) >>> 24, 1);
  assert.equal(readReg(1), 0x170020);
  for (let pin = 0; pin < 24; pin++) assert.equal(readReg(0x10 + 2 * pin) & 0x10000, 0x10000);
});

test('ISA IRQ0 is routed to GSI2; other ISA IRQs are identity', () => {
  const { l, rte, router } = setup();
  rte(2, 0x30);
  rte(0, 0x3f);
  router.pulse(0);
  assert.equal(l.acknowledge(), 0x30);
  l.eoi();
  rte(4, 0x34);
  router.pulse(4);
  assert.equal(l.acknowledge(), 0x34);
  l.eoi();
  assert.equal(l.pendingVector(), -1);
});

test('masked edge pins lose their edges', () => {
  const { l, rte, router } = setup();
  rte(4, 0x10000 | 0x34);
  router.pulse(4);
  rte(4, 0x34);
  assert.equal(l.pendingVector(), -1);
});

test('level pins: remote IRR until EOI, redelivered while still asserted', () => {
  const { l, rte, router, readReg } = setup();
  rte(9, 0x8000 | 0x49); // level, active high
  router.setLevel(9, true);
  assert.equal(readReg(0x10 + 18) & 0x4000, 0x4000, 'remote IRR set');
  assert.equal(l.acknowledge(), 0x49);
  router.setLevel(9, true); // still high: no second message while remote IRR is set
  assert.equal(l.pendingVector(), -1);
  l.eoi(); // broadcast EOI clears remote IRR and the still-high line is delivered again
  assert.equal(l.pendingVector(), 0x49);
  l.acknowledge();
  router.setLevel(9, false);
  l.eoi();
  assert.equal(readReg(0x10 + 18) & 0x4000, 0);
  assert.equal(l.pendingVector(), -1);
});

test('unmasking an asserted level pin delivers it; the EOI register clears remote IRR', () => {
  const { l, rte, router, io, readReg } = setup();
  router.setLevel(20, true);
  rte(20, 0x8000 | 0x50);
  assert.equal(l.acknowledge(), 0x50);
  router.setLevel(20, false);
  io.mmioWrite(0x40, 4, 0x50);
  assert.equal(readReg(0x10 + 40) & 0x4000, 0);
});

test('destination: physical APIC ID that matches nobody drops the interrupt', () => {
  const { l, rte, router } = setup();
  rte(4, 0x34, 5 << 24);
  router.pulse(4);
  assert.equal(l.pendingVector(), -1);
  rte(4, 0x34 | (1 << 8), 0); // lowest priority to APIC 0
  router.pulse(4);
  assert.equal(l.pendingVector(), 0x34);
});
