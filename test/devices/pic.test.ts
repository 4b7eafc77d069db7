import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pic } from '../../src/devices/pic.js';

function linuxInit(pic: Pic, autoEoi = false) {
  const m = pic.master, s = pic.slave;
  // arch/x86/kernel/i8259.c: init_8259A()
  m.pioWrite(1, 1, 0xff); s.pioWrite(1, 1, 0xff);
  m.pioWrite(0, 1, 0x11); m.pioWrite(1, 1, 0x30); m.pioWrite(1, 1, 0x04); m.pioWrite(1, 1, autoEoi ? 0x03 : 0x01);
  s.pioWrite(0, 1, 0x11); s.pioWrite(1, 1, 0x38); s.pioWrite(1, 1, 0x02); s.pioWrite(1, 1, 0x01);
  m.pioWrite(1, 1, 0x00); s.pioWrite(1, 1, 0x00);
}

test('probe: IMR reads back what was written', () => {
  const pic = new Pic();
  pic.master.pioWrite(1, 1, 0xff);
  assert.equal(pic.master.pioRead(1, 1), 0xff);
  pic.master.pioWrite(1, 1, 0xfb);
  assert.equal(pic.master.pioRead(1, 1), 0xfb);
});

test('Linux init: vectors 0x30/0x38, priority order and specific EOI', () => {
  const pic = new Pic();
  let intrChanges = 0;
  pic.onIntrChange = () => { intrChanges++; };
  linuxInit(pic);
  assert.equal(pic.intr, false);
  pic.setIrq(4, true);
  pic.setIrq(1, true);
  assert.equal(pic.intr, true);
  assert.ok(intrChanges > 0);
  assert.equal(pic.peekVector(), 0x31, 'IRQ1 beats IRQ4');
  assert.equal(pic.acknowledge(), 0x31);
  // IRQ4 is lower priority than in-service IRQ1: not presented.
  assert.equal(pic.intr, false);
  // Read ISR through OCW3.
  pic.master.pioWrite(0, 1, 0x0b);
  assert.equal(pic.master.pioRead(0, 1), 0x02);
  pic.master.pioWrite(0, 1, 0x0a);
  assert.equal(pic.master.pioRead(0, 1) & 0x10, 0x10, 'IRR still holds IRQ4');
  pic.master.pioWrite(0, 1, 0x60 + 1); // specific EOI IRQ1
  assert.equal(pic.intr, true);
  assert.equal(pic.acknowledge(), 0x34);
  pic.master.pioWrite(0, 1, 0x20); // non-specific EOI
  assert.equal(pic.master.isr, 0);
});

test('masked IRQs are not presented; edge IRQs are latched once per rising edge', () => {
  const pic = new Pic();
  linuxInit(pic);
  pic.master.pioWrite(1, 1, 0x01); // mask IRQ0
  pic.setIrq(0, true); pic.setIrq(0, false);
  assert.equal(pic.intr, false);
  pic.master.pioWrite(1, 1, 0x00);
  assert.equal(pic.acknowledge(), 0x30, 'the edge latched while masked is delivered on unmask');
  pic.master.pioWrite(0, 1, 0x20);
  assert.equal(pic.intr, false);
  pic.setIrq(0, true);
  pic.setIrq(0, true); // no new edge
  assert.equal(pic.acknowledge(), 0x30);
  pic.master.pioWrite(0, 1, 0x20);
  assert.equal(pic.intr, false);
});

test('slave IRQs cascade through IRQ2 and need EOI on both chips', () => {
  const pic = new Pic();
  linuxInit(pic);
  pic.setIrq(8, true); pic.setIrq(8, false);
  pic.setIrq(12, true); pic.setIrq(12, false);
  assert.equal(pic.acknowledge(), 0x38);
  assert.equal(pic.master.isr, 0x04);
  assert.equal(pic.slave.isr, 0x01);
  assert.equal(pic.intr, false);
  // mask_and_ack_8259A: specific EOI to the slave then to the master's cascade line.
  pic.slave.pioWrite(0, 1, 0x60 + 0);
  pic.master.pioWrite(0, 1, 0x60 + 2);
  assert.equal(pic.intr, true);
  assert.equal(pic.acknowledge(), 0x3c);
});

test('spurious IRQ7 when the request vanishes before INTA, without setting ISR', () => {
  const pic = new Pic();
  linuxInit(pic);
  pic.elcrPorts.pioWrite(1, 1, 0x02); // IRQ9 level-triggered
  pic.setIrq(9, true);
  assert.equal(pic.intr, true);
  pic.setIrq(9, false); // level dropped before INTA
  assert.equal(pic.intr, false);
  assert.equal(pic.acknowledge(), 0x37);
  assert.equal(pic.master.isr, 0);
  // Slave-side spurious: slave request vanished after the master saw the cascade request is impossible to
  // stage from outside, but a level IRQ re-asserts while high after EOI.
  pic.setIrq(9, true);
  assert.equal(pic.acknowledge(), 0x39);
  pic.slave.pioWrite(0, 1, 0x20); pic.master.pioWrite(0, 1, 0x20);
  assert.equal(pic.intr, true, 'still asserted level IRQ is presented again after EOI');
  assert.equal(pic.elcrPorts.pioRead(0, 2), 0x0200);
});

test('ELCR cannot make IRQ0-2, 8 and 13 level-triggered', () => {
  const pic = new Pic();
  pic.elcrPorts.pioWrite(0, 2, 0xffff);
  assert.equal(pic.elcrPorts.pioRead(0, 1), 0xf8);
  assert.equal(pic.elcrPorts.pioRead(1, 1), 0xde);
});

test('poll command acknowledges like INTA', () => {
  const pic = new Pic();
  linuxInit(pic);
  pic.setIrq(3, true);
  pic.master.pioWrite(0, 1, 0x0c);
  assert.equal(pic.master.pioRead(0, 1), 0x83);
  assert.equal(pic.master.isr, 0x08);
  pic.master.pioWrite(0, 1, 0x0c);
  assert.equal(pic.master.pioRead(0, 1), 0x00);
});

test('auto-EOI mode leaves ISR clear; rotation on non-specific EOI', () => {
  const pic = new Pic();
  linuxInit(pic, true);
  pic.setIrq(5, true);
  assert.equal(pic.acknowledge(), 0x35);
  assert.equal(pic.master.isr, 0);
  const p2 = new Pic();
  linuxInit(p2);
  p2.setIrq(1, true);
  assert.equal(p2.acknowledge(), 0x31);
  p2.master.pioWrite(0, 1, 0xa0); // rotate on non-specific EOI: IRQ1 becomes lowest
  p2.setIrq(1, false); p2.setIrq(1, true);
  p2.setIrq(3, true);
  assert.equal(p2.acknowledge(), 0x33, 'IRQ3 now outranks IRQ1');
});
