import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPlatformDevices } from '../../src/devices/platform-devices.js';
import { IoBus, MmioBus } from '../../src/platform/bus.js';
import { COM1_PORT, IOAPIC_BASE, LAPIC_BASE } from '../../src/platform/layout.js';
import { PIT_HZ } from '../../src/devices/pit.js';
import { manualClock } from './helpers.js';

function setup(vcpuCount = 1) {
  const { clock, advance } = manualClock();
  const io = new IoBus();
  const mmio = new MmioBus();
  const events: string[] = [];
  const d = createPlatformDevices({ io, mmio, clock, vcpuCount, onShutdown: (c, r) => events.push(`shutdown ${c} ${r}`),
    onReset: (r) => events.push(`reset ${r}`), rtcEpochMs: Date.UTC(2023, 0, 1) });
  return { d, io, mmio, events, advance };
}

test('PIT IRQ0 reaches the LAPIC through IOAPIC pin 2 (MADT override)', () => {
  const { d, io, mmio, advance } = setup();
  mmio.write(LAPIC_BASE + 0xf0, 4, 0x1ff);
  mmio.write(IOAPIC_BASE, 4, 0x10 + 4); // pin 2 low dword
  mmio.write(IOAPIC_BASE + 0x10, 4, 0x30);
  let woken = 0;
  d.lapics[0].onInterruptPending = () => { woken++; };
  io.write(0x43, 1, 0x34);
  const n = Math.round(PIT_HZ / 100);
  io.write(0x40, 1, n & 0xff); io.write(0x40, 1, n >> 8);
  advance(10_100_000);
  assert.ok(woken > 0);
  assert.equal(d.lapics[0].pendingVector(), 0x30);
  d.lapics[0].acknowledge();
  mmio.write(LAPIC_BASE + 0xb0, 4, 0);
  assert.equal(d.lapics[0].pendingVector(), -1);
});

test('legacy mode: PIT IRQ0 through the 8259 and LINT0 ExtINT', () => {
  const { d, io, advance } = setup();
  for (const [p, v] of [[0x20, 0x11], [0x21, 0x30], [0x21, 0x04], [0x21, 0x01], [0x21, 0xfe], [0xa1, 0xff]]) io.write(p, 1, v);
  io.write(0x43, 1, 0x30); io.write(0x40, 1, 10); io.write(0x40, 1, 0);
  advance(20_000);
  assert.equal(d.lapics[0].pendingVector(), 0x30);
  assert.equal(d.lapics[0].acknowledge(), 0x30);
});

test('UART at COM1 on the I/O bus, output delivered to the host, IRQ4 through the IOAPIC', () => {
  const { d, io, mmio } = setup();
  const out: number[] = [];
  d.uart.onTransmit((b) => out.push(...b));
  for (const c of 'ok\n') io.write(COM1_PORT, 1, c.charCodeAt(0));
  d.uart.flush();
  assert.equal(String.fromCharCode(...out), 'ok\n');
  mmio.write(LAPIC_BASE + 0xf0, 4, 0x1ff);
  mmio.write(IOAPIC_BASE, 4, 0x10 + 8);
  mmio.write(IOAPIC_BASE + 0x10, 4, 0x24);
  io.write(COM1_PORT + 4, 1, 0x0b); // DTR, RTS, OUT2
  io.write(COM1_PORT + 1, 1, 0x01); // RX interrupt
  d.uart.receive(new Uint8Array([0x41]));
  assert.equal(d.lapics[0].pendingVector(), 0x24);
  assert.equal(io.read(COM1_PORT, 1), 0x41);
});

test('LAPIC window goes to the running VP', () => {
  const { d, mmio } = setup(2);
  d.lapicWindow.current = 1;
  assert.equal(mmio.read(LAPIC_BASE + 0x20, 4) >>> 24, 1);
  d.lapicWindow.current = 0;
  assert.equal(mmio.read(LAPIC_BASE + 0x20, 4) >>> 24, 0);
});

test('power-off and reset paths: ACPI S5, 0xcf9, i8042 0xFE, port 0x92, isa-debug-exit', () => {
  const { io, events } = setup();
  io.write(0x604, 2, (5 << 10) | (1 << 13));
  io.write(0xcf9, 1, 0x06);
  io.write(0x64, 1, 0xfe);
  io.write(0x92, 1, 0x03);
  io.write(0xf4, 1, 0x10);
  io.write(0xf4, 4, 0xffffffff);
  assert.deepEqual(events, [
    'shutdown 0 ACPI S5 power-off',
    'reset reset control register 0xcf9',
    'reset i8042 reset command',
    'reset port 0x92 fast reset',
    'shutdown 33 isa-debug-exit wrote 0x10',
    'shutdown 8589934591 isa-debug-exit wrote 0xffffffff',
  ]);
});

test('i8042 probe sequence as Linux runs it', () => {
  const { io } = setup();
  const cmd = (c: number) => io.write(0x64, 1, c);
  const readData = () => { assert.equal(io.read(0x64, 1) & 1, 1, 'output buffer full'); return io.read(0x60, 1); };
  assert.equal(io.read(0x64, 1) & 0x02, 0, 'input buffer never busy');
  cmd(0xaa); assert.equal(readData(), 0x55);
  cmd(0x20); const ctr = readData();
  cmd(0x60); io.write(0x60, 1, ctr & ~0x03); // interrupts off
  cmd(0x20); assert.equal(readData(), ctr & ~0x03);
  cmd(0xd3); io.write(0x60, 1, 0x5a); // AUX loopback
  assert.equal(io.read(0x64, 1) & 0x20, 0x20, 'data marked as from AUX');
  assert.equal(readData(), 0x5a);
  cmd(0xa7); cmd(0x20); assert.equal(readData() & 0x20, 0x20, 'AUX disabled bit');
  cmd(0xa8); cmd(0x20); assert.equal(readData() & 0x20, 0);
  cmd(0xab); assert.equal(readData(), 0x00);
  io.write(0x60, 1, 0xf2); // keyboard GET ID: no keyboard
  assert.equal(io.read(0x64, 1) & 0x40, 0x40, 'timeout');
  assert.equal(readData(), 0xfe);
  assert.equal(io.read(0x64, 1) & 1, 0);
});

test('unclaimed neighbours stay unclaimed and POST writes are sunk', () => {
  const { d, io } = setup();
  io.write(0x80, 1, 0x42);
  assert.equal(d.post.last, 0x42);
  assert.equal(io.read(0x80, 1), 0xff);
  assert.equal(io.read(0x606, 1), 0xff, 'gap in the PM1 block');
});

test('save and restore of the device state round-trips', () => {
  const a = setup();
  a.io.write(0x21, 1, 0x5a);
  a.io.write(COM1_PORT + 7, 1, 0x77);
  a.mmio.write(LAPIC_BASE + 0x80, 4, 0x20);
  const s = JSON.parse(JSON.stringify(a.d.saveState()));
  const b = setup();
  b.d.restoreState(s);
  assert.equal(b.io.read(0x21, 1), 0x5a);
  assert.equal(b.io.read(COM1_PORT + 7, 1), 0x77);
  assert.equal(b.mmio.read(LAPIC_BASE + 0x80, 4), 0x20);
  b.d.reset();
  assert.equal(b.io.read(0x21, 1), 0xff, 'power-on IMR: all masked');
  assert.equal(b.mmio.read(LAPIC_BASE + 0x80, 4), 0);
});
