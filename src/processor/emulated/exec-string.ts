/**
 * String instructions (movs stos lods cmps scas ins outs) with rep/repe/repne and 16/32/64-bit address
 * sizes, and port I/O. Registers advance after every element so a fault mid-way restarts correctly; a long
 * rep yields after a bounded number of elements (RIP stays on the instruction) so interrupts are not delayed.
 */
import type { Cpu } from './cpu.js';
import type { Insn } from './decoder.js';
import { F } from './cpu-state.js';
import { readMem, writeMem, getReg, setReg } from './exec-common.js';
import { aluFlagsOnly } from './exec-alu.js';
import { getZF } from './flags.js';
import * as sys from './system.js';
import * as mmu from './mmu.js';

const TWO32 = 4294967296;
/** Elements per execution of a rep instruction before yielding to the run loop. */
const REP_CHUNK = 16384;

function regAddr(cpu: Cpu, r: number, asz: number): number {
  const g = cpu.gpr;
  return asz === 8 ? g[(r << 1) + 1] * TWO32 + (g[r << 1] >>> 0) : asz === 4 ? g[r << 1] >>> 0 : g[r << 1] & 0xffff;
}
function advance(cpu: Cpu, r: number, asz: number, d: number): void {
  const g = cpu.gpr, k = r << 1;
  if (asz === 8) {
    const lo = (g[k] + d) | 0;
    if (d > 0) { if ((lo >>> 0) < (g[k] >>> 0)) g[k + 1] = (g[k + 1] + 1) | 0; } else if ((lo >>> 0) > (g[k] >>> 0)) g[k + 1] = (g[k + 1] - 1) | 0;
    g[k] = lo;
  } else if (asz === 4) { g[k] = (g[k] + d) | 0; g[k + 1] = 0; }
  else g[k] = (g[k] & ~0xffff) | ((g[k] + d) & 0xffff);
}
function srcLin(cpu: Cpu, i: Insn): number {
  const off = regAddr(cpu, 6, i.asz);
  const seg = i.segOv >= 0 ? i.segOv : 3;
  if (i.long) return seg >= 4 ? off + cpu.segBase[seg] : off;
  return (off + cpu.segBase[seg]) >>> 0;
}
function dstLin(cpu: Cpu, i: Insn): number {
  const off = regAddr(cpu, 7, i.asz);
  return i.long ? off : (off + cpu.segBase[0]) >>> 0;
}
function count(cpu: Cpu, asz: number): number { return regAddr(cpu, 1, asz); }
function decCount(cpu: Cpu, asz: number): void { advance(cpu, 1, asz, -1); }
function step(cpu: Cpu, s: number): number { return (cpu.flagsRest & F.DF) !== 0 ? -s : s; }

/**
 * Intel: a 32-bit-address rep that runs no element still writes the 32-bit count and the pointers the
 * instruction advances (`pointers`: 1 RSI, 2 RDI), clearing their upper halves.
 */
function intelEmptyRep(cpu: Cpu, i: Insn, pointers: number): void {
  const g = cpu.gpr;
  if (i.rep === 0 || i.asz !== 4 || g[2] !== 0) return;
  g[3] = 0;
  if ((pointers & 1) !== 0) g[13] = 0;
  if ((pointers & 2) !== 0) g[15] = 0;
}

/** Run `one` for each element under a rep prefix; returns without finishing when the chunk is spent. */
function repLoop(cpu: Cpu, i: Insn, one: (cpu: Cpu, i: Insn) => void, cond: number): void {
  if (i.rep === 0) { one(cpu, i); return; }
  if (cond !== 0 && cpu.intelStrings) { repCompareIntel(cpu, i, one, cond); return; }
  repElements(cpu, i, one, cond);
}

/** Intel: a rep CMPS/SCAS that faults part-way reports the flags it started with (registers keep their progress). */
function repCompareIntel(cpu: Cpu, i: Insn, one: (cpu: Cpu, i: Insn) => void, cond: number): void {
  const op = cpu.ccOp, res = cpu.ccRes, resHi = cpu.ccResHi, s1 = cpu.ccSrc1, s1Hi = cpu.ccSrc1Hi;
  const s2 = cpu.ccSrc2, s2Hi = cpu.ccSrc2Hi, aux = cpu.ccAux;
  try {
    repElements(cpu, i, one, cond);
  } catch (e) {
    cpu.ccOp = op; cpu.ccRes = res; cpu.ccResHi = resHi; cpu.ccSrc1 = s1; cpu.ccSrc1Hi = s1Hi;
    cpu.ccSrc2 = s2; cpu.ccSrc2Hi = s2Hi; cpu.ccAux = aux;
    throw e;
  }
}

function repElements(cpu: Cpu, i: Insn, one: (cpu: Cpu, i: Insn) => void, cond: number): void {
  const asz = i.asz;
  let n = 0;
  while (count(cpu, asz) !== 0) {
    if (n === REP_CHUNK) { cpu.nextRip = cpu.rip; return; } // resume later at the same instruction
    one(cpu, i);
    decCount(cpu, asz);
    n++;
    if (cond !== 0) {
      const zf = getZF(cpu);
      if (cond === 0xf3 ? zf === 0 : zf === 1) return;
    }
  }
}

function movsOne(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = readMem(cpu, srcLin(cpu, i), s), hi = cpu.opHi;
  writeMem(cpu, dstLin(cpu, i), s, v, hi);
  const d = step(cpu, s);
  advance(cpu, 6, i.asz, d); advance(cpu, 7, i.asz, d);
}
function stosOne(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = getReg(cpu, 0, s);
  writeMem(cpu, dstLin(cpu, i), s, v, cpu.opHi);
  advance(cpu, 7, i.asz, step(cpu, s));
}
function lodsOne(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = readMem(cpu, srcLin(cpu, i), s);
  setReg(cpu, 0, s, v, cpu.opHi);
  advance(cpu, 6, i.asz, step(cpu, s));
}
function cmpsOne(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const a = readMem(cpu, srcLin(cpu, i), s), aHi = cpu.opHi;
  const b = readMem(cpu, dstLin(cpu, i), s), bHi = cpu.opHi;
  aluFlagsOnly(cpu, 7, s, a, s === 8 ? aHi : 0, b, s === 8 ? bHi : 0);
  const d = step(cpu, s);
  advance(cpu, 6, i.asz, d); advance(cpu, 7, i.asz, d);
}
function scasOne(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const b = readMem(cpu, dstLin(cpu, i), s), bHi = cpu.opHi;
  const a = getReg(cpu, 0, s), aHi = cpu.opHi;
  aluFlagsOnly(cpu, 7, s, a, s === 8 ? aHi : 0, b, s === 8 ? bHi : 0);
  advance(cpu, 7, i.asz, step(cpu, s));
}
function insOne(cpu: Cpu, i: Insn): void {
  const s = i.osz as 1 | 2 | 4;
  const lin = dstLin(cpu, i);
  cpu.probeWrite(lin, s); // the port is read only if the store can complete
  const v = sys.portIn(cpu, cpu.gpr[4] & 0xffff, s);
  writeMem(cpu, lin, s, v, 0);
  advance(cpu, 7, i.asz, step(cpu, s));
}
function outsOne(cpu: Cpu, i: Insn): void {
  const s = i.osz as 1 | 2 | 4;
  const v = readMem(cpu, srcLin(cpu, i), s);
  sys.portOut(cpu, cpu.gpr[4] & 0xffff, s, s === 4 ? v >>> 0 : v);
  advance(cpu, 6, i.asz, step(cpu, s));
}

export function movs(cpu: Cpu, i: Insn): void {
  if (cpu.intelStrings) intelEmptyRep(cpu, i, 3);
  if (i.rep !== 0 && i.asz !== 2 && (cpu.flagsRest & F.DF) === 0) repMovsBulk(cpu, i);
  else repLoop(cpu, i, movsOne, 0);
}
export function stos(cpu: Cpu, i: Insn): void {
  if (cpu.intelStrings) intelEmptyRep(cpu, i, 2);
  if (i.rep !== 0 && i.asz !== 2 && (cpu.flagsRest & F.DF) === 0) repStosBulk(cpu, i);
  else repLoop(cpu, i, stosOne, 0);
}

// ---- rep movs/stos over RAM a page at a time (forward direction, 32/64-bit addressing)
//
// Each step covers the elements that stay inside one source and one destination page whose translations
// are already in the TLB (so nothing can fault and no code page or MMIO is involved); otherwise one element
// goes through the ordinary path, which fills the TLB, faults, notifies code writes or reaches MMIO.
// Registers are updated after every step, so an interrupt or fault between steps sees a consistent state.

/** Elements of size s from linear `lin` up to the end of its page (and, with 32-bit addressing, of the 4 GiB offset space). */
function elementsInPage(cpu: Cpu, i: Insn, lin: number, r: number, s: number): number {
  let bytes = 4096 - (lin & 0xfff);
  if (i.asz === 4) { const left = 4294967296 - regAddr(cpu, r, 4); if (left < bytes) bytes = left; }
  return Math.floor(bytes / s);
}

function repStosBulk(cpu: Cpu, i: Insn): void {
  const s = i.osz, asz = i.asz;
  let budget = REP_CHUNK;
  for (;;) {
    const cnt = count(cpu, asz);
    if (cnt === 0) return;
    if (budget === 0) { cpu.nextRip = cpu.rip; return; }
    const lin = dstLin(cpu, i);
    const off = mmu.ramOffsetWrite(cpu, lin);
    let n = elementsInPage(cpu, i, lin, 7, s);
    if (cnt < n) n = cnt;
    if (budget < n) n = budget;
    if (off < 0 || n === 0) { stosOne(cpu, i); decCount(cpu, asz); budget--; continue; }
    const ram = cpu.ram;
    const v = getReg(cpu, 0, s);
    const total = n * s;
    if (s === 1) ram.fill(v, off, off + total);
    else {
      const view = cpu.ramView;
      if (s === 2) view.setUint16(off, v, true);
      else if (s === 4) view.setInt32(off, v, true);
      else { view.setInt32(off, v, true); view.setInt32(off + 4, cpu.opHi, true); }
      for (let done = s; done < total;) {
        const c = done < total - done ? done : total - done;
        ram.copyWithin(off + done, off, off + c);
        done += c;
      }
    }
    advance(cpu, 7, asz, total);
    advance(cpu, 1, asz, -n);
    budget -= n;
  }
}

function repMovsBulk(cpu: Cpu, i: Insn): void {
  const s = i.osz, asz = i.asz;
  let budget = REP_CHUNK;
  for (;;) {
    const cnt = count(cpu, asz);
    if (cnt === 0) return;
    if (budget === 0) { cpu.nextRip = cpu.rip; return; }
    const src = srcLin(cpu, i), dst = dstLin(cpu, i);
    const so = mmu.ramOffsetRead(cpu, src);
    const dO = so < 0 ? -1 : mmu.ramOffsetWrite(cpu, dst);
    let n = elementsInPage(cpu, i, src, 6, s);
    const nd = elementsInPage(cpu, i, dst, 7, s);
    if (nd < n) n = nd;
    if (cnt < n) n = cnt;
    if (budget < n) n = budget;
    const total = n * s;
    const gap = dO - so;
    // An overlap closer than one element makes element-wise copying differ from a byte-wise forward copy.
    if (dO < 0 || n === 0 || (gap > 0 && gap < s && gap < total)) { movsOne(cpu, i); decCount(cpu, asz); budget--; continue; }
    const ram = cpu.ram;
    if (gap <= 0 || gap >= total) ram.copyWithin(dO, so, so + total);
    else for (let k = 0; k < total; k++) ram[dO + k] = ram[so + k]; // forward overlap repeats the pattern, as the hardware does
    advance(cpu, 6, asz, total);
    advance(cpu, 7, asz, total);
    advance(cpu, 1, asz, -n);
    budget -= n;
  }
}
export function lods(cpu: Cpu, i: Insn): void {
  if (cpu.intelStrings) intelEmptyRep(cpu, i, 0);
  repLoop(cpu, i, lodsOne, 0);
}
export function cmps(cpu: Cpu, i: Insn): void {
  if (cpu.intelStrings) intelEmptyRep(cpu, i, 0);
  repLoop(cpu, i, cmpsOne, i.rep);
}
export function scas(cpu: Cpu, i: Insn): void {
  if (cpu.intelStrings) intelEmptyRep(cpu, i, 0);
  repLoop(cpu, i, scasOne, i.rep);
}
export function ins(cpu: Cpu, i: Insn): void {
  if (cpu.intelStrings) intelEmptyRep(cpu, i, 0);
  repLoop(cpu, i, insOne, 0);
}
export function outs(cpu: Cpu, i: Insn): void {
  if (cpu.intelStrings) intelEmptyRep(cpu, i, 0);
  repLoop(cpu, i, outsOne, 0);
}

// ---- port I/O

export function inImm(cpu: Cpu, i: Insn): void {
  const s = i.osz as 1 | 2 | 4;
  setReg(cpu, 0, s, sys.portIn(cpu, i.imm & 0xff, s) | 0, 0);
}
export function inDx(cpu: Cpu, i: Insn): void {
  const s = i.osz as 1 | 2 | 4;
  setReg(cpu, 0, s, sys.portIn(cpu, cpu.gpr[4] & 0xffff, s) | 0, 0);
}
export function outImm(cpu: Cpu, i: Insn): void {
  const s = i.osz as 1 | 2 | 4;
  const v = getReg(cpu, 0, s);
  sys.portOut(cpu, i.imm & 0xff, s, s === 4 ? v >>> 0 : v);
}
export function outDx(cpu: Cpu, i: Insn): void {
  const s = i.osz as 1 | 2 | 4;
  const v = getReg(cpu, 0, s);
  sys.portOut(cpu, cpu.gpr[4] & 0xffff, s, s === 4 ? v >>> 0 : v);
}
