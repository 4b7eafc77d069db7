import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApicBus, LapicWindow, LocalApic, LAPIC_TIMER_HZ } from '../../src/devices/lapic.js';
import { MmioBus } from '../../src/platform/bus.js';
import { Pic } from '../../src/devices/pic.js';
import { manualClock } from './helpers.js';

function setup(n = 1) {
  const { clock, advance } = manualClock();
  const bus = new ApicBus();
  const lapics = Array.from({ length: n }, (_, i) => new LocalApic(i, clock, bus));
  const l = lapics[0];
  const rd = (reg: number) => l.mmioRead(reg, 4);
  const wr = (reg: number, v: number) => l.mmioWrite(reg, 4, v);
  wr(0xf0, 0x1ff); // software enable, spurious vector 0xff
  return { clock, advance, bus, lapics, l, rd, wr };
}

test('ID, version and software-disabled state at reset', () => {
  const { lapics } = setup(2);
  const l1 = lapics[1];
  assert.equal(l1.mmioRead(0x20, 4) >>> 24, 1);
  assert.equal(l1.mmioRead(0x30, 4), 0x00050014);
  assert.equal(l1.mmioRead(0xf0, 4), 0xff);
  l1.deliver(0x40, false);
  assert.equal(l1.pendingVector(), -1, 'a software-disabled APIC delivers nothing');
  assert.equal(l1.mmioRead(0x350, 4) & 0x10000, 0x10000, 'AP LINT0 masked');
});

test('acceptance by priority: TPR, ISR class and EOI order', () => {
  const { l, rd, wr } = setup();
  l.deliver(0x45, false);
  l.deliver(0x81, false);
  assert.equal(l.pendingVector(), 0x81);
  assert.equal(l.acknowledge(), 0x81);
  assert.equal(rd(0xa0), 0x80, 'PPR = ISR class');
  assert.equal(l.pendingVector(), -1, '0x45 is below the in-service class');
  l.deliver(0x92, false);
  assert.equal(l.pendingVector(), 0x92, 'higher class nests');
  assert.equal(l.acknowledge(), 0x92);
  wr(0xb0, 0); // EOI retires 0x92
  assert.equal(rd(0x100 + 0x40), 1 << 1, 'ISR word 4 holds 0x81 only');
  wr(0xb0, 0); // EOI retires 0x81
  assert.equal(l.pendingVector(), 0x45);
  l.setTpr(5);
  assert.equal(rd(0x80), 0x50);
  assert.equal(l.pendingVector(), -1, 'TPR class 5 blocks vector 0x45');
  assert.equal(l.acknowledge(), 0xff, 'acknowledging with nothing deliverable yields the spurious vector');
  l.setTpr(4);
  assert.equal(l.pendingVector(), -1, 'same class as TPR is still blocked');
  l.setTpr(3);
  assert.equal(l.getTpr(), 3);
  assert.equal(l.acknowledge(), 0x45);
  // IRR/ISR registers as 8 dwords.
  assert.equal(rd(0x100 + 0x20), 1 << 5);
});

test('illegal vectors set ESR instead of IRR', () => {
  const { l, rd, wr } = setup();
  l.deliver(5, false);
  assert.equal(l.pendingVector(), -1);
  wr(0x280, 0);
  assert.equal(rd(0x280) & 0x40, 0x40);
});

test('level-triggered vectors set TMR and broadcast EOI', () => {
  const { l, rd, wr } = setup();
  const eois: number[] = [];
  l.onEoiBroadcast = (v) => eois.push(v);
  l.deliver(0x61, true);
  assert.equal(rd(0x180 + 0x30) & 2, 2);
  l.acknowledge();
  wr(0xb0, 0);
  assert.deepEqual(eois, [0x61]);
  l.deliver(0x62, false);
  l.acknowledge();
  wr(0xb0, 0);
  assert.deepEqual(eois, [0x61], 'edge vectors do not broadcast');
});

test('auto-EOI delivery (SynIC) does not enter ISR', () => {
  const { l } = setup();
  l.deliver(0xf3, false, true);
  assert.equal(l.acknowledge(), 0xf3);
  l.deliver(0x50, false);
  assert.equal(l.pendingVector(), 0x50, 'nothing in service blocks lower vectors');
});

test('one-shot timer counts down at bus/divide and fires once', () => {
  const { l, rd, wr, advance } = setup();
  let kicks = 0;
  l.onInterruptPending = () => { kicks++; };
  wr(0x3e0, 0x3); // divide by 16
  wr(0x320, 0x30); // one-shot, vector 0x30
  wr(0x380, 1000);
  const nsPerTick = 16 * 1e9 / LAPIC_TIMER_HZ;
  advance(100 * nsPerTick);
  assert.equal(rd(0x390), 900);
  assert.equal(l.pendingVector(), -1);
  advance(900 * nsPerTick);
  assert.equal(rd(0x390), 0);
  assert.equal(l.pendingVector(), 0x30);
  assert.ok(kicks > 0, 'the halted vCPU is woken');
  l.acknowledge(); wr(0xb0, 0);
  advance(5000 * nsPerTick);
  assert.equal(l.pendingVector(), -1, 'one-shot fires once');
});

test('periodic timer reloads and keeps firing; masked timer counts silently', () => {
  const { l, rd, wr, advance } = setup();
  wr(0x3e0, 0xb); // divide by 1
  wr(0x320, 0x20000 | 0x31);
  wr(0x380, 100_000);
  let fired = 0;
  for (let i = 0; i < 5; i++) {
    advance(100_000);
    if (l.pendingVector() === 0x31) { l.acknowledge(); wr(0xb0, 0); fired++; }
  }
  assert.equal(fired, 5);
  advance(25_000);
  assert.equal(rd(0x390), 75_000);
  wr(0x320, 0x10000 | 0x20000 | 0x31);
  advance(300_000);
  assert.equal(l.pendingVector(), -1);
  assert.equal(rd(0x390), 75_000, 'still counting in periodic mode');
  wr(0x380, 0);
  assert.equal(rd(0x390), 0, 'initial count 0 stops the timer');
});

test('self IPI and fixed IPI to another APIC; INIT/SIPI recorded', () => {
  const { lapics, l, wr } = setup(2);
  const l1 = lapics[1];
  l1.mmioWrite(0xf0, 4, 0x1ff);
  wr(0x300, (1 << 18) | 0x55); // self shorthand
  assert.equal(l.pendingVector(), 0x55);
  wr(0x310, 1 << 24);
  wr(0x300, 0x66); // fixed, physical, destination APIC 1
  assert.equal(l1.pendingVector(), 0x66);
  wr(0x300, (5 << 8) | (1 << 14));
  assert.equal(l1.initPending, true);
  wr(0x300, (6 << 8) | 0x9a);
  assert.equal(l1.sipiVector, 0x9a);
  wr(0x300, (4 << 8)); // NMI
  assert.equal(l1.nmiPending(), true);
  l1.acknowledgeNmi();
  assert.equal(l1.nmiPending(), false);
});

test('logical flat destination', () => {
  const { lapics, bus } = setup(2);
  for (const [i, x] of lapics.entries()) { x.mmioWrite(0xf0, 4, 0x1ff); x.mmioWrite(0xd0, 4, (1 << i) << 24); }
  bus.deliver(0x02, true, 0, 0x70, false);
  assert.equal(lapics[0].pendingVector(), -1);
  assert.equal(lapics[1].pendingVector(), 0x70);
});

test('LINT0 ExtINT passes the 8259 vector through (virtual wire), even before software enable', () => {
  const { clock } = manualClock();
  const bus = new ApicBus();
  const l = new LocalApic(0, clock, bus);
  const pic = new Pic();
  l.extInt = pic;
  let woken = 0;
  l.onInterruptPending = () => { woken++; };
  pic.onIntrChange = () => l.extIntChanged();
  for (const [p, v] of [[0, 0x11], [1, 0x30], [1, 0x04], [1, 0x01], [1, 0xfe]] as const) pic.master.pioWrite(p, 1, v);
  pic.setIrq(0, true);
  assert.equal(woken, 1);
  assert.equal(l.pendingVector(), 0x30);
  assert.equal(l.acknowledge(), 0x30);
  assert.equal(pic.master.isr, 1);
  // Masking LINT0 (as Linux does on the BSP when the IOAPIC takes over) disconnects the PIC.
  l.mmioWrite(0xf0, 4, 0x1ff);
  l.mmioWrite(0x350, 4, 0x10700);
  pic.master.pioWrite(0, 1, 0x20);
  pic.setIrq(0, false); pic.setIrq(0, true);
  assert.equal(l.pendingVector(), -1);
});

test('IA32_APIC_BASE: disable then enable resets the APIC and brings back the initial APIC ID', () => {
  const { lapics } = setup(2);
  const l1 = lapics[1];
  l1.mmioWrite(0xf0, 4, 0x1ff);
  l1.mmioWrite(0x20, 4, 5 << 24);
  assert.equal(l1.mmioRead(0x20, 4) >>> 24, 5, 'the xAPIC ID is writable');
  l1.writeApicBase(0xfee00000);
  assert.equal(l1.mmioRead(0x30, 4), 0xffffffff, 'globally disabled: the page reads all ones');
  l1.writeApicBase(0xfee00800);
  assert.equal(l1.mmioRead(0x20, 4) >>> 24, 1, 'initial APIC ID again');
  assert.equal(l1.mmioRead(0xf0, 4), 0xff, 'software disabled, as after reset');
  assert.equal(l1.writeApicBase(0xfee00c00), false, 'x2APIC is refused');
});

test('IA32_APIC_BASE relocation: the APIC answers at its new base only, the others stay at the default', () => {
  const { clock } = manualClock();
  const bus = new ApicBus();
  const lapics = [0, 1].map((i) => new LocalApic(i, clock, bus));
  const mmio = new MmioBus();
  const other = { mmioRead: () => 0x1234, mmioWrite: () => {} };
  mmio.register(0xfec00000, 0x1000, other, 'ioapic');
  const w = new LapicWindow(lapics, mmio);
  const id = (addr: number): number => mmio.read(addr + 0x20, 4) >>> 24;
  w.current = 0;
  lapics[0].writeApicBase(0xfed40800);
  assert.equal(id(0xfed40000), 0);
  assert.equal(mmio.read(0xfee00030, 4), 0xffffffff, 'nothing at the old base for the moved APIC');
  w.current = 1;
  assert.equal(id(0xfee00000), 1, 'vCPU 1 still sees its APIC at the default base');
  assert.equal(mmio.read(0xfed40030, 4), 0xffffffff, 'and not at vCPU 0\'s');
  w.current = 0;
  mmio.write(0xfed400f0, 4, 0x1ff);
  assert.equal(lapics[0].mmioRead(0xf0, 4), 0x1ff, 'writes reach the relocated APIC');
  lapics[0].writeApicBase(0xfec00800);
  assert.equal(mmio.read(0xfec00000, 4), 0x1234, 'a base on another device leaves that device in place');
  lapics[0].reset();
  assert.equal(id(0xfee00000), 0, 'reset: back at the default base');
  assert.equal(mmio.claims(0xfed40000), false, 'the view nobody uses is unmapped');
});

test('timer mode changes keep the current count: periodic goes on, one-shot stops at zero, an expired one-shot stays at zero', () => {
  const { l, rd, wr, advance } = setup();
  wr(0x3e0, 0xb); // divide by 1: 1 ns per count
  wr(0x320, 0x10000 | 0x31); // one-shot, masked
  wr(0x380, 1000);
  advance(300);
  wr(0x320, 0x10000 | 0x20000 | 0x31); // to periodic mid-count
  assert.equal(rd(0x390), 700, 'not reloaded by the mode change');
  advance(900);
  assert.equal(rd(0x390), 800, 'periodic: reloaded at zero');
  wr(0x320, 0x10000 | 0x31); // to one-shot mid-count
  assert.equal(rd(0x390), 800);
  advance(500);
  assert.equal(rd(0x390), 300);
  advance(400);
  assert.equal(rd(0x390), 0, 'one-shot: counted down to zero');
  wr(0x320, 0x20000 | 0x31); // expired one-shot to periodic, unmasked
  advance(5000);
  assert.equal(rd(0x390), 0, 'nothing reloads an expired count');
  assert.equal(l.pendingVector(), -1, 'and it does not fire');
  assert.equal(rd(0x380), 1000, 'TMICT keeps its value');
  wr(0x380, 1000);
  advance(60_000); // periodic interrupts are paced to MIN_PERIODIC_NS
  assert.equal(l.pendingVector(), 0x31, 'a TMICT write starts it again');
});

test('the APIC bus reports IPIs sent to other APICs (so their vCPUs run soon), not self IPIs, INIT/SIPI or IOAPIC messages', () => {
  const { lapics, bus, wr } = setup(3);
  const hits: number[] = [];
  bus.onIpi = (t) => { hits.push(t.index); };
  for (const x of lapics) x.mmioWrite(0xf0, 4, 0x1ff);
  wr(0x300, (1 << 18) | 0x55); // self
  wr(0x310, 2 << 24); wr(0x300, 0x66); // fixed to APIC 2
  wr(0x300, (3 << 18) | (4 << 8)); // NMI to all but self
  wr(0x310, 1 << 24); wr(0x300, (5 << 8) | (1 << 14)); wr(0x300, (6 << 8) | 0x10); // INIT, SIPI
  bus.deliver(1, false, 0, 0x70, false); // IOAPIC-style, no source
  assert.deepEqual(hits, [2, 1, 2]);
});
