/**
 * The x87 FPU. Registers hold exact 80-bit values; loads, stores, integer and BCD conversions, moves and
 * sign operations are bit-exact, and arithmetic is computed exactly on integer significands (ext80.ts),
 * rounded once to the precision control (24/53/64 bits) with the rounding control and flags.
 * Transcendentals use the host's double functions (double accuracy). Unmasked exceptions set ES/B and
 * raise #MF at the next waiting instruction (CR0.NE; without NE, FERR# is not modelled).
 */
import type { CpuState } from '../cpu-state.js';
import { getArithFlags, setArithFlags } from '../flags.js';
import type { SimdCpu, SimdInsn } from './contract.js';
import type { FpuState } from './state.js';
import { Cls, classify, f80Value, from32, from64, fromInt, fromNumber, oHi, oLo, oSe, to32, to64 } from './f80.js';
import { Rc, X, clearFlags, orFlags, rndUp, setOeStrict, setUeStrict, sfFlags, type Fmt } from './softfloat.js';
import { Op, arithRc, invalid } from './sse-fp.js';
import { add80, div80, mul80, rem80, sqrt80, xHi, xLo, xPartial, xQ, xSe, xUp } from './ext80.js';

const NM = 7, MF = 16;
const CR0_MP = 1 << 1, CR0_EM = 1 << 2, CR0_TS = 1 << 3, CR0_NE = 1 << 5;
const C0 = 0x100, C1 = 0x200, C2 = 0x400, C3 = 0x4000, SF = 0x40, ES = 0x80, B = 0x8000;
const CCMASK = C0 | C1 | C2 | C3;

const FMT53: Fmt = { p: 53, emin: -16382, emax: 16383 };

let f!: FpuState; // state of the instruction being executed
let tLo = 0, tHi = 0, tSe = 0; // operand staged from memory or a register
/** Flags raised while loading a memory operand (DE of a binary32/64 denormal), merged into the operation. */
let preFlags = 0;

const phys = (i: number): number => (f.top + i) & 7;
const isEmpty = (i: number): boolean => ((f.empty >> phys(i)) & 1) !== 0;
function setReg(i: number, lo: number, hi: number, se: number): void {
  const p = phys(i);
  f.mlo[p] = lo; f.mhi[p] = hi; f.sexp[p] = se; f.empty &= ~(1 << p);
}
function pop(): void { f.empty |= 1 << f.top; f.top = (f.top + 1) & 7; }
function setIndefinite(i: number): void { setReg(i, 0, 0xc0000000 | 0, 0xffff); }
function rc(): number { return (f.fcw >> 10) & 3; }
/** Precision control: 24, 53 or 64 bits (the reserved setting 01 behaves as 64 here). */
function precisionBits(): number { const pc = (f.fcw >> 8) & 3; return pc === 0 ? 24 : pc === 2 ? 53 : 64; }
const masked = (x: number): boolean => (f.fcw & x) !== 0;

/** Record exception flags; returns true when a pre-computation exception is unmasked (no result). */
function commit(extra: number): boolean {
  const x = (sfFlags | extra) & 0x7f;
  f.fsw |= x;
  const unm = x & ~f.fcw & 0x3f;
  if (unm !== 0) f.fsw |= ES | B;
  return (unm & (X.IE | X.DE | X.ZE)) !== 0;
}
function setCC(c: number): void { f.fsw = (f.fsw & ~CCMASK) | c; }

/** Stack underflow on reading an empty register: IE|SF, C1=0. Returns true when the result must be skipped. */
function underflow(): boolean {
  f.fsw &= ~C1;
  return commit(X.IE | SF);
}
function push(lo: number, hi: number, se: number): void {
  const p = (f.top - 1) & 7;
  if (((f.empty >> p) & 1) === 0) { // stack overflow
    f.fsw |= C1;
    if (commit(X.IE | SF)) return;
    f.top = p; setIndefinite(0); return;
  }
  f.top = p; setReg(0, lo, hi, se);
}

// ---- Arithmetic on staged operands a (register i) and b (tLo/tHi/tSe) with NaN rules, into oLo/oHi/oSe.
let rLo = 0, rHi = 0, rSe = 0;
function nanResult(aLo: number, aHi: number, aSe: number, ca: number, bLo: number, bHi: number, bSe: number, cb: number): void {
  const an = ca === Cls.QNaN || ca === Cls.SNaN, bn = cb === Cls.QNaN || cb === Cls.SNaN;
  if (ca === Cls.SNaN || cb === Cls.SNaN) orFlags(X.IE);
  let pickA: boolean;
  if (an && bn) {
    if (ca !== cb) pickA = ca === Cls.QNaN;
    else {
      const ah = (aHi & 0x3fffffff) >>> 0, bh = (bHi & 0x3fffffff) >>> 0;
      pickA = ah !== bh ? ah > bh : (aLo >>> 0) !== (bLo >>> 0) ? (aLo >>> 0) > (bLo >>> 0) : (aSe & 0x8000) === 0;
    }
  } else pickA = an;
  if (pickA) { rLo = aLo; rHi = aHi | 0x40000000; rSe = aSe; } else { rLo = bLo; rHi = bHi | 0x40000000; rSe = bSe; }
}

/** r = a op b (op from sse-fp Op). Returns false when an unmasked pre-computation exception suppresses it. */
function arith80(op: number, aLo: number, aHi: number, aSe: number, bLo: number, bHi: number, bSe: number): boolean {
  clearFlags();
  orFlags(preFlags);
  setUeStrict(!masked(X.UE));
  setOeStrict(!masked(X.OE));
  const unary = op === Op.SQRT;
  const ca = unary ? Cls.Normal : classify(aLo, aHi, aSe), cb = classify(bLo, bHi, bSe);
  if (ca === Cls.Unsupported || cb === Cls.Unsupported) { orFlags(X.IE); rLo = 0; rHi = 0xc0000000 | 0; rSe = 0xffff; return !commit(0); }
  if (ca === Cls.QNaN || ca === Cls.SNaN || cb === Cls.QNaN || cb === Cls.SNaN) {
    nanResult(aLo, aHi, aSe, unary ? Cls.Normal : ca, bLo, bHi, bSe, cb);
    return !commit(0);
  }
  const finA = unary || ca === Cls.Normal || ca === Cls.Denormal, finB = cb === Cls.Normal || cb === Cls.Denormal;
  // Invalid (sqrt of a negative) and zero-divide take precedence over the denormal-operand report.
  const noDE = (unary && finB && (bSe & 0x8000) !== 0) || (op === Op.DIV && cb === Cls.Zero);
  if (!noDE && (ca === Cls.Denormal || cb === Cls.Denormal)) orFlags(X.DE);
  const p = precisionBits(), r = rc();
  // Finite non-zero operands (and a finite operand plus a zero): exact integer arithmetic, one rounding.
  if (finA && finB) {
    switch (op) {
      case Op.ADD: add80(aLo, aHi, aSe, bLo, bHi, bSe, p, r); break;
      case Op.SUB: add80(aLo, aHi, aSe, bLo, bHi, bSe ^ 0x8000, p, r); break;
      case Op.MUL: mul80(aLo, aHi, aSe, bLo, bHi, bSe, p, r); break;
      case Op.DIV: div80(aLo, aHi, aSe, bLo, bHi, bSe, p, r); break;
      default:
        if (bSe & 0x8000) { orFlags(X.IE); rLo = 0; rHi = 0xc0000000 | 0; rSe = 0xffff; return !commit(0); }
        sqrt80(bLo, bHi, bSe, p, r);
    }
    rLo = xLo; rHi = xHi; rSe = xSe;
    if (xUp) f.fsw |= C1; else f.fsw &= ~C1;
    return !commit(0);
  }
  if ((op === Op.ADD || op === Op.SUB) && ((finA && cb === Cls.Zero) || (finB && ca === Cls.Zero))) {
    add80(aLo, aHi, aSe, bLo, bHi, op === Op.SUB ? bSe ^ 0x8000 : bSe, p, r);
    rLo = xLo; rHi = xHi; rSe = xSe;
    if (xUp) f.fsw |= C1; else f.fsw &= ~C1;
    return !commit(0);
  }
  // Zeros and infinities: the other operand only matters by sign and being finite non-zero (stand-in 1).
  const x = unary ? 0 : finA ? (aSe & 0x8000 ? -1 : 1) : f80Value(aLo, aHi, aSe);
  const y = finB ? (bSe & 0x8000 ? -1 : 1) : f80Value(bLo, bHi, bSe);
  const v = arithRc(op, x, y, FMT53, r);
  if (invalid) { orFlags(X.IE); rLo = 0; rHi = 0xc0000000 | 0; rSe = 0xffff; return !commit(0); }
  fromNumber(v);
  rLo = oLo; rHi = oHi; rSe = oSe;
  return !commit(0);
}

/** Load the memory operand of a D8/DA/DC/DE arithmetic form into t*. */
function loadArithMem(cpu: SimdCpu, esc: number, ea: number): void {
  clearFlags();
  switch (esc) {
    case 0xd8: from32(cpu.read32(ea), false); break;
    case 0xdc: { const lo = cpu.read32(ea), hi = cpu.read32(ea + 4); from64(lo, hi, false); break; }
    case 0xda: fromInt(cpu.read32(ea), cpu.read32(ea) >> 31); break;
    default: { const v = (cpu.read16(ea) << 16) >> 16; fromInt(v, v >> 31); }
  }
  tLo = oLo; tHi = oHi; tSe = oSe;
  preFlags = sfFlags;
}

let iLo = 0, iHi = 0;
/**
 * 80-bit -> signed integer of `bits` (16/32/64) with rounding control rcv, into iLo/iHi.
 * Returns false on invalid (NaN, infinity, out of range); sets PE (and C1 if rounded up) when inexact.
 */
function toInt(lo: number, hi: number, se: number, bits: number, rcv: number): boolean {
  const c = classify(lo, hi, se);
  if (c === Cls.QNaN || c === Cls.SNaN || c === Cls.Inf || c === Cls.Unsupported) return false;
  const neg = (se & 0x8000) !== 0;
  if (c === Cls.Zero) { iLo = 0; iHi = 0; return true; }
  let e = se & 0x7fff; if (e === 0) e = 1;
  const s = 16383 + 63 - e; // right shift of the significand giving the integer part
  if (s < 0) return false;
  const inexact = shiftRound(hi, lo, s, rcv, neg);
  let ih = srHi, il = srLo;
  const up = srUp;
  if (srCarry) return false;
  // range check on the magnitude
  if (bits === 64) {
    if (ih > 0x80000000 || (ih === 0x80000000 && (il !== 0 || !neg))) return false;
  } else {
    const lim = bits === 32 ? 0x80000000 : 0x8000;
    if (ih !== 0 || il > lim || (il === lim && !neg)) return false;
  }
  if (neg) { il = (~il + 1) >>> 0; ih = (~ih + (il === 0 ? 1 : 0)) >>> 0; }
  iLo = il | 0; iHi = ih | 0;
  if (inexact) { orFlags(X.PE); if (up) f.fsw |= C1; else f.fsw &= ~C1; }
  return true;
}

/** Unsigned 64-bit significand shifted right by s (>= 0) with rounding: srHi/srLo (unsigned), srUp, srCarry (2^64). */
let srHi = 0, srLo = 0, srUp = false, srCarry = false;
function shiftRound(hi: number, lo: number, s: number, rcv: number, neg: boolean): boolean {
  let ih = 0, il = 0, round = 0, sticky = 0;
  const h = hi >>> 0, l = lo >>> 0;
  if (s === 0) { ih = h; il = l; }
  else if (s >= 65) { sticky = (h | l) !== 0 ? 1 : 0; }
  else if (s === 64) { round = h >>> 31; sticky = ((h & 0x7fffffff) | l) !== 0 ? 1 : 0; }
  else if (s >= 32) {
    const t = s - 32;
    il = t === 0 ? h : h >>> t; ih = 0;
    round = t === 0 ? l >>> 31 : (h >>> (t - 1)) & 1;
    sticky = t === 0 ? ((l & 0x7fffffff) !== 0 ? 1 : 0) : (((t > 1 ? h & ((1 << (t - 1)) - 1) : 0) | l) !== 0 ? 1 : 0);
  } else {
    ih = h >>> s; il = ((l >>> s) | (h << (32 - s))) >>> 0;
    round = (l >>> (s - 1)) & 1;
    sticky = (s > 1 ? (l & ((1 << (s - 1)) - 1)) : 0) !== 0 ? 1 : 0;
  }
  const inexact = (round | sticky) !== 0;
  let up = false;
  if (inexact) {
    if (rcv === Rc.Nearest) up = round === 1 && (sticky === 1 || (il & 1) === 1);
    else if (rcv === Rc.Up) up = !neg;
    else if (rcv === Rc.Down) up = neg;
  }
  srCarry = false;
  if (up) { il = (il + 1) >>> 0; if (il === 0) { ih = (ih + 1) >>> 0; if (ih === 0) srCarry = true; } }
  srHi = ih; srLo = il; srUp = up;
  return inexact;
}

// ---- Comparisons: C3 C2 C0 / ZF PF CF patterns. Returns 0 eq, 1 less, 2 greater, 3 unordered.
function compare(aLo: number, aHi: number, aSe: number, bLo: number, bHi: number, bSe: number, signalQ: boolean): number {
  const ca = classify(aLo, aHi, aSe), cb = classify(bLo, bHi, bSe);
  if (ca === Cls.Unsupported || cb === Cls.Unsupported) { orFlags(X.IE); return 3; }
  if (ca >= Cls.QNaN || cb >= Cls.QNaN) {
    if (signalQ || ca === Cls.SNaN || cb === Cls.SNaN) orFlags(X.IE);
    return 3;
  }
  if (ca === Cls.Denormal || cb === Cls.Denormal) orFlags(X.DE);
  // Exact order on the 80-bit encodings: sign, then (exponent, significand); denormals use exponent 1.
  const za = ca === Cls.Zero, zb = cb === Cls.Zero;
  if (za && zb) return 0;
  const na = (aSe & 0x8000) !== 0, nb = (bSe & 0x8000) !== 0;
  if (za) return nb ? 2 : 1;
  if (zb) return na ? 1 : 2;
  if (na !== nb) return na ? 1 : 2;
  const ea = aSe & 0x7fff || 1, eb = bSe & 0x7fff || 1;
  let d = ea !== eb ? ea - eb : aHi !== bHi ? (aHi >>> 0) - (bHi >>> 0) : (aLo >>> 0) - (bLo >>> 0);
  if (na) d = -d;
  return d === 0 ? 0 : d < 0 ? 1 : 2;
}
const CC_OF = [C3, C0, 0, C3 | C2 | C0];
/** FXAM C3 C2 C0 by class (Zero, Normal, Denormal, Inf, QNaN, SNaN, Unsupported). */
const FXAM_CODE = [C3, C2, C3 | C2, C2 | C0, C0, C0, 0];
const EFL_OF = [0x40, 0x01, 0, 0x45];

/** Compare ST0 with staged t* (fcom family). pops: 0..2. */
function fcom(cpu: SimdCpu, signalQ: boolean, pops: number, eflags: boolean): void {
  clearFlags();
  orFlags(preFlags);
  let c = 3;
  if (isEmpty(0)) { if (underflow()) return; }
  else {
    const p = phys(0);
    c = compare(f.mlo[p], f.mhi[p], f.sexp[p], tLo, tHi, tSe, signalQ);
    if (commit(0)) return;
  }
  if (eflags) setArithFlags(cpu as unknown as CpuState, EFL_OF[c]);
  else setCC(CC_OF[c]);
  if (!eflags) f.fsw &= ~C1;
  for (let i = 0; i < pops; i++) pop();
}

function stageReg(i: number): boolean {
  if (isEmpty(i)) return false;
  const p = phys(i);
  tLo = f.mlo[p]; tHi = f.mhi[p]; tSe = f.sexp[p];
  return true;
}

/**
 * Two-operand arithmetic: dst = dst op src or src op dst (reverse). `dst` = register index receiving the
 * result; the other operand is staged in t* (memory or register).
 */
function arithOp(group: number, dst: number, other: 'mem' | number, popAfter: boolean): void {
  clearFlags();
  orFlags(preFlags);
  if (isEmpty(dst) || (other !== 'mem' && isEmpty(other))) {
    f.fsw &= ~C1;
    if (!commit(X.IE | SF)) setIndefinite(dst);
    if (popAfter) pop();
    return;
  }
  if (other !== 'mem') stageReg(other);
  const p = phys(dst);
  const dLo = f.mlo[p], dHi = f.mhi[p], dSe = f.sexp[p];
  // group: 0 add, 1 mul, 4 sub, 5 subr, 6 div, 7 divr (relative to "dst op other")
  let op: number, rev = false;
  switch (group) {
    case 0: op = Op.ADD; break;
    case 1: op = Op.MUL; break;
    case 4: op = Op.SUB; break;
    case 5: op = Op.SUB; rev = true; break;
    case 6: op = Op.DIV; break;
    default: op = Op.DIV; rev = true;
  }
  f.fsw &= ~C1;
  const ok = rev ? arith80(op, tLo, tHi, tSe, dLo, dHi, dSe) : arith80(op, dLo, dHi, dSe, tLo, tHi, tSe);
  if (ok) setReg(dst, rLo, rHi, rSe);
  if (popAfter) pop();
}

function checkPending(cpu: SimdCpu): void {
  if ((f.fsw & ES) !== 0 && (cpu.cr0 & CR0_NE) !== 0) cpu.raise(MF);
}

/** FWAIT/WAIT: #NM when CR0.MP and CR0.TS, then pending unmasked exceptions. */
export function fwait(cpu: SimdCpu): void {
  if ((cpu.cr0 & (CR0_MP | CR0_TS)) === (CR0_MP | CR0_TS)) cpu.raise(NM);
  f = cpu.fpu as FpuState;
  checkPending(cpu);
}

export function fullTagWord(s: FpuState): number {
  let tw = 0;
  for (let p = 0; p < 8; p++) {
    let t: number;
    if ((s.empty >> p) & 1) t = 3;
    else {
      const c = classify(s.mlo[p], s.mhi[p], s.sexp[p]);
      t = c === Cls.Zero ? 1 : c === Cls.Normal ? 0 : 2;
    }
    tw |= t << (2 * p);
  }
  return tw;
}
export function statusWord(s: FpuState): number { return ((s.fsw & ~0x3800) | (s.top << 11)) & 0xffff; }
function setStatusWord(s: FpuState, v: number): void { s.fsw = v & ~0x3800 & 0xffff; s.top = (v >> 11) & 7; }

export function fninit(s: FpuState): void {
  s.fcw = 0x37f; s.fsw = 0; s.top = 0; s.empty = 0xff;
  s.fop = 0; s.fip = 0; s.fcs = 0; s.fdp = 0; s.fds = 0;
}

/** FNSTENV layout (protected mode): 28 bytes, or 14 with a 16-bit operand size. */
function storeEnv(cpu: SimdCpu, ea: number, o16: boolean): void {
  const tw = fullTagWord(f), sw = statusWord(f);
  if (o16) {
    cpu.probeWrite(ea, 14);
    cpu.write16(ea, f.fcw); cpu.write16(ea + 2, sw); cpu.write16(ea + 4, tw);
    cpu.write16(ea + 6, f.fip); cpu.write16(ea + 8, f.fcs); cpu.write16(ea + 10, f.fdp); cpu.write16(ea + 12, f.fds);
  } else {
    cpu.probeWrite(ea, 28);
    cpu.write32(ea, f.fcw | 0xffff0000); cpu.write32(ea + 4, sw | 0xffff0000); cpu.write32(ea + 8, tw | 0xffff0000);
    cpu.write32(ea + 12, f.fip); cpu.write32(ea + 16, (f.fcs & 0xffff) | ((f.fop & 0x7ff) << 16));
    cpu.write32(ea + 20, f.fdp); cpu.write32(ea + 24, f.fds | 0xffff0000);
  }
}
function loadEnv(cpu: SimdCpu, ea: number, o16: boolean): void {
  let cw: number, sw: number, tw: number;
  if (o16) {
    cw = cpu.read16(ea); sw = cpu.read16(ea + 2); tw = cpu.read16(ea + 4);
    f.fip = cpu.read16(ea + 6); f.fcs = cpu.read16(ea + 8); f.fdp = cpu.read16(ea + 10); f.fds = cpu.read16(ea + 12);
  } else {
    cw = cpu.read16(ea); sw = cpu.read16(ea + 4); tw = cpu.read16(ea + 8);
    f.fip = cpu.read32(ea + 12); const w = cpu.read32(ea + 16); f.fcs = w & 0xffff; f.fop = (w >>> 16) & 0x7ff;
    f.fdp = cpu.read32(ea + 20); f.fds = cpu.read16(ea + 24);
  }
  f.fcw = cw & 0x1f7f | 0x40;
  setStatusWord(f, sw);
  let empty = 0;
  for (let p = 0; p < 8; p++) if (((tw >> (2 * p)) & 3) === 3) empty |= 1 << p;
  f.empty = empty;
  refreshES();
}
/** ES and B follow the unmasked exception flags after loading a status or control word. */
function refreshES(): void {
  if ((f.fsw & ~f.fcw & 0x3f) !== 0) f.fsw |= ES | B; else f.fsw &= ~(ES | B);
}

// Constants: 80-bit values rounded to nearest, and which way that rounding went (for RC adjustments).
const K_HI = [0x80000000, 0xd49a784b, 0xb8aa3b29, 0xc90fdaa2, 0x9a209a84, 0xb17217f7];
const K_LO = [0, 0xcd1b8afe, 0x5c17f0bc, 0x2168c235, 0xfbcff799, 0xd1cf79ac];
const K_SE = [0x3fff, 0x4000, 0x3fff, 0x4000, 0x3ffd, 0x3ffe];
const K_UP = [0, -1, 1, 1, 1, 1]; // +1: nearest rounded up, -1: rounded down, 0: exact

function loadConst(k: number): void {
  let lo = K_LO[k];
  const r = rc();
  if (K_UP[k] === 1 && (r === Rc.Down || r === Rc.Zero)) lo -= 1;
  else if (K_UP[k] === -1 && r === Rc.Up) lo += 1;
  f.fsw &= ~C1;
  clearFlags();
  push(lo | 0, K_HI[k] | 0, K_SE[k]);
}

function bcdLoad(cpu: SimdCpu, ea: number): void {
  // 18 packed BCD digits (byte 0 least significant), sign in bit 7 of byte 9. Invalid digits are taken as is.
  let hiPart = 0, loPart = 0; // value = hiPart * 10^10 + loPart
  for (let i = 8; i >= 0; i--) {
    const byte = cpu.read8(ea + i);
    const two = ((byte >> 4) & 15) * 10 + (byte & 15);
    if (i >= 5) hiPart = hiPart * 100 + two; else loPart = loPart * 100 + two;
  }
  const sign = cpu.read8(ea + 9) & 0x80;
  // exact 64-bit arithmetic in 16-bit limbs
  let l0 = hiPart % 65536, l1 = Math.floor(hiPart / 65536) % 65536, l2 = Math.floor(hiPart / 4294967296), l3 = 0;
  for (let k = 0; k < 2; k++) {
    let v = l0 * 100000; l0 = v % 65536; let c = Math.floor(v / 65536);
    v = l1 * 100000 + c; l1 = v % 65536; c = Math.floor(v / 65536);
    v = l2 * 100000 + c; l2 = v % 65536; c = Math.floor(v / 65536);
    v = l3 * 100000 + c; l3 = v % 65536;
  }
  let v = l0 + loPart % 65536; l0 = v % 65536; let c = Math.floor(v / 65536);
  v = l1 + Math.floor(loPart / 65536) % 65536 + c; l1 = v % 65536; c = Math.floor(v / 65536);
  v = l2 + Math.floor(loPart / 4294967296) + c; l2 = v % 65536; c = Math.floor(v / 65536);
  l3 = (l3 + c) % 65536;
  let lo = (l0 | (l1 << 16)) | 0, hi = (l2 | (l3 << 16)) | 0;
  if ((lo | hi) === 0) { fromNumber(sign ? -0 : 0); return; }
  if (sign) { lo = (~lo + 1) | 0; hi = (~hi + (lo === 0 ? 1 : 0)) | 0; }
  fromInt(lo, hi);
}

let bcdNeg = false;
function bcdStore(cpu: SimdCpu, ea: number, ok: boolean): void {
  cpu.probeWrite(ea, 10);
  if (!ok) { // packed BCD indefinite
    for (let i = 0; i < 7; i++) cpu.write8(ea + i, 0);
    cpu.write8(ea + 7, 0xc0); cpu.write8(ea + 8, 0xff); cpu.write8(ea + 9, 0xff);
    return;
  }
  const neg = bcdNeg;
  let l = iLo >>> 0, h = iHi >>> 0;
  if (iHi < 0) { l = (~l + 1) >>> 0; h = (~h + (l === 0 ? 1 : 0)) >>> 0; }
  // divide the 64-bit magnitude by 10 repeatedly (16-bit limbs)
  const limbs = [l & 0xffff, l >>> 16, h & 0xffff, h >>> 16];
  for (let i = 0; i < 9; i++) {
    let byte = 0;
    for (let d = 0; d < 2; d++) {
      let rem = 0;
      for (let j = 3; j >= 0; j--) { const v = rem * 65536 + limbs[j]; limbs[j] = Math.floor(v / 10); rem = v % 10; }
      byte |= rem << (4 * d);
    }
    cpu.write8(ea + i, byte);
  }
  cpu.write8(ea + 9, neg ? 0x80 : 0);
}

/** Value of ST(i) as a double (for transcendentals). */
function stVal(i: number): number { const p = phys(i); return f80Value(f.mlo[p], f.mhi[p], f.sexp[p]); }
function stCls(i: number): number { const p = phys(i); return classify(f.mlo[p], f.mhi[p], f.sexp[p]); }
function setFromNumber(i: number, v: number): void {
  if (v !== v) { setIndefinite(i); return; }
  fromNumber(v); setReg(i, oLo, oHi, oSe);
}

/** One-operand operations on ST0 from D9 E0..FF and friends. */
function d9Special(low: number): boolean {
  clearFlags();
  if (low === 0x02 || low === 0x03 || low === 0x06 || low === 0x07 || low === 0x0f) return false;
  const needs1 = low === 0x0 || low === 0x1 || low === 0x4 || low === 0x5 || (low >= 0x10 && low <= 0x1f);
  const needs2 = low === 0x11 || low === 0x13 || low === 0x15 || low === 0x18 || low === 0x19 || low === 0x1d;
  if (low === 0x16) { f.top = (f.top - 1) & 7; f.fsw &= ~C1; return true; } // fdecstp
  if (low === 0x17) { f.top = (f.top + 1) & 7; f.fsw &= ~C1; return true; } // fincstp
  if (low >= 0x08 && low <= 0x0d) { loadConst(low - 0x08); return true; }
  if (low === 0x0e) { f.fsw &= ~C1; push(0, 0, 0); return true; }
  if (low === 0x05) { // fxam
    const p = phys(0);
    const sign = (f.sexp[p] & 0x8000) ? C1 : 0;
    if (isEmpty(0)) { setCC(C3 | C0 | sign); return true; }
    const c = classify(f.mlo[p], f.mhi[p], f.sexp[p]);
    const code = FXAM_CODE[c];
    setCC(code | sign);
    return true;
  }
  if (needs1 && isEmpty(0)) { if (!underflow()) setIndefinite(0); return true; }
  if (needs2 && isEmpty(1)) { if (!underflow()) { if (low === 0x15 || low === 0x18 || low === 0x1d) setIndefinite(0); else { setIndefinite(1); pop(); } } return true; }
  const p0 = phys(0);
  const lo = f.mlo[p0], hi = f.mhi[p0], se = f.sexp[p0];
  switch (low) {
    case 0x00: setReg(0, lo, hi, se ^ 0x8000); f.fsw &= ~C1; return true; // fchs
    case 0x01: setReg(0, lo, hi, se & 0x7fff); f.fsw &= ~C1; return true; // fabs
    case 0x04: { // ftst
      const c = compare(lo, hi, se, 0, 0, 0, true);
      if (!commit(0)) setCC(CC_OF[c]);
      return true;
    }
    case 0x1a: if (arith80(Op.SQRT, 0, 0, 0, lo, hi, se)) setReg(0, rLo, rHi, rSe); return true; // fsqrt
    case 0x1c: { // frndint
      const c = classify(lo, hi, se);
      if (c === Cls.QNaN || c === Cls.SNaN) { if (c === Cls.SNaN) orFlags(X.IE); if (!commit(0)) setReg(0, lo, hi | 0x40000000, se); return true; }
      if (c === Cls.Zero || c === Cls.Inf) return true;
      if (c === Cls.Unsupported) { orFlags(X.IE); if (!commit(0)) setIndefinite(0); return true; }
      if (c === Cls.Denormal) orFlags(X.DE);
      if ((se & 0x7fff) >= 16383 + 63) return true; // already integral
      if (!toInt(lo, hi, se, 64, rc())) return true;
      if (commit(0)) return true;
      if ((iLo | iHi) === 0) fromNumber(se & 0x8000 ? -0 : 0); else fromInt(iLo, iHi);
      setReg(0, oLo, oHi, oSe);
      return true;
    }
  }
  // Remaining operations use doubles; NaN and unsupported operands are handled on the encodings first.
  const c0 = stCls(0);
  const two = low === 0x11 || low === 0x13 || low === 0x15 || low === 0x18 || low === 0x19 || low === 0x1d;
  const c1 = two ? stCls(1) : Cls.Normal;
  if (c0 === Cls.Unsupported || c1 === Cls.Unsupported) {
    orFlags(X.IE);
    if (commit(0)) return true;
    if (low === 0x11 || low === 0x13 || low === 0x19) pop();
    setIndefinite(0);
    if (low === 0x14) push(0, 0xc0000000 | 0, 0xffff);
    return true;
  }
  if (c0 >= Cls.QNaN || c1 >= Cls.QNaN) {
    const p1 = phys(1);
    if (two) nanResult(lo, hi, se, c0, f.mlo[p1], f.mhi[p1], f.sexp[p1], c1);
    else nanResult(lo, hi, se, c0, 0, 0, 0, Cls.Normal);
    if (commit(0)) return true;
    if (low === 0x11 || low === 0x13 || low === 0x19) pop();
    setReg(0, rLo, rHi, rSe);
    if (low === 0x12 || low === 0x1b || low === 0x14) push(rLo, rHi, rSe);
    return true;
  }
  if (c0 === Cls.Denormal) orFlags(X.DE);
  const x = stVal(0);
  f.fsw &= ~(C1 | C2);
  switch (low) {
    case 0x10: if (commit(X.PE)) return true; setFromNumber(0, Math.expm1(x * Math.LN2)); return true; // f2xm1
    case 0x11: { const y = stVal(1); if (x < 0 || x !== x) orFlags(X.IE); else if (x === 0) orFlags(X.ZE); else orFlags(X.PE); if (commit(0)) return true; pop(); setFromNumber(0, x < 0 ? NaN : y * Math.log2(x)); return true; } // fyl2x
    case 0x19: { const y = stVal(1); if (commit(X.PE)) return true; pop(); setFromNumber(0, y * Math.log1p(x) / Math.LN2); return true; } // fyl2xp1
    case 0x12: case 0x1e: case 0x1f: case 0x1b: { // fptan fsin fcos fsincos
      if (x === Infinity || x === -Infinity) { orFlags(X.IE); if (!commit(0)) setIndefinite(0); return true; }
      if (Math.abs(x) >= 9223372036854775808) { f.fsw |= C2; return true; }
      if (commit(X.PE)) return true;
      if (low === 0x1e) setFromNumber(0, Math.sin(x));
      else if (low === 0x1f) setFromNumber(0, Math.cos(x));
      else if (low === 0x12) { setFromNumber(0, Math.tan(x)); fromNumber(1); push(oLo, oHi, oSe); }
      else { const cv = Math.cos(x); setFromNumber(0, Math.sin(x)); fromNumber(cv); push(oLo, oHi, oSe); }
      return true;
    }
    case 0x13: { const y = stVal(1); if (commit(X.PE)) return true; pop(); setFromNumber(0, Math.atan2(y, x)); return true; } // fpatan
    case 0x14: { // fxtract: exact on the encoding
      if (c0 === Cls.Zero) {
        orFlags(X.ZE); if (commit(0)) return true;
        fromNumber(-Infinity); setReg(0, oLo, oHi, oSe); push(lo, hi, se); return true;
      }
      if (c0 === Cls.Inf) { fromNumber(Infinity); setReg(0, oLo, oHi, oSe); push(lo, hi, se); return true; }
      if (commit(0)) return true;
      let m = hi >>> 0, l = lo >>> 0, e = (se & 0x7fff || 1) - 16383;
      while (m < 0x80000000) { m = ((m << 1) | (l >>> 31)) >>> 0; l = (l << 1) >>> 0; e--; }
      fromInt(e, e >> 31); setReg(0, oLo, oHi, oSe);
      push(l | 0, m | 0, (se & 0x8000) | 16383);
      return true;
    }
    case 0x15: case 0x18: { // fprem1, fprem: exact (ext80.rem80)
      const c1b = stCls(1), p1 = phys(1);
      if (c0 === Cls.Inf || c1b === Cls.Zero) { clearFlags(); orFlags(X.IE); if (!commit(0)) setIndefinite(0); return true; } // no DE with IE
      if (c1b === Cls.Denormal) orFlags(X.DE);
      if (commit(0)) return true;
      f.fsw &= ~CCMASK;
      if (c0 === Cls.Zero || c1b === Cls.Inf) return true; // ST0 unchanged, quotient 0
      rem80(lo, hi, se, f.mlo[p1], f.mhi[p1], f.sexp[p1], low === 0x15);
      if (xPartial) f.fsw |= C2;
      else f.fsw |= ((xQ & 1) ? C1 : 0) | ((xQ & 2) ? C3 : 0) | ((xQ & 4) ? C0 : 0);
      setReg(0, xLo, xHi, xSe);
      return true;
    }
    case 0x1d: { // fscale: exact exponent change, rounding only on overflow/underflow
      const y = stVal(1);
      const n = Math.trunc(y);
      if (c0 === Cls.Zero || c0 === Cls.Inf) {
        if ((c0 === Cls.Zero && y === Infinity) || (c0 === Cls.Inf && y === -Infinity)) { orFlags(X.IE); if (!commit(0)) setIndefinite(0); }
        return true;
      }
      if (n === 0 && c0 === Cls.Normal) { commit(0); return true; }
      if (y === Infinity || y === -Infinity) { // finite * 2^(+-inf)
        if (commit(0)) return true;
        fromNumber(y > 0 ? (se & 0x8000 ? -Infinity : Infinity) : (se & 0x8000 ? -0 : 0)); setReg(0, oLo, oHi, oSe);
        return true;
      }
      let e = se & 0x7fff;
      if (c0 === Cls.Normal && e + n > 0 && e + n < 0x7fff) { if (commit(0)) return true; setReg(0, lo, hi, (se & 0x8000) | (e + n)); return true; }
      if (e === 0) e = 1;
      const ne = e + (n > 70000 ? 70000 : n < -70000 ? -70000 : n); // biased exponent of the result (significand as is)
      const neg = (se & 0x8000) !== 0;
      const r = rc();
      if (c0 === Cls.Normal && ne >= 0x7fff) { // overflow at 64-bit precision
        orFlags(X.OE | X.PE);
        if (commit(0)) return true;
        const away = r === Rc.Nearest || (r === Rc.Up ? !neg : r === Rc.Down ? neg : false);
        if (away) { f.fsw |= C1; setReg(0, 0, 0x80000000 | 0, (se & 0x8000) | 0x7fff); } else { f.fsw &= ~C1; setReg(0, -1, -1, (se & 0x8000) | 0x7ffe); }
        return true;
      }
      // normalize a denormal source first
      let mh = hi >>> 0, ml = lo >>> 0, be = ne;
      while (mh < 0x80000000 && (mh | ml) !== 0) { mh = ((mh << 1) | (ml >>> 31)) >>> 0; ml = (ml << 1) >>> 0; be--; }
      if (be >= 1) { if (commit(0)) return true; setReg(0, ml | 0, mh | 0, (se & 0x8000) | be); return true; }
      const inexact = shiftRound(mh, ml, 1 - be, r, neg);
      if (inexact) orFlags(X.UE | X.PE); else if (!masked(X.UE)) orFlags(X.UE);
      if (commit(0)) return true;
      if (srUp) f.fsw |= C1; else f.fsw &= ~C1;
      setReg(0, srLo | 0, srHi | 0, (se & 0x8000) | (srHi >= 0x80000000 ? 1 : 0));
      return true;
    }
  }
  return false;
}

/** Execute one x87 escape instruction (D8..DF). */
export function execX87(cpu: SimdCpu, insn: SimdInsn): boolean {
  const esc = insn.op;
  if (insn.op >> 8 !== 0 || esc < 0xd8 || esc > 0xdf) return false;
  if ((cpu.cr0 & (CR0_EM | CR0_TS)) !== 0) cpu.raise(NM);
  f = cpu.fpu as FpuState;
  const mem = insn.mod !== 3;
  const g = insn.reg & 7;
  const i = insn.rm & 7;
  // Non-waiting control instructions skip the pending-exception check.
  const noWait = mem
    ? (esc === 0xd9 && (g === 6 || g === 7)) || (esc === 0xdd && (g === 6 || g === 7))
    : (esc === 0xdb && (i === 2 || i === 3) && g === 4) || (esc === 0xdf && g === 4 && i === 0);
  if (!noWait) checkPending(cpu);
  if (mem) {
    // Control instructions (environment, control/status word) leave the last-operand pointer and opcode alone.
    const control = (esc === 0xd9 && g >= 4) || (esc === 0xdd && g >= 4);
    if (!control) { f.fdp = insn.ea; f.fop = ((esc & 7) << 8) | (insn.mod << 6) | (g << 3) | i; }
    return execMem(cpu, insn, esc, g);
  }
  f.fop = ((esc & 7) << 8) | 0xc0 | (g << 3) | i;
  switch (esc) {
    case 0xd8: case 0xdc: {
      if (g === 2 || g === 3) { fcomReg(cpu, i, true, g === 3 ? 1 : 0); return true; }
      if (esc === 0xd8) arithOp(g, 0, i, false);
      else arithOp(g === 4 ? 5 : g === 5 ? 4 : g === 6 ? 7 : g === 7 ? 6 : g, i, 0, false);
      return true;
    }
    case 0xde: {
      if (g === 2) { fcomReg(cpu, i, true, 1); return true; }
      if (g === 3) { if (i !== 1) return false; fcomReg(cpu, 1, true, 2); return true; }
      arithOp(g === 4 ? 5 : g === 5 ? 4 : g === 6 ? 7 : g === 7 ? 6 : g, i, 0, true);
      return true;
    }
    case 0xd9:
      switch (g) {
        case 0: { // fld st(i)
          clearFlags();
          if (isEmpty(i)) { if (!underflow()) { f.fsw &= ~C1; push(0, 0xc0000000 | 0, 0xffff); } return true; }
          const p = phys(i); f.fsw &= ~C1; push(f.mlo[p], f.mhi[p], f.sexp[p]); return true;
        }
        case 1: fxch(i); return true;
        case 2: return i === 0; // fnop
        case 3: fstReg(i, true); return true; // fstp1 (reserved alias)
        default: return d9Special(((g - 4) << 3) | i);
      }
    case 0xda: {
      if (g <= 3) { fcmov(cpu, g, false, i); return true; }
      if (g === 5 && i === 1) { fcomReg(cpu, 1, false, 2); return true; } // fucompp
      return false;
    }
    case 0xdb: {
      if (g <= 3) { fcmov(cpu, g, true, i); return true; }
      if (g === 4) {
        if (i === 2) { f.fsw &= ~(0x3f | SF | ES | B); return true; } // fnclex
        if (i === 3) { fninit(f); return true; }
        return i <= 4; // feni, fdisi, fsetpm: no-ops on 387 and later
      }
      if (g === 5 || g === 6) { fcomiReg(cpu, i, g === 6, false); return true; } // fucomi, fcomi
      return false;
    }
    case 0xdd:
      switch (g) {
        case 0: f.empty |= 1 << phys(i); return true; // ffree
        case 1: fxch(i); return true; // reserved alias
        case 2: fstReg(i, false); return true;
        case 3: fstReg(i, true); return true;
        case 4: fcomReg(cpu, i, false, 0); return true; // fucom
        case 5: fcomReg(cpu, i, false, 1); return true; // fucomp
      }
      return false;
    case 0xdf:
      if (g === 4 && i === 0) { cpu.gpr[0] = (cpu.gpr[0] & ~0xffff) | statusWord(f); return true; } // fnstsw ax
      if (g === 5 || g === 6) { fcomiReg(cpu, i, g === 6, true); return true; } // fucomip, fcomip
      if (g === 0) { f.empty |= 1 << phys(i); pop(); return true; } // ffreep
      if (g === 1) { fxch(i); return true; } // reserved aliases of fxch and fstp
      if (g === 2 || g === 3) { fstReg(i, true); return true; }
      return false;
  }
  return false;
}

function fxch(i: number): void {
  clearFlags();
  if (isEmpty(0) || isEmpty(i)) {
    if (underflow()) return;
    if (isEmpty(0)) setIndefinite(0);
    if (isEmpty(i)) setIndefinite(i);
  }
  const a = phys(0), b = phys(i);
  const lo = f.mlo[a], hi = f.mhi[a], se = f.sexp[a];
  f.mlo[a] = f.mlo[b]; f.mhi[a] = f.mhi[b]; f.sexp[a] = f.sexp[b];
  f.mlo[b] = lo; f.mhi[b] = hi; f.sexp[b] = se;
  f.fsw &= ~C1;
}

function fcomReg(cpu: SimdCpu, i: number, signalQ: boolean, pops: number): void {
  clearFlags();
  if (isEmpty(i)) {
    if (underflow()) return;
    setCC(C3 | C2 | C0);
    for (let k = 0; k < pops; k++) pop();
    return;
  }
  stageReg(i);
  fcom(cpu, signalQ, pops, false);
}
function fcomiReg(cpu: SimdCpu, i: number, signalQ: boolean, popAfter: boolean): void {
  clearFlags();
  if (isEmpty(i) || isEmpty(0)) {
    if (underflow()) return;
    setArithFlags(cpu as unknown as CpuState, 0x45);
    if (popAfter) pop();
    return;
  }
  stageReg(i);
  fcom(cpu, signalQ, popAfter ? 1 : 0, true);
}

function fstReg(i: number, popAfter: boolean): void {
  clearFlags();
  if (isEmpty(0)) { if (underflow()) return; setIndefinite(i); if (popAfter) pop(); return; }
  const p = phys(0);
  setReg(i, f.mlo[p], f.mhi[p], f.sexp[p]);
  f.fsw &= ~C1;
  if (popAfter) pop();
}

function fcmov(cpu: SimdCpu, g: number, negate: boolean, i: number): void {
  clearFlags();
  const fl = getArithFlags(cpu as unknown as CpuState);
  let c: boolean;
  switch (g) {
    case 0: c = (fl & 1) !== 0; break; // B
    case 1: c = (fl & 0x40) !== 0; break; // E
    case 2: c = (fl & 0x41) !== 0; break; // BE
    default: c = (fl & 4) !== 0; // U (PF)
  }
  if (negate) c = !c;
  if (isEmpty(0) || isEmpty(i)) { if (underflow()) return; if (isEmpty(0)) setIndefinite(0); if (!c || isEmpty(i)) return; }
  f.fsw &= ~C1;
  if (c) { const p = phys(i); setReg(0, f.mlo[p], f.mhi[p], f.sexp[p]); }
}

function execMem(cpu: SimdCpu, insn: SimdInsn, esc: number, g: number): boolean {
  const ea = insn.ea;
  switch (esc) {
    case 0xd8: case 0xdc: case 0xda: case 0xde:
      loadArithMem(cpu, esc, ea);
      if (g === 2 || g === 3) fcom(cpu, true, g === 3 ? 1 : 0, false);
      else arithOp(g, 0, 'mem', false);
      preFlags = 0;
      return true;
    case 0xd9:
      switch (g) {
        case 0: { const v = cpu.read32(ea); clearFlags(); from32(v, true); if (commit(0)) return true; f.fsw &= ~C1; push(oLo, oHi, oSe); return true; }
        case 2: case 3: {
          clearFlags();
          if (isEmpty(0)) { if (underflow()) return true; cpu.write32(ea, 0xffc00000 | 0); if (g === 3) pop(); return true; }
          const p = phys(0);
          setUeStrict(!masked(X.UE)); setOeStrict(!masked(X.OE));
          const v = to32(f.mlo[p], f.mhi[p], f.sexp[p], rc());
          // unmasked overflow/underflow to memory: nothing stored, nothing popped
          if (commit(0) || (sfFlags & ~f.fcw & (X.OE | X.UE)) !== 0) return true;
          if (rndUp && (sfFlags & X.PE) !== 0) f.fsw |= C1; else f.fsw &= ~C1;
          cpu.write32(ea, v);
          if (g === 3) pop();
          return true;
        }
        case 4: loadEnv(cpu, ea, insn.opsize === 16); return true;
        case 5: f.fcw = (cpu.read16(ea) & 0x1f7f) | 0x40; refreshES(); return true;
        case 6: storeEnv(cpu, ea, insn.opsize === 16); f.fcw |= 0x3f; refreshES(); return true;
        case 7: cpu.write16(ea, f.fcw); return true;
      }
      return false;
    case 0xdb:
      switch (g) {
        case 0: { const v = cpu.read32(ea); clearFlags(); fromInt(v, v >> 31); f.fsw &= ~C1; push(oLo, oHi, oSe); return true; }
        case 2: case 3: return fist(cpu, ea, 32, g === 3);
        case 5: {
          const lo = cpu.read32(ea), hi = cpu.read32(ea + 4), se = cpu.read16(ea + 8);
          clearFlags(); f.fsw &= ~C1; push(lo, hi, se); return true;
        }
        case 7: {
          clearFlags();
          cpu.probeWrite(ea, 10);
          if (isEmpty(0)) { if (underflow()) return true; cpu.write32(ea, 0); cpu.write32(ea + 4, 0xc0000000 | 0); cpu.write16(ea + 8, 0xffff); pop(); return true; }
          const p = phys(0);
          cpu.write32(ea, f.mlo[p]); cpu.write32(ea + 4, f.mhi[p]); cpu.write16(ea + 8, f.sexp[p]);
          f.fsw &= ~C1;
          pop();
          return true;
        }
      }
      return false; // fisttp (SSE3) and reserved
    case 0xdd:
      switch (g) {
        case 0: { const lo = cpu.read32(ea), hi = cpu.read32(ea + 4); clearFlags(); from64(lo, hi, true); if (commit(0)) return true; f.fsw &= ~C1; push(oLo, oHi, oSe); return true; }
        case 2: case 3: {
          clearFlags();
          cpu.probeWrite(ea, 8);
          if (isEmpty(0)) { if (underflow()) return true; cpu.write32(ea, 0); cpu.write32(ea + 4, 0xfff80000 | 0); if (g === 3) pop(); return true; }
          const p = phys(0);
          setUeStrict(!masked(X.UE)); setOeStrict(!masked(X.OE));
          const lo = to64(f.mlo[p], f.mhi[p], f.sexp[p], rc());
          const hi = oHi;
          if (commit(0) || (sfFlags & ~f.fcw & (X.OE | X.UE)) !== 0) return true;
          if (rndUp && (sfFlags & X.PE) !== 0) f.fsw |= C1; else f.fsw &= ~C1;
          cpu.write32(ea, lo); cpu.write32(ea + 4, hi);
          if (g === 3) pop();
          return true;
        }
        case 4: { // frstor
          loadEnv(cpu, ea, insn.opsize === 16);
          const base = ea + (insn.opsize === 16 ? 14 : 28);
          for (let k = 0; k < 8; k++) {
            const p = (f.top + k) & 7, a = base + 10 * k;
            f.mlo[p] = cpu.read32(a); f.mhi[p] = cpu.read32(a + 4); f.sexp[p] = cpu.read16(a + 8);
          }
          return true;
        }
        case 6: { // fnsave
          const base = ea + (insn.opsize === 16 ? 14 : 28);
          cpu.probeWrite(ea, (insn.opsize === 16 ? 14 : 28) + 80);
          storeEnv(cpu, ea, insn.opsize === 16);
          for (let k = 0; k < 8; k++) {
            const p = (f.top + k) & 7, a = base + 10 * k;
            cpu.write32(a, f.mlo[p]); cpu.write32(a + 4, f.mhi[p]); cpu.write16(a + 8, f.sexp[p]);
          }
          fninit(f);
          return true;
        }
        case 7: cpu.write16(ea, statusWord(f)); return true; // fnstsw m16
      }
      return false;
    case 0xdf:
      switch (g) {
        case 0: { const v = (cpu.read16(ea) << 16) >> 16; clearFlags(); fromInt(v, v >> 31); f.fsw &= ~C1; push(oLo, oHi, oSe); return true; }
        case 2: case 3: return fist(cpu, ea, 16, g === 3);
        case 4: { clearFlags(); bcdLoad(cpu, ea); f.fsw &= ~C1; push(oLo, oHi, oSe); return true; }
        case 5: { const lo = cpu.read32(ea), hi = cpu.read32(ea + 4); clearFlags(); fromInt(lo, hi); f.fsw &= ~C1; push(oLo, oHi, oSe); return true; }
        case 6: { // fbstp
          clearFlags();
          if (isEmpty(0)) { if (underflow()) return true; bcdStore(cpu, ea, false); pop(); return true; }
          const p = phys(0);
          let ok = toInt(f.mlo[p], f.mhi[p], f.sexp[p], 64, rc());
          if (ok) { // 18 digits: |v| < 10^18
            let l = iLo >>> 0, h = iHi >>> 0;
            if (iHi < 0) { l = (~l + 1) >>> 0; h = (~h + (l === 0 ? 1 : 0)) >>> 0; }
            if (h * 4294967296 + l >= 1e18) ok = false;
          }
          if (!ok) { clearFlags(); f.fsw &= ~C1; orFlags(X.IE); } // invalid: no precision report
          if (commit(0)) return true;
          bcdNeg = (f.sexp[p] & 0x8000) !== 0;
          bcdStore(cpu, ea, ok);
          pop();
          return true;
        }
        case 7: return fist(cpu, ea, 64, true);
      }
      return false; // fisttp (SSE3)
  }
  return false;
}

function fist(cpu: SimdCpu, ea: number, bits: number, popAfter: boolean): boolean {
  clearFlags();
  cpu.probeWrite(ea, bits >> 3);
  let ok = false;
  if (isEmpty(0)) { if (underflow()) return true; }
  else {
    const p = phys(0);
    ok = toInt(f.mlo[p], f.mhi[p], f.sexp[p], bits, rc());
    if (!ok) { orFlags(X.IE); f.fsw &= ~C1; }
    if (commit(0)) return true;
  }
  if (!ok) { iLo = bits === 16 ? 0x8000 : bits === 32 ? 0x80000000 | 0 : 0; iHi = 0x80000000 | 0; }
  if (bits === 16) cpu.write16(ea, iLo);
  else if (bits === 32) cpu.write32(ea, iLo);
  else { cpu.write32(ea, iLo); cpu.write32(ea + 4, iHi); }
  if (popAfter) pop();
  return true;
}
