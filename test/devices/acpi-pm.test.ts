import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AcpiPm, PM_TIMER_HZ } from '../../src/devices/acpi-pm.js';
import type { IrqRouter } from '../../src/devices/irq.js';
import { ACPI_S5_SLP_TYP } from '../../src/platform/layout.js';
import { LineRecorder, manualClock } from './helpers.js';

function setup() {
  const { clock, advance } = manualClock();
  const lines = new LineRecorder();
  const events: string[] = [];
  const pm = new AcpiPm(clock, lines as unknown as IrqRouter, (c, r) => events.push(`shutdown ${c} ${r}`), (r) => events.push(`reset ${r}`));
  return { pm, lines, events, advance };
}

test('PM timer runs at 3.579545 MHz and wraps at 24 bits', () => {
  const { pm, advance } = setup();
  const t0 = pm.pm1Block.pioRead(8, 4);
  advance(1e9);
  const t1 = pm.pm1Block.pioRead(8, 4);
  assert.equal((t1 - t0 + 0x1000000) % 0x1000000, PM_TIMER_HZ % 0x1000000);
  advance(5e9);
  assert.ok(pm.pm1Block.pioRead(8, 4) < 0x1000000);
  assert.equal(pm.pm1Block.pioRead(8, 4) >>> 24, 0);
});

test('SCI_EN always set; SLP_EN with SLP_TYP S5 powers off', () => {
  const { pm, events } = setup();
  assert.equal(pm.pm1Block.pioRead(4, 2) & 1, 1);
  pm.pm1Block.pioWrite(4, 2, 0);
  assert.equal(pm.pm1Block.pioRead(4, 2) & 1, 1);
  pm.pm1Block.pioWrite(4, 2, (ACPI_S5_SLP_TYP << 10) | 1);
  assert.deepEqual(events, [], 'SLP_TYP alone does nothing');
  pm.pm1Block.pioWrite(4, 2, (ACPI_S5_SLP_TYP << 10) | (1 << 13));
  assert.deepEqual(events, ['shutdown 0 ACPI S5 power-off']);
  assert.equal(pm.pm1Block.pioRead(4, 2) & (1 << 13), 0, 'SLP_EN reads as 0');
});

test('reset register 0xcf9 value 6 resets', () => {
  const { pm, events } = setup();
  pm.resetPort.pioWrite(0, 1, 0x02);
  assert.deepEqual(events, []);
  pm.resetPort.pioWrite(0, 1, 0x06);
  assert.deepEqual(events, ['reset reset control register 0xcf9']);
});

test('power button raises SCI (level) until its status is cleared', () => {
  const { pm, lines } = setup();
  pm.pressPowerButton();
  assert.notEqual(lines.levels.get(9), true, 'not enabled yet');
  pm.pm1Block.pioWrite(2, 2, 1 << 8);
  assert.equal(lines.levels.get(9), true);
  assert.equal(pm.pm1Block.pioRead(0, 2) & (1 << 8), 1 << 8);
  pm.pm1Block.pioWrite(0, 2, 1 << 8);
  assert.equal(lines.levels.get(9), false);
});

test('GPE0 status/enable and timer overflow status', () => {
  const { pm, lines, advance } = setup();
  pm.gpe0Block.pioWrite(4, 1, 0x02);
  pm.raiseGpe(1);
  assert.equal(lines.levels.get(9), true);
  assert.equal(pm.gpe0Block.pioRead(0, 4), 0x02);
  pm.gpe0Block.pioWrite(0, 1, 0x02);
  assert.equal(lines.levels.get(9), false);
  pm.pm1Block.pioWrite(2, 2, 1); // TMR_EN
  advance(2.5e9); // > 2^23 ticks
  assert.equal(lines.levels.get(9), true);
  assert.equal(pm.pm1Block.pioRead(0, 2) & 1, 1);
});
