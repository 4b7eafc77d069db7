/**
 * Data movement: mov forms (with register-to-register and 32/64-bit fast paths), movzx/movsx/movsxd, lea,
 * xchg, cbw/cwd families, setcc, cmovcc, xlat, moves to and from segment registers.
 */
import type { Cpu } from './cpu.js';
import type { Insn } from './decoder.js';
import { testCondition } from './flags.js';
import { ea, eaHalves, readRM, storeRM, getReg, setReg, setReg8, setReg16, setReg32, readMem, writeMem, writeRM } from './exec-common.js';
import * as mmu from './mmu.js';

export function movRR32(cpu: Cpu, i: Insn): void { // 89 /r, mod 3, 32-bit
  const g = cpu.gpr; g[i.rm << 1] = g[i.reg << 1]; g[(i.rm << 1) + 1] = 0;
}
export function movRR64(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr; g[i.rm << 1] = g[i.reg << 1]; g[(i.rm << 1) + 1] = g[(i.reg << 1) + 1];
}
export function movRR32r(cpu: Cpu, i: Insn): void { // 8B /r, mod 3
  const g = cpu.gpr; g[i.reg << 1] = g[i.rm << 1]; g[(i.reg << 1) + 1] = 0;
}
export function movRR64r(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr; g[i.reg << 1] = g[i.rm << 1]; g[(i.reg << 1) + 1] = g[(i.rm << 1) + 1];
}
export function movGE64(cpu: Cpu, i: Insn): void {
  const lo = mmu.read64(cpu, ea(cpu, i));
  const g = cpu.gpr; g[i.reg << 1] = lo; g[(i.reg << 1) + 1] = cpu.memHi;
}
export function movGE32(cpu: Cpu, i: Insn): void {
  const v = mmu.read32(cpu, ea(cpu, i));
  const g = cpu.gpr; g[i.reg << 1] = v; g[(i.reg << 1) + 1] = 0;
}

/** mov r/m, reg */
export function movEG(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = getReg(cpu, s === 1 ? i.reg8 : i.reg, s);
  storeRM(cpu, i, v, s === 8 ? cpu.opHi : 0);
}
/** mov reg, r/m */
export function movGE(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = readRM(cpu, i);
  setReg(cpu, s === 1 ? i.reg8 : i.reg, s, v, s === 8 ? cpu.opHi : 0);
}
/** mov r/m, imm */
export function movEI(cpu: Cpu, i: Insn): void {
  storeRM(cpu, i, i.imm, i.immHi);
}
/** mov reg, imm (B0-BF) */
export function movRegImm(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  if (s === 1) setReg8(cpu, i.rm8, i.imm);
  else setReg(cpu, i.rm, s, i.imm, i.immHi);
}
/** mov AL/eAX/rAX, moffs */
export function movAccMoffs(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = readMem(cpu, ea(cpu, i), s);
  setReg(cpu, 0, s, v, s === 8 ? cpu.opHi : 0);
}
export function movMoffsAcc(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = getReg(cpu, 0, s);
  writeMem(cpu, ea(cpu, i), s, v, s === 8 ? cpu.opHi : 0);
}

export function lea(cpu: Cpu, i: Insn): void {
  // Address without the segment base, exact in 64 bits, truncated to the operand size.
  const lo = eaHalves(cpu, i);
  const s = i.osz;
  setReg(cpu, i.reg, s, s === 2 ? lo & 0xffff : lo, cpu.opHi);
}

function readRM8or16(cpu: Cpu, i: Insn, s: number): number {
  if (i.mod === 3) return s === 1 ? getReg(cpu, i.rm8, 1) : cpu.gpr[i.rm << 1] & 0xffff;
  return readMem(cpu, ea(cpu, i), s);
}
export function movzx8(cpu: Cpu, i: Insn): void { setReg(cpu, i.reg, i.osz, readRM8or16(cpu, i, 1), 0); }
export function movzx16(cpu: Cpu, i: Insn): void { setReg(cpu, i.reg, i.osz, readRM8or16(cpu, i, 2), 0); }
export function movsx8(cpu: Cpu, i: Insn): void {
  const v = (readRM8or16(cpu, i, 1) << 24) >> 24;
  setReg(cpu, i.reg, i.osz, i.osz === 2 ? v & 0xffff : v, v >> 31);
}
export function movsx16(cpu: Cpu, i: Insn): void {
  const v = (readRM8or16(cpu, i, 2) << 16) >> 16;
  setReg(cpu, i.reg, i.osz, i.osz === 2 ? v & 0xffff : v, v >> 31);
}
/** movsxd (63 /r in 64-bit mode): without REX.W it is a plain 32/16-bit move. */
export function movsxd(cpu: Cpu, i: Insn): void {
  if (i.osz === 8) {
    const v = i.mod === 3 ? cpu.gpr[i.rm << 1] : mmu.read32(cpu, ea(cpu, i)) | 0;
    setReg(cpu, i.reg, 8, v, v >> 31);
  } else {
    const v = i.osz === 4 ? (i.mod === 3 ? cpu.gpr[i.rm << 1] : mmu.read32(cpu, ea(cpu, i)) | 0) : readRM8or16(cpu, i, 2);
    setReg(cpu, i.reg, i.osz, v, 0);
  }
}

export function xchgEG(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const rr = s === 1 ? i.reg8 : i.reg;
  const a = readRM(cpu, i), aHi = s === 8 ? cpu.opHi : 0;
  const b = getReg(cpu, rr, s), bHi = s === 8 ? cpu.opHi : 0;
  writeRM(cpu, i, b, bHi);
  setReg(cpu, rr, s, a, aHi);
}
/** xchg rAX, reg (90+r) */
export function xchgAcc(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const a = getReg(cpu, 0, s), aHi = s === 8 ? cpu.opHi : 0;
  const b = getReg(cpu, i.rm, s), bHi = s === 8 ? cpu.opHi : 0;
  setReg(cpu, 0, s, b, bHi);
  setReg(cpu, i.rm, s, a, aHi);
}

export function cbw(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr;
  switch (i.osz) {
    case 2: setReg16(cpu, 0, (g[0] << 24) >> 24); break;
    case 4: setReg32(cpu, 0, (g[0] << 16) >> 16); break;
    default: g[1] = g[0] >> 31; break;
  }
}
export function cwd(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr;
  switch (i.osz) {
    case 2: setReg16(cpu, 2, (g[0] << 16) >> 31); break;
    case 4: setReg32(cpu, 2, g[0] >> 31); break;
    default: g[4] = g[1] >> 31; g[5] = g[1] >> 31; break;
  }
}

export function setcc(cpu: Cpu, i: Insn): void {
  storeRM(cpu, i, testCondition(cpu, i.sub) ? 1 : 0, 0);
}

export function cmov(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = readRM(cpu, i); // the source is read (and may fault) whatever the condition
  const hi = cpu.opHi;
  if (testCondition(cpu, i.sub)) setReg(cpu, i.reg, s, v, hi);
  else if (s === 4) cpu.gpr[(i.reg << 1) + 1] = 0; // 32-bit cmov zero-extends even when false
}

export function xlat(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr;
  const al = g[0] & 0xff;
  let a: number;
  if (i.asz === 8) a = g[7] * 4294967296 + (g[6] >>> 0) + al;
  else if (i.asz === 4) a = ((g[6] >>> 0) + al) >>> 0;
  else a = ((g[6] & 0xffff) + al) & 0xffff;
  const seg = i.segOv >= 0 ? i.segOv : 3;
  if (!i.long) a = (a + cpu.segBase[seg]) >>> 0;
  else if (seg >= 4) a += cpu.segBase[seg];
  setReg8(cpu, 0, mmu.read8(cpu, a));
}

export function movFromSeg(cpu: Cpu, i: Insn): void {
  const v = cpu.segSel[i.reg & 7];
  // To a register the selector is zero-extended to the operand size; to memory it is always 16 bits.
  if (i.mod === 3) setReg(cpu, i.rm, i.osz === 8 ? 8 : i.osz, v, 0);
  else writeMem(cpu, ea(cpu, i), 2, v, 0);
}
