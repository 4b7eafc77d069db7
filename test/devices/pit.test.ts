import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pit, PIT_HZ } from '../../src/devices/pit.js';
import type { IrqRouter } from '../../src/devices/irq.js';
import { LineRecorder, manualClock } from './helpers.js';

const TICK = 1e9 / PIT_HZ;

function setup() {
  const { clock, advance } = manualClock();
  const lines = new LineRecorder();
  const pit = new Pit(clock, lines as unknown as IrqRouter);
  const r = (o: number) => pit.pioRead(o, 1);
  const w = (o: number, v: number) => pit.pioWrite(o, 1, v);
  const r61 = () => pit.port61.pioRead(0, 1);
  const w61 = (v: number) => pit.port61.pioWrite(0, 1, v);
  return { pit, r, w, r61, w61, lines, advance };
}

test('pit_calibrate_tsc: channel 2 mode 0 with the gate from port 0x61, OUT2 on bit 5', () => {
  const { r, w, r61, w61, advance } = setup();
  w61((r61() & ~0x02) | 0x01); // gate high, speaker off
  w(3, 0xb0); // channel 2, lo/hi, mode 0, binary
  const latch = Math.floor(PIT_HZ / 20); // 50 ms
  w(2, latch & 0xff); w(2, latch >> 8);
  assert.equal(r61() & 0x20, 0, 'OUT2 low while counting');
  assert.equal(r61() & 0x01, 1);
  advance((latch - 10) * TICK);
  assert.equal(r61() & 0x20, 0);
  advance(20 * TICK);
  assert.equal(r61() & 0x20, 0x20, 'OUT2 high at terminal count');
});

test('quick_pit_calibrate: the MSB of channel 2 read live counts down from 0xff', () => {
  const { r, w, r61, w61, advance } = setup();
  w61((r61() & ~0x02) | 0x01);
  w(3, 0xb0);
  w(2, 0xff); w(2, 0xff);
  const seen: number[] = [];
  for (let i = 0; i < 6; i++) {
    r(2); // LSB
    seen.push(r(2));
    advance(Math.ceil(256 * TICK));
  }
  assert.deepEqual(seen, [0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa]);
});

test('mode 0 counts down and wraps; counter latch freezes the value until read', () => {
  const { r, w, advance } = setup();
  w(3, 0x30); // channel 0, lo/hi, mode 0
  w(0, 0x00); w(0, 0x10); // 0x1000
  advance(0x100 * TICK + 1);
  w(3, 0x00); // latch channel 0
  advance(0x200 * TICK);
  const v = r(0) | (r(0) << 8);
  assert.equal(v, 0x0f00);
  const live = r(0) | (r(0) << 8);
  assert.equal(live, 0x0d00);
  advance(0x1000 * TICK);
  const wrapped = r(0) | (r(0) << 8);
  assert.equal(wrapped, 0xfd00, 'keeps counting past zero');
});

test('mode 0 on channel 0 raises IRQ0 once at terminal count', () => {
  const { w, lines, advance } = setup();
  w(3, 0x30); w(0, 100); w(0, 0);
  advance(99 * TICK);
  assert.equal(lines.count(0), 0);
  advance(2 * TICK);
  assert.equal(lines.count(0), 1);
  advance(100_000 * TICK);
  assert.equal(lines.count(0), 1);
});

test('mode 2 rate generator: periodic IRQ0 and counter N..1', () => {
  const { r, w, lines, advance } = setup();
  const n = Math.round(PIT_HZ / 1000); // 1 kHz
  w(3, 0x34); w(0, n & 0xff); w(0, n >> 8);
  for (let i = 0; i < 10; i++) advance(1_000_000);
  assert.ok(lines.count(0) >= 9 && lines.count(0) <= 10, `got ${lines.count(0)} interrupts`);
  w(3, 0x00);
  const c = r(0) | (r(0) << 8);
  assert.ok(c >= 1 && c <= n);
});

test('mode 3 square wave: output high half the period, counter steps by 2', () => {
  const { r, w, pit, advance } = setup();
  w(3, 0xb6); w(2, 100); w(2, 0); // channel 2, mode 3, N = 100
  pit.setGate(2, true);
  const out = () => (pit.port61.pioRead(0, 1) & 0x20) !== 0;
  advance(10 * TICK + 1);
  assert.equal(out(), true);
  w(3, 0x80);
  assert.equal(r(2) | (r(2) << 8), 80);
  advance(50 * TICK);
  assert.equal(out(), false);
  advance(50 * TICK);
  assert.equal(out(), true);
});

test('read-back command latches status and count', () => {
  const { r, w, advance } = setup();
  w(3, 0x34); w(0, 0x00); w(0, 0x01); // mode 2, 256
  advance(16 * TICK + 1);
  w(3, 0xc2); // read-back: count + status of channel 0
  assert.equal(r(0), 0x80 | (3 << 4) | (2 << 1), 'status: OUT high, lo/hi access, mode 2');
  assert.equal(r(0) | (r(0) << 8), 240);
});

test('lsb-only access and BCD mode', () => {
  const { r, w, advance } = setup();
  w(3, 0x51 & ~0x00); // channel 1, LSB only, mode 0, BCD
  w(1, 0x99);
  advance(9 * TICK + 1);
  assert.equal(r(1), 0x90);
});

test('port 0x61 refresh bit toggles with time', () => {
  const { r61, advance } = setup();
  const a = r61() & 0x10;
  advance(15_085);
  assert.notEqual(r61() & 0x10, a);
});
