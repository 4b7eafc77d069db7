import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Uart16550 } from '../../src/devices/uart16550.js';
import type { IrqRouter } from '../../src/devices/irq.js';
import { LineRecorder, manualClock } from './helpers.js';

const RX = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

function setup() {
  const { clock, advance } = manualClock();
  const lines = new LineRecorder();
  const u = new Uart16550(clock, lines as unknown as IrqRouter, 4, 64);
  const out: number[] = [];
  u.onTransmit((b) => out.push(...b));
  const r = (o: number) => u.pioRead(o, 1);
  const w = (o: number, v: number) => u.pioWrite(o, 1, v);
  return { u, r, w, out, lines, advance };
}

test('8250 autoconfig: scratch test through IER, loopback MSR check, 16550A FIFO detection', () => {
  const { r, w } = setup();
  // Scratch test: IER keeps bits 0-3 only.
  w(IER, 0);
  assert.equal(r(IER) & 0x0f, 0);
  w(IER, 0x0f);
  assert.equal(r(IER) & 0x0f, 0x0f);
  w(IER, 0xff);
  assert.equal(r(IER), 0x0f, 'upper IER bits (e.g. UUE) read as zero');
  w(IER, 0);
  // Loopback test: MCR = LOOP | RTS | OUT2 must read MSR 0x90 (CTS and DCD).
  const saveMcr = r(MCR);
  w(MCR, 0x10 | 0x0a);
  assert.equal(r(MSR) & 0xf0, 0x90);
  w(MCR, saveMcr);
  // EFR probe with LCR=0xBF writes FCR=0 on a 16550A.
  w(LCR, 0xbf); w(2, 0); w(LCR, 0);
  w(FCR, 0x01);
  assert.equal(r(IIR) >> 6, 3, 'FIFO enabled -> IIR bits 7:6 = 11 (16550A)');
  // ST16C650 probes read "EFR" (IIR here) with LCR 0x80/0xBF and require it to be non-zero to move on.
  w(LCR, 0x80); assert.notEqual(r(2), 0);
  w(LCR, 0xbf); assert.notEqual(r(2), 0);
  // NS SuperIO probe: bit 4 of "EXCR1" (IIR) must not follow MCR's LOOP bit.
  w(LCR, 0);
  const m = r(MCR);
  w(LCR, 0xe0); const s1 = r(2);
  w(LCR, 0); w(MCR, m ^ 0x10); w(LCR, 0xe0); const s2 = r(2); w(LCR, 0); w(MCR, m);
  assert.equal((s1 ^ m) & 0x10, 0);
  assert.equal((s2 ^ m) & 0x10, 0);
  // FIFO disabled: IIR bits 7:6 clear.
  w(FCR, 0);
  assert.equal(r(IIR) & 0xc0, 0);
});

test('size_fifo: 256 bytes written in loopback leave 16 in the RX FIFO and flag overrun', () => {
  const { r, w, out } = setup();
  w(FCR, 0x07); w(MCR, 0x10); w(LCR, 0x80); w(0, 1); w(1, 0); w(LCR, 0x03);
  for (let i = 0; i < 256; i++) w(0, i);
  let count = 0;
  const got: number[] = [];
  while ((r(LSR) & 1) && count < 256) { got.push(r(RX)); count++; }
  assert.equal(count, 16);
  assert.deepEqual(got, Array.from({ length: 16 }, (_, i) => i), 'the first 16 bytes are kept, later ones overrun');
  assert.equal(out.length, 0, 'loopback output does not reach the host');
});

test('LSR reports overrun once, then clears; LSR is never 0xff', () => {
  const { r, w } = setup();
  w(MCR, 0x10); // FIFO off: 1-byte holding register
  w(0, 1); w(0, 2);
  const lsr = r(LSR);
  assert.equal(lsr & 0x63, 0x63, 'DR, OE, THRE, TEMT');
  assert.equal(r(LSR) & 0x02, 0, 'OE cleared by reading LSR');
  assert.equal(r(RX), 1);
  assert.notEqual(r(LSR), 0xff);
});

test('THRE interrupt: raised when enabled with THR empty, cleared by IIR read, re-raised on re-enable', () => {
  const { r, w, lines } = setup();
  w(MCR, 0x08); // OUT2 gates the IRQ line on a PC
  w(IER, 0x02);
  assert.equal(lines.levels.get(4), true);
  const iir1 = r(IIR);
  assert.equal(iir1 & 0x0f, 0x02);
  assert.equal(r(IIR) & 0x01, 1, 'reading IIR cleared the THRE interrupt');
  assert.equal(lines.levels.get(4), false);
  w(IER, 0); w(IER, 0x02);
  assert.equal(r(IIR) & 0x0f, 0x02, 'a working 16550 re-asserts THRE (no UART_BUG_THRE)');
  w(IER, 0);
});

test('transmit batches bytes to the host and flush() delivers them', async () => {
  const { w, out, u } = setup();
  for (const c of 'hello') w(0, c.charCodeAt(0));
  assert.equal(out.length, 0, 'not delivered per byte');
  u.flush();
  assert.equal(String.fromCharCode(...out), 'hello');
  w(0, 0x21);
  await Promise.resolve();
  assert.equal(String.fromCharCode(...out), 'hello!', 'a microtask flushes the batch');
});

test('receive: RDA at trigger level, character timeout below it, backpressure beyond the host buffer', () => {
  const { r, w, u, lines, advance } = setup();
  w(MCR, 0x08); w(FCR, 0xc1 /* FIFO on, trigger 14 */); w(IER, 0x01);
  assert.equal(u.receive(new Uint8Array([65, 66, 67])), 3);
  assert.equal(r(IIR) & 0x0f, 0x01, 'below trigger: no interrupt yet');
  advance(5_000_000); // > 4 character times at 9600 baud
  assert.equal(r(IIR) & 0x0f, 0x0c, 'character timeout');
  assert.equal(lines.levels.get(4), true);
  assert.deepEqual([r(RX), r(RX), r(RX)], [65, 66, 67]);
  assert.equal(r(IIR) & 0x01, 1);
  assert.equal(r(LSR) & 1, 0);
  // 16 + 64 bytes fit (FIFO + host buffer of 64); the rest is refused.
  const big = new Uint8Array(100).map((_, i) => i);
  assert.equal(u.receive(big), 80);
  assert.equal(r(IIR) & 0x0f, 0x04, 'FIFO above trigger level: RDA');
  let spaced = 0;
  u.onReceiveSpace = () => { spaced++; };
  const got: number[] = [];
  while (r(LSR) & 1) got.push(r(RX));
  assert.deepEqual(got, Array.from({ length: 80 }, (_, i) => i));
  assert.equal(spaced, 1);
});

test('IRQ line is gated by OUT2 and off in loopback', () => {
  const { w, lines } = setup();
  w(IER, 0x02);
  assert.notEqual(lines.levels.get(4), true);
  w(MCR, 0x08);
  assert.equal(lines.levels.get(4), true);
  w(MCR, 0x18);
  assert.equal(lines.levels.get(4), false);
});

test('divisor latch, LCR and scratch register keep their values', () => {
  const { r, w } = setup();
  w(LCR, 0x83); w(0, 0x01); w(1, 0x00);
  assert.equal(r(0), 1); assert.equal(r(1), 0);
  w(LCR, 0x03);
  assert.equal(r(LCR), 0x03);
  w(SCR, 0x5a); assert.equal(r(SCR), 0x5a);
});

test('modem status deltas in loopback', () => {
  const { r, w } = setup();
  w(MCR, 0x10);
  r(MSR);
  w(MCR, 0x10 | 0x01); // DTR -> DSR
  assert.equal(r(MSR), 0x20 | 0x02);
  assert.equal(r(MSR), 0x20, 'delta cleared by read');
  w(MCR, 0x10 | 0x04); w(MCR, 0x10); // RI 1 -> 0: trailing edge
  assert.equal(r(MSR) & 0x04, 0x04);
});
