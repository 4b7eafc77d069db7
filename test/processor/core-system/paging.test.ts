import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestMachine } from '../../../src/processor/emulated/testing.js';
import * as mmu from '../../../src/processor/emulated/mmu.js';
import { movToCr } from '../../../src/processor/emulated/system.js';
import { faultOf, bareCpu, longMode } from './helpers.js';

const PF = 14;

test('read/write through the TLB agree with guest memory; A and D bits are set', () => {
  const m = createTestMachine();
  const cpu = m.cpu;
  m.map(0x400000, 0x2000, { user: true, writable: true });
  assert.equal(m.pteLow(0x400000) & 0x60, 0);
  assert.equal(mmu.read32(cpu, 0x400010), 0);
  assert.equal(m.pteLow(0x400000) & 0x60, 0x20, 'A set by a read, D still clear');
  mmu.write32(cpu, 0x400010, 0xdeadbeef);
  assert.equal(m.pteLow(0x400000) & 0x60, 0x60, 'D set by a write');
  mmu.write64(cpu, 0x400ffc, 0x11223344, 0x55667788 | 0); // crosses into the next page
  assert.deepEqual([...m.readVirt(0x400ffc, 8)], [0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55]);
  assert.equal(mmu.read32(cpu, 0x400010), 0xdeadbeef);
  assert.equal(mmu.read64(cpu, 0x400ffc), 0x11223344);
  assert.equal(cpu.memHi, 0x55667788);
  assert.equal(mmu.read16(cpu, 0x400fff), 0x8811);
  assert.equal(m.pteLow(0x401000) & 0x60, 0x60);
});

test('page-fault error codes and CR2', () => {
  const m = createTestMachine();
  const cpu = m.cpu;
  m.map(0x500000, 0x1000, { user: false, writable: true });
  m.map(0x501000, 0x1000, { user: true, writable: false });
  m.map(0x502000, 0x1000, { user: true, writable: true, exec: false });
  // Supervisor read of an unmapped page: not present.
  assert.deepEqual(faultOf(cpu, () => mmu.read8(cpu, 0x600123)), { vector: PF, errorCode: 0 });
  assert.equal(cpu.cr2, 0x600123);
  m.setCpl(3);
  assert.deepEqual(faultOf(cpu, () => mmu.write8(cpu, 0x600000, 1)), { vector: PF, errorCode: 6 });
  assert.deepEqual(faultOf(cpu, () => mmu.read8(cpu, 0x500004)), { vector: PF, errorCode: 5 }, 'user read of supervisor page');
  assert.equal(cpu.cr2, 0x500004);
  assert.deepEqual(faultOf(cpu, () => mmu.write32(cpu, 0x501000, 1)), { vector: PF, errorCode: 7 }, 'user write to read-only');
  assert.equal(mmu.read32(cpu, 0x501000), 0, 'user read of read-only page works');
  assert.deepEqual(faultOf(cpu, () => mmu.translateFetch(cpu, 0x502000)), { vector: PF, errorCode: 0x15 }, 'NX user fetch');
  m.setCpl(0);
  assert.deepEqual(faultOf(cpu, () => mmu.translateFetch(cpu, 0x502000)), { vector: PF, errorCode: 0x11 });
  // Supervisor write to a read-only page: faults with CR0.WP, allowed without.
  assert.deepEqual(faultOf(cpu, () => mmu.write8(cpu, 0x501000, 1)), { vector: PF, errorCode: 3 });
  movToCr(cpu, 0, (cpu.cr0 & ~0x10000) >>> 0, 0);
  mmu.write8(cpu, 0x501000, 0x5a);
  assert.equal(m.readVirt(0x501000, 1)[0], 0x5a);
  // Supervisor-implicit accesses ignore CPL for U/S.
  m.setCpl(3);
  mmu.writeSys32(cpu, 0x500000, 0x1234);
  assert.equal(mmu.readSys32(cpu, 0x500000), 0x1234);
  // Non-canonical address: #GP(0).
  assert.deepEqual(faultOf(cpu, () => mmu.read8(cpu, 0x800000000000)), { vector: 13, errorCode: 0 });
});

test('a write crossing into a read-only page faults without writing the first page', () => {
  const m = createTestMachine();
  const cpu = m.cpu;
  m.map(0x700000, 0x1000, { writable: true });
  m.map(0x701000, 0x1000, { writable: false });
  m.setCpl(3);
  const f = faultOf(cpu, () => mmu.write32(cpu, 0x700ffe, 0x01020304));
  assert.deepEqual(f, { vector: PF, errorCode: 7 });
  assert.equal(cpu.cr2, 0x701000);
  assert.deepEqual([...m.readVirt(0x700ffe, 2)], [0, 0]);
  assert.deepEqual(faultOf(cpu, () => mmu.probeWrite(cpu, 0x700ff0, 0x20)), { vector: PF, errorCode: 7 });
});

test('TLB invalidation: stale until invlpg, CR3 write flushes non-global, CR4.PGE toggle flushes global', () => {
  const m = createTestMachine();
  const cpu = m.cpu;
  m.map(0x800000, 0x1000);
  m.map(0x900000, 0x1000);
  mmu.write32(cpu, 0x800000, 111);
  mmu.write32(cpu, 0x900000, 222);
  const paOld = m.virtToPhys(0x800000), paOther = m.virtToPhys(0x900000);
  // Point 0x800000 at the frame of 0x900000 behind the TLB's back.
  const view = m.platform.memory.view;
  const retarget = (): void => {
    const lo = m.pteLow(0x800000);
    m.setPteFlags(0x800000, lo & 0xfff, false);
    // rewrite frame: find the PTE by walking with virtToPhys is host-side; simplest: swap frame bytes in place
    view.setUint32(paOld, 333, true);
  };
  retarget();
  assert.equal(mmu.read32(cpu, 0x800000), 333, 'same frame, value visible (TLB maps to RAM directly)');
  m.unmap(0x800000, 0x1000); // unmap invalidates
  assert.equal(faultOf(cpu, () => mmu.read32(cpu, 0x800000))?.vector, PF);
  // Stale translation: clear the PTE without invlpg -> still readable; after invlpg -> fault.
  assert.equal(mmu.read32(cpu, 0x900000), 222);
  const pteLo = m.pteLow(0x900000);
  m.setPteFlags(0x900000, pteLo & 0xffe, false); // clear P
  assert.equal(mmu.read32(cpu, 0x900000), 222, 'stale TLB entry still used');
  mmu.invlpg(cpu, 0x900000);
  assert.equal(faultOf(cpu, () => mmu.read32(cpu, 0x900000))?.vector, PF);
  // Global page survives a CR3 reload but not a CR4.PGE toggle.
  m.setPteFlags(0x900000, (pteLo | 0x100) & 0xfff, false);
  assert.equal(mmu.read32(cpu, 0x900000), 222);
  m.setPteFlags(0x900000, (pteLo | 0x100) & 0xffe, false);
  movToCr(cpu, 3, cpu.cr3, 0);
  assert.equal(mmu.read32(cpu, 0x900000), 222, 'global entry kept across CR3 write');
  movToCr(cpu, 4, cpu.cr4 & ~0x80, 0);
  assert.equal(faultOf(cpu, () => mmu.read32(cpu, 0x900000))?.vector, PF, 'PGE toggle flushed it');
  void paOther;
});

test('2M and 1G pages, invlpg of a large page, kernel-half addresses', () => {
  const { cpu, pte, rd } = bareCpu(16 * 1024 * 1024);
  // PML4 at 0x1000; PDPT at 0x2000 (entry 0) ; PD at 0x3000; kernel-half PDPT at 0x4000.
  pte(0x1000, 0x2000 | 7);
  pte(0x1000 + 511 * 8, 0x4000 | 3);
  pte(0x2000, 0x3000 | 7);
  pte(0x3000 + 8, 0x200000 | 0x87); // 2M page at virt 0x200000 -> phys 0x200000, user, rw
  pte(0x2000 + 8, 0x000000 | 0x83, 0x80000000); // 1G page at virt 0x40000000 -> phys 0, NX, supervisor
  pte(0x4000 + 510 * 8, 0x000000 | 0x83); // 0xffffffff80000000 -> phys 0 (1G)
  longMode(cpu, 0x1000);
  const view = cpu.platform.memory.view;
  view.setUint32(0x345678, 0xcafef00d, true);
  assert.equal(mmu.read32(cpu, 0x345678), 0xcafef00d);
  assert.equal(rd(0x3008) & 0x20, 0x20);
  assert.equal(mmu.read32(cpu, 0x40345678), 0xcafef00d, '1G page');
  assert.equal(mmu.read32(cpu, -0x80000000 + 0x345678), 0xcafef00d, 'kernel-half 1G page');
  assert.equal(faultOf(cpu, () => mmu.translateFetch(cpu, 0x40000000))?.errorCode, 0x11, 'NX on 1G page');
  // Reserved bits in a 2M PDE (bit 13) -> RSVD fault.
  pte(0x3000 + 16, 0x400000 | 0x2000 | 0x83);
  assert.deepEqual(faultOf(cpu, () => mmu.read8(cpu, 0x400000)), { vector: 14, errorCode: 9 });
  // Retarget the 2M page; an invlpg anywhere inside it drops all its 4K pieces.
  mmu.read32(cpu, 0x3ff000);
  pte(0x3000 + 8, 0x600000 | 0x87);
  view.setUint32(0x7ff000, 77, true);
  assert.equal(mmu.read32(cpu, 0x3ff000), 0, 'stale');
  mmu.invlpg(cpu, 0x200000);
  assert.equal(mmu.read32(cpu, 0x3ff000), 77, 'whole 2M page invalidated');
});

test('legacy 32-bit paging with 4M pages, PAE paging, paging off', () => {
  const { cpu, pte } = bareCpu(16 * 1024 * 1024);
  const view = cpu.platform.memory.view;
  view.setUint32(0x801234, 0x600df00d, true);
  // Paging off: physical = linear.
  cpu.cr0 = 0x11; mmu.flushTlb(cpu, true);
  assert.equal(mmu.read32(cpu, 0x801234), 0x600df00d);
  // 32-bit: PD at 0x1000; 4M page for 0xc0000000 -> phys 0x800000; 4K page for 0x1000 via PT at 0x2000.
  view.setUint32(0x1000 + (0xc0000000 >>> 22) * 4, 0x800000 | 0x87, true);
  view.setUint32(0x1000 + 0 * 4, 0x2000 | 7, true);
  view.setUint32(0x2000 + 5 * 4, 0x801000 | 7, true);
  cpu.cr3 = 0x1000; cpu.cr4 = 0x10; cpu.cr0 = 0x80000011 | 0; mmu.flushTlb(cpu, true);
  assert.equal(mmu.read32(cpu, 0xc0001234), 0x600df00d);
  assert.equal(mmu.read32(cpu, 0x5234), 0x600df00d);
  // PAE: PDPT at 0x3000 (32-byte aligned), PD at 0x4000, 2M page 0x40000000+0x200000 -> phys 0x800000.
  pte(0x3000 + 8, 0x4000 | 1);
  pte(0x4000 + 8, 0x800000 | 0x87);
  cpu.cr3 = 0x3000; cpu.cr4 = 0x20; mmu.flushTlb(cpu, true);
  assert.equal(mmu.read32(cpu, 0x40201234), 0x600df00d);
  assert.equal(faultOf(cpu, () => mmu.read32(cpu, 0x80000000))?.vector, 14);
});

test('MMIO goes to the bus, wide accesses split into 4-byte ones, never cached', () => {
  const { cpu, plat } = bareCpu(16 * 1024 * 1024);
  const log: string[] = [];
  plat.mmio.register(0xfee00000, 0x1000, {
    mmioRead: (off, size) => { log.push(`r${off}:${size}`); return 0x1000 + off; },
    mmioWrite: (off, size, v) => { log.push(`w${off}:${size}=${v.toString(16)}`); },
  }, 'test');
  cpu.cr0 = 0x11; mmu.flushTlb(cpu, true);
  assert.equal(mmu.read32(cpu, 0xfee00020), 0x1020);
  assert.equal(mmu.read32(cpu, 0xfee00020), 0x1020);
  mmu.write64(cpu, 0xfee00030, 0xaabbccdd, 0x11223344);
  assert.equal(mmu.read64(cpu, 0xfee00040), 0x1040);
  assert.equal(cpu.memHi, 0x1044);
  assert.deepEqual(log, ['r32:4', 'r32:4', 'w48:4=aabbccdd', 'w52:4=11223344', 'r64:4', 'r68:4']);
});

test('stores to code pages reach onCodeWrite even after the page was in the write TLB', () => {
  const m = createTestMachine();
  const cpu = m.cpu;
  m.map(0xa00000, 0x1000);
  const seen: number[] = [];
  cpu.onCodeWrite = (ppn) => { seen.push(ppn); };
  mmu.write8(cpu, 0xa00000, 1); // now in the write TLB
  const ppn = m.virtToPhys(0xa00000) / 4096;
  cpu.codePages[ppn] = 1;
  mmu.dropWriteMappings(cpu, ppn);
  mmu.write8(cpu, 0xa00001, 2);
  mmu.write32(cpu, 0xa00010, 3);
  assert.deepEqual(seen, [ppn, ppn]);
  assert.deepEqual([...m.readVirt(0xa00000, 2)], [1, 2]);
});
