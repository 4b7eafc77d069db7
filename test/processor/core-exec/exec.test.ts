/** Focused execution tests on the test machine (64-bit, CPL 0, paging on). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestMachine } from '../../../src/processor/emulated/testing.js';
import { assemble } from './asm.js';

const CODE = 0x400000;
const DATA = 0x600000;

function machine(src: string, regs: Record<number, bigint> = {}) {
  const m = createTestMachine();
  m.map(CODE, 0x10000, { writable: true, exec: true });
  m.map(DATA, 0x10000, { writable: true });
  const code = assemble(src + '\nend: hlt');
  m.writeVirt(CODE, code);
  m.setReg(4, BigInt(DATA + 0x10000));
  for (const [r, v] of Object.entries(regs)) m.setReg(Number(r), v);
  m.rip = BigInt(CODE);
  const endRip = BigInt(CODE + code.length - 1);
  return { m, endRip, run: () => m.run({ maxInsns: 1_000_000, stopAt: endRip }) };
}

test('loop, jrcxz, enter/leave and xlat', () => {
  const { m, run } = machine(`
    mov rcx, 5
    xor eax, eax
  1: add eax, 2
    loop 1b
    jrcxz 2f
    mov eax, -1
  2: enter 32, 0
    mov qword ptr [rbp-8], rax
    mov rbx, rbp
    leave
    mov ebx, ${DATA}
    mov byte ptr [rbx+7], 0x5a
    mov al, 7
    xlat
  `);
  assert.equal(run().kind, 'stopped');
  assert.equal(m.getReg(0) & 0xffn, 0x5an);
  assert.equal(m.getReg(4), BigInt(DATA + 0x10000));
});

test('self-modifying code: a store into a cached block is seen on the next execution', () => {
  const { m, run } = machine(`
    xor ebx, ebx
    mov ecx, 2
  again:
    call patched
    add ebx, eax
    lea rdx, [rip + patched + 1]
    mov dword ptr [rdx], 100
    dec ecx
    jnz again
    jmp end
  patched:
    mov eax, 1
    ret
  `);
  assert.equal(run().kind, 'stopped');
  assert.equal(m.getReg(3), 101n);
});

test('divide error leaves registers unchanged and reports RIP of the div', () => {
  const { m } = machine(`
    mov rax, 1234
    xor edx, edx
    xor ecx, ecx
  d: div rcx
  `);
  const r = m.run({ maxInsns: 100 });
  assert.equal(r.kind, 'exception');
  if (r.kind !== 'exception') return;
  assert.equal(r.vector, 0);
  assert.equal(r.rip, BigInt(CODE + 7 + 2 + 2));
  assert.equal(m.getReg(0), 1234n);
});

test('a faulting read-modify-write store leaves memory, registers and flags unchanged', () => {
  const { m } = machine(`
    mov rbx, 0x700000
    stc
    mov eax, 5
    adc dword ptr [rbx], eax
  `);
  m.map(0x700000, 0x1000, { writable: false });
  const r = m.run({ maxInsns: 100 });
  assert.equal(r.kind, 'exception');
  if (r.kind !== 'exception') return;
  assert.equal(r.vector, 14);
  assert.equal(m.rflags & 1n, 1n, 'CF still set for the restart');
  assert.deepEqual([...m.readVirt(0x700000, 4)], [0, 0, 0, 0]);
});

test('rep movsb across a page fault keeps progress in RSI/RDI/RCX', () => {
  const { m } = machine(`
    mov rsi, ${DATA}
    mov rdi, 0x700ff0
    mov rcx, 64
    cld
    rep movsb
  `);
  m.map(0x700000, 0x1000, { writable: true });
  m.writeVirt(DATA, Uint8Array.from({ length: 64 }, (_, k) => k + 1));
  const r = m.run({ maxInsns: 1000 });
  assert.equal(r.kind, 'exception');
  if (r.kind !== 'exception') return;
  assert.equal(r.vector, 14);
  assert.equal(m.getReg(1), 48n);
  assert.equal(m.getReg(7), 0x701000n);
  assert.deepEqual([...m.readVirt(0x700ff0, 16)], Array.from({ length: 16 }, (_, k) => k + 1));
});

test('bt with a register offset reaches outside the addressed dword; bts sets it', () => {
  const { m, run } = machine(`
    mov rbx, ${DATA + 0x100}
    mov rcx, -9
    bts qword ptr [rbx], rcx
    setc al
    mov rcx, 70
    bt dword ptr [rbx], ecx
    setc dl
  `);
  m.writeVirt(DATA + 0x108, Uint8Array.of(0x40));
  assert.equal(run().kind, 'stopped');
  assert.equal(m.getReg(0) & 0xffn, 0n);
  assert.equal(m.getReg(2) & 0xffn, 1n);
  assert.equal(m.readVirt(DATA + 0xf8, 8)[6], 0x80); // bit -9 = bit 55 of the qword below
});

test('cmpxchg8b and cmpxchg16b (CX16 is advertised): success and failure', () => {
  const { m } = machine(`
    mov rdi, ${DATA}
    mov eax, 1
    xor edx, edx
    mov ebx, 7
    mov ecx, 8
    cmpxchg8b qword ptr [rdi]
    setz sil
    cmpxchg8b qword ptr [rdi]
    setz r8b
    mov ebx, 0x1111
    mov ecx, 0x2222
    cmpxchg16b xmmword ptr [rdi]
    setz r9b
    cmpxchg16b xmmword ptr [rdi]
    setz r10b
    ud2
  `);
  m.writeVirt(DATA, Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0));
  const r = m.run({ maxInsns: 100 });
  assert.equal(r.kind, 'exception');
  if (r.kind !== 'exception') return;
  assert.equal(r.vector, 6, 'ends at ud2');
  assert.equal(m.getReg(6) & 0xffn, 1n);
  assert.equal(m.getReg(8) & 0xffn, 0n);
  // First cmpxchg16b: RDX:RAX = 8:7 differs from m128 = 0:0x800000007, so it loads m128 and clears ZF.
  assert.equal(m.getReg(9) & 0xffn, 0n);
  // Second: now equal, so RCX:RBX is stored and ZF is set.
  assert.equal(m.getReg(10) & 0xffn, 1n);
  assert.equal(m.getReg(0), 0x800000007n);
  assert.equal(m.getReg(2), 0n);
  assert.deepEqual([...m.readVirt(DATA, 16)], [0x11, 0x11, 0, 0, 0, 0, 0, 0, 0x22, 0x22, 0, 0, 0, 0, 0, 0]);
});

test('lock on a register destination is #UD; lock add to memory works', () => {
  const { m } = machine(`
    mov rdi, ${DATA}
    lock add dword ptr [rdi], 3
    lock xadd dword ptr [rdi], eax
    .byte 0xf0, 0x01, 0xc0
  `);
  const r = m.run({ maxInsns: 100 });
  assert.equal(r.kind, 'exception');
  if (r.kind !== 'exception') return;
  assert.equal(r.vector, 6);
  assert.deepEqual([...m.readVirt(DATA, 4)], [3, 0, 0, 0]);
  assert.equal(m.getReg(0), 3n);
});

test('mov r64, imm64 and moffs forms', () => {
  const { m, run } = machine(`
    movabs rax, 0x123456789abcdef0
    movabs [${DATA}], rax
    xor eax, eax
    movabs eax, [${DATA + 4}]
  `);
  assert.equal(run().kind, 'stopped');
  assert.equal(m.getReg(0), 0x12345678n);
});
