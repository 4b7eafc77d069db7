/** The native runner itself: known results computed by the host CPU for hand-picked cases. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCase } from './build.js';
import { encode } from './encoder.js';
import { CODE_ADDR, DATA_ADDR, FL } from './layout.js';
import { runNative } from './native.js';
import { Rng } from './rng.js';

const rng = new Rng(7);
const regs = (o: Record<number, bigint>) => o;

test('add/adc: results and flags come back from the host CPU', () => {
  const cases = [
    // add rax, rbx
    makeCase(rng, { name: 'add', insn: encode({ rexW: true, opcode: [0x01], reg: 3, rm: { reg: 0 } }), gpr: regs({ 0: 5n, 3: 7n }), rflags: 0 }),
    // add eax, ebx with carry out and zero result (zero-extends into rax)
    makeCase(rng, { name: 'add32', insn: encode({ opcode: [0x01], reg: 3, rm: { reg: 0 } }), gpr: regs({ 0: 0xdeadbeef_ffffffffn, 3: 1n }), rflags: 0 }),
    // adc al, 0x7f with CF=1: 0x00 + 0x7f + 1 = 0x80 -> OF SF
    makeCase(rng, { name: 'adc8', insn: [0x14, 0x7f], gpr: regs({ 0: 0x1111111111111100n }), rflags: FL.CF }),
  ];
  const [a, b, c] = runNative(cases);
  assert.equal(a.kind, 'stop');
  assert.equal(a.gpr[0], 12n);
  assert.equal(a.rip, BigInt(CODE_ADDR + 3));
  assert.equal(a.rflags & 0x8d5, FL.PF); // 12 = 0b1100: even parity
  assert.equal(b.gpr[0], 0n);
  assert.equal(b.rflags & 0x8d5, FL.CF | FL.ZF | FL.PF | FL.AF);
  assert.equal(c.gpr[0], 0x1111111111111180n);
  assert.equal(c.rflags & 0x8d5, FL.OF | FL.SF | FL.AF);
  // Registers the code does not touch come back unchanged, including RSP (the handler runs on its own stack).
  for (let i = 1; i < 16; i++) if (i !== 3) assert.equal(a.gpr[i], cases[0].gpr[i], `reg ${i}`);
});

test('faults are reported with vector and RIP: #DE, #UD, #PF with CR2', () => {
  const cases = [
    makeCase(rng, { name: 'div0', insn: encode({ rexW: true, opcode: [0xf7], reg: 6, rm: { reg: 1 } }), gpr: regs({ 1: 0n }) }),
    makeCase(rng, { name: 'ud2', insn: [0x90, 0x0f, 0x0b] }),
    makeCase(rng, { name: 'pf', insn: encode({ opcode: [0x8b], reg: 0, rm: { mem: { base: 3, disp: 0 } } }), gpr: regs({ 3: 0x1234000n }) }),
  ];
  const [de, ud, pf] = runNative(cases);
  assert.equal(de.kind, 'fault'); assert.equal(de.vector, 0); assert.equal(de.rip, BigInt(CODE_ADDR));
  assert.equal(ud.vector, 6); assert.equal(ud.rip, BigInt(CODE_ADDR + 1));
  assert.equal(pf.vector, 14); assert.equal(pf.cr2, 0x1234000n); assert.equal((pf.errorCode ?? 0) & 0x7, 0x4); // user read, not present
});

test('memory operands: stores show up in the returned data image; 32-bit code runs in compatibility mode', () => {
  const store = makeCase(rng, {
    name: 'store', insn: encode({ rexW: true, opcode: [0x89], reg: 0, rm: { mem: { base: 3, disp: 8 } } }),
    gpr: regs({ 0: 0x0102030405060708n, 3: BigInt(DATA_ADDR + 0x100) }),
  });
  // aaa exists only outside 64-bit mode: al=0x0b -> ax=0x0101 with AF CF
  const aaa = makeCase(rng, { name: 'aaa', insn: [0x37], mode32: true, gpr: regs({ 0: 0x0bn }), rflags: 0 });
  const aaa64 = makeCase(rng, { name: 'aaa64', insn: [0x37] });
  const [s, a, u] = runNative([store, aaa, aaa64]);
  assert.equal(s.kind, 'stop');
  assert.deepEqual(Array.from(s.data.subarray(0x108, 0x110)), [8, 7, 6, 5, 4, 3, 2, 1]);
  if (a.kind === 'unsupported') {
    // Hosts without a 32-bit user code segment (PVM guests) cannot run compatibility-mode code at all.
    console.log(`note: ${a.message}`);
  } else {
    assert.equal(a.kind, 'stop', JSON.stringify({ kind: a.kind, vector: a.vector, rip: a.rip?.toString(16) }));
    assert.equal(a.gpr[0] & 0xffffn, 0x0101n);
    assert.equal(a.rflags & (FL.CF | FL.AF), FL.CF | FL.AF);
  }
  assert.equal(u.kind, 'fault'); assert.equal(u.vector, 6);
});
