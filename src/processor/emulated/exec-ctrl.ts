/**
 * Control transfer and stack: jcc/jmp/call/ret (near), loop/jcxz, push/pop forms, pusha/popa, enter/leave,
 * pushf/popf, software interrupts, IRET and far transfers (through system.ts), segment register loads.
 * Handlers that move RIP set cpu.nextRip; system functions that transfer control set cpu.rip, which is then
 * copied to nextRip.
 */
import type { Cpu } from './cpu.js';
import type { Insn } from './decoder.js';
import { testCondition, getRflags, getOF, getZF } from './flags.js';
import { F } from './cpu-state.js';
import { ea, readRM, storeRM, getReg, setReg, push, pop, peek, adjustSp, maskIp, readMem, stackWidth, setReg16, setReg32 } from './exec-common.js';
import * as sys from './system.js';
import * as mmu from './mmu.js';
import { softwareInterrupt, raise } from './exceptions.js';

const TWO32 = 4294967296;

function target(cpu: Cpu, i: Insn): number {
  return maskIp(cpu.nextRip + i.imm, i.osz);
}

export function jcc(cpu: Cpu, i: Insn): void {
  if (testCondition(cpu, i.sub)) cpu.nextRip = target(cpu, i);
}
export function jmpRel(cpu: Cpu, i: Insn): void {
  cpu.nextRip = target(cpu, i);
}
function pushIp(cpu: Cpu, s: number, v: number): void {
  if (s === 8) push(cpu, 8, v >>> 0, Math.floor(v / TWO32) | 0);
  else push(cpu, s, v, 0);
}
export function callRel(cpu: Cpu, i: Insn): void {
  const t = target(cpu, i);
  pushIp(cpu, i.osz, cpu.nextRip);
  cpu.nextRip = t;
}
function readTarget(cpu: Cpu, i: Insn): number {
  const s = i.osz;
  const v = readRM(cpu, i);
  return s === 8 ? cpu.opHi * TWO32 + (v >>> 0) : s === 4 ? v >>> 0 : v & 0xffff;
}
export function callInd(cpu: Cpu, i: Insn): void {
  const t = readTarget(cpu, i);
  pushIp(cpu, i.osz, cpu.nextRip);
  cpu.nextRip = t;
}
export function jmpInd(cpu: Cpu, i: Insn): void {
  cpu.nextRip = readTarget(cpu, i);
}
function popIp(cpu: Cpu, s: number, extra: number): number {
  const v = peek(cpu, s, 0);
  const t = s === 8 ? cpu.opHi * TWO32 + (v >>> 0) : s === 4 ? v >>> 0 : v & 0xffff;
  adjustSp(cpu, s + extra);
  return t;
}
export function ret(cpu: Cpu, i: Insn): void { cpu.nextRip = popIp(cpu, i.osz, 0); }
export function retImm(cpu: Cpu, i: Insn): void { cpu.nextRip = popIp(cpu, i.osz, i.imm); }

function countReg(cpu: Cpu, asz: number): number {
  const g = cpu.gpr;
  return asz === 8 ? (g[2] | g[3]) : asz === 4 ? g[2] : g[2] & 0xffff;
}
export function loop(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr;
  const asz = i.asz;
  if (asz === 8) { if (g[2] === 0) g[3] = (g[3] - 1) | 0; g[2] = (g[2] - 1) | 0; }
  else if (asz === 4) { g[2] = (g[2] - 1) | 0; g[3] = 0; }
  else g[2] = (g[2] & ~0xffff) | ((g[2] - 1) & 0xffff);
  if (countReg(cpu, asz) === 0) return;
  if (i.sub === 0 && getZF(cpu)) return; // loopne
  if (i.sub === 1 && !getZF(cpu)) return; // loope
  cpu.nextRip = target(cpu, i);
}
export function jcxz(cpu: Cpu, i: Insn): void {
  if (countReg(cpu, i.asz) === 0) cpu.nextRip = target(cpu, i);
}

// ---- stack

export function pushReg(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = getReg(cpu, i.rm, s);
  push(cpu, s, v, s === 8 ? cpu.opHi : 0);
}
export function popReg(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = peek(cpu, s, 0), hi = cpu.opHi;
  adjustSp(cpu, s);
  setReg(cpu, i.rm, s, v, hi);
}
/** push r64 in 64-bit mode (the common case: no size or stack-width switches). */
export function pushR64(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr, r = i.rm << 1;
  mmu.write64(cpu, g[9] * TWO32 + (g[8] >>> 0) - 8, g[r], g[r + 1]);
  const lo = (g[8] - 8) | 0;
  if ((lo >>> 0) > (g[8] >>> 0)) g[9] = (g[9] - 1) | 0;
  g[8] = lo;
}
/** pop r64 in 64-bit mode (pop rsp leaves the popped value, as the generic form). */
export function popR64(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr;
  const v = mmu.read64(cpu, g[9] * TWO32 + (g[8] >>> 0)) | 0, hi = cpu.memHi | 0;
  const lo = (g[8] + 8) | 0;
  if ((lo >>> 0) < (g[8] >>> 0)) g[9] = (g[9] + 1) | 0;
  g[8] = lo;
  const r = i.rm << 1;
  g[r] = v; g[r + 1] = hi;
}
export function pushImm(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  push(cpu, s, s === 2 ? i.imm & 0xffff : i.imm, i.immHi);
}
export function pushRM(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = readRM(cpu, i);
  push(cpu, s, v, s === 8 ? cpu.opHi : 0);
}
export function popRM(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = peek(cpu, s, 0), hi = cpu.opHi;
  const sp0 = cpu.gpr[8], sp1 = cpu.gpr[9];
  adjustSp(cpu, s); // the destination address uses the incremented stack pointer
  try {
    storeRM(cpu, i, v, hi);
  } catch (e) {
    cpu.gpr[8] = sp0; cpu.gpr[9] = sp1;
    throw e;
  }
}
export function pusha(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const g = cpu.gpr;
  const sp = g[8];
  const w = stackWidth(cpu);
  // Check the whole frame first so a fault leaves memory and ESP unchanged.
  const base = w === 4 ? ((sp - 8 * s) >>> 0) : ((sp - 8 * s) & 0xffff);
  if (w === 4 || base + 8 * s <= 0x10000) sys_probe(cpu, (cpu.segBase[2] + base) >>> 0, 8 * s);
  for (let r = 0; r < 8; r++) push(cpu, s, r === 4 ? (s === 2 ? sp & 0xffff : sp) : getReg(cpu, r, s), 0);
}
function sys_probe(cpu: Cpu, lin: number, len: number): void { cpu.probeWrite(lin, len); }
export function popa(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const vals = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let r = 7; r >= 0; r--) vals[r] = peek(cpu, s, (7 - r) * s);
  for (let r = 7; r >= 0; r--) if (r !== 4) setReg(cpu, r, s, vals[r], 0);
  adjustSp(cpu, 8 * s);
}

export function enter(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const size = i.imm & 0xffff;
  const level = i.imm2 & 31;
  const g = cpu.gpr;
  const w = stackWidth(cpu);
  const sp0 = g[8], sp1 = g[9], bp0 = g[10], bp1 = g[11];
  try {
    const bp = getReg(cpu, 5, s), bpHi = cpu.opHi;
    push(cpu, s, bp, s === 8 ? bpHi : 0);
    // frame pointer value = stack pointer after pushing the old frame pointer
    const fLo = g[8], fHi = g[9];
    if (level > 0) {
      let bpv = w === 8 ? g[11] * TWO32 + (g[10] >>> 0) : w === 4 ? g[10] >>> 0 : g[10] & 0xffff;
      for (let k = 1; k < level; k++) {
        bpv -= s;
        const lin = w === 8 ? bpv : (cpu.segBase[2] + (w === 4 ? bpv >>> 0 : bpv & 0xffff)) >>> 0;
        const v = readMem(cpu, lin, s);
        push(cpu, s, v, s === 8 ? cpu.opHi : 0);
      }
      push(cpu, s, fLo, s === 8 ? fHi : 0);
    }
    if (s === 2) setReg16(cpu, 5, fLo);
    else if (w === 8 || s === 8) { g[10] = fLo; g[11] = fHi; } else setReg32(cpu, 5, fLo);
    adjustSp(cpu, -size);
    if (w === 8) cpu.probeWrite(g[9] * TWO32 + (g[8] >>> 0), 1);
  } catch (e) {
    g[8] = sp0; g[9] = sp1; g[10] = bp0; g[11] = bp1;
    throw e;
  }
}
export function leave(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr;
  const w = stackWidth(cpu);
  const sp0 = g[8], sp1 = g[9];
  if (w === 8) { g[8] = g[10]; g[9] = g[11]; } else if (w === 4) g[8] = g[10]; else g[8] = (g[8] & ~0xffff) | (g[10] & 0xffff);
  try {
    const s = i.osz;
    const v = peek(cpu, s, 0), hi = cpu.opHi;
    adjustSp(cpu, s);
    setReg(cpu, 5, s, v, hi);
  } catch (e) {
    g[8] = sp0; g[9] = sp1;
    throw e;
  }
}

export function pushf(cpu: Cpu, i: Insn): void {
  const v = getRflags(cpu) & ~(F.RF | F.VM);
  push(cpu, i.osz, i.osz === 2 ? v & 0xffff : v, 0);
}
export function popf(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = peek(cpu, s, 0);
  sys.writeFlagsChecked(cpu, s === 2 ? v & 0xffff : v >>> 0, s);
  adjustSp(cpu, s);
}

// ---- segment registers

export function movToSeg(cpu: Cpu, i: Insn): void {
  const sel = readRM(cpu, i) & 0xffff;
  const seg = i.reg & 7;
  sys.loadSegment(cpu, seg, sel);
  if (seg === 2) cpu.intShadow = true;
}
export function pushSeg(cpu: Cpu, i: Insn): void {
  push(cpu, i.osz, cpu.segSel[i.sub], 0);
}
export function popSeg(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const sel = peek(cpu, s, 0) & 0xffff;
  sys.loadSegment(cpu, i.sub, sel);
  adjustSp(cpu, s);
  if (i.sub === 2) cpu.intShadow = true;
}
/** les lds lss lfs lgs: offset then selector from memory. */
export function loadFarPtr(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const a = ea(cpu, i);
  const off = readMem(cpu, a, s), offHi = cpu.opHi;
  const sel = readMem(cpu, a + s, 2);
  sys.loadSegment(cpu, i.sub, sel);
  setReg(cpu, i.reg, s, off, offHi);
  if (i.sub === 2) cpu.intShadow = true;
}

export function bound(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const a = ea(cpu, i);
  let idx = getReg(cpu, i.reg, s), lo = readMem(cpu, a, s), hi = readMem(cpu, a + s, s);
  if (s === 2) { idx = (idx << 16) >> 16; lo = (lo << 16) >> 16; hi = (hi << 16) >> 16; }
  if (idx < lo || idx > hi) raise(cpu, 5);
}

// ---- far transfers and interrupts (system.ts)

function farPtr(cpu: Cpu, i: Insn): number {
  const s = i.osz;
  const a = ea(cpu, i);
  const off = readMem(cpu, a, s);
  const o = s === 8 ? cpu.opHi * TWO32 + (off >>> 0) : s === 4 ? off >>> 0 : off & 0xffff;
  farSel = readMem(cpu, a + s, 2);
  return o;
}
let farSel = 0;

export function jmpFarImm(cpu: Cpu, i: Insn): void {
  sys.farJump(cpu, i.imm2, i.imm, cpu.nextRip); cpu.nextRip = cpu.rip;
}
export function callFarImm(cpu: Cpu, i: Insn): void {
  sys.farCall(cpu, i.imm2, i.imm, i.osz, cpu.nextRip); cpu.nextRip = cpu.rip;
}
export function jmpFarInd(cpu: Cpu, i: Insn): void {
  const off = farPtr(cpu, i);
  sys.farJump(cpu, farSel, off, cpu.nextRip); cpu.nextRip = cpu.rip;
}
export function callFarInd(cpu: Cpu, i: Insn): void {
  const off = farPtr(cpu, i);
  sys.farCall(cpu, farSel, off, i.osz, cpu.nextRip); cpu.nextRip = cpu.rip;
}
export function retFar(cpu: Cpu, i: Insn): void {
  sys.farReturn(cpu, i.osz, i.imm); cpu.nextRip = cpu.rip;
}
export function iret(cpu: Cpu, i: Insn): void {
  sys.iret(cpu, i.osz); cpu.nextRip = cpu.rip;
}
export function int3(cpu: Cpu): void {
  softwareInterrupt(cpu, 3, cpu.nextRip, 'int3'); cpu.nextRip = cpu.rip;
}
export function int1(cpu: Cpu): void {
  softwareInterrupt(cpu, 1, cpu.nextRip, 'int1'); cpu.nextRip = cpu.rip;
}
export function intN(cpu: Cpu, i: Insn): void {
  softwareInterrupt(cpu, i.imm & 0xff, cpu.nextRip, 'int'); cpu.nextRip = cpu.rip;
}
export function into(cpu: Cpu): void {
  if (getOF(cpu)) { softwareInterrupt(cpu, 4, cpu.nextRip, 'into'); cpu.nextRip = cpu.rip; }
}
