/**
 * The two string-instruction models (AMD, as CPUID presents; Intel, for differential runs on Intel hosts).
 * The differential tests check only the host's model, so each model's corners are pinned here on any host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestMachine } from '../../../src/processor/emulated/testing.js';
import { REG } from '../../../src/processor/emulated/testing-contract.js';

const CODE = 0x400000, DATA = 0x600000;

function run(vendor: 'amd' | 'intel', code: number[], regs: Record<number, bigint>, rflags = 0x202n) {
  const m = createTestMachine({ cpl: 3, stringVendor: vendor });
  m.map(CODE, 0x1000, { user: true, exec: true });
  m.map(DATA, 0x1000, { user: true, writable: true });
  m.writeVirt(CODE, Uint8Array.from([...code, 0xcc]));
  for (const [r, v] of Object.entries(regs)) m.setReg(Number(r), v);
  m.rflags = rflags;
  m.rip = BigInt(CODE);
  const res = m.run({ stopAt: BigInt(CODE + code.length), maxInsns: 1000 });
  return { m, res };
}

const HI = 0x1234567800000000n;

test('addr32 rep movsq with ECX=0: AMD leaves the registers, Intel clears the upper halves of RCX, RSI, RDI', () => {
  const regs = { [REG.rcx]: HI, [REG.rsi]: HI | BigInt(DATA), [REG.rdi]: HI | BigInt(DATA + 0x800) };
  const amd = run('amd', [0x67, 0xf3, 0x48, 0xa5], regs).m;
  assert.equal(amd.getReg(REG.rcx), HI);
  assert.equal(amd.getReg(REG.rsi), HI | BigInt(DATA));
  const intel = run('intel', [0x67, 0xf3, 0x48, 0xa5], regs).m;
  assert.equal(intel.getReg(REG.rcx), 0n);
  assert.equal(intel.getReg(REG.rsi), BigInt(DATA));
  assert.equal(intel.getReg(REG.rdi), BigInt(DATA + 0x800));
});

test('addr32 rep scasb with ECX=0 on Intel clears only RCX upper (the pointer is not written)', () => {
  const regs = { [REG.rcx]: HI, [REG.rdi]: HI | BigInt(DATA) };
  const intel = run('intel', [0x67, 0xf3, 0xae], regs).m;
  assert.equal(intel.getReg(REG.rcx), 0n);
  assert.equal(intel.getReg(REG.rdi), HI | BigInt(DATA));
});

test('repne scasb that faults part-way: registers keep progress; flags are updated on AMD, restored on Intel', () => {
  // 16 bytes before the end of the mapped page, none equal to AL=0xff: the 17th element faults.
  const regs = { [REG.rax]: 0xffn, [REG.rcx]: 100n, [REG.rdi]: BigInt(DATA + 0x1000 - 16) };
  const start = 0x202n | 0x40n; // ZF set on entry
  for (const vendor of ['amd', 'intel'] as const) {
    const { m, res } = run(vendor, [0xf2, 0xae], regs, start);
    assert.equal(res.kind, 'exception');
    assert.equal(m.getReg(REG.rcx), 84n, vendor);
    assert.equal(m.getReg(REG.rdi), BigInt(DATA + 0x1000), vendor);
    const zf = (m.rflags & 0x40n) !== 0n;
    assert.equal(zf, vendor === 'intel', `${vendor}: ZF after the fault`);
  }
});
