import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestMachine, SEL, GDT_PHYS, TSS_PHYS } from '../../../src/processor/emulated/testing.js';
import { REG } from '../../../src/processor/emulated/testing-contract.js';
import * as sys from '../../../src/processor/emulated/system.js';
import { readMsr, writeMsr, MSR } from '../../../src/processor/emulated/msr.js';
import { cpuidValue } from '../../../src/processor/emulated/cpuid.js';
import { getRflags, setRflags } from '../../../src/processor/emulated/flags.js';
import { Seg, Mode } from '../../../src/processor/emulated/cpu-state.js';
import { faultOf, bareCpu } from './helpers.js';

const KCODE = 0x10000000;

test('guest program: SYSCALL enters the kernel with STAR/LSTAR/SFMASK, SYSRETQ returns to user mode', () => {
  const m = createTestMachine({ cpl: 3 });
  const cpu = m.cpu;
  m.map(0x400000, 0x1000, { user: true, writable: false });
  m.map(KCODE, 0x1000, { user: false, writable: false });
  m.writeVirt(0x400000, new Uint8Array([0x0f, 0x05, 0xf4])); // syscall; hlt
  m.writeVirt(KCODE, new Uint8Array([0x48, 0x0f, 0x07])); // sysretq
  cpu.lstar = KCODE;
  cpu.sfmask = 0x200 | 0x100; // IF TF
  m.rip = 0x400000n;
  m.rflags = 0x246n;
  let r = m.run({ stopAt: BigInt(KCODE), maxInsns: 10 });
  assert.equal(r.kind, 'stopped');
  assert.equal(cpu.cpl, 0);
  assert.equal(cpu.segSel[Seg.CS], SEL.kernelCode);
  assert.equal(cpu.segSel[Seg.SS], SEL.kernelData);
  assert.equal(m.getReg(REG.rcx), 0x400002n);
  assert.equal(m.getReg(REG.r11), 0x246n);
  assert.equal(getRflags(cpu) & 0x200, 0, 'SFMASK cleared IF');
  r = m.run({ maxInsns: 10 });
  assert.equal(r.kind, 'exception');
  if (r.kind === 'exception') { assert.equal(r.vector, 13); assert.equal(r.rip, 0x400002n); }
  assert.equal(cpu.cpl, 3);
  assert.equal(cpu.segSel[Seg.CS], SEL.userCode);
  assert.equal(cpu.segSel[Seg.SS], SEL.userData);
  assert.equal(getRflags(cpu), 0x246);
});

test('SYSRET checks: #UD without EFER.SCE, #GP at CPL 3 or with a non-canonical RCX; SYSENTER is #UD in long mode', () => {
  const m = createTestMachine({ cpl: 0 });
  const cpu = m.cpu;
  m.setReg(REG.rcx, 0x0000800000000000n);
  assert.deepEqual(faultOf(cpu, () => sys.sysret(cpu, true)), { vector: 13, errorCode: 0 });
  m.setCpl(3);
  m.setReg(REG.rcx, 0x1000n);
  assert.deepEqual(faultOf(cpu, () => sys.sysret(cpu, true)), { vector: 13, errorCode: 0 });
  cpu.efer &= ~1;
  assert.equal(faultOf(cpu, () => sys.syscall(cpu, 0x400002))?.vector, 6);
  assert.equal(faultOf(cpu, () => sys.sysenter(cpu))?.vector, 6);
});

test('SWAPGS swaps GS base with KERNEL_GS_BASE at CPL 0 only', () => {
  const m = createTestMachine({ cpl: 0 });
  const cpu = m.cpu;
  writeMsr(cpu, MSR.GS_BASE, 0x1000, 0);
  writeMsr(cpu, MSR.KERNEL_GS_BASE, 0x81000000, 0xffffffff);
  sys.swapgs(cpu);
  assert.equal(cpu.segBase[Seg.GS], -0x7f000000);
  assert.equal(readMsr(cpu, MSR.KERNEL_GS_BASE), 0x1000);
  m.setCpl(3);
  assert.equal(faultOf(cpu, () => sys.swapgs(cpu))?.vector, 13);
});

test('segment loads: NULL SS at CPL 3, limits, DPL/RPL, not present', () => {
  const m = createTestMachine({ cpl: 3 });
  const cpu = m.cpu;
  const view = m.platform.memory.view;
  assert.deepEqual(faultOf(cpu, () => sys.loadSegment(cpu, Seg.SS, 0)), { vector: 13, errorCode: 0 });
  assert.deepEqual(faultOf(cpu, () => sys.loadSegment(cpu, Seg.DS, 0x80)), { vector: 13, errorCode: 0x80 }, 'beyond the GDT limit');
  assert.deepEqual(faultOf(cpu, () => sys.loadSegment(cpu, Seg.DS, SEL.kernelData)), { vector: 13, errorCode: SEL.kernelData });
  assert.deepEqual(faultOf(cpu, () => sys.loadSegment(cpu, Seg.SS, SEL.kernelData | 3)), { vector: 13, errorCode: SEL.kernelData });
  assert.deepEqual(faultOf(cpu, () => sys.loadSegment(cpu, Seg.DS, SEL.tss)), { vector: 13, errorCode: SEL.tss }, 'system descriptor');
  sys.loadSegment(cpu, Seg.DS, SEL.userData);
  assert.equal(cpu.segAttr[Seg.DS] & 0xff, 0xf3);
  sys.loadSegment(cpu, Seg.ES, 0);
  assert.equal(cpu.segSel[Seg.ES], 0);
  view.setUint8(GDT_PHYS + 0x28 + 5, 0x73); // user data, not present
  assert.deepEqual(faultOf(cpu, () => sys.loadSegment(cpu, Seg.DS, SEL.userData)), { vector: 11, errorCode: 0x28 });
  assert.deepEqual(faultOf(cpu, () => sys.loadSegment(cpu, Seg.SS, SEL.userData)), { vector: 12, errorCode: 0x28 });
  m.setCpl(0);
  sys.loadSegment(cpu, Seg.SS, 0); // NULL SS is fine at CPL 0 in 64-bit mode
  assert.equal(cpu.segSel[Seg.SS], 0);
  // LAR/LSL see the user code descriptor but not the TSS from CPL 3? (TSS DPL 0)
  m.setCpl(3);
  assert.equal(sys.lar(cpu, SEL.userCode), 0x00affb00);
  assert.equal(sys.lsl(cpu, SEL.userCode), 0xffffffff);
  assert.equal(sys.lsl(cpu, SEL.tss), -1);
  assert.equal(getRflags(cpu) & 0x40, 0);
  assert.equal(sys.verr(cpu, SEL.userCode, false), true);
  assert.equal(sys.verr(cpu, SEL.userCode, true), false);
});

test('far return to an outer level and IRETQ to CPL 3 null data segments the new CPL may not use', () => {
  const m = createTestMachine({ cpl: 0 });
  const cpu = m.cpu;
  m.map(0x400000, 0x1000, { user: false });
  sys.loadSegment(cpu, Seg.DS, SEL.kernelData);
  const view = m.platform.memory.view;
  // Build an IRETQ frame at 0x400f00: RIP, CS, RFLAGS, RSP, SS.
  const pa = m.virtToPhys(0x400f00);
  const q = [0x401000, SEL.userCode, 0x3202, 0x7ff000, SEL.userData];
  q.forEach((v, i) => { view.setUint32(pa + 8 * i, v, true); view.setUint32(pa + 8 * i + 4, 0, true); });
  m.setReg(REG.rsp, 0x400f00n);
  sys.iret(cpu, 8);
  assert.equal(cpu.cpl, 3);
  assert.equal(cpu.rip, 0x401000);
  assert.equal(m.getReg(REG.rsp), 0x7ff000n);
  assert.equal(cpu.segSel[Seg.SS], SEL.userData);
  assert.equal(cpu.segSel[Seg.DS], 0, 'DS (DPL 0) nulled');
  assert.equal(getRflags(cpu) & 0x3000, 0x3000, 'IOPL written from CPL 0');
  assert.equal(cpu.mode, Mode.Long64);
  // Returning from CPL 3 to CPL 0 is refused.
  q.forEach((v, i) => view.setUint32(pa + 8 * i, i === 1 ? SEL.kernelCode : v, true));
  m.map(0x7ff000, 0x1000, { user: true });
  m.writeVirt(0x7ff000, m.readVirt(0x400f00, 40));
  assert.deepEqual(faultOf(cpu, () => sys.iret(cpu, 8)), { vector: 13, errorCode: SEL.kernelCode });
});

test('control registers: reserved bits, entering long mode through CR0.PG, CR8 <-> TPR', () => {
  const { cpu } = bareCpu(1 << 22);
  cpu.cr0 = 0x11; cpu.mode = Mode.Protected32; cpu.segAttr[Seg.CS] = 0xc09b; cpu.cpl = 0;
  assert.deepEqual(faultOf(cpu, () => sys.movToCr(cpu, 4, 1 << 13, 0)), { vector: 13, errorCode: 0 }, 'VMXE not supported');
  assert.deepEqual(faultOf(cpu, () => sys.movToCr(cpu, 0, 0x80000000, 0)), { vector: 13, errorCode: 0 }, 'PG without PE');
  writeMsr(cpu, MSR.EFER, 0x100, 0);
  assert.deepEqual(faultOf(cpu, () => sys.movToCr(cpu, 0, 0x80000011, 0)), { vector: 13, errorCode: 0 }, 'LME without PAE');
  sys.movToCr(cpu, 4, 0x20, 0);
  sys.movToCr(cpu, 3, 0x1000, 0);
  sys.movToCr(cpu, 0, 0x80000011, 0);
  assert.equal(cpu.efer & 0x400, 0x400, 'LMA set');
  assert.equal(cpu.mode, Mode.Protected32, 'compatibility mode until a 64-bit CS is loaded');
  assert.deepEqual(faultOf(cpu, () => writeMsr(cpu, MSR.EFER, 0, 0)), { vector: 13, errorCode: 0 }, 'LME frozen while paging');
  assert.deepEqual(faultOf(cpu, () => sys.movToCr(cpu, 4, 0, 0)), { vector: 13, errorCode: 0 }, 'PAE required in long mode');
  sys.movToCr(cpu, 8, 5, 0);
  assert.equal(cpu.platform.interrupts[0].getTpr(), 5);
  assert.equal(sys.movFromCr(cpu, 8), 5);
  assert.deepEqual(faultOf(cpu, () => sys.movToCr(cpu, 8, 16, 0)), { vector: 13, errorCode: 0 });
  cpu.cpl = 3;
  assert.equal(faultOf(cpu, () => sys.movFromCr(cpu, 0))?.vector, 13);
});

test('MSRs: EFER/STAR/LSTAR/PAT rules, TSC writes set the offset, unknown MSRs go to the platform', () => {
  const { cpu, plat } = bareCpu(1 << 22);
  assert.deepEqual(faultOf(cpu, () => writeMsr(cpu, MSR.EFER, 0x2, 0)), { vector: 13, errorCode: 0 });
  assert.deepEqual(faultOf(cpu, () => writeMsr(cpu, MSR.LSTAR, 0, 0x8000)), { vector: 13, errorCode: 0 });
  writeMsr(cpu, MSR.LSTAR, 0x81000000, 0xffffffff);
  assert.equal(cpu.lstar, -0x7f000000);
  assert.equal(readMsr(cpu, MSR.LSTAR), 0x81000000);
  assert.equal(cpu.memHi, -1);
  assert.deepEqual(faultOf(cpu, () => writeMsr(cpu, MSR.PAT, 0x02, 0)), { vector: 13, errorCode: 0 }, 'PAT type 2 reserved');
  writeMsr(cpu, MSR.PAT, 0x00070106, 0x00070106);
  assert.equal(readMsr(cpu, MSR.PAT), 0x00070106);
  writeMsr(cpu, MSR.TSC, 0, 0x10);
  const t = readMsr(cpu, MSR.TSC) + cpu.memHi * 2 ** 32;
  assert.ok(t >= 0x10 * 2 ** 32 && t < 0x10 * 2 ** 32 + 1e12, 'TSC continues from the written value');
  assert.equal(readMsr(cpu, MSR.MTRRCAP), 0x508);
  writeMsr(cpu, 0x200, 0x6, 0);
  assert.equal(readMsr(cpu, 0x200), 6);
  assert.equal(faultOf(cpu, () => writeMsr(cpu, MSR.MTRR_DEF_TYPE, 0x2, 0))?.vector, 13);
  assert.deepEqual(faultOf(cpu, () => readMsr(cpu, 0x40000073)), { vector: 13, errorCode: 0 }, 'platform refuses');
  const seen: number[] = [];
  plat.msr = { read: (vp, i, out) => { seen.push(i); out.lo = 0x1234; out.hi = 7; return i === 0x40000073; }, write: () => false };
  assert.equal(readMsr(cpu, 0x40000073), 0x1234);
  assert.equal(cpu.memHi, 7);
  assert.deepEqual(seen, [0x40000073]);
  // RDMSR/WRMSR instructions need CPL 0.
  cpu.cpl = 3; cpu.cr0 = 0x11;
  assert.equal(faultOf(cpu, () => sys.rdmsr(cpu))?.vector, 13);
});

test('CPUID: AMD baseline with SSE2 only, hypervisor leaves and bit from the platform', () => {
  const { cpu, plat } = bareCpu(1 << 22);
  const r = { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  const str = (...v: number[]): string => String.fromCharCode(...v.flatMap((x) => [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24]));
  cpuidValue(cpu, 0, 0, r);
  assert.equal(str(r.ebx, r.edx, r.ecx), 'AuthenticAMD');
  cpuidValue(cpu, 1, 0, r);
  assert.equal(r.ecx, 1 << 13, 'only CX16: no SSE3+, no hypervisor bit by default');
  for (const bit of [0, 3, 4, 5, 6, 8, 9, 13, 15, 16, 23, 24, 25, 26]) assert.ok(r.edx & (1 << bit), `leaf 1 EDX bit ${bit}`);
  cpuidValue(cpu, 0x80000001, 0, r);
  for (const bit of [11, 20, 23, 26, 29]) assert.ok(r.edx & (1 << bit), `ext EDX bit ${bit}`);
  cpuidValue(cpu, 0x80000008, 0, r);
  assert.equal(r.eax & 0xffff, 0x3028);
  plat.cpuid = { cpuid: (leaf) => leaf === 0x40000000 ? { eax: 0x40000006, ebx: 0x7263694d, ecx: 0x666f736f, edx: 0x76482074 } : leaf === 1 ? { eax: 0, ebx: 0, ecx: 0x80000000, edx: 0 } : { eax: 0, ebx: 0, ecx: 0, edx: 0 } };
  cpuidValue(cpu, 0x40000000, 0, r);
  assert.equal(str(r.ebx, r.ecx, r.edx), 'Microsoft Hv');
  cpuidValue(cpu, 1, 0, r);
  assert.equal(r.ecx >>> 31, 1);
  // The instruction form writes EAX/EBX/ECX/EDX.
  cpu.gpr[0] = 0; sys.cpuid(cpu);
  assert.equal(cpu.gpr[0], 7);
});

test('CPUID: the APIC bit (leaf 1 and 0x80000001 EDX[9]) is clear while IA32_APIC_BASE.EN is clear', () => {
  const { cpu } = bareCpu(1 << 22);
  const r = { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  const apicBits = (): number[] => [1, 0x80000001].map((leaf) => { cpuidValue(cpu, leaf, 0, r); return (r.edx >>> 9) & 1; });
  assert.deepEqual(apicBits(), [1, 1]);
  writeMsr(cpu, MSR.APIC_BASE, 0xfee00100, 0); // BSP, globally disabled
  assert.deepEqual(apicBits(), [0, 0]);
  writeMsr(cpu, MSR.APIC_BASE, 0xfee00900, 0);
  assert.deepEqual(apicBits(), [1, 1]);
});

test('port I/O: IOPL and the TSS I/O bitmap decide at CPL 3', () => {
  const m = createTestMachine({ cpl: 3 });
  const cpu = m.cpu;
  const writes: number[] = [];
  m.platform.io.register(0x3f8, 8, { pioRead: () => 0x41, pioWrite: (o, s, v) => { writes.push(v); } }, 'uart');
  assert.deepEqual(faultOf(cpu, () => sys.portIn(cpu, 0x3f8, 1)), { vector: 13, errorCode: 0 }, 'no bitmap in the TSS');
  // Give the TSS a bitmap at 0x68 allowing 0x3f8..0x3ff (limit grows to cover it).
  const view = m.platform.memory.view;
  view.setUint16(TSS_PHYS + 0x66, 0x68, true);
  for (let i = 0; i < 0x2000; i++) view.setUint8(TSS_PHYS + 0x68 + i, 0xff);
  view.setUint8(TSS_PHYS + 0x68 + (0x3f8 >> 3), 0x00);
  cpu.trLimit = 0x68 + 0x2000;
  assert.equal(sys.portIn(cpu, 0x3f8, 1), 0x41);
  sys.portOut(cpu, 0x3fc, 4, 0x1234);
  assert.deepEqual(writes, [0x1234]);
  assert.equal(faultOf(cpu, () => sys.portIn(cpu, 0x3fe, 4))?.vector, 13, 'straddles into a denied byte');
  setRflags(cpu, 0x3002);
  assert.equal(sys.portIn(cpu, 0x3fe, 1), 0x41, 'IOPL 3 skips the bitmap');
});

test('CLI/STI/POPF privilege rules', () => {
  const m = createTestMachine({ cpl: 3 });
  const cpu = m.cpu;
  setRflags(cpu, 0x202);
  assert.equal(faultOf(cpu, () => sys.cli(cpu))?.vector, 13);
  sys.writeFlagsChecked(cpu, 0x3000 | 0x2 | 0x1, 8); // POPF at CPL 3: IOPL and IF unchanged
  assert.equal(getRflags(cpu), 0x203);
  m.setCpl(0);
  sys.cli(cpu);
  assert.equal(getRflags(cpu) & 0x200, 0);
  cpu.intShadow = false;
  sys.sti(cpu);
  assert.equal(cpu.intShadow, true);
  sys.writeFlagsChecked(cpu, 0x3002 | 0x10000, 8);
  assert.equal(getRflags(cpu), 0x3002, 'CPL 0 writes IOPL/IF; POPF clears RF');
  sys.hlt(cpu);
  assert.equal(cpu.halted, true);
});
