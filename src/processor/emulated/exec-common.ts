/**
 * Operand access shared by the instruction handlers: registers by size, effective addresses, memory operands.
 * Values: 8/16-bit operands are zero-extended numbers, 32-bit ones int32; 64-bit operands are (lo, hi) with
 * the high half passed through `cpu.opHi`.
 */
import type { Cpu } from './cpu.js';
import type { Insn } from './decoder.js';
import { EA } from './decoder.js';
import * as mmu from './mmu.js';
import { raise } from './exceptions.js';

const TWO32 = 4294967296;
const TWO63 = 9223372036854775808;
const TWO64 = 18446744073709551616;

/** 8-bit register code: 0..15 low bytes (SPL.. with REX), 16..19 = AH CH DH BH. */
export function getReg8(cpu: Cpu, r: number): number {
  return r < 16 ? cpu.gpr[r << 1] & 0xff : (cpu.gpr[(r - 16) << 1] >>> 8) & 0xff;
}
export function setReg8(cpu: Cpu, r: number, v: number): void {
  if (r < 16) cpu.gpr[r << 1] = (cpu.gpr[r << 1] & ~0xff) | (v & 0xff);
  else { const k = (r - 16) << 1; cpu.gpr[k] = (cpu.gpr[k] & ~0xff00) | ((v & 0xff) << 8); }
}
export function setReg16(cpu: Cpu, r: number, v: number): void {
  cpu.gpr[r << 1] = (cpu.gpr[r << 1] & ~0xffff) | (v & 0xffff);
}
export function setReg32(cpu: Cpu, r: number, v: number): void {
  cpu.gpr[r << 1] = v; cpu.gpr[(r << 1) + 1] = 0;
}
export function setReg64(cpu: Cpu, r: number, lo: number, hi: number): void {
  cpu.gpr[r << 1] = lo; cpu.gpr[(r << 1) + 1] = hi;
}
/** Register value for operand size s (reg8 code for s=1); high half in cpu.opHi for s=8. */
export function getReg(cpu: Cpu, r: number, s: number): number {
  switch (s) {
    case 1: return getReg8(cpu, r);
    case 2: return cpu.gpr[r << 1] & 0xffff;
    case 4: return cpu.gpr[r << 1];
    default: cpu.opHi = cpu.gpr[(r << 1) + 1]; return cpu.gpr[r << 1];
  }
}
export function setReg(cpu: Cpu, r: number, s: number, v: number, hi: number): void {
  switch (s) {
    case 1: setReg8(cpu, r, v); return;
    case 2: setReg16(cpu, r, v); return;
    case 4: cpu.gpr[r << 1] = v; cpu.gpr[(r << 1) + 1] = 0; return;
    default: cpu.gpr[r << 1] = v; cpu.gpr[(r << 1) + 1] = hi;
  }
}

/** Register as a number: 64-bit signed value (exact for canonical addresses). */
export function reg64(cpu: Cpu, r: number): number {
  return cpu.gpr[(r << 1) + 1] * TWO32 + (cpu.gpr[r << 1] >>> 0);
}

/** Effective linear address of the memory operand (segment base applied). */
export function ea(cpu: Cpu, i: Insn): number {
  const g = cpu.gpr;
  let a: number;
  switch (i.eaKind) {
    case EA.B64:
      a = g[(i.base << 1) + 1] * TWO32 + (g[i.base << 1] >>> 0) + i.disp;
      break;
    case EA.BI64:
      a = g[(i.base << 1) + 1] * TWO32 + (g[i.base << 1] >>> 0) + (g[(i.index << 1) + 1] * TWO32 + (g[i.index << 1] >>> 0)) * (1 << i.scale) + i.disp;
      break;
    case EA.RIP64:
      a = cpu.nextRip + i.disp;
      break;
    case EA.I64:
      a = i.index >= 0 ? (g[(i.index << 1) + 1] * TWO32 + (g[i.index << 1] >>> 0)) * (1 << i.scale) + i.disp : i.disp;
      break;
    case EA.A32:
      a = ((i.base >= 0 ? g[i.base << 1] : 0) + (i.index >= 0 ? g[i.index << 1] << i.scale : 0) + i.disp) >>> 0;
      break;
    case EA.RIP32:
      a = (cpu.nextRip + i.disp) >>> 0;
      break;
    default: // A16
      a = ((i.base >= 0 ? g[i.base << 1] : 0) + (i.index >= 0 ? g[i.index << 1] : 0) + i.disp) & 0xffff;
      break;
  }
  if (a >= TWO63) a -= TWO64;
  else if (a < -TWO63) a += TWO64;
  const s = i.seg;
  if (s >= 0) {
    a += cpu.segBase[s];
    if (i.eaKind >= EA.A32 && cpu.mode !== 3) a = a >>> 0; // legacy linear addresses wrap at 4 GiB
  }
  return a;
}

/** Exact 64-bit offset (no segment base) as halves for LEA: low half returned, high half in cpu.opHi. */
export function eaHalves(cpu: Cpu, i: Insn): number {
  const g = cpu.gpr;
  const k = i.eaKind;
  if (k === EA.A32 || k === EA.A16 || k === EA.RIP32) {
    const seg = i.seg; i.seg = -1;
    const a = ea(cpu, i);
    i.seg = seg;
    cpu.opHi = 0;
    return a | 0;
  }
  let lo: number, hi: number;
  if (k === EA.RIP64) {
    const a = cpu.nextRip;
    lo = a >>> 0; hi = Math.floor(a / TWO32);
  } else if (i.base >= 0) { lo = g[i.base << 1] >>> 0; hi = g[(i.base << 1) + 1]; } else { lo = 0; hi = 0; }
  if (i.index >= 0 && k !== EA.RIP64) {
    const sc = i.scale;
    const xl = g[i.index << 1], xh = g[(i.index << 1) + 1];
    const sl = (xl << sc) >>> 0;
    const sh = sc === 0 ? xh : (xh << sc) | (xl >>> (32 - sc));
    const t = lo + sl;
    hi = (hi + sh + (t > 0xffffffff ? 1 : 0)) | 0;
    lo = t >>> 0;
  }
  const d = i.disp;
  const t = lo + (d >>> 0);
  hi = (hi + (d < 0 ? -1 : 0) + (t > 0xffffffff ? 1 : 0)) | 0;
  if (k === EA.I64 && i.base < 0 && i.index < 0 && (d >= TWO32 || d < -2147483648)) {
    // moffs-style absolute displacement wider than 32 bits
    cpu.opHi = Math.floor(d / TWO32) | 0;
    return d % TWO32 | 0;
  }
  cpu.opHi = hi;
  return t | 0;
}

/** Read the r/m operand of size i.osz (reg8 codes for bytes). Memory address kept in cpu.opAddr. */
export function readRM(cpu: Cpu, i: Insn): number {
  if (i.mod === 3) return getReg(cpu, i.osz === 1 ? i.rm8 : i.rm, i.osz);
  const a = ea(cpu, i);
  cpu.opAddr = a;
  return readMem(cpu, a, i.osz);
}

export function readMem(cpu: Cpu, a: number, s: number): number {
  switch (s) {
    case 1: return mmu.read8(cpu, a);
    case 2: return mmu.read16(cpu, a);
    case 4: return mmu.read32(cpu, a) | 0;
    default: { const lo = mmu.read64(cpu, a) | 0; cpu.opHi = cpu.memHi | 0; return lo; }
  }
}

export function writeMem(cpu: Cpu, a: number, s: number, v: number, hi: number): void {
  switch (s) {
    case 1: mmu.write8(cpu, a, v & 0xff); return;
    case 2: mmu.write16(cpu, a, v & 0xffff); return;
    case 4: mmu.write32(cpu, a, v); return;
    default: mmu.write64(cpu, a, v, hi);
  }
}

/** Write the r/m operand after readRM (same location). */
export function writeRM(cpu: Cpu, i: Insn, v: number, hi: number): void {
  if (i.mod === 3) setReg(cpu, i.osz === 1 ? i.rm8 : i.rm, i.osz, v, hi);
  else writeMem(cpu, cpu.opAddr, i.osz, v, hi);
}

/** Write the r/m operand without a preceding read. */
export function storeRM(cpu: Cpu, i: Insn, v: number, hi: number): void {
  if (i.mod === 3) setReg(cpu, i.osz === 1 ? i.rm8 : i.rm, i.osz, v, hi);
  else writeMem(cpu, ea(cpu, i), i.osz, v, hi);
}

export function ud(cpu: Cpu): never { return raise(cpu, 6); }
export function gp0(cpu: Cpu): never { return raise(cpu, 13, 0); }

// ---- Stack

/** Stack pointer width in bytes: 8 in long mode, else SS.B (4) or 2. */
export function stackWidth(cpu: Cpu): number {
  if (cpu.mode === 3) return 8;
  return (cpu.segAttr[2] & 0x4000) !== 0 ? 4 : 2;
}

/** Push `s` bytes (2, 4 or 8). Faults leave RSP unchanged. */
export function push(cpu: Cpu, s: number, v: number, hi: number): void {
  const g = cpu.gpr;
  if (cpu.mode === 3) {
    const sp = g[9] * TWO32 + (g[8] >>> 0) - s;
    writeMem(cpu, sp, s, v, hi);
    const lo = (g[8] - s) | 0;
    if ((lo >>> 0) > (g[8] >>> 0)) g[9] = (g[9] - 1) | 0;
    g[8] = lo;
    return;
  }
  if ((cpu.segAttr[2] & 0x4000) !== 0) {
    const sp = (g[8] - s) >>> 0;
    writeMem(cpu, (cpu.segBase[2] + sp) >>> 0, s, v, hi);
    g[8] = sp | 0;
  } else {
    const sp = (g[8] - s) & 0xffff;
    writeMem(cpu, (cpu.segBase[2] + sp) >>> 0, s, v, hi);
    g[8] = (g[8] & ~0xffff) | sp;
  }
}

/** Read the value at the top of the stack at byte offset `off` (no RSP change). */
export function peek(cpu: Cpu, s: number, off: number): number {
  const g = cpu.gpr;
  if (cpu.mode === 3) return readMem(cpu, g[9] * TWO32 + (g[8] >>> 0) + off, s);
  if ((cpu.segAttr[2] & 0x4000) !== 0) return readMem(cpu, (cpu.segBase[2] + ((g[8] + off) >>> 0)) >>> 0, s);
  return readMem(cpu, (cpu.segBase[2] + ((g[8] + off) & 0xffff)) >>> 0, s);
}

/** Add to the stack pointer with its width. */
export function adjustSp(cpu: Cpu, n: number): void {
  const g = cpu.gpr;
  if (cpu.mode === 3) {
    const lo = (g[8] + n) | 0;
    if (n >= 0) { if ((lo >>> 0) < (g[8] >>> 0)) g[9] = (g[9] + 1) | 0; } else if ((lo >>> 0) > (g[8] >>> 0)) g[9] = (g[9] - 1) | 0;
    g[8] = lo;
  } else if ((cpu.segAttr[2] & 0x4000) !== 0) g[8] = (g[8] + n) | 0;
  else g[8] = (g[8] & ~0xffff) | ((g[8] + n) & 0xffff);
}

/** Pop `s` bytes; value returned (high half in cpu.opHi for s = 8). */
export function pop(cpu: Cpu, s: number): number {
  const v = peek(cpu, s, 0);
  adjustSp(cpu, s);
  return v;
}

/** Mask an instruction pointer to the operand size of a near transfer. */
export function maskIp(v: number, s: number): number {
  return s === 8 ? v : s === 4 ? v >>> 0 : v & 0xffff;
}
