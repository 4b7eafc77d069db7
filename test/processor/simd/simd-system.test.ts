/**
 * FXSAVE/FXRSTOR layout (against the host's FXSAVE64), and the exception behaviour of the SIMD unit:
 * #UD/#NM availability checks, alignment #GP, MXCSR reserved bits, unmasked SIMD exceptions (#XM or #UD,
 * destination unchanged), x87 pending exceptions (#MF at the next waiting instruction).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execSse, execX87, fwait, fxrstor, fxsave } from '../../../src/processor/emulated/simd/index.js';
import { statusWord } from '../../../src/processor/emulated/simd/x87.js';
import { Rng, SimdFault, TestCpu, cleanup, getXmm, insn, runHost, setXmm, toHex } from './harness.js';

after(cleanup);

function fault(fn: () => unknown): number {
  try { fn(); } catch (e) { if (e instanceof SimdFault) return e.vector; throw e; }
  return -1;
}
const X87 = (cpu: TestCpu, esc: number, reg: number, rm: number) => execX87(cpu, insn(esc, 0, { mod: 3, reg, rm }));
const X87M = (cpu: TestCpu, esc: number, reg: number, ea: number) => execX87(cpu, insn(esc, 0, { mod: 0, reg, rm: 0, ea }));

describe('FXSAVE/FXRSTOR', () => {
  it('matches the host FXSAVE64 image (except FIP/FDP/FOP and MXCSR_MASK) and restores it exactly', () => {
    const rng = new Rng(7);
    const cases = [];
    for (let k = 0; k < 40; k++) {
      const a = new Uint8Array(16), b = new Uint8Array(16);
      for (let i = 0; i < 16; i++) { a[i] = rng.int(256); b[i] = rng.int(256); }
      a[7] |= 0x80; b[7] |= 0x80; // normal 80-bit values
      a[9] = (a[9] & 0x80) | 0x3f; b[9] = k % 3 === 0 ? 0x7f : 0x40;
      const mx = 0x1f80 | (rng.int(4) << 13) | (k & 1 ? 0x40 : 0) | (rng.int(64));
      const cw = 0x37f & ~(rng.int(4) << 8);
      cases.push({ op: 'fxsave64', ctl: ((mx << 16) | cw) >>> 0, a, b });
    }
    const host = runHost(cases);
    for (let k = 0; k < cases.length; k++) {
      const c = cases[k];
      const cpu = new TestCpu();
      X87(cpu, 0xdb, 4, 3); // fninit
      cpu.mem[0x3000] = c.ctl & 0xff; cpu.mem[0x3001] = (c.ctl >> 8) & 0xff;
      X87M(cpu, 0xd9, 5, 0x3000); // fldcw
      cpu.mem.set(c.b, 0x3010); X87M(cpu, 0xdb, 5, 0x3010);
      cpu.mem.set(c.a, 0x3010); X87M(cpu, 0xdb, 5, 0x3010);
      cpu.fpu.mxcsr = c.ctl >>> 16;
      setXmm(cpu, 0, c.a); setXmm(cpu, 15, c.b);
      cpu.mem.fill(0xa5, 0x4000, 0x4200);
      fxsave(cpu, 0x4000, true);
      const img = toHex(cpu.mem.subarray(0x4000, 0x4200));
      // header without FOP/FIP/FDP and MXCSR_MASK, the x87 registers, XMM0 and XMM15 (other host XMM registers hold leftovers)
      const skip = (s: string) => s.slice(0, 12) + s.slice(48, 56) + s.slice(64, 352) + s.slice(800, 832);
      assert.equal(skip(img), skip(host[k].r), `case ${k}`);
      assert.equal(img.slice(56, 64), 'ffff0000', 'MXCSR_MASK advertises DAZ');
      // restore into a fresh CPU and save again: identical image
      const cpu2 = new TestCpu();
      cpu2.mem.set(cpu.mem.subarray(0x4000, 0x4200), 0x4000);
      fxrstor(cpu2, 0x4000, true);
      cpu2.mem.fill(0, 0x5000, 0x5200);
      fxsave(cpu2, 0x5000, true);
      assert.equal(toHex(cpu2.mem.subarray(0x5000, 0x51a0)), toHex(cpu.mem.subarray(0x4000, 0x41a0)));
      assert.deepEqual(getXmm(cpu2, 15), getXmm(cpu, 15));
      assert.equal(statusWord(cpu2.f), statusWord(cpu.f));
    }
  });

  it('faults: #GP on misalignment, #GP on reserved MXCSR bits, #NM with CR0.TS; state unchanged on fault', () => {
    const cpu = new TestCpu();
    assert.equal(fault(() => fxsave(cpu, 0x4008, true)), 13);
    fxsave(cpu, 0x4000, true);
    cpu.mem[0x4000 + 26] = 0x01; // MXCSR bit 16
    cpu.fpu.mxcsr = 0x1f80;
    setXmm(cpu, 3, new Uint8Array(16).fill(7));
    assert.equal(fault(() => fxrstor(cpu, 0x4000, true)), 13);
    assert.equal(cpu.fpu.mxcsr, 0x1f80);
    assert.equal(getXmm(cpu, 3)[0], 7);
    cpu.cr0 |= 8;
    assert.equal(fault(() => fxsave(cpu, 0x4000, true)), 7);
  });
});

describe('SSE exceptions', () => {
  const addps = (fields = {}) => insn(0x158, 0, fields);
  it('#UD without CR4.OSFXSR or with CR0.EM, #NM with CR0.TS, false (#UD) for SSE3 and invalid MMX forms', () => {
    const cpu = new TestCpu();
    assert.equal(execSse(cpu, addps()), true);
    cpu.cr4 &= ~(1 << 9);
    assert.equal(fault(() => execSse(cpu, addps())), 6);
    cpu.cr4 |= 1 << 9; cpu.cr0 |= 4;
    assert.equal(fault(() => execSse(cpu, addps())), 6);
    cpu.cr0 &= ~4; cpu.cr0 |= 8;
    assert.equal(fault(() => execSse(cpu, addps())), 7);
    cpu.cr0 &= ~8;
    assert.equal(execSse(cpu, insn(0x17c, 0x66)), false, 'haddpd (SSE3)');
    assert.equal(execSse(cpu, insn(0x1d0, 0x66)), false, 'addsubpd (SSE3)');
    assert.equal(execSse(cpu, insn(0x112, 0xf2)), false, 'movddup (SSE3)');
    assert.equal(execSse(cpu, insn(0x16c, 0)), false, 'punpcklqdq has no MMX form');
    assert.equal(execSse(cpu, insn(0x173, 0, { reg: 3 })), false, 'psrldq has no MMX form');
    assert.equal(execSse(cpu, insn(0x1d6, 0)), false, '0F D6 without prefix');
    assert.equal(execSse(cpu, insn(0x1e7, 0)), false, 'movntq register form');
    assert.equal(execSse(cpu, insn(0x1d7, 0, { mod: 0 })), false, 'pmovmskb memory form');
    assert.equal(execSse(cpu, insn(0x2a, 0x66, {})), false, 'map 0');
    assert.equal(execSse(cpu, insn(0x200, 0x66)), false, '0F 38 (SSSE3)');
  });
  it('alignment: movaps/movdqa/addps memory operands need 16 bytes, movups/movdqu/addss do not', () => {
    const cpu = new TestCpu();
    assert.equal(fault(() => execSse(cpu, insn(0x128, 0, { mod: 0, ea: 0x1008 }))), 13);
    assert.equal(fault(() => execSse(cpu, insn(0x16f, 0x66, { mod: 0, ea: 0x1004 }))), 13);
    assert.equal(fault(() => execSse(cpu, insn(0x17f, 0x66, { mod: 0, ea: 0x1004 }))), 13);
    assert.equal(fault(() => execSse(cpu, addps({ mod: 0, ea: 0x1001 }))), 13);
    assert.equal(execSse(cpu, insn(0x110, 0, { mod: 0, ea: 0x1001 })), true);
    assert.equal(execSse(cpu, insn(0x16f, 0xf3, { mod: 0, ea: 0x1003 })), true);
    assert.equal(execSse(cpu, insn(0x158, 0xf3, { mod: 0, ea: 0x1003 })), true);
  });
  it('ldmxcsr: #GP on reserved bits; stmxcsr stores the value', () => {
    const cpu = new TestCpu();
    const dv = new DataView(cpu.mem.buffer);
    dv.setUint32(0x100, 0x10000, true);
    assert.equal(fault(() => execSse(cpu, insn(0x1ae, 0, { mod: 0, reg: 2, ea: 0x100 }))), 13);
    dv.setUint32(0x100, 0xffc0, true);
    execSse(cpu, insn(0x1ae, 0, { mod: 0, reg: 2, ea: 0x100 }));
    assert.equal(cpu.fpu.mxcsr, 0xffc0);
    execSse(cpu, insn(0x1ae, 0, { mod: 0, reg: 3, ea: 0x104 }));
    assert.equal(dv.getUint32(0x104, true), 0xffc0);
  });
  it('unmasked exceptions: #XM with OSXMMEXCPT else #UD, destination unchanged, only pre-computation flags', () => {
    const cpu = new TestCpu();
    const one = new Uint8Array(new Float32Array([1, 1, 1, 1]).buffer), zero = new Uint8Array(new Float32Array([0, 2, 0, 2]).buffer);
    setXmm(cpu, 0, one); setXmm(cpu, 1, zero);
    cpu.fpu.mxcsr = 0x1f80 & ~0x200; // ZM clear
    assert.equal(fault(() => execSse(cpu, insn(0x15e, 0))), 19); // divps
    assert.deepEqual(getXmm(cpu, 0), one);
    assert.equal(cpu.fpu.mxcsr & 0x3f, 0x04, 'ZE only (PE of the 1/2 lanes not reported)');
    cpu.cr4 &= ~(1 << 10);
    assert.equal(fault(() => execSse(cpu, insn(0x15e, 0))), 6);
    // masked: result written, flags accumulate
    cpu.fpu.mxcsr = 0x1f80;
    execSse(cpu, insn(0x15e, 0));
    assert.equal(new Float32Array(getXmm(cpu, 0).buffer)[0], Infinity);
    assert.equal(cpu.fpu.mxcsr & 0x3f, 0x04);
    // unmasked precision: post-computation, #XM, PE set
    cpu.cr4 |= 1 << 10;
    setXmm(cpu, 0, one); setXmm(cpu, 1, new Uint8Array(new Float32Array([3, 3, 3, 3]).buffer));
    cpu.fpu.mxcsr = 0x1f80 & ~0x1000;
    assert.equal(fault(() => execSse(cpu, insn(0x15e, 0))), 19);
    assert.equal(cpu.fpu.mxcsr & 0x3f, 0x20);
    assert.deepEqual(getXmm(cpu, 0), one);
  });
  it('comisd sets ZF PF CF and clears OF SF AF; unordered with a QNaN raises IE only for comisd', async () => {
    const { getArithFlags } = await import('../../../src/processor/emulated/flags.js');
    const cpu = new TestCpu();
    const d = (x: number, y: number) => new Uint8Array(new Float64Array([x, y]).buffer);
    const cases: [number, number, number][] = [[1, 2, 0x01], [2, 1, 0], [1, 1, 0x40], [NaN, 1, 0x45]];
    for (const [x, y, fl] of cases) {
      setXmm(cpu, 0, d(x, 0)); setXmm(cpu, 1, d(y, 0));
      cpu.fpu.mxcsr = 0x1f80; cpu.ccOp = 0; cpu.ccSrc1 = 0x8d5;
      execSse(cpu, insn(0x12e, 0x66));
      assert.equal(getArithFlags(cpu), fl);
      assert.equal(cpu.fpu.mxcsr & 1, 0, 'ucomisd: QNaN is quiet');
      execSse(cpu, insn(0x12f, 0x66));
      assert.equal(getArithFlags(cpu), fl);
      assert.equal(cpu.fpu.mxcsr & 1, Number.isNaN(x) ? 1 : 0, 'comisd signals on QNaN');
    }
  });
});

describe('x87 exceptions and state', () => {
  it('#NM with CR0.EM or CR0.TS; FWAIT #NM only with MP and TS', () => {
    const cpu = new TestCpu();
    cpu.cr0 |= 8;
    assert.equal(fault(() => X87(cpu, 0xd9, 5, 0)), 7);
    assert.equal(fault(() => fwait(cpu)), -1);
    cpu.cr0 |= 2;
    assert.equal(fault(() => fwait(cpu)), 7);
    cpu.cr0 &= ~(8 | 2); cpu.cr0 |= 4;
    assert.equal(fault(() => X87(cpu, 0xd9, 5, 0)), 7);
  });
  it('unmasked zero divide: ES/B set, destination unchanged, #MF at the next waiting instruction, not at FNSTSW/FNCLEX', () => {
    const cpu = new TestCpu();
    X87(cpu, 0xdb, 4, 3); // fninit
    cpu.mem[0x100] = 0x7b; cpu.mem[0x101] = 0x03; // cw 0x37b: ZM clear
    X87M(cpu, 0xd9, 5, 0x100);
    X87(cpu, 0xd9, 5, 6); // fldz
    X87(cpu, 0xd9, 5, 0); // fld1
    X87(cpu, 0xd8, 6, 1); // fdiv st, st(1): 1/0
    const sw = statusWord(cpu.f);
    assert.equal(sw & 0x80bf, 0x8084, 'ZE, ES, B');
    assert.equal(fault(() => fwait(cpu)), 16);
    assert.equal(fault(() => X87(cpu, 0xd9, 5, 0)), 16, 'fld1 is a waiting instruction');
    assert.equal(fault(() => X87(cpu, 0xdf, 4, 0)), -1, 'fnstsw ax does not wait');
    assert.equal(cpu.gpr[0] & 0xffff, sw);
    X87(cpu, 0xdb, 4, 2); // fnclex
    assert.equal(fault(() => fwait(cpu)), -1);
    // st0 still 1.0 (no result written)
    X87M(cpu, 0xdb, 7, 0x200);
    assert.equal(toHex(cpu.mem.subarray(0x200, 0x20a)), '0000000000000080ff3f');
  });
  it('stack overflow and underflow set IE|SF with C1, and load the indefinite value when masked', () => {
    const cpu = new TestCpu();
    X87(cpu, 0xdb, 4, 3);
    for (let i = 0; i < 8; i++) X87(cpu, 0xd9, 5, 0);
    X87(cpu, 0xd9, 5, 0); // ninth push
    assert.equal(statusWord(cpu.f) & 0x241, 0x241);
    X87M(cpu, 0xdb, 7, 0x200);
    assert.equal(toHex(cpu.mem.subarray(0x200, 0x20a)), '00000000000000c0ffff');
    X87(cpu, 0xdb, 4, 3);
    X87(cpu, 0xd8, 0, 1); // fadd on empty stack
    assert.equal(statusWord(cpu.f) & 0x241, 0x041);
  });
  it('fnstenv/fldenv and fnsave/frstor round-trip the state; fnsave reinitializes', () => {
    const cpu = new TestCpu();
    X87(cpu, 0xdb, 4, 3);
    X87(cpu, 0xd9, 5, 3); X87(cpu, 0xd9, 5, 0); // pi, 1
    const before = { sw: statusWord(cpu.f), cw: cpu.f.fcw };
    X87M(cpu, 0xdd, 6, 0x400); // fnsave
    assert.equal(statusWord(cpu.f), 0);
    assert.equal(cpu.f.empty, 0xff);
    X87M(cpu, 0xdd, 4, 0x400); // frstor
    assert.equal(statusWord(cpu.f), before.sw);
    assert.equal(cpu.f.fcw, before.cw);
    assert.equal(cpu.mem[0x408] | (cpu.mem[0x409] << 8), 0x0fff, 'tag word: two valid, six empty');
    X87M(cpu, 0xdb, 7, 0x200);
    assert.equal(toHex(cpu.mem.subarray(0x200, 0x20a)), '0000000000000080ff3f');
    X87M(cpu, 0xdb, 7, 0x200);
    assert.equal(toHex(cpu.mem.subarray(0x200, 0x20a)), '35c26821a2da0fc90040');
  });
  it('fxch, fcmov (by RFLAGS), ffree, fincstp/fdecstp and fnstcw/fldcw act on the stack as specified', async () => {
    const { setArithFlags } = await import('../../../src/processor/emulated/flags.js');
    const cpu = new TestCpu();
    const st0 = () => { X87M(cpu, 0xdd, 2, 0x200); return new Float64Array(cpu.mem.slice(0x200, 0x208).buffer)[0]; }; // fst m64
    X87(cpu, 0xdb, 4, 3);
    X87(cpu, 0xd9, 5, 6); X87(cpu, 0xd9, 5, 0); // 0, 1
    X87(cpu, 0xd9, 1, 1); // fxch st1
    assert.equal(st0(), 0);
    setArithFlags(cpu, 0x01); // CF
    X87(cpu, 0xda, 0, 1); // fcmovb st, st1: taken
    assert.equal(st0(), 1);
    X87(cpu, 0xd9, 5, 6); // push 0
    X87(cpu, 0xdb, 0, 1); // fcmovnb: not taken (CF=1)
    assert.equal(st0(), 0);
    setArithFlags(cpu, 0x40); // ZF
    X87(cpu, 0xda, 1, 1); // fcmove: taken
    assert.equal(st0(), 1);
    const top = statusWord(cpu.f) >> 11 & 7;
    X87(cpu, 0xd9, 6, 7); // fincstp
    assert.equal(statusWord(cpu.f) >> 11 & 7, (top + 1) & 7);
    X87(cpu, 0xd9, 6, 6); // fdecstp
    X87(cpu, 0xdd, 0, 0); // ffree st0
    X87(cpu, 0xd9, 4, 5); // fxam: empty -> C3 C0
    assert.equal(statusWord(cpu.f) & 0x4500, 0x4100);
    cpu.mem[0x300] = 0x7f; cpu.mem[0x301] = 0x0e;
    X87M(cpu, 0xd9, 5, 0x300); X87M(cpu, 0xd9, 7, 0x302);
    assert.equal(cpu.mem[0x302] | (cpu.mem[0x303] << 8), 0x0e7f);
  });
});
