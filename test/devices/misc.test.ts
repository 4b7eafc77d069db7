import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Port92 } from '../../src/devices/port92.js';
import { I8042 } from '../../src/devices/i8042.js';
import { IrqRouter } from '../../src/devices/irq.js';

test('port 0x92: A20 bit reads back and notifies; bit 0 resets and reads as 0', () => {
  const resets: string[] = [];
  const p = new Port92((r) => resets.push(r));
  const a20: boolean[] = [];
  p.onA20Change = (e) => a20.push(e);
  assert.equal(p.pioRead(0, 1), 0x02);
  p.pioWrite(0, 1, 0x00);
  assert.equal(p.a20, false);
  p.pioWrite(0, 1, 0x02);
  assert.deepEqual(a20, [false, true]);
  assert.deepEqual(resets, []);
  p.pioWrite(0, 1, 0x03);
  assert.equal(resets.length, 1);
  assert.equal(p.pioRead(0, 1), 0x02);
});

test('i8042: output port write with reset bit clear resets; A20 via 0xD1; IRQ1 follows the output buffer', () => {
  const resets: string[] = [];
  const levels: boolean[] = [];
  const router = new IrqRouter({ setIrq: (irq, l) => { if (irq === 1) levels.push(l); } }, null);
  const k = new I8042(router, (r) => resets.push(r));
  let a20 = true;
  k.onA20Change = (e) => { a20 = e; };
  k.pioWrite(4, 1, 0xd1); k.pioWrite(0, 1, 0x01);
  assert.equal(a20, false);
  assert.deepEqual(resets, []);
  k.pioWrite(4, 1, 0xd1); k.pioWrite(0, 1, 0x00);
  assert.equal(resets.length, 1);
  k.pioWrite(4, 1, 0xd2); k.pioWrite(0, 1, 0x1c); // as if the keyboard sent a scancode
  assert.equal(levels.at(-1), true);
  assert.equal(k.pioRead(0, 1), 0x1c);
  assert.equal(levels.at(-1), false);
});

test('IrqRouter ignores out-of-range lines and maps ISA IRQ0 to GSI 2', () => {
  const pins: number[] = [];
  const irqs: number[] = [];
  const r = new IrqRouter({ setIrq: (i) => irqs.push(i) }, { setPin: (p) => pins.push(p) });
  r.setLevel(-1, true); r.setLevel(24, true); r.setLevel(Number.NaN, true);
  assert.deepEqual(pins, []);
  r.pulse(0);
  r.setLevel(20, true);
  assert.deepEqual(irqs, [0, 0]);
  assert.deepEqual(pins, [2, 2, 20]);
});
