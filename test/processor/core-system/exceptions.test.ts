import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestMachine, stackTop, SEL, SYS_VIRT, IDT_PHYS } from '../../../src/processor/emulated/testing.js';
import { REG } from '../../../src/processor/emulated/testing-contract.js';
import * as mmu from '../../../src/processor/emulated/mmu.js';
import { raise, deliverFault, deliverInterrupt, softwareInterrupt } from '../../../src/processor/emulated/exceptions.js';
import { getRflags, setRflags } from '../../../src/processor/emulated/flags.js';
import { iret } from '../../../src/processor/emulated/system.js';
import { Seg } from '../../../src/processor/emulated/cpu-state.js';
import { faultOf, bareCpu } from './helpers.js';

const KCODE = 0x10000000;

function frame(m: ReturnType<typeof createTestMachine>, rsp: number, n: number): bigint[] {
  const b = m.readVirt(rsp, n * 8);
  const dv = new DataView(b.buffer);
  return Array.from({ length: n }, (_, i) => dv.getBigUint64(i * 8, true));
}

test('#PF from CPL 3 is delivered on an IST stack with SS:RSP, RFLAGS, CS, RIP and error code', () => {
  const m = createTestMachine({ cpl: 3 });
  const cpu = m.cpu;
  m.map(0x400000, 0x1000, { user: true });
  m.map(0x7ff000, 0x1000, { user: true, exec: false });
  m.map(KCODE, 0x1000, { user: false, writable: false });
  m.gateOptions(14, { ist: 2 });
  m.installIdt!({ 14: BigInt(KCODE) });
  cpu.rip = 0x400000;
  m.setReg(REG.rsp, 0x7fff08n); // misaligned on purpose: the frame is 16-byte aligned by IST anyway
  setRflags(cpu, 0x202);
  // Simulate the faulting read of an instruction at 0x400000.
  const f = faultOf(cpu, () => mmu.read64(cpu, 0x600000));
  assert.deepEqual(f, { vector: 14, errorCode: 4 });
  deliverFault(cpu);
  assert.equal(cpu.cpl, 0);
  assert.equal(cpu.rip, KCODE);
  assert.equal(cpu.segSel[Seg.CS], SEL.kernelCode);
  assert.equal(cpu.segSel[Seg.SS], 0, 'NULL SS with RPL 0 after a privilege change');
  const rsp = Number(m.getReg(REG.rsp) - (1n << 64n));
  assert.equal(rsp, stackTop(2) - 48);
  assert.deepEqual(frame(m, rsp, 6), [4n, 0x400000n, BigInt(SEL.userCode), 0x10202n, 0x7fff08n, BigInt(SEL.userData)], 'a fault saves RF set');
  assert.equal(getRflags(cpu) & 0x200, 0, 'interrupt gate clears IF');
  assert.equal(cpu.cr2, 0x600000);
});

test('same-privilege delivery aligns RSP, trap gates keep IF, IRETQ returns', () => {
  const m = createTestMachine({ cpl: 0 });
  const cpu = m.cpu;
  m.map(0x400000, 0x1000, { user: false });
  m.gateOptions(0x40, { trap: true });
  m.installIdt!({ 0x40: BigInt(KCODE) });
  cpu.rip = 0x400010;
  m.setReg(REG.rsp, 0x400ff8n);
  setRflags(cpu, 0x202 | 0x1); // IF, CF
  deliverInterrupt(cpu, 0x40);
  const rsp = Number(m.getReg(REG.rsp));
  assert.equal(rsp, 0x400ff0 - 40);
  assert.deepEqual(frame(m, rsp, 5), [0x400010n, BigInt(SEL.kernelCode), 0x203n, 0x400ff8n, BigInt(SEL.kernelData)]);
  assert.equal(getRflags(cpu) & 0x200, 0x200, 'trap gate keeps IF');
  setRflags(cpu, 0x2);
  iret(cpu, 8);
  assert.equal(cpu.rip, 0x400010);
  assert.equal(Number(m.getReg(REG.rsp)), 0x400ff8);
  assert.equal(getRflags(cpu), 0x203);
});

test('software INT checks the gate DPL; INT3 through a DPL 3 gate works from user mode', () => {
  const m = createTestMachine({ cpl: 3 });
  const cpu = m.cpu;
  m.map(0x7ff000, 0x1000, { user: true });
  m.installIdt!({ 3: BigInt(KCODE), 0x80: BigInt(KCODE + 0x100), 13: BigInt(KCODE + 0x200) });
  cpu.rip = 0x400000;
  m.setReg(REG.rsp, 0x800000n);
  // INT 0x80 with a DPL 0 gate from CPL 3: #GP(vector*8+2) delivered to the #GP handler.
  softwareInterrupt(cpu, 0x80, 0x400002, 'int');
  assert.equal(cpu.rip, KCODE + 0x200);
  let rsp = Number(m.getReg(REG.rsp) - (1n << 64n));
  assert.equal(rsp, stackTop(0) - 48);
  assert.deepEqual(frame(m, rsp, 2), [0x80n * 8n + 2n, 0x400000n], 'error code names the IDT entry; RIP is the INT itself');
  // Back to user (drop the error code first, as a handler does), then INT3 through its DPL 3 gate.
  m.setReg(REG.rsp, m.getReg(REG.rsp) + 8n);
  iret(cpu, 8);
  cpu.rip = 0x400000; // iret pops the original RIP; make sure we are at the INT3
  assert.equal(cpu.cpl, 3);
  softwareInterrupt(cpu, 0, 0x400001, 'int3');
  assert.equal(cpu.rip, KCODE);
  rsp = Number(m.getReg(REG.rsp) - (1n << 64n));
  assert.deepEqual(frame(m, rsp, 2), [0x400001n, BigInt(SEL.userCode)]);
});

test('#GP while delivering #GP escalates to #DF; a fault while delivering #DF is a triple fault', () => {
  const m = createTestMachine({ cpl: 0 });
  const cpu = m.cpu;
  m.map(0x400000, 0x1000, { user: false });
  m.installIdt!({ 8: BigInt(KCODE) });
  // Gate 13 with a NULL code selector -> #GP during delivery of #GP -> #DF.
  const view = m.platform.memory.view;
  view.setUint32(IDT_PHYS + 13 * 16 + 4, 0x8e00, true);
  cpu.rip = 0x400100;
  m.setReg(REG.rsp, 0x401000n);
  assert.equal(faultOf(cpu, () => raise(cpu, 13, 0))?.vector, 13);
  deliverFault(cpu);
  assert.equal(cpu.rip, KCODE);
  const rsp = Number(m.getReg(REG.rsp));
  assert.deepEqual(frame(m, rsp, 2), [0n, 0x400100n], '#DF pushes error code 0');
  // Now make the #DF gate not present too: #GP -> #DF -> #NP -> triple fault.
  view.setUint32(IDT_PHYS + 8 * 16 + 4, 0x0e00, true);
  cpu.rip = 0x400100;
  assert.equal(faultOf(cpu, () => raise(cpu, 13, 0))?.vector, 13);
  deliverFault(cpu);
  assert.deepEqual(m.platform.resets, ['triple fault']);
  assert.equal(cpu.halted, true);
});

test('#PF during delivery of #PF (unmapped stack) escalates to #DF on its IST stack', () => {
  const m = createTestMachine({ cpl: 0 });
  const cpu = m.cpu;
  m.gateOptions(8, { ist: 1 });
  m.installIdt!({ 8: BigInt(KCODE), 14: BigInt(KCODE + 0x40) });
  cpu.rip = 0x400100;
  m.setReg(REG.rsp, 0x900000n); // not mapped
  assert.equal(faultOf(cpu, () => mmu.read8(cpu, 0x123000))?.vector, 14);
  deliverFault(cpu);
  assert.equal(cpu.rip, KCODE);
  assert.equal(Number(m.getReg(REG.rsp) - (1n << 64n)), stackTop(1) - 48);
});

test('real-mode delivery through the IVT', () => {
  const { cpu } = bareCpu(1 << 20);
  const view = cpu.platform.memory.view;
  cpu.cr0 = 0x60000010; cpu.mode = 0; cpu.idtrBase = 0; cpu.idtrLimit = 0x3ff;
  view.setUint16(0x21 * 4, 0x1234, true); view.setUint16(0x21 * 4 + 2, 0x2000, true);
  cpu.segSel[Seg.CS] = 0x1000; cpu.segBase[Seg.CS] = 0x10000;
  cpu.segSel[Seg.SS] = 0x3000; cpu.segBase[Seg.SS] = 0x30000;
  cpu.gpr[8] = 0x100;
  setRflags(cpu, 0x203);
  softwareInterrupt(cpu, 0x21, 0x55, 'int');
  assert.equal(cpu.segBase[Seg.CS], 0x20000);
  assert.equal(cpu.rip, 0x1234);
  assert.equal(cpu.gpr[8], 0xfa);
  assert.deepEqual([view.getUint16(0x300fa, true), view.getUint16(0x300fc, true), view.getUint16(0x300fe, true)], [0x55, 0x1000, 0x203]);
  assert.equal(getRflags(cpu) & 0x200, 0);
  iret(cpu, 2);
  assert.equal(cpu.rip, 0x55);
  assert.equal(cpu.segBase[Seg.CS], 0x10000);
  assert.equal(getRflags(cpu), 0x203);
});

test('guest program: INT3 from user mode, handler IRETQ back, then HLT at CPL 3 is reported as #GP', () => {
  const m = createTestMachine({ cpl: 3 });
  m.map(0x400000, 0x1000, { user: true, writable: false });
  m.map(0x7ff000, 0x1000, { user: true, exec: false });
  m.map(KCODE, 0x1000, { user: false, writable: false });
  m.writeVirt(0x400000, new Uint8Array([0xcc, 0xf4]));
  m.writeVirt(KCODE, new Uint8Array([0x48, 0xcf]));
  m.installIdt!({ 3: BigInt(KCODE) });
  m.rip = 0x400000n;
  m.setReg(REG.rsp, 0x800000n);
  const r = m.run({ maxInsns: 100 });
  assert.equal(r.kind, 'exception');
  if (r.kind !== 'exception') return;
  assert.equal(r.vector, 13);
  assert.equal(r.rip, 0x400001n);
  assert.equal(m.cpu.cpl, 3);
  assert.equal(m.getReg(REG.rsp), 0x800000n);
  void SYS_VIRT;
});

test('RF: faults save RFLAGS.RF set, interrupts do not, and IRET does not leave RF live (kvm-unit-tests idt_test)', () => {
  const m = createTestMachine({ cpl: 0 });
  const cpu = m.cpu;
  m.map(0x400000, 0x1000, { user: false });
  m.installIdt!({ 6: BigInt(KCODE), 0x40: BigInt(KCODE) });
  cpu.rip = 0x400010;
  m.setReg(REG.rsp, 0x400ff8n);
  setRflags(cpu, 0x202);
  assert.equal(faultOf(cpu, () => raise(cpu, 6))?.vector, 6);
  deliverFault(cpu);
  let rsp = Number(m.getReg(REG.rsp));
  assert.equal(frame(m, rsp, 3)[2], 0x10202n, '#UD frame has RF');
  assert.equal(getRflags(cpu) & 0x10000, 0, 'RF clear in the handler');
  iret(cpu, 8);
  assert.equal(cpu.rip, 0x400010);
  assert.equal(getRflags(cpu) & 0x10000, 0, 'RF from the frame is not kept live');
  deliverInterrupt(cpu, 0x40);
  rsp = Number(m.getReg(REG.rsp));
  assert.equal(frame(m, rsp, 3)[2], 0x202n, 'an interrupt frame after the IRET has RF clear');
});
