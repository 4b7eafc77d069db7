import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readMsr, writeMsr, MSR } from '../../../src/processor/emulated/msr.js';
import { cpuidValue } from '../../../src/processor/emulated/cpuid.js';
import * as sys from '../../../src/processor/emulated/system.js';
import { faultOf, bareCpu } from './helpers.js';

test('AMD legacy performance counters: event selects keep written values, reserved bits #GP, 48-bit counters', () => {
  const { cpu } = bareCpu(1 << 22);
  for (let i = 0; i < 4; i++) {
    assert.equal(readMsr(cpu, MSR.AMD_PERF_EVTSEL0 + i), 0);
    writeMsr(cpu, MSR.AMD_PERF_EVTSEL0 + i, 0x004300c0 + i, 0x5);
    assert.equal(readMsr(cpu, MSR.AMD_PERF_EVTSEL0 + i), 0x004300c0 + i);
    assert.equal(cpu.memHi, 5);
  }
  assert.equal(faultOf(cpu, () => writeMsr(cpu, MSR.AMD_PERF_EVTSEL0, 1 << 21, 0))?.vector, 13, 'bit 21 reserved');
  assert.equal(faultOf(cpu, () => writeMsr(cpu, MSR.AMD_PERF_EVTSEL0, 0, 0x100))?.vector, 13, 'HG_ONLY without SVM');
  writeMsr(cpu, MSR.AMD_PERF_CTR0 + 2, 0xdeadbeef, 0xffffffff);
  assert.equal(readMsr(cpu, MSR.AMD_PERF_CTR0 + 2), 0xdeadbeef);
  assert.equal(cpu.memHi, 0xffff, 'only 48 bits are kept');
  assert.equal(faultOf(cpu, () => readMsr(cpu, MSR.AMD_PERF_CTR3 + 1))?.vector, 13, 'no fifth counter');
});

test('MISC_ENABLE keeps the high half (kvm-unit-tests msr writes bit 34)', () => {
  const { cpu } = bareCpu(1 << 22);
  assert.equal(readMsr(cpu, MSR.MISC_ENABLE), 1);
  assert.equal(cpu.memHi, 0);
  writeMsr(cpu, MSR.MISC_ENABLE, 0x00c50809, 4);
  assert.equal(readMsr(cpu, MSR.MISC_ENABLE), 0x00c50809);
  assert.equal(cpu.memHi, 4);
});

test('IA32_TSC_ADJUST: advertised in CPUID.7.0:EBX[1]; writing it moves the TSC, writing the TSC moves it', () => {
  const { cpu } = bareCpu(1 << 22);
  const r = { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  cpuidValue(cpu, 7, 0, r);
  assert.equal(r.ebx & 2, 2);
  const tsc = (): number => { const lo = readMsr(cpu, MSR.TSC); return cpu.memHi * 2 ** 32 + lo; };
  const adj = (): number => { const lo = readMsr(cpu, MSR.TSC_ADJUST); return cpu.memHi * 2 ** 32 + lo; };
  assert.equal(adj(), 0);
  const t0 = tsc();
  writeMsr(cpu, MSR.TSC_ADJUST, 0x4876e800, 0x17); // 100e9
  assert.equal(adj(), 100e9);
  assert.ok(tsc() - t0 >= 100e9, 'TSC jumped by the adjustment');
  writeMsr(cpu, MSR.TSC_ADJUST, 0, 0);
  assert.ok(tsc() - t0 < 100e9, 'and back');
  const before = tsc();
  writeMsr(cpu, MSR.TSC, 0, 0); // TSC := 0, so the adjustment becomes -before (plus the clock's progress)
  const a = adj();
  assert.ok(a <= -before + 1e9 && a >= -before - 1e9, `adjust ${a} follows the TSC write (${before})`);
  assert.equal(cpu.memHi < 0, true, 'negative adjustment kept as a signed 64-bit value');
});

test('RDTSCP is advertised (CPUID 0x80000001 EDX[27]) and returns IA32_TSC_AUX in ECX; RDPID is not', () => {
  const { cpu } = bareCpu(1 << 22);
  const r = { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  cpuidValue(cpu, 0x80000001, 0, r);
  assert.ok(r.edx & (1 << 27));
  cpuidValue(cpu, 7, 0, r);
  assert.equal(r.ecx & (1 << 22), 0, 'no RDPID');
  for (const aux of [0, 10, 0x100]) {
    writeMsr(cpu, MSR.TSC_AUX, aux, 0);
    cpu.gpr[2] = -1;
    sys.rdtscp(cpu);
    assert.equal(cpu.gpr[2], aux);
  }
});

test('RDPMC reads the AMD legacy counters at CPL 0, #GP for other indexes', async () => {
  const { createTestMachine } = await import('../../../src/processor/emulated/testing.js');
  const m = createTestMachine({ cpl: 0 });
  const CODE = 0x400000n;
  m.map(Number(CODE), 0x1000);
  // wrmsr PerfCtr2 = 0x0000_1234_5678_9abc; ecx=2; rdpmc; ecx=4; rdpmc (#GP)
  const code = [
    0xb9, 0x06, 0x00, 0x01, 0xc0, // mov ecx, 0xc0010006
    0xb8, 0xbc, 0x9a, 0x78, 0x56, // mov eax, 0x56789abc
    0xba, 0x34, 0x12, 0x00, 0x00, // mov edx, 0x1234
    0x0f, 0x30, // wrmsr
    0x31, 0xc0, 0x31, 0xd2, // xor eax,eax; xor edx,edx
    0xb9, 0x02, 0x00, 0x00, 0x00, // mov ecx, 2
    0x0f, 0x33, // rdpmc
    0x48, 0x89, 0xc3, // mov rbx, rax
    0x48, 0x89, 0xd6, // mov rsi, rdx
    0xb9, 0x04, 0x00, 0x00, 0x00, // mov ecx, 4
    0x0f, 0x33, // rdpmc -> #GP
  ];
  m.writeVirt(Number(CODE), Uint8Array.from(code));
  m.rip = CODE;
  const r = m.run({ maxInsns: 100 });
  assert.equal(r.kind, 'exception');
  if (r.kind !== 'exception') return;
  assert.equal(r.vector, 13);
  assert.equal(m.getReg(3), 0x56789abcn);
  assert.equal(m.getReg(6), 0x1234n);
});
