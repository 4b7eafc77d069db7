import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rtc } from '../../src/devices/rtc.js';
import type { IrqRouter } from '../../src/devices/irq.js';
import { LineRecorder, manualClock } from './helpers.js';

// 2024-02-29 23:59:58.5 UTC, a Thursday.
const EPOCH = Date.UTC(2024, 1, 29, 23, 59, 58, 500);

function setup() {
  const { clock, advance } = manualClock();
  const lines = new LineRecorder();
  const rtc = new Rtc(clock, lines as unknown as IrqRouter, EPOCH);
  const rd = (i: number) => { rtc.pioWrite(0, 1, i | 0x80 /* NMI mask bit is ignored */); return rtc.pioRead(1, 1); };
  const wr = (i: number, v: number) => { rtc.pioWrite(0, 1, i); rtc.pioWrite(1, 1, v); };
  return { rtc, rd, wr, lines, advance };
}

test('time registers in BCD, 24 h, with century; advanced by the virtual clock', () => {
  const { rd, advance } = setup();
  assert.deepEqual([rd(9), rd(8), rd(7), rd(4), rd(2), rd(0), rd(0x32), rd(6)], [0x24, 0x02, 0x29, 0x23, 0x59, 0x58, 0x20, 0x05]);
  advance(2e9);
  assert.deepEqual([rd(9), rd(8), rd(7), rd(4), rd(2), rd(0)], [0x24, 0x03, 0x01, 0x00, 0x00, 0x00], 'leap day rolls over to March 1');
  assert.equal(rd(0x0d) & 0x80, 0x80, 'register D: valid RAM and time');
});

test('binary and 12-hour formats per register B', () => {
  const { rd, wr } = setup();
  wr(0x0b, 0x04 | 0x02); // binary, 24 h
  assert.equal(rd(4), 23);
  assert.equal(rd(2), 59);
  wr(0x0b, 0x04); // binary, 12 h
  assert.equal(rd(4), 0x80 | 11, '11 PM');
  wr(0x0b, 0x00); // BCD, 12 h
  assert.equal(rd(4), 0x80 | 0x11);
});

test('update-in-progress flag just before the second boundary', () => {
  const { rd, advance } = setup();
  assert.equal(rd(0x0a) & 0x80, 0, 'at .5 s no update is in progress');
  advance(400_000_000); // .9 s
  assert.equal(rd(0x0a) & 0x80, 0);
  advance(99_900_000); // 100 µs before the boundary
  assert.equal(rd(0x0a) & 0x80, 0x80);
  advance(200_000);
  assert.equal(rd(0x0a) & 0x80, 0);
});

test('setting the time with the SET bit', () => {
  const { rd, wr, advance } = setup();
  wr(0x0b, 0x82);
  wr(9, 0x30); wr(8, 0x12); wr(7, 0x31); wr(4, 0x08); wr(2, 0x15); wr(0, 0x00); wr(0x32, 0x20);
  advance(5e9);
  assert.equal(rd(0), 0x00, 'frozen while SET');
  wr(0x0b, 0x02);
  advance(3e9);
  assert.deepEqual([rd(9), rd(8), rd(7), rd(4), rd(2), rd(0)], [0x30, 0x12, 0x31, 0x08, 0x15, 0x03]);
});

test('periodic interrupt on IRQ8 until register C is read', () => {
  const { rd, wr, lines, advance } = setup();
  wr(0x0a, 0x26); // 1024 Hz
  wr(0x0b, 0x02 | 0x40); // PIE
  advance(1_000_000);
  assert.equal(lines.count(8), 1);
  assert.equal(lines.levels.get(8), true);
  assert.equal(rd(0x0c) & 0xc0, 0xc0, 'IRQF and PF');
  assert.equal(lines.levels.get(8), false);
  assert.equal(rd(0x0c), 0, 'register C clears on read');
  advance(1_000_000);
  assert.equal(lines.count(8), 2);
});

test('update-ended and alarm interrupts', () => {
  const { rd, wr, lines, advance } = setup();
  wr(0x01, 0x05); wr(0x03, 0x00); wr(0x05, 0xc0); // alarm at hh:00:05 (any hour)
  wr(0x0b, 0x02 | 0x20); // AIE only
  advance(3e9); // 00:00:01.5
  assert.equal(lines.levels.get(8), undefined, 'no alarm before 00:00:05');
  rd(0x0c);
  advance(4e9); // 00:00:05.5
  assert.equal(lines.levels.get(8), true);
  assert.equal(rd(0x0c) & 0xa0, 0xa0, 'IRQF and AF');
  wr(0x0b, 0x02 | 0x10); // UIE
  advance(1e9);
  assert.equal(rd(0x0c) & 0x90, 0x90);
});

test('CMOS bytes are plain memory', () => {
  const { rd, wr, rtc } = setup();
  wr(0x40, 0xa5);
  assert.equal(rd(0x40), 0xa5);
  rtc.setCmosByte(0x34, 0x12);
  assert.equal(rd(0x34), 0x12);
});
