/**
 * SSE/SSE2 data movement: loads and stores of every width, which lanes each form keeps or zeroes, GPR
 * transfers, non-temporal stores, PINSRW/PEXTRW, MASKMOVDQU, and that a faulting store writes nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execSse } from '../../../src/processor/emulated/simd/index.js';
import { MEM_SIZE, SimdFault, TestCpu, getXmm, insn, setXmm, toHex } from './harness.js';

const seq = (start: number) => Uint8Array.from({ length: 16 }, (_, i) => (start + i) & 0xff);
const hex = (b: Uint8Array) => toHex(b);
function run(cpu: TestCpu, op: number, p: number, f: Parameters<typeof insn>[2]) { assert.equal(execSse(cpu, insn(0x100 | op, p, f)), true); }

describe('SSE moves', () => {
  it('movups/movaps/movdqu/movdqa: 128-bit loads, stores and register copies', () => {
    const cpu = new TestCpu();
    cpu.mem.set(seq(0x10), 0x101);
    run(cpu, 0x10, 0, { mod: 0, reg: 2, ea: 0x101 });
    assert.equal(hex(getXmm(cpu, 2)), hex(seq(0x10)));
    run(cpu, 0x11, 0x66, { mod: 0, reg: 2, ea: 0x203 }); // movupd store
    assert.equal(hex(cpu.mem.subarray(0x203, 0x213)), hex(seq(0x10)));
    run(cpu, 0x28, 0, { mod: 3, reg: 5, rm: 2 });
    assert.equal(hex(getXmm(cpu, 5)), hex(seq(0x10)));
    run(cpu, 0x7f, 0x66, { mod: 0, reg: 5, ea: 0x300 }); // movdqa store
    run(cpu, 0x6f, 0xf3, { mod: 0, reg: 7, ea: 0x301 }); // movdqu load (shifted by one byte)
    assert.equal(hex(getXmm(cpu, 7)), hex(Uint8Array.from([...seq(0x11).subarray(0, 15), 0])));
    run(cpu, 0x7f, 0xf3, { mod: 3, reg: 7, rm: 12 }); // movdqu xmm12, xmm7
    assert.equal(hex(getXmm(cpu, 12)), hex(getXmm(cpu, 7)));
  });
  it('movss/movsd: memory loads zero the upper lanes, register moves and stores touch only the low element', () => {
    const cpu = new TestCpu();
    setXmm(cpu, 1, seq(0x40)); setXmm(cpu, 2, seq(0x80));
    cpu.mem.set(seq(0xc0), 0x100);
    run(cpu, 0x10, 0xf3, { mod: 0, reg: 1, ea: 0x100 });
    assert.equal(hex(getXmm(cpu, 1)), 'c0c1c2c3' + '00'.repeat(12));
    setXmm(cpu, 1, seq(0x40));
    run(cpu, 0x10, 0xf3, { mod: 3, reg: 1, rm: 2 });
    assert.equal(hex(getXmm(cpu, 1)), '80818283' + hex(seq(0x44)).slice(0, 24));
    setXmm(cpu, 1, seq(0x40));
    run(cpu, 0x10, 0xf2, { mod: 0, reg: 1, ea: 0x100 });
    assert.equal(hex(getXmm(cpu, 1)), 'c0c1c2c3c4c5c6c7' + '00'.repeat(8));
    setXmm(cpu, 1, seq(0x40));
    run(cpu, 0x10, 0xf2, { mod: 3, reg: 1, rm: 2 });
    assert.equal(hex(getXmm(cpu, 1)), '8081828384858687' + '48494a4b4c4d4e4f');
    cpu.mem.fill(0xee, 0x200, 0x210);
    run(cpu, 0x11, 0xf3, { mod: 0, reg: 2, ea: 0x200 });
    assert.equal(hex(cpu.mem.subarray(0x200, 0x208)), '80818283eeeeeeee');
    run(cpu, 0x11, 0xf2, { mod: 0, reg: 2, ea: 0x200 });
    assert.equal(hex(cpu.mem.subarray(0x200, 0x20c)), '8081828384858687eeeeeeee');
  });
  it('movlps/movhps/movlpd/movhpd/movhlps/movlhps move one half', () => {
    const cpu = new TestCpu();
    cpu.mem.set(seq(0xa0), 0x100);
    setXmm(cpu, 3, seq(0));
    run(cpu, 0x12, 0, { mod: 0, reg: 3, ea: 0x100 });
    assert.equal(hex(getXmm(cpu, 3)), 'a0a1a2a3a4a5a6a7' + '08090a0b0c0d0e0f');
    setXmm(cpu, 3, seq(0));
    run(cpu, 0x16, 0x66, { mod: 0, reg: 3, ea: 0x100 });
    assert.equal(hex(getXmm(cpu, 3)), '0001020304050607' + 'a0a1a2a3a4a5a6a7');
    run(cpu, 0x17, 0, { mod: 0, reg: 3, ea: 0x200 });
    assert.equal(hex(cpu.mem.subarray(0x200, 0x208)), 'a0a1a2a3a4a5a6a7');
    run(cpu, 0x13, 0x66, { mod: 0, reg: 3, ea: 0x208 });
    assert.equal(hex(cpu.mem.subarray(0x208, 0x210)), '0001020304050607');
    assert.equal(execSse(cpu, insn(0x113, 0, { mod: 3 })), false, 'movlps store has no register form');
    assert.equal(execSse(cpu, insn(0x112, 0x66, { mod: 3 })), false, 'movlpd has no register form');
  });
  it('movd/movq between GPRs, memory and XMM', () => {
    const cpu = new TestCpu();
    cpu.gpr[6] = 0x11223344; cpu.gpr[7] = 0x55667788;
    setXmm(cpu, 4, seq(0x30));
    run(cpu, 0x6e, 0x66, { mod: 3, reg: 4, rm: 3 }); // movd xmm4, ebx
    assert.equal(hex(getXmm(cpu, 4)), '44332211' + '00'.repeat(12));
    run(cpu, 0x6e, 0x66, { mod: 3, reg: 4, rm: 3, rexW: true }); // movq xmm4, rbx
    assert.equal(hex(getXmm(cpu, 4)), '4433221188776655' + '00'.repeat(8));
    cpu.gpr[2] = -1; cpu.gpr[3] = -1;
    setXmm(cpu, 4, seq(0x30));
    run(cpu, 0x7e, 0x66, { mod: 3, reg: 4, rm: 1 }); // movd ecx, xmm4
    assert.deepEqual([cpu.gpr[2] >>> 0, cpu.gpr[3]], [0x33323130, 0]);
    run(cpu, 0x7e, 0x66, { mod: 0, reg: 4, ea: 0x100, rexW: true }); // movq [m], xmm4
    assert.equal(hex(cpu.mem.subarray(0x100, 0x108)), '3031323334353637');
    setXmm(cpu, 5, seq(0x90));
    run(cpu, 0x7e, 0xf3, { mod: 3, reg: 5, rm: 4 }); // movq xmm5, xmm4
    assert.equal(hex(getXmm(cpu, 5)), '3031323334353637' + '00'.repeat(8));
    setXmm(cpu, 6, seq(0x90));
    run(cpu, 0xd6, 0x66, { mod: 3, reg: 4, rm: 6 }); // movq xmm6, xmm4 (store form)
    assert.equal(hex(getXmm(cpu, 6)), '3031323334353637' + '00'.repeat(8));
  });
  it('non-temporal stores need alignment (movntdq/movntps), movnti stores a GPR', () => {
    const cpu = new TestCpu();
    setXmm(cpu, 1, seq(0x20));
    run(cpu, 0xe7, 0x66, { mod: 0, reg: 1, ea: 0x400 });
    assert.equal(hex(cpu.mem.subarray(0x400, 0x410)), hex(seq(0x20)));
    assert.throws(() => execSse(cpu, insn(0x12b, 0, { mod: 0, reg: 1, ea: 0x404 })), (e: unknown) => e instanceof SimdFault && e.vector === 13);
    cpu.gpr[0] = 0x01020304; cpu.gpr[1] = 0x05060708;
    run(cpu, 0xc3, 0, { mod: 0, reg: 0, ea: 0x500, rexW: true });
    assert.equal(hex(cpu.mem.subarray(0x500, 0x508)), '0403020108070605');
  });
  it('pinsrw/pextrw and maskmovdqu', () => {
    const cpu = new TestCpu();
    setXmm(cpu, 1, seq(0));
    cpu.gpr[4] = 0x1234abcd;
    run(cpu, 0xc4, 0x66, { mod: 3, reg: 1, rm: 2, imm8: 5 });
    assert.equal(hex(getXmm(cpu, 1)), '00010203040506070809cdab0e0f'.slice(0, 20) + 'cdab' + '0c0d0e0f');
    run(cpu, 0xc5, 0x66, { mod: 3, reg: 3, rm: 1, imm8: 13 }); // index mod 8 = 5
    assert.equal(cpu.gpr[6], 0xabcd);
    cpu.mem[0x600] = 0x99; cpu.mem[0x601] = 0x88;
    run(cpu, 0xc4, 0x66, { mod: 0, reg: 1, ea: 0x600, imm8: 0 });
    assert.equal(hex(getXmm(cpu, 1)).slice(0, 4), '9988');
    const mask = new Uint8Array(16); mask[1] = 0x80; mask[15] = 0xff;
    setXmm(cpu, 2, mask); setXmm(cpu, 3, seq(0x50));
    cpu.mem.fill(0x11, 0x700, 0x710);
    run(cpu, 0xf7, 0x66, { mod: 3, reg: 3, rm: 2, ea: 0x700 });
    assert.equal(hex(cpu.mem.subarray(0x700, 0x710)), '11' + '51' + '11'.repeat(13) + '5f');
  });
  it('a store that faults writes nothing; emms empties the x87 tags; fences and prefetch are accepted', () => {
    const cpu = new TestCpu();
    setXmm(cpu, 1, seq(0x20));
    cpu.mem.fill(0, MEM_SIZE - 8);
    assert.throws(() => execSse(cpu, insn(0x111, 0, { mod: 0, reg: 1, ea: MEM_SIZE - 8 })), (e: unknown) => e instanceof SimdFault && e.vector === 14);
    assert.equal(hex(cpu.mem.subarray(MEM_SIZE - 8)), '00'.repeat(8));
    cpu.f.empty = 0x0f;
    run(cpu, 0x77, 0, {});
    assert.equal(cpu.f.empty, 0xff);
    for (const r of [5, 6, 7]) assert.equal(execSse(cpu, insn(0x1ae, 0, { mod: 3, reg: r })), true);
    assert.equal(execSse(cpu, insn(0x118, 0, { mod: 0, reg: 1, ea: 0x10 })), true);
  });
});
