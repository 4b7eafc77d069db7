/**
 * Integer arithmetic and logic: ALU group, inc/dec/neg/not, shifts and rotates, multiply/divide, bit tests
 * and scans, xadd/cmpxchg, BCD adjust, flag instructions. Memory destinations are written before the flag
 * record is updated so a faulting store leaves the architectural state untouched.
 */
import type { Cpu } from './cpu.js';
import type { Insn } from './decoder.js';
import { CC, getCF, getArithFlags, setArithFlags, PARITY, getAF, getZF, setFlagBit } from './flags.js';
import { F } from './cpu-state.js';
import { ea, readMem, writeMem, getReg, setReg, readRM, writeRM, setReg32, setReg16, ud } from './exec-common.js';
import { raise } from './exceptions.js';
import * as mmu from './mmu.js';

const SIDX = [0, 0, 1, 0, 2, 0, 0, 0, 3];

/** Scratch high half of the last computed 64-bit result. */
let rHi = 0;

/**
 * Compute op (0 add 1 or 2 adc 3 sbb 4 and 5 sub 6 xor 7 cmp) on normalized operands of size s; carry-in cin.
 * Returns the low part; high part in rHi.
 */
function compute(op: number, s: number, a: number, aHi: number, b: number, bHi: number, cin: number): number {
  if (s === 8) {
    let t: number;
    switch (op) {
      case 0: case 2: t = (a >>> 0) + (b >>> 0) + cin; rHi = (aHi + bHi + (t > 0xffffffff ? 1 : 0)) | 0; return t | 0;
      case 1: rHi = aHi | bHi; return a | b;
      case 4: rHi = aHi & bHi; return a & b;
      case 6: rHi = aHi ^ bHi; return a ^ b;
      default: t = (a >>> 0) - (b >>> 0) - cin; rHi = (aHi - bHi - (t < 0 ? 1 : 0)) | 0; return t | 0;
    }
  }
  rHi = 0;
  let r: number;
  switch (op) {
    case 0: case 2: r = a + b + cin; break;
    case 1: r = a | b; break;
    case 4: r = a & b; break;
    case 6: r = a ^ b; break;
    default: r = a - b - cin; break;
  }
  return s === 4 ? r | 0 : s === 2 ? r & 0xffff : r & 0xff;
}

function record(cpu: Cpu, op: number, s: number, a: number, aHi: number, b: number, bHi: number, r: number, hi: number, cin: number): void {
  const si = SIDX[s];
  switch (op) {
    case 1: case 4: case 6: cpu.ccOp = (CC.LOGIC << 2) | si; cpu.ccRes = r; cpu.ccResHi = hi; return;
    case 0: cpu.ccOp = (CC.ADD << 2) | si; break;
    case 2: cpu.ccOp = (CC.ADC << 2) | si; cpu.ccAux = cin; break;
    case 3: cpu.ccOp = (CC.SBB << 2) | si; cpu.ccAux = cin; break;
    default: cpu.ccOp = (CC.SUB << 2) | si; break;
  }
  cpu.ccRes = r; cpu.ccResHi = hi;
  cpu.ccSrc1 = a; cpu.ccSrc1Hi = aHi;
  cpu.ccSrc2 = b; cpu.ccSrc2Hi = bHi;
}

/** Full ALU operation with flags (register operands; exported for string compare/scan). */
export function aluFlagsOnly(cpu: Cpu, op: number, s: number, a: number, aHi: number, b: number, bHi: number): number {
  const cin = op === 2 || op === 3 ? getCF(cpu) : 0;
  const r = compute(op, s, a, aHi, b, bHi, cin);
  record(cpu, op, s, a, aHi, b, bHi, r, rHi, cin);
  return r;
}

function aluRM(cpu: Cpu, i: Insn, b: number, bHi: number): void {
  const op = i.sub, s = i.osz;
  const cin = op === 2 || op === 3 ? getCF(cpu) : 0;
  if (i.mod === 3) {
    const rr = s === 1 ? i.rm8 : i.rm;
    const a = getReg(cpu, rr, s), aHi = s === 8 ? cpu.opHi : 0;
    const r = compute(op, s, a, aHi, b, bHi, cin);
    const hi = rHi;
    if (op !== 7) setReg(cpu, rr, s, r, hi);
    record(cpu, op, s, a, aHi, b, bHi, r, hi, cin);
  } else {
    const addr = ea(cpu, i);
    const a = readMem(cpu, addr, s), aHi = s === 8 ? cpu.opHi : 0;
    const r = compute(op, s, a, aHi, b, bHi, cin);
    const hi = rHi;
    if (op !== 7) writeMem(cpu, addr, s, r, hi);
    record(cpu, op, s, a, aHi, b, bHi, r, hi, cin);
  }
}

/** op r/m, reg */
export function aluEG(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const b = getReg(cpu, s === 1 ? i.reg8 : i.reg, s);
  aluRM(cpu, i, b, s === 8 ? cpu.opHi : 0);
}

/** op r/m, reg with both operands 32-bit registers (add or and sub xor cmp; decoder picks it): no size switches. */
export function aluRR32(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr, d = i.rm << 1, op = i.sub;
  const a = g[d], b = g[i.reg << 1];
  let r: number;
  switch (op) {
    case 0: r = (a + b) | 0; cpu.ccOp = (CC.ADD << 2) | 2; break;
    case 1: r = a | b; cpu.ccOp = (CC.LOGIC << 2) | 2; break;
    case 4: r = a & b; cpu.ccOp = (CC.LOGIC << 2) | 2; break;
    case 6: r = a ^ b; cpu.ccOp = (CC.LOGIC << 2) | 2; break;
    default: r = (a - b) | 0; cpu.ccOp = (CC.SUB << 2) | 2; break;
  }
  if (op !== 7) { g[d] = r; g[d + 1] = 0; }
  cpu.ccRes = r; cpu.ccResHi = 0;
  cpu.ccSrc1 = a; cpu.ccSrc1Hi = 0; cpu.ccSrc2 = b; cpu.ccSrc2Hi = 0;
}
/** The same for 64-bit registers. */
export function aluRR64(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr, d = i.rm << 1, sr = i.reg << 1, op = i.sub;
  const a = g[d], aHi = g[d + 1], b = g[sr], bHi = g[sr + 1];
  let r: number, hi: number;
  switch (op) {
    case 0: { const t = (a >>> 0) + (b >>> 0); r = t | 0; hi = (aHi + bHi + (t > 0xffffffff ? 1 : 0)) | 0; cpu.ccOp = (CC.ADD << 2) | 3; break; }
    case 1: r = a | b; hi = aHi | bHi; cpu.ccOp = (CC.LOGIC << 2) | 3; break;
    case 4: r = a & b; hi = aHi & bHi; cpu.ccOp = (CC.LOGIC << 2) | 3; break;
    case 6: r = a ^ b; hi = aHi ^ bHi; cpu.ccOp = (CC.LOGIC << 2) | 3; break;
    default: { const t = (a >>> 0) - (b >>> 0); r = t | 0; hi = (aHi - bHi - (t < 0 ? 1 : 0)) | 0; cpu.ccOp = (CC.SUB << 2) | 3; break; }
  }
  if (op !== 7) { g[d] = r; g[d + 1] = hi; }
  cpu.ccRes = r; cpu.ccResHi = hi;
  cpu.ccSrc1 = a; cpu.ccSrc1Hi = aHi; cpu.ccSrc2 = b; cpu.ccSrc2Hi = bHi;
}

/** op reg, imm with a 32-bit register destination (group 1, not adc/sbb). */
export function aluRI32(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr, d = i.rm << 1, op = i.sub;
  const a = g[d], b = i.imm;
  let r: number;
  switch (op) {
    case 0: r = (a + b) | 0; cpu.ccOp = (CC.ADD << 2) | 2; break;
    case 1: r = a | b; cpu.ccOp = (CC.LOGIC << 2) | 2; break;
    case 4: r = a & b; cpu.ccOp = (CC.LOGIC << 2) | 2; break;
    case 6: r = a ^ b; cpu.ccOp = (CC.LOGIC << 2) | 2; break;
    default: r = (a - b) | 0; cpu.ccOp = (CC.SUB << 2) | 2; break;
  }
  if (op !== 7) { g[d] = r; g[d + 1] = 0; }
  cpu.ccRes = r; cpu.ccResHi = 0;
  cpu.ccSrc1 = a; cpu.ccSrc1Hi = 0; cpu.ccSrc2 = b; cpu.ccSrc2Hi = 0;
}
/** The same for a 64-bit register (immediate sign-extended: imm/immHi). */
export function aluRI64(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr, d = i.rm << 1, op = i.sub;
  const a = g[d], aHi = g[d + 1], b = i.imm, bHi = i.immHi;
  let r: number, hi: number;
  switch (op) {
    case 0: { const t = (a >>> 0) + (b >>> 0); r = t | 0; hi = (aHi + bHi + (t > 0xffffffff ? 1 : 0)) | 0; cpu.ccOp = (CC.ADD << 2) | 3; break; }
    case 1: r = a | b; hi = aHi | bHi; cpu.ccOp = (CC.LOGIC << 2) | 3; break;
    case 4: r = a & b; hi = aHi & bHi; cpu.ccOp = (CC.LOGIC << 2) | 3; break;
    case 6: r = a ^ b; hi = aHi ^ bHi; cpu.ccOp = (CC.LOGIC << 2) | 3; break;
    default: { const t = (a >>> 0) - (b >>> 0); r = t | 0; hi = (aHi - bHi - (t < 0 ? 1 : 0)) | 0; cpu.ccOp = (CC.SUB << 2) | 3; break; }
  }
  if (op !== 7) { g[d] = r; g[d + 1] = hi; }
  cpu.ccRes = r; cpu.ccResHi = hi;
  cpu.ccSrc1 = a; cpu.ccSrc1Hi = aHi; cpu.ccSrc2 = b; cpu.ccSrc2Hi = bHi;
}

/** op reg, r/m */
export function aluGE(cpu: Cpu, i: Insn): void {
  const s = i.osz, op = i.sub;
  const b = readRM(cpu, i), bHi = s === 8 ? cpu.opHi : 0;
  const rr = s === 1 ? i.reg8 : i.reg;
  const a = getReg(cpu, rr, s), aHi = s === 8 ? cpu.opHi : 0;
  const cin = op === 2 || op === 3 ? getCF(cpu) : 0;
  const r = compute(op, s, a, aHi, b, bHi, cin);
  const hi = rHi;
  if (op !== 7) setReg(cpu, rr, s, r, hi);
  record(cpu, op, s, a, aHi, b, bHi, r, hi, cin);
}

function immFor(i: Insn): number {
  const s = i.osz;
  return s === 1 ? i.imm & 0xff : s === 2 ? i.imm & 0xffff : i.imm;
}

/** op AL/eAX/rAX, imm */
export function aluAI(cpu: Cpu, i: Insn): void {
  const s = i.osz, op = i.sub;
  const a = getReg(cpu, 0, s), aHi = s === 8 ? cpu.opHi : 0;
  const b = immFor(i), bHi = s === 8 ? i.immHi : 0;
  const cin = op === 2 || op === 3 ? getCF(cpu) : 0;
  const r = compute(op, s, a, aHi, b, bHi, cin);
  const hi = rHi;
  if (op !== 7) setReg(cpu, 0, s, r, hi);
  record(cpu, op, s, a, aHi, b, bHi, r, hi, cin);
}

/** group 1: op r/m, imm */
export function aluEI(cpu: Cpu, i: Insn): void {
  aluRM(cpu, i, immFor(i), i.osz === 8 ? i.immHi : 0);
}

export function testEG(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const a = readRM(cpu, i), aHi = s === 8 ? cpu.opHi : 0;
  const b = getReg(cpu, s === 1 ? i.reg8 : i.reg, s), bHi = s === 8 ? cpu.opHi : 0;
  cpu.ccOp = (CC.LOGIC << 2) | SIDX[s]; cpu.ccRes = a & b; cpu.ccResHi = aHi & bHi;
}
export function testEI(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const a = readRM(cpu, i), aHi = s === 8 ? cpu.opHi : 0;
  cpu.ccOp = (CC.LOGIC << 2) | SIDX[s]; cpu.ccRes = a & immFor(i); cpu.ccResHi = s === 8 ? aHi & i.immHi : 0;
}
export function testAI(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const a = getReg(cpu, 0, s), aHi = s === 8 ? cpu.opHi : 0;
  cpu.ccOp = (CC.LOGIC << 2) | SIDX[s]; cpu.ccRes = a & immFor(i); cpu.ccResHi = s === 8 ? aHi & i.immHi : 0;
}

/** inc (sub 0) / dec (sub 1) r/m (and the legacy 40-4F forms). */
export function incDec(cpu: Cpu, i: Insn): void {
  const s = i.osz, dec = i.sub === 1;
  const a = readRM(cpu, i), aHi = s === 8 ? cpu.opHi : 0;
  const r = compute(dec ? 5 : 0, s, a, aHi, 1, 0, 0);
  const hi = rHi;
  const cf = getCF(cpu);
  writeRM(cpu, i, r, hi);
  cpu.ccOp = ((dec ? CC.DEC : CC.INC) << 2) | SIDX[s];
  cpu.ccAux = cf;
  cpu.ccRes = r; cpu.ccResHi = hi; cpu.ccSrc1 = a; cpu.ccSrc1Hi = aHi; cpu.ccSrc2 = 1; cpu.ccSrc2Hi = 0;
}

// ---- group 3: not neg mul imul div idiv
export function group3(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const a = readRM(cpu, i), aHi = s === 8 ? cpu.opHi : 0;
  switch (i.sub) {
    case 2: { // not: flags unchanged
      const r = s === 1 ? ~a & 0xff : s === 2 ? ~a & 0xffff : ~a;
      writeRM(cpu, i, r, ~aHi);
      return;
    }
    case 3: { // neg = 0 - a
      const r = compute(5, s, 0, 0, a, aHi, 0);
      const hi = rHi;
      writeRM(cpu, i, r, hi);
      record(cpu, 5, s, 0, 0, a, aHi, r, hi, 0);
      return;
    }
    case 4: mul(cpu, s, a, aHi, false); return;
    case 5: mul(cpu, s, a, aHi, true); return;
    case 6: div(cpu, s, a, aHi, false); return;
    default: div(cpu, s, a, aHi, true); return;
  }
}

let mLo = 0, mHi = 0;
/** Unsigned 32x32 -> 64 into mLo/mHi (int32 halves). */
function umul32(a: number, b: number): void {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const t = al * bl, m1 = ah * bl, m2 = al * bh;
  const mid = (t >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
  mLo = ((mid << 16) | (t & 0xffff)) | 0;
  mHi = (ah * bh + (m1 >>> 16) + (m2 >>> 16) + (mid >>> 16)) | 0;
}

/** 64x64 -> 128 unsigned; result words p0..p3 (int32). */
let p0 = 0, p1 = 0, p2 = 0, p3 = 0;
function umul64(aLo: number, aHi: number, bLo: number, bHi: number): void {
  umul32(aLo, bLo); p0 = mLo; let c1 = mHi >>> 0;
  umul32(aHi, bLo); let x = c1 + (mLo >>> 0); let c2 = (mHi >>> 0) + (x > 0xffffffff ? 1 : 0); c1 = x >>> 0;
  umul32(aLo, bHi); x = c1 + (mLo >>> 0); p1 = x | 0; let y = c2 + (mHi >>> 0) + (x > 0xffffffff ? 1 : 0);
  umul32(aHi, bHi); const z = y + (mLo >>> 0); p2 = z | 0; // y < 2^33, sum < 2^34
  p3 = ((mHi >>> 0) + Math.floor(z / 4294967296)) | 0;
  void c2;
}

function setMulFlags(cpu: Cpu, s: number, lo: number, hi: number, of: boolean): void {
  cpu.ccOp = (CC.RESCO << 2) | SIDX[s];
  cpu.ccRes = lo; cpu.ccResHi = hi;
  cpu.ccAux = of ? 3 : 0;
}

function mul(cpu: Cpu, s: number, a: number, aHi: number, signed: boolean): void {
  const g = cpu.gpr;
  switch (s) {
    case 1: {
      const r = signed ? ((g[0] << 24) >> 24) * ((a << 24) >> 24) : (g[0] & 0xff) * a;
      setReg16(cpu, 0, r);
      const of = signed ? r !== ((r << 24) >> 24) : (r & 0xff00) !== 0;
      setMulFlags(cpu, 1, r & 0xff, 0, of);
      return;
    }
    case 2: {
      const r = signed ? ((g[0] << 16) >> 16) * ((a << 16) >> 16) : (g[0] & 0xffff) * a;
      setReg16(cpu, 0, r); setReg16(cpu, 2, r >> 16);
      const of = signed ? r !== ((r << 16) >> 16) : (r & 0xffff0000) !== 0;
      setMulFlags(cpu, 2, r & 0xffff, 0, of);
      return;
    }
    case 4: {
      const x = g[0];
      umul32(x, a);
      let hi = mHi;
      if (signed) hi = (hi - (x < 0 ? a : 0) - (a < 0 ? x : 0)) | 0;
      setReg32(cpu, 0, mLo); setReg32(cpu, 2, hi);
      setMulFlags(cpu, 4, mLo, 0, signed ? hi !== (mLo >> 31) : hi !== 0);
      return;
    }
    default: {
      const xl = g[0], xh = g[1];
      umul64(xl, xh, a, aHi);
      let h0 = p2, h1 = p3;
      if (signed) {
        if (xh < 0) { const t = (h0 >>> 0) - (a >>> 0); h0 = t | 0; h1 = (h1 - aHi - (t < 0 ? 1 : 0)) | 0; }
        if (aHi < 0) { const t = (h0 >>> 0) - (xl >>> 0); h0 = t | 0; h1 = (h1 - xh - (t < 0 ? 1 : 0)) | 0; }
      }
      g[0] = p0; g[1] = p1; g[4] = h0; g[5] = h1;
      const of = signed ? (h0 !== (p1 >> 31) || h1 !== (p1 >> 31)) : (h0 | h1) !== 0;
      setMulFlags(cpu, 8, p0, p1, of);
    }
  }
}

/** Signed multiply truncated to s bytes; result in the return value (hi in rHi); overflow in mulOf. */
let mulOf = false;
function imulTrunc(s: number, a: number, aHi: number, b: number, bHi: number): number {
  switch (s) {
    case 2: { const r = ((a << 16) >> 16) * ((b << 16) >> 16); mulOf = r !== ((r << 16) >> 16); rHi = 0; return r & 0xffff; }
    case 4: {
      umul32(a, b);
      const hi = (mHi - (a < 0 ? b : 0) - (b < 0 ? a : 0)) | 0;
      mulOf = hi !== (mLo >> 31); rHi = 0; return mLo;
    }
    default: {
      umul64(a, aHi, b, bHi);
      let h0 = p2, h1 = p3;
      if (aHi < 0) { const t = (h0 >>> 0) - (b >>> 0); h0 = t | 0; h1 = (h1 - bHi - (t < 0 ? 1 : 0)) | 0; }
      if (bHi < 0) { const t = (h0 >>> 0) - (a >>> 0); h0 = t | 0; h1 = (h1 - aHi - (t < 0 ? 1 : 0)) | 0; }
      mulOf = h0 !== (p1 >> 31) || h1 !== (p1 >> 31);
      rHi = p1; return p0;
    }
  }
}

/** imul reg, r/m */
export function imul2(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const b = readRM(cpu, i), bHi = s === 8 ? cpu.opHi : 0;
  const a = getReg(cpu, i.reg, s), aHi = s === 8 ? cpu.opHi : 0;
  const r = imulTrunc(s, a, aHi, b, bHi);
  const hi = rHi;
  setReg(cpu, i.reg, s, r, hi);
  setMulFlags(cpu, s, r, hi, mulOf);
}
/** imul reg, r/m, imm */
/** OF (= CF) of a signed 64x64 IMUL: the translator's rare case where an operand does not fit in 32 bits. */
export function imul64Overflows(a: number, aHi: number, b: number, bHi: number): boolean {
  imulTrunc(8, a, aHi, b, bHi);
  return mulOf;
}
export function imul3(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const a = readRM(cpu, i), aHi = s === 8 ? cpu.opHi : 0;
  const r = imulTrunc(s, a, aHi, immFor(i), i.immHi);
  const hi = rHi;
  setReg(cpu, i.reg, s, r, hi);
  setMulFlags(cpu, s, r, hi, mulOf);
}

let qLo = 0, qHi = 0, remLo = 0, remHi = 0;
/** Unsigned 128/64 division (n3:n2:n1:n0 by dHi:dLo); false when the quotient exceeds 64 bits. */
function udiv128(n0: number, n1: number, n2: number, n3: number, dLo: number, dHi: number): boolean {
  const d = (dHi >>> 0) * 4294967296 + (dLo >>> 0);
  const nh = (n3 >>> 0) * 4294967296 + (n2 >>> 0);
  if (nh >= d) return false;
  if (d < 137438953472) { // 2^37: 16-bit long division stays exact in doubles
    let r = nh;
    let q = 0;
    const chunks = [n1 >>> 16, n1 & 0xffff, n0 >>> 16, n0 & 0xffff];
    let qh = 0;
    for (let k = 0; k < 4; k++) {
      const n = r * 65536 + chunks[k];
      const qq = Math.floor(n / d);
      r = n - qq * d;
      if (k === 1) { qh = q * 65536 + qq; q = 0; } else q = q * 65536 + qq;
    }
    qHi = qh | 0; qLo = q | 0;
    remLo = r % 4294967296 | 0; remHi = Math.floor(r / 4294967296) | 0;
    return true;
  }
  // Rare: large divisors (BigInt allowed off the fast path).
  const N = (BigInt(n3 >>> 0) << 96n) | (BigInt(n2 >>> 0) << 64n) | (BigInt(n1 >>> 0) << 32n) | BigInt(n0 >>> 0);
  const Dv = (BigInt(dHi >>> 0) << 32n) | BigInt(dLo >>> 0);
  const Q = N / Dv, R = N % Dv;
  qLo = Number(Q & 0xffffffffn) | 0; qHi = Number((Q >> 32n) & 0xffffffffn) | 0;
  remLo = Number(R & 0xffffffffn) | 0; remHi = Number(R >> 32n) | 0;
  return true;
}

function neg64(lo: number, hi: number): void {
  const l = (-lo) | 0;
  rHi = (~hi + (lo === 0 ? 1 : 0)) | 0;
  mLo = l;
}

function div(cpu: Cpu, s: number, d: number, dHi: number, signed: boolean): void {
  const g = cpu.gpr;
  switch (s) {
    case 1: {
      if (d === 0) raise(cpu, 0);
      const n = g[0] & 0xffff;
      let q: number, r: number;
      if (signed) {
        const nn = (n << 16) >> 16, dd = (d << 24) >> 24;
        q = Math.trunc(nn / dd); r = nn - q * dd;
        if (q > 127 || q < -128) raise(cpu, 0);
      } else {
        q = Math.floor(n / d); r = n - q * d;
        if (q > 255) raise(cpu, 0);
      }
      setReg16(cpu, 0, (q & 0xff) | ((r & 0xff) << 8));
      return;
    }
    case 2: {
      if (d === 0) raise(cpu, 0);
      const n = ((g[4] & 0xffff) << 16 | (g[0] & 0xffff)) >>> 0;
      let q: number, r: number;
      if (signed) {
        const nn = n | 0, dd = (d << 16) >> 16;
        q = Math.trunc(nn / dd); r = nn - q * dd;
        if (q > 32767 || q < -32768) raise(cpu, 0);
      } else {
        q = Math.floor(n / d); r = n - q * d;
        if (q > 65535) raise(cpu, 0);
      }
      setReg16(cpu, 0, q); setReg16(cpu, 2, r);
      return;
    }
    case 4: {
      if (d === 0) raise(cpu, 0);
      let nLo = g[0], nHi = g[4];
      if (!signed) {
        if (!udiv128(nLo, nHi, 0, 0, d, 0) || qHi !== 0) raise(cpu, 0);
        setReg32(cpu, 0, qLo); setReg32(cpu, 2, remLo);
        return;
      }
      const nNeg = nHi < 0, dNeg = d < 0;
      if (nNeg) { neg64(nLo, nHi); nLo = mLo; nHi = rHi; }
      const ad = dNeg ? -d : d; // as unsigned magnitude
      udiv128(nLo, nHi, 0, 0, ad | 0, 0);
      // quotient magnitude must fit: < 2^31 (or == 2^31 when negative)
      const qm = (qHi >>> 0) * 4294967296 + (qLo >>> 0);
      const qNeg = nNeg !== dNeg;
      if (qm > (qNeg ? 2147483648 : 2147483647)) raise(cpu, 0);
      setReg32(cpu, 0, qNeg ? -qm | 0 : qm | 0);
      setReg32(cpu, 2, nNeg ? -remLo | 0 : remLo);
      return;
    }
    default: {
      if ((d | dHi) === 0) raise(cpu, 0);
      let n0 = g[0], n1 = g[1], n2 = g[4], n3 = g[5];
      if (!signed) {
        if (!udiv128(n0, n1, n2, n3, d, dHi)) raise(cpu, 0);
        g[0] = qLo; g[1] = qHi; g[4] = remLo; g[5] = remHi;
        return;
      }
      const nNeg = n3 < 0, dNeg = dHi < 0;
      if (nNeg) { // 128-bit negate
        n0 = ~n0; n1 = ~n1; n2 = ~n2; n3 = ~n3;
        let c = 1;
        let t = (n0 >>> 0) + c; n0 = t | 0; c = t > 0xffffffff ? 1 : 0;
        t = (n1 >>> 0) + c; n1 = t | 0; c = t > 0xffffffff ? 1 : 0;
        t = (n2 >>> 0) + c; n2 = t | 0; c = t > 0xffffffff ? 1 : 0;
        n3 = (n3 + c) | 0;
      }
      let dl = d, dh = dHi;
      if (dNeg) { neg64(dl, dh); dl = mLo; dh = rHi; }
      if (!udiv128(n0, n1, n2, n3, dl, dh)) raise(cpu, 0);
      const qNeg = nNeg !== dNeg;
      // magnitude limit 2^63 (negative) or 2^63-1
      if (qHi < 0 && !(qNeg && qHi === -2147483648 && qLo === 0)) raise(cpu, 0);
      let ql = qLo, qh = qHi, rl = remLo, rh = remHi;
      if (qNeg) { neg64(ql, qh); ql = mLo; qh = rHi; }
      if (nNeg) { neg64(rl, rh); rl = mLo; rh = rHi; }
      g[0] = ql; g[1] = qh; g[4] = rl; g[5] = rh;
    }
  }
}

// ---- shifts and rotates

function shiftOp(cpu: Cpu, i: Insn, count: number): void {
  const s = i.osz;
  const c = count & (s === 8 ? 63 : 31);
  if (c === 0) { zeroCount(cpu, i); return; }
  const a = readRM(cpu, i), aHi = s === 8 ? cpu.opHi : 0;
  const bits = s * 8;
  let r = 0, hi = 0, cf = 0, of = 0;
  const op = i.sub;
  if (s === 8) {
    switch (op) {
      case 0: case 1: { // rol / ror
        const k = op === 0 ? c : 64 - c;
        let l = a, h = aHi;
        let kk = k;
        if (kk >= 32) { const t = l; l = h; h = t; kk -= 32; }
        if (kk) { const nl = (l << kk) | (h >>> (32 - kk)); h = (h << kk) | (l >>> (32 - kk)); l = nl; }
        r = l; hi = h;
        if (op === 0) { cf = r & 1; of = (hi >>> 31) ^ cf; } else { cf = hi >>> 31; of = cf ^ ((hi >>> 30) & 1); }
        writeRM(cpu, i, r, hi);
        rotFlags(cpu, cf, of);
        return;
      }
      case 2: case 3: { // rcl / rcr, bit at a time (rare)
        let l = a, h = aHi, carry = getCF(cpu);
        for (let k = 0; k < c; k++) {
          if (op === 2) { const out = h >>> 31; h = (h << 1) | (l >>> 31); l = (l << 1) | carry; carry = out; }
          else { const out = l & 1; l = (l >>> 1) | (h << 31); h = (h >>> 1) | (carry << 31); carry = out; }
        }
        cf = carry;
        of = op === 2 ? (h >>> 31) ^ cf : (h >>> 31) ^ ((h >>> 30) & 1);
        writeRM(cpu, i, l, h);
        rotFlags(cpu, cf, of);
        return;
      }
      case 4: case 6:
        if (c < 32) { hi = (aHi << c) | (a >>> (32 - c)); r = a << c; cf = (aHi >>> (32 - c)) & 1; if (c === 32) cf = aHi & 1; }
        else { hi = a << (c - 32); r = 0; cf = c === 32 ? aHi & 1 : (a >>> (64 - c)) & 1; }
        of = (hi >>> 31) ^ cf;
        break;
      case 5:
        if (c < 32) { r = (a >>> c) | (aHi << (32 - c)); hi = aHi >>> c; cf = (a >>> (c - 1)) & 1; }
        else { r = aHi >>> (c - 32); hi = 0; cf = (aHi >>> (c - 33)) & 1; if (c === 32) cf = a >>> 31; }
        of = aHi >>> 31;
        break;
      default:
        if (c < 32) { r = (a >>> c) | (aHi << (32 - c)); hi = aHi >> c; cf = (a >>> (c - 1)) & 1; }
        else { r = aHi >> (c - 32); hi = aHi >> 31; cf = (aHi >>> (c - 33)) & 1; if (c === 32) cf = a >>> 31; }
        of = 0;
        break;
    }
    writeRM(cpu, i, r | 0, hi | 0);
    setShiftFlags(cpu, s, r | 0, hi | 0, cf, of);
    return;
  }
  const mask = s === 4 ? -1 : s === 2 ? 0xffff : 0xff;
  const msb = bits - 1;
  switch (op) {
    case 0: case 1: {
      const k = c % bits;
      if (k === 0 && bits < 32) {
        // count is a multiple of the width: value unchanged, CF/OF still updated
        r = a;
      } else if (op === 0) r = ((a << k) | (a >>> (bits - k))) & mask;
      else r = ((a >>> k) | (a << (bits - k))) & mask;
      if (s === 4) r |= 0;
      if (op === 0) { cf = r & 1; of = ((r >>> msb) & 1) ^ cf; } else { cf = (r >>> msb) & 1; of = cf ^ ((r >>> (msb - 1)) & 1); }
      writeRM(cpu, i, r, 0);
      rotFlags(cpu, cf, of);
      return;
    }
    case 2: case 3: {
      const k = s === 4 ? c : c % (bits + 1);
      let v = a >>> 0, carry = getCF(cpu);
      if (k === 0) { writeRM(cpu, i, a, 0); return; }
      for (let n = 0; n < k; n++) {
        if (op === 2) { const out = (v >>> msb) & 1; v = ((v << 1) | carry) & mask; carry = out; }
        else { const out = v & 1; v = ((v >>> 1) | (carry << msb)) & mask; carry = out; }
        v = v >>> 0;
      }
      r = s === 4 ? v | 0 : v;
      cf = carry;
      of = op === 2 ? ((r >>> msb) & 1) ^ cf : ((r >>> msb) & 1) ^ ((r >>> (msb - 1)) & 1);
      writeRM(cpu, i, r, 0);
      rotFlags(cpu, cf, of);
      return;
    }
    case 4: case 6:
      r = c < 32 ? (a << c) & mask : 0;
      cf = c <= 32 ? ((a << (c - 1)) >>> msb) & 1 : 0;
      if (s === 4) { cf = c === 0 ? 0 : (a >>> (32 - c)) & 1; }
      of = ((r >>> msb) & 1) ^ cf;
      break;
    case 5:
      r = (a >>> c) & mask;
      cf = (a >>> (c - 1)) & 1;
      of = (a >>> msb) & 1;
      break;
    default: {
      const sa = s === 1 ? (a << 24) >> 24 : s === 2 ? (a << 16) >> 16 : a;
      r = (sa >> c) & mask;
      cf = (sa >> (c - 1)) & 1;
      of = 0;
      break;
    }
  }
  if (s === 4) r |= 0;
  writeRM(cpu, i, r, 0);
  setShiftFlags(cpu, s, r, 0, cf, of);
}

/** Count 0: nothing changes, except that a 32-bit register destination is still zero-extended. */
function zeroCount(cpu: Cpu, i: Insn): void {
  if (i.mod === 3) { if (i.osz === 4) cpu.gpr[(i.rm << 1) + 1] = 0; } else ea(cpu, i);
}

function setShiftFlags(cpu: Cpu, s: number, r: number, hi: number, cf: number, of: number): void {
  cpu.ccOp = (CC.RESCO << 2) | SIDX[s];
  cpu.ccRes = r; cpu.ccResHi = hi;
  cpu.ccAux = cf | (of << 1);
}

/** Rotates change only CF and OF. */
function rotFlags(cpu: Cpu, cf: number, of: number): void {
  const f = getArithFlags(cpu) & ~(F.CF | F.OF);
  setArithFlags(cpu, f | cf | (of << 11));
}

export function shift1(cpu: Cpu, i: Insn): void { shiftOp(cpu, i, 1); }
export function shiftCl(cpu: Cpu, i: Insn): void { shiftOp(cpu, i, cpu.gpr[2] & 0xff); }
export function shiftImm(cpu: Cpu, i: Insn): void { shiftOp(cpu, i, i.imm); }

/** shld r/m, reg, imm8|CL (sub 0 imm, 1 CL) */
export function shld(cpu: Cpu, i: Insn): void { doubleShift(cpu, i, true); }
export function shrd(cpu: Cpu, i: Insn): void { doubleShift(cpu, i, false); }

function doubleShift(cpu: Cpu, i: Insn, left: boolean): void {
  const s = i.osz;
  const c = (i.sub === 0 ? i.imm : cpu.gpr[2]) & (s === 8 ? 63 : 31);
  if (c === 0) { zeroCount(cpu, i); return; }
  const a = readRM(cpu, i), aHi = s === 8 ? cpu.opHi : 0;
  const b = getReg(cpu, i.reg, s), bHi = s === 8 ? cpu.opHi : 0;
  let r = 0, hi = 0, cf = 0;
  if (s === 8) {
    // 128-bit window a:b (left) or b:a (right), one bit at a time is too slow; compose from 64-bit shifts
    if (left) {
      shl64(a, aHi, c); const l1 = sLo, h1 = sHi;
      shr64(b, bHi, 64 - c); r = l1 | sLo; hi = h1 | sHi;
      cf = c <= 32 ? (aHi >>> (32 - c)) & 1 : (a >>> (64 - c)) & 1;
    } else {
      shr64(a, aHi, c); const l1 = sLo, h1 = sHi;
      shl64(b, bHi, 64 - c); r = l1 | sLo; hi = h1 | sHi;
      cf = c <= 32 ? (a >>> (c - 1)) & 1 : (aHi >>> (c - 33)) & 1;
    }
    writeRM(cpu, i, r, hi);
    setShiftFlags(cpu, 8, r, hi, cf, ((hi ^ aHi) >>> 31) & 1);
    return;
  }
  if (s === 4) {
    if (left) { r = (a << c) | (b >>> (32 - c)); cf = (a >>> (32 - c)) & 1; }
    else { r = (a >>> c) | (b << (32 - c)); cf = (a >>> (c - 1)) & 1; }
    r |= 0;
    writeRM(cpu, i, r, 0);
    setShiftFlags(cpu, 4, r, 0, cf, ((r ^ a) >>> 31) & 1);
    return;
  }
  // 16-bit: counts above 16 shift the pattern a:b:a (what hardware does; architecturally undefined)
  if (left) {
    if (c <= 16) { r = ((a << c) | (b >>> (16 - c))) & 0xffff; cf = (a >>> (16 - c)) & 1; }
    else { r = ((b << (c - 16)) | (a >>> (32 - c))) & 0xffff; cf = (b >>> (32 - c)) & 1; }
  } else {
    if (c <= 16) { r = ((a >>> c) | (b << (16 - c))) & 0xffff; cf = (a >>> (c - 1)) & 1; }
    else { r = ((b >>> (c - 16)) | (a << (32 - c))) & 0xffff; cf = (b >>> (c - 17)) & 1; }
  }
  writeRM(cpu, i, r, 0);
  setShiftFlags(cpu, 2, r, 0, cf, ((r ^ a) >>> 15) & 1);
}

let sLo = 0, sHi = 0;
function shl64(lo: number, hi: number, c: number): void {
  if (c === 0) { sLo = lo; sHi = hi; } else if (c < 32) { sHi = (hi << c) | (lo >>> (32 - c)); sLo = lo << c; }
  else if (c < 64) { sHi = lo << (c - 32); sLo = 0; } else { sLo = 0; sHi = 0; }
}
function shr64(lo: number, hi: number, c: number): void {
  if (c === 0) { sLo = lo; sHi = hi; } else if (c < 32) { sLo = (lo >>> c) | (hi << (32 - c)); sHi = hi >>> c; }
  else if (c < 64) { sLo = hi >>> (c - 32); sHi = 0; } else { sLo = 0; sHi = 0; }
}

// ---- bit test family (sub 0 bt, 1 bts, 2 btr, 3 btc)

function bitOp(cpu: Cpu, i: Insn, bit: number, addr: number, isReg: boolean): void {
  const s = i.osz;
  let v: number, vHi = 0;
  if (isReg) { v = getReg(cpu, i.rm, s); if (s === 8) vHi = cpu.opHi; }
  else { v = readMem(cpu, addr, s); if (s === 8) vHi = cpu.opHi; }
  let cf: number;
  if (bit < 32) {
    cf = (v >>> bit) & 1;
    const m = 1 << bit;
    if (i.sub === 1) v |= m; else if (i.sub === 2) v &= ~m; else if (i.sub === 3) v ^= m;
  } else {
    const b = bit - 32;
    cf = (vHi >>> b) & 1;
    const m = 1 << b;
    if (i.sub === 1) vHi |= m; else if (i.sub === 2) vHi &= ~m; else if (i.sub === 3) vHi ^= m;
  }
  if (i.sub !== 0) {
    if (s === 2) v &= 0xffff;
    if (isReg) setReg(cpu, i.rm, s, v, vHi); else writeMem(cpu, addr, s, v, vHi);
  }
  const f = getArithFlags(cpu);
  setArithFlags(cpu, (f & ~F.CF) | cf);
}

export function btG(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const bits = s * 8;
  const off = getReg(cpu, i.reg, s);
  if (i.mod === 3) { bitOp(cpu, i, off & (bits - 1), 0, true); return; }
  // Memory form: the bit offset is signed and may reach outside the operand.
  let n: number;
  if (s === 2) n = (off << 16) >> 16;
  else if (s === 4) n = off;
  else n = cpu.opHi * 4294967296 + (off >>> 0);
  const unit = Math.floor(n / bits);
  const bit = n - unit * bits;
  bitOp(cpu, i, bit, ea(cpu, i) + unit * s, false);
}

export function btI(cpu: Cpu, i: Insn): void {
  const bits = i.osz * 8;
  const bit = i.imm & (bits - 1);
  if (i.mod === 3) bitOp(cpu, i, bit, 0, true);
  else bitOp(cpu, i, bit, ea(cpu, i), false);
}

/** bsf (and tzcnt: BMI1 is not offered, so F3 0F BC is bsf). Zero source: ZF=1, destination unchanged. */
export function bsf(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = readRM(cpu, i), vHi = s === 8 ? cpu.opHi : 0;
  const f = getArithFlags(cpu) & ~F.ZF;
  if ((v | vHi) === 0) { setArithFlags(cpu, f | F.ZF); return; }
  const r = v !== 0 ? 31 - Math.clz32(v & -v) : 63 - Math.clz32(vHi & -vHi);
  setReg(cpu, i.reg, s, r, 0);
  setArithFlags(cpu, f);
}
export function bsr(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const v = readRM(cpu, i), vHi = s === 8 ? cpu.opHi : 0;
  const f = getArithFlags(cpu) & ~F.ZF;
  if ((v | vHi) === 0) { setArithFlags(cpu, f | F.ZF); return; }
  const r = vHi !== 0 ? 63 - Math.clz32(vHi) : 31 - Math.clz32(v);
  setReg(cpu, i.reg, s, r, 0);
  setArithFlags(cpu, f);
}

export function bswap(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr, k = i.rm << 1;
  const sw = (x: number) => ((x >>> 24) | ((x >>> 8) & 0xff00) | ((x << 8) & 0xff0000) | (x << 24)) | 0;
  if (i.osz === 8) { const lo = g[k]; g[k] = sw(g[k + 1]); g[k + 1] = sw(lo); }
  else if (i.osz === 4) { g[k] = sw(g[k]); g[k + 1] = 0; }
  else g[k] &= ~0xffff; // 16-bit bswap: undefined, zero as hardware does
}

export function xadd(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const rr = s === 1 ? i.reg8 : i.reg;
  const a = readRM(cpu, i), aHi = s === 8 ? cpu.opHi : 0;
  const b = getReg(cpu, rr, s), bHi = s === 8 ? cpu.opHi : 0;
  const r = compute(0, s, a, aHi, b, bHi, 0);
  const hi = rHi;
  if (i.mod === 3) { setReg(cpu, rr, s, a, aHi); writeRM(cpu, i, r, hi); }
  else { writeRM(cpu, i, r, hi); setReg(cpu, rr, s, a, aHi); }
  record(cpu, 0, s, a, aHi, b, bHi, r, hi, 0);
}

export function cmpxchg(cpu: Cpu, i: Insn): void {
  const s = i.osz;
  const d = readRM(cpu, i), dHi = s === 8 ? cpu.opHi : 0;
  const acc = getReg(cpu, 0, s), accHi = s === 8 ? cpu.opHi : 0;
  const r = compute(5, s, acc, accHi, d, dHi, 0);
  const hi = rHi;
  if (d === acc && dHi === accHi) {
    const src = getReg(cpu, s === 1 ? i.reg8 : i.reg, s), srcHi = s === 8 ? cpu.opHi : 0;
    writeRM(cpu, i, src, srcHi);
  } else {
    if (i.mod !== 3) writeRM(cpu, i, d, dHi); // the locked cycle writes back the old value
    setReg(cpu, 0, s, d, dHi);
  }
  record(cpu, 5, s, acc, accHi, d, dHi, r, hi, 0);
}

export function cmpxchg8b(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr;
  const addr = ea(cpu, i);
  const lo = mmu.read64(cpu, addr) | 0, hi = cpu.memHi | 0;
  const f = getArithFlags(cpu) & ~F.ZF;
  if (lo === g[0] && hi === g[4]) {
    mmu.write64(cpu, addr, g[6], g[2]);
    setArithFlags(cpu, f | F.ZF);
  } else {
    mmu.write64(cpu, addr, lo, hi);
    setReg32(cpu, 0, lo); setReg32(cpu, 2, hi);
    setArithFlags(cpu, f);
  }
}

/** cmpxchg16b (CPUID.1:ECX.CX16 is advertised by cpuid.ts). */
export function cmpxchg16b(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr;
  const addr = ea(cpu, i);
  if (addr % 16 !== 0) raise(cpu, 13, 0);
  cpu.probeWrite(addr, 16);
  const l0 = mmu.read64(cpu, addr) | 0, h0 = cpu.memHi | 0;
  const l1 = mmu.read64(cpu, addr + 8) | 0, h1 = cpu.memHi | 0;
  const f = getArithFlags(cpu) & ~F.ZF;
  if (l0 === g[0] && h0 === g[1] && l1 === g[4] && h1 === g[5]) {
    mmu.write64(cpu, addr, g[6], g[7]);
    mmu.write64(cpu, addr + 8, g[2], g[3]);
    setArithFlags(cpu, f | F.ZF);
  } else {
    mmu.write64(cpu, addr, l0, h0);
    mmu.write64(cpu, addr + 8, l1, h1);
    g[0] = l0; g[1] = h0; g[4] = l1; g[5] = h1;
    setArithFlags(cpu, f);
  }
}

// ---- flag instructions

export function cmc(cpu: Cpu): void { setArithFlags(cpu, getArithFlags(cpu) ^ F.CF); }
export function clc(cpu: Cpu): void { setArithFlags(cpu, getArithFlags(cpu) & ~F.CF); }
export function stc(cpu: Cpu): void { setArithFlags(cpu, getArithFlags(cpu) | F.CF); }
export function cld(cpu: Cpu): void { cpu.flagsRest &= ~F.DF; }
export function std(cpu: Cpu): void { cpu.flagsRest |= F.DF; }
export function lahf(cpu: Cpu): void {
  cpu.gpr[0] = (cpu.gpr[0] & ~0xff00) | (((getArithFlags(cpu) & 0xd5) | 2) << 8);
}
export function sahf(cpu: Cpu): void {
  const f = getArithFlags(cpu) & ~0xd5;
  setArithFlags(cpu, f | ((cpu.gpr[0] >> 8) & 0xd5));
}
export function salc(cpu: Cpu): void {
  cpu.gpr[0] = (cpu.gpr[0] & ~0xff) | (getCF(cpu) ? 0xff : 0);
}

// ---- BCD (legacy modes only)

function setSzp8(f: number, v: number): number {
  f &= ~(F.SF | F.ZF | F.PF);
  return f | (v & 0x80) | (v === 0 ? F.ZF : 0) | PARITY[v];
}

export function daa(cpu: Cpu): void {
  const g = cpu.gpr;
  let al = g[0] & 0xff;
  const oldAl = al, oldCf = getCF(cpu);
  let f = getArithFlags(cpu) & ~(F.CF | F.AF | F.OF);
  // SDM: CF also picks up the carry out of the low-nibble adjustment.
  if ((al & 0xf) > 9 || getAF(cpu)) { if (al + 6 > 0xff) f |= F.CF; al = (al + 6) & 0xff; f |= F.AF; }
  if (oldAl > 0x99 || oldCf) { al = (al + 0x60) & 0xff; f |= F.CF; }
  g[0] = (g[0] & ~0xff) | al;
  setArithFlags(cpu, setSzp8(f, al));
}
export function das(cpu: Cpu): void {
  const g = cpu.gpr;
  let al = g[0] & 0xff;
  const oldAl = al, oldCf = getCF(cpu);
  let f = getArithFlags(cpu) & ~(F.CF | F.AF | F.OF);
  // SDM: CF = old CF or the borrow out of the low-nibble adjustment.
  if ((al & 0xf) > 9 || getAF(cpu)) { if (al < 6) f |= F.CF; al = (al - 6) & 0xff; f |= F.AF; }
  if (oldAl > 0x99 || oldCf) { al = (al - 0x60) & 0xff; f |= F.CF; }
  g[0] = (g[0] & ~0xff) | al;
  setArithFlags(cpu, setSzp8(f, al));
}
export function aaa(cpu: Cpu): void {
  const g = cpu.gpr;
  let f = getArithFlags(cpu) & ~(F.CF | F.AF);
  let ax = g[0] & 0xffff;
  if ((ax & 0xf) > 9 || getAF(cpu)) { ax = (ax + 0x106) & 0xffff; f |= F.CF | F.AF; }
  ax &= 0xff0f;
  setReg16(cpu, 0, ax);
  setArithFlags(cpu, f);
}
export function aas(cpu: Cpu): void {
  const g = cpu.gpr;
  let f = getArithFlags(cpu) & ~(F.CF | F.AF);
  let ax = g[0] & 0xffff;
  if ((ax & 0xf) > 9 || getAF(cpu)) { const al = ((ax & 0xff) - 6) & 0xff; const ah = ((ax >> 8) - 1) & 0xff; ax = (ah << 8) | al; f |= F.CF | F.AF; }
  ax &= 0xff0f;
  setReg16(cpu, 0, ax);
  setArithFlags(cpu, f);
}
export function aam(cpu: Cpu, i: Insn): void {
  const base = i.imm & 0xff;
  if (base === 0) raise(cpu, 0);
  const al = cpu.gpr[0] & 0xff;
  const r = ((Math.floor(al / base) & 0xff) << 8) | (al % base);
  setReg16(cpu, 0, r);
  setArithFlags(cpu, setSzp8(getArithFlags(cpu) & ~(F.CF | F.AF | F.OF), r & 0xff));
}
export function aad(cpu: Cpu, i: Insn): void {
  const g = cpu.gpr;
  const al = ((g[0] & 0xff) + ((g[0] >> 8) & 0xff) * (i.imm & 0xff)) & 0xff;
  setReg16(cpu, 0, al);
  setArithFlags(cpu, setSzp8(getArithFlags(cpu) & ~(F.CF | F.AF | F.OF), al));
}

export { getZF, setFlagBit };
