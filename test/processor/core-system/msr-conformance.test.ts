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
