/**
 * Lazy arithmetic flags (QEMU CC_OP style). An instruction records what it did in the cc* fields of the CPU
 * state; flags are computed only when read. Layout of the record:
 *   ccOp   = kind << 2 | sizeIndex   (sizeIndex 0..3 = 8/16/32/64 bits)
 *   ccRes  = result, ccSrc1 = first operand (destination before), ccSrc2 = second operand; 32-bit halves
 *            (values of 8/16-bit operations are stored zero-extended, their Hi halves are 0).
 *   ccAux  = carry-in for ADC/SBB, previous CF for INC/DEC, CF|OF<<1|AF<<2 for RESCO.
 */
import type { CpuState } from './cpu-state.js';

export const enum CC {
  FLAGS = 0, // materialized: ccSrc1 holds CF PF AF ZF SF OF bits
  ADD = 1,
  ADC = 2,
  SUB = 3,
  SBB = 4,
  LOGIC = 5,
  INC = 6,
  DEC = 7,
  RESCO = 8, // SF ZF PF from result, CF/OF/AF from ccAux (shifts, multiplies)
}

/** The arithmetic bits of RFLAGS. */
export const ARITH_MASK = 0x8d5; // CF PF AF ZF SF OF

export const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let p = 1;
  for (let b = i; b; b >>= 1) p ^= b & 1;
  PARITY[i] = p ? 4 : 0; // PF bit value
}

function ult64(aLo: number, aHi: number, bLo: number, bHi: number): boolean {
  return aHi === bHi ? (aLo >>> 0) < (bLo >>> 0) : (aHi >>> 0) < (bHi >>> 0);
}

/** Sign bit (0/1) of a value of the recorded size. */
function sign(s: number, lo: number, hi: number): number {
  switch (s) {
    case 0: return (lo >>> 7) & 1;
    case 1: return (lo >>> 15) & 1;
    case 2: return lo >>> 31;
    default: return hi >>> 31;
  }
}

export function getCF(cpu: CpuState): number {
  const op = cpu.ccOp;
  const s = op & 3;
  switch (op >> 2) {
    case CC.FLAGS: return cpu.ccSrc1 & 1;
    case CC.ADD:
      if (s === 3) return ult64(cpu.ccRes, cpu.ccResHi, cpu.ccSrc1, cpu.ccSrc1Hi) ? 1 : 0;
      return (cpu.ccRes >>> 0) < (cpu.ccSrc1 >>> 0) ? 1 : 0;
    case CC.ADC:
      if (s === 3) {
        if (cpu.ccAux && cpu.ccRes === cpu.ccSrc1 && cpu.ccResHi === cpu.ccSrc1Hi) return 1;
        return ult64(cpu.ccRes, cpu.ccResHi, cpu.ccSrc1, cpu.ccSrc1Hi) ? 1 : 0;
      }
      return cpu.ccAux ? ((cpu.ccRes >>> 0) <= (cpu.ccSrc1 >>> 0) ? 1 : 0) : ((cpu.ccRes >>> 0) < (cpu.ccSrc1 >>> 0) ? 1 : 0);
    case CC.SUB:
      if (s === 3) return ult64(cpu.ccSrc1, cpu.ccSrc1Hi, cpu.ccSrc2, cpu.ccSrc2Hi) ? 1 : 0;
      return (cpu.ccSrc1 >>> 0) < (cpu.ccSrc2 >>> 0) ? 1 : 0;
    case CC.SBB:
      if (s === 3) {
        if (cpu.ccAux && cpu.ccSrc1 === cpu.ccSrc2 && cpu.ccSrc1Hi === cpu.ccSrc2Hi) return 1;
        return ult64(cpu.ccSrc1, cpu.ccSrc1Hi, cpu.ccSrc2, cpu.ccSrc2Hi) ? 1 : 0;
      }
      return cpu.ccAux ? ((cpu.ccSrc1 >>> 0) <= (cpu.ccSrc2 >>> 0) ? 1 : 0) : ((cpu.ccSrc1 >>> 0) < (cpu.ccSrc2 >>> 0) ? 1 : 0);
    case CC.LOGIC: return 0;
    case CC.INC: case CC.DEC: return cpu.ccAux & 1;
    default: return cpu.ccAux & 1;
  }
}

export function getZF(cpu: CpuState): number {
  if ((cpu.ccOp >> 2) === CC.FLAGS) return (cpu.ccSrc1 >> 6) & 1;
  return (cpu.ccRes | cpu.ccResHi) === 0 ? 1 : 0;
}

export function getSF(cpu: CpuState): number {
  if ((cpu.ccOp >> 2) === CC.FLAGS) return (cpu.ccSrc1 >> 7) & 1;
  return sign(cpu.ccOp & 3, cpu.ccRes, cpu.ccResHi);
}

export function getPF(cpu: CpuState): number {
  if ((cpu.ccOp >> 2) === CC.FLAGS) return (cpu.ccSrc1 >> 2) & 1;
  return PARITY[cpu.ccRes & 0xff] >> 2;
}

export function getAF(cpu: CpuState): number {
  switch (cpu.ccOp >> 2) {
    case CC.FLAGS: return (cpu.ccSrc1 >> 4) & 1;
    case CC.LOGIC: return 0;
    case CC.RESCO: return (cpu.ccAux >> 2) & 1;
    default: return ((cpu.ccSrc1 ^ cpu.ccSrc2 ^ cpu.ccRes) >> 4) & 1;
  }
}

export function getOF(cpu: CpuState): number {
  const op = cpu.ccOp;
  const s = op & 3;
  switch (op >> 2) {
    case CC.FLAGS: return (cpu.ccSrc1 >> 11) & 1;
    case CC.ADD: case CC.ADC: case CC.INC:
      return sign(s, (cpu.ccSrc1 ^ cpu.ccRes) & (cpu.ccSrc2 ^ cpu.ccRes), (cpu.ccSrc1Hi ^ cpu.ccResHi) & (cpu.ccSrc2Hi ^ cpu.ccResHi));
    case CC.SUB: case CC.SBB: case CC.DEC:
      return sign(s, (cpu.ccSrc1 ^ cpu.ccSrc2) & (cpu.ccSrc1 ^ cpu.ccRes), (cpu.ccSrc1Hi ^ cpu.ccSrc2Hi) & (cpu.ccSrc1Hi ^ cpu.ccResHi));
    case CC.LOGIC: return 0;
    default: return (cpu.ccAux >> 1) & 1;
  }
}

/** CF PF AF ZF SF OF as RFLAGS bits. */
export function getArithFlags(cpu: CpuState): number {
  if ((cpu.ccOp >> 2) === CC.FLAGS) return cpu.ccSrc1 & ARITH_MASK;
  return getCF(cpu) | (getPF(cpu) << 2) | (getAF(cpu) << 4) | (getZF(cpu) << 6) | (getSF(cpu) << 7) | (getOF(cpu) << 11);
}

/** Whole RFLAGS (low 32 bits; the high half is always zero). */
export function getRflags(cpu: CpuState): number {
  return (cpu.flagsRest | getArithFlags(cpu) | 2) >>> 0;
}

/** Raw write of RFLAGS (no privilege rules: system.writeFlagsChecked applies them and then calls this). */
export function setRflags(cpu: CpuState, v: number): void {
  cpu.flagsRest = ((v & ~ARITH_MASK) | 2) & 0x3f7fff;
  setArithFlags(cpu, v);
}

/** Replace CF PF AF ZF SF OF by the bits in `v`. */
export function setArithFlags(cpu: CpuState, v: number): void {
  cpu.ccOp = CC.FLAGS << 2;
  cpu.ccSrc1 = v & ARITH_MASK;
  cpu.ccRes = 0; cpu.ccResHi = 0;
}

/** Set or clear one arithmetic flag, keeping the others. */
export function setFlagBit(cpu: CpuState, bit: number, on: boolean): void {
  const f = getArithFlags(cpu);
  setArithFlags(cpu, on ? f | bit : f & ~bit);
}

/** Condition codes 0..15 in Jcc/SETcc/CMOVcc order. Fast for the record left by cmp/sub/test/and. */
export function testCondition(cpu: CpuState, cc: number): boolean {
  const op = cpu.ccOp;
  const kind = op >> 2;
  if (kind === CC.SUB && (op & 3) === 2) {
    const a = cpu.ccSrc1, b = cpu.ccSrc2;
    switch (cc) {
      case 2: return (a >>> 0) < (b >>> 0);
      case 3: return (a >>> 0) >= (b >>> 0);
      case 4: return a === b;
      case 5: return a !== b;
      case 6: return (a >>> 0) <= (b >>> 0);
      case 7: return (a >>> 0) > (b >>> 0);
      case 12: return (a | 0) < (b | 0);
      case 13: return (a | 0) >= (b | 0);
      case 14: return (a | 0) <= (b | 0);
      case 15: return (a | 0) > (b | 0);
    }
  } else if (kind === CC.LOGIC) {
    // CF = OF = 0
    const zf = (cpu.ccRes | cpu.ccResHi) === 0;
    switch (cc) {
      case 0: return false; case 1: return true;
      case 2: return false; case 3: return true;
      case 4: return zf; case 5: return !zf;
      case 6: return zf; case 7: return !zf;
      case 8: return getSF(cpu) === 1; case 9: return getSF(cpu) === 0;
      case 12: return getSF(cpu) === 1; case 13: return getSF(cpu) === 0;
      case 14: return zf || getSF(cpu) === 1; case 15: return !zf && getSF(cpu) === 0;
    }
  }
  let r: boolean;
  switch (cc >> 1) {
    case 0: r = getOF(cpu) === 1; break;
    case 1: r = getCF(cpu) === 1; break;
    case 2: r = getZF(cpu) === 1; break;
    case 3: r = (getCF(cpu) | getZF(cpu)) === 1; break;
    case 4: r = getSF(cpu) === 1; break;
    case 5: r = getPF(cpu) === 1; break;
    case 6: r = getSF(cpu) !== getOF(cpu); break;
    default: r = getZF(cpu) === 1 || getSF(cpu) !== getOF(cpu); break;
  }
  return (cc & 1) ? !r : r;
}
