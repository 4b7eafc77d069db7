/**
 * MMX system behaviour: #UD/#NM/#MF rules, MMX register numbers ignoring REX, faults leaving state
 * unchanged, FXSAVE/FXRSTOR and FNSTENV of MMX state, MASKMOVQ, and MASKMOVQ/MASKMOVDQU through the
 * core's decoder (DS:rDI with address size and segment override).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execSse, execX87 } from '../../../src/processor/emulated/simd/index.js';
import { createTestMachine } from '../../../src/processor/emulated/testing.js';
import { REG } from '../../../src/processor/emulated/testing-contract.js';
import { SimdFault, TestCpu, MEM_SIZE, insn, setXmm } from './harness.js';

function fault(fn: () => unknown): number {
  try { fn(); } catch (e) { if (e instanceof SimdFault) return e.vector; throw e; }
  return -1;
}
const paddb = (f: Partial<Parameters<typeof insn>[2]> = {}) => insn(0x1fc, 0, { reg: 6, rm: 7, ...f });
const mm = (cpu: TestCpu, r: number): [number, number, number] => [cpu.f.mlo[r] >>> 0, cpu.f.mhi[r] >>> 0, cpu.f.sexp[r]];
function setMm(cpu: TestCpu, r: number, lo: number, hi: number): void {
  cpu.gpr[2] = lo; cpu.gpr[3] = hi;
  execSse(cpu, insn(0x16e, 0, { reg: r, rm: 1, rexW: true })); // movq mm, rcx
}

describe('MMX exceptions and state', () => {
  it('#UD with CR0.EM, #NM with CR0.TS, #MF with a pending unmasked x87 exception (CR0.NE); no CR4.OSFXSR needed', () => {
    const cpu = new TestCpu();
    cpu.cr4 = 0; // MMX predates FXSR: still available
    assert.equal(execSse(cpu, paddb()), true);
    assert.equal(execSse(cpu, insn(0x170, 0, { reg: 6, rm: 7, imm8: 0x1b })), true, 'pshufw');
    assert.equal(fault(() => execSse(cpu, insn(0x12a, 0, { reg: 0, rm: 7 }))), 6, 'cvtpi2ps is SSE: needs OSFXSR');
    cpu.cr4 = (1 << 9) | (1 << 10);
    cpu.cr0 |= 4;
    assert.equal(fault(() => execSse(cpu, paddb())), 6);
    assert.equal(fault(() => execSse(cpu, insn(0x177, 0))), 6, 'emms');
    cpu.cr0 = (cpu.cr0 & ~4) | 8;
    assert.equal(fault(() => execSse(cpu, paddb())), 7);
    assert.equal(fault(() => execSse(cpu, insn(0x177, 0))), 7, 'emms');
    cpu.cr0 &= ~8;
    // 1/0 with ZE unmasked: ES pending.
    execX87(cpu, insn(0xdb, 0, { reg: 4, rm: 3 })); // fninit
    cpu.f.fcw = 0x37f & ~4;
    execX87(cpu, insn(0xd9, 0, { reg: 5, rm: 0 })); // fld1
    execX87(cpu, insn(0xd9, 0, { reg: 5, rm: 6 })); // fldz
    execX87(cpu, insn(0xde, 0, { reg: 7, rm: 1 })); // fdivp: st1 / st0
    assert.ok(cpu.f.fsw & 0x80, 'ES');
    const top = cpu.f.top, empty = cpu.f.empty;
    assert.equal(fault(() => execSse(cpu, paddb())), 16);
    assert.equal(fault(() => execSse(cpu, insn(0x177, 0))), 16, 'emms');
    assert.equal(fault(() => execSse(cpu, insn(0x12a, 0, { reg: 0, rm: 7 }))), 16, 'cvtpi2ps xmm, mm');
    assert.equal(fault(() => execSse(cpu, insn(0x1d6, 0xf3, { reg: 0, rm: 7 }))), 16, 'movq2dq');
    assert.equal(cpu.f.top, top); assert.equal(cpu.f.empty, empty);
    assert.equal(execSse(cpu, insn(0x12a, 0, { reg: 0, rm: 0, mod: 0, ea: 0x100 })), true, 'cvtpi2ps xmm, m64 takes no x87 exception');
    assert.equal(cpu.f.top, top, 'and makes no MMX transition');
    cpu.cr0 &= ~0x20; // NE clear: FERR# is not modelled, no #MF
    assert.equal(execSse(cpu, paddb()), true);
  });
  it('MMX register numbers ignore REX.R and REX.B; GPR operands do not', () => {
    const cpu = new TestCpu();
    setMm(cpu, 6, 0x01020304, 0x05060708);
    setMm(cpu, 7, 0x10101010, 0x10101010);
    assert.equal(execSse(cpu, paddb({ reg: 14, rm: 15 })), true);
    assert.deepEqual(mm(cpu, 6), [0x11121314, 0x15161718, 0xffff]);
    cpu.gpr[18] = 0x1234; cpu.gpr[19] = 0x5678; // r9
    execSse(cpu, insn(0x16e, 0, { reg: 8, rm: 9, rexW: true })); // movq mm0, r9
    assert.deepEqual(mm(cpu, 0), [0x1234, 0x5678, 0xffff]);
    execSse(cpu, insn(0x1c5, 0, { reg: 10, rm: 14, imm8: 1 })); // pextrw r10d, mm6, 1
    assert.equal(cpu.gpr[20], 0x1112); assert.equal(cpu.gpr[21], 0);
  });
  it('a faulting memory operand leaves the register, TOP and tags unchanged', () => {
    const cpu = new TestCpu();
    execX87(cpu, insn(0xd9, 0, { reg: 5, rm: 0 })); // fld1: TOP 7
    const before = mm(cpu, 6);
    assert.equal(fault(() => execSse(cpu, insn(0x16f, 0, { reg: 6, mod: 0, ea: MEM_SIZE - 4 }))), 14);
    assert.equal(fault(() => execSse(cpu, insn(0x17f, 0, { reg: 6, mod: 0, ea: MEM_SIZE - 4 }))), 14);
    assert.deepEqual(mm(cpu, 6), before);
    assert.equal(cpu.f.top, 7); assert.equal(cpu.f.empty, 0x7f);
    assert.equal(cpu.mem[MEM_SIZE - 1], 0, 'no partial store');
  });
  it('FXSAVE/FXRSTOR round-trip MMX state; FNSTENV reports MMX registers as special (tag 10)', () => {
    const cpu = new TestCpu();
    const vals = [[1, 2], [0x80000000, 0x7fffffff], [-1, -1], [0, 0], [0x12345678, 0x9abcdef0], [5, 0], [0, 5], [0xdeadbeef, 0xcafef00d]];
    vals.forEach(([lo, hi], r) => setMm(cpu, r, lo, hi));
    execSse(cpu, insn(0x1ae, 0, { mod: 0, reg: 0, ea: 0x1000, rexW: true })); // fxsave64
    const dv = new DataView(cpu.mem.buffer);
    assert.equal(dv.getUint16(0x1002, true) & 0x3800, 0, 'TOP 0');
    assert.equal(cpu.mem[0x1004], 0xff, 'all tags valid');
    for (let r = 0; r < 8; r++) {
      assert.equal(dv.getInt32(0x1000 + 32 + 16 * r, true), vals[r][0] | 0);
      assert.equal(dv.getInt32(0x1000 + 36 + 16 * r, true), vals[r][1] | 0);
      assert.equal(dv.getUint16(0x1000 + 40 + 16 * r, true), 0xffff);
    }
    execX87(cpu, insn(0xd9, 0, { mod: 0, reg: 6, ea: 0x2000 })); // fnstenv
    assert.equal(dv.getUint16(0x2008, true), 0xaaaa, 'full tag word');
    execSse(cpu, insn(0x177, 0)); // emms
    execX87(cpu, insn(0xdb, 0, { reg: 4, rm: 3 })); // fninit
    execX87(cpu, insn(0xd9, 0, { reg: 5, rm: 3 })); // fldpi into R7
    execSse(cpu, insn(0x1ae, 0, { mod: 0, reg: 1, ea: 0x1000, rexW: true })); // fxrstor64
    assert.equal(cpu.f.top, 0); assert.equal(cpu.f.empty, 0);
    for (let r = 0; r < 8; r++) assert.deepEqual(mm(cpu, r), [vals[r][0] >>> 0, vals[r][1] >>> 0, 0xffff]);
  });
  it('MASKMOVQ stores only the selected bytes; an all-clear mask touches no memory', () => {
    const cpu = new TestCpu();
    setMm(cpu, 6, 0x44332211, 0x88776655);
    setMm(cpu, 7, 0x00800080, 0xff000000 | 0);
    cpu.mem.fill(0xee, 0x300, 0x308);
    execSse(cpu, insn(0x1f7, 0, { reg: 6, rm: 7, ea: 0x300 }));
    assert.deepEqual([...cpu.mem.subarray(0x300, 0x308)], [0x11, 0xee, 0x33, 0xee, 0xee, 0xee, 0xee, 0x88]);
    setMm(cpu, 7, 0x7f7f7f7f, 0x7f7f7f7f);
    assert.equal(execSse(cpu, insn(0x1f7, 0, { reg: 6, rm: 7, ea: MEM_SIZE + 100 })), true, 'no access, no fault');
    setMm(cpu, 7, 0, 0x80000000 | 0);
    assert.equal(fault(() => execSse(cpu, insn(0x1f7, 0, { reg: 6, rm: 7, ea: MEM_SIZE - 4 }))), 14);
  });
});

describe('MASKMOVQ / MASKMOVDQU through the decoder', () => {
  it('store to DS:rDI, EDI with a 67 prefix, and FS:rDI with an override', () => {
    const m = createTestMachine({ cpl: 0 });
    m.map(0x400000, 0x1000, { exec: true });
    m.map(0x500000, 0x1000, { writable: true });
    const data = new Uint8Array(32);
    for (let i = 0; i < 8; i++) data[i] = 0x11 * (i + 1);
    data.set([0x80, 0, 0x80, 0, 0, 0xff, 0, 0x80], 8); // mask
    m.writeVirt(0x500000, data);
    const imm64 = (v: bigint) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, v, true); return [...b]; };
    const code = [
      0x48, 0xbb, ...imm64(0x500000n), // mov rbx, 0x500000
      0x0f, 0x6f, 0x33, // movq mm6, [rbx]
      0x0f, 0x6f, 0x7b, 0x08, // movq mm7, [rbx+8]
      0x48, 0xbf, ...imm64(0x500100n), 0x0f, 0xf7, 0xf7, // rdi; maskmovq mm6, mm7
      0x48, 0xbf, ...imm64(0xffffffff00500200n), 0x67, 0x0f, 0xf7, 0xf7, // upper half ignored with 32-bit addressing
      0x48, 0xbf, ...imm64(0x300n), 0x64, 0x0f, 0xf7, 0xf7, // fs:rdi
      0xf3, 0x0f, 0x7e, 0x03, // movq xmm0, [rbx]
      0xf3, 0x0f, 0x7e, 0x4b, 0x08, // movq xmm1, [rbx+8]
      0x48, 0xbf, ...imm64(0x500400n), 0x66, 0x0f, 0xf7, 0xc1, // maskmovdqu xmm0, xmm1
    ];
    m.writeVirt(0x400000, new Uint8Array(code));
    m.setSegmentBase('fs', 0x500000n);
    m.rip = 0x400000n;
    const r = m.run({ stopAt: BigInt(0x400000 + code.length), maxInsns: 100 });
    assert.equal(r.kind, 'stopped', JSON.stringify(r, (_k, v) => typeof v === 'bigint' ? v.toString(16) : v));
    const want = [0x11, 0, 0x33, 0, 0, 0x66, 0, 0x88];
    for (const at of [0x100, 0x200, 0x300]) assert.deepEqual([...m.readVirt(0x500000 + at, 8)], want, `at ${at.toString(16)}`);
    assert.deepEqual([...m.readVirt(0x500400, 16)], [...want, ...new Array(8).fill(0)]);
    assert.equal(m.getReg(REG.rdi), 0x500400n, 'rDI is not advanced');
  });
});
