import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestMachine } from '../../../src/processor/emulated/testing.js';
import { assemble } from './asm.js';

const CODE = 0x400000n;

function runProgram(src: string, regs: Record<number, bigint> = {}) {
  const m = createTestMachine();
  m.map(Number(CODE), 0x10000, { writable: true, exec: true });
  m.map(0x600000, 0x10000, { writable: true });
  const code = assemble(src + '\nend: hlt');
  m.writeVirt(Number(CODE), code);
  m.setReg(4, 0x610000n);
  for (const [r, v] of Object.entries(regs)) m.setReg(Number(r), v);
  m.rip = CODE;
  const r = m.run({ maxInsns: 100000, stopAt: CODE + BigInt(code.length - 1) });
  return { m, r };
}

test('loop with call/ret, push/pop and jcc computes a sum', () => {
  const { m, r } = runProgram(`
    xor eax, eax
    mov ecx, 10
  1: push rcx
    call add_it
    pop rcx
    dec ecx
    jnz 1b
    jmp end
  add_it:
    add rax, rcx
    ret
  `);
  assert.equal(r.kind, 'stopped');
  assert.equal(m.getReg(0), 55n);
  assert.equal(m.getReg(4), 0x610000n);
});
