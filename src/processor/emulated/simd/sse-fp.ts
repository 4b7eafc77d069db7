/**
 * SSE floating-point lanes on raw bits: NaN selection, DAZ/FTZ, denormal flags, then the correctly
 * rounded arithmetic of softfloat.ts. binary32 lanes are int32 bit patterns; binary64 lanes are (lo, hi).
 * NaNs never pass through JS numbers (V8 may canonicalize them).
 */
import { F32, F64, Rc, X, clearFlags, clearTiny, setOeStrict, exactAdd, exactDiv, exactInt64, exactMul, exactSqrt, kOut, orFlags, roundInt, roundTo, setUeStrict, sfFlags, sfTiny, tail, type Fmt } from './softfloat.js';

export const enum Op { ADD = 0, SUB = 1, MUL = 2, DIV = 3, MIN = 4, MAX = 5, SQRT = 6 }

const cF32 = new Float32Array(1);
const cI32 = new Int32Array(cF32.buffer);
const cF64 = new Float64Array(1);
const cD = new Int32Array(cF64.buffer);

/** Output of 64-bit lane operations. */
export let rLo = 0;
export let rHi = 0;

// MXCSR fields latched by `begin` for the lanes of one instruction.
let rc = 0;
let daz = false;
let ftz = false;
let umMasked = true;

export function begin(mxcsr: number): void {
  clearFlags();
  rc = (mxcsr >>> 13) & 3;
  daz = (mxcsr & 0x40) !== 0;
  ftz = (mxcsr & 0x8000) !== 0;
  umMasked = (mxcsr & 0x800) !== 0;
  setUeStrict(!umMasked);
  setOeStrict((mxcsr & 0x400) === 0);
}
export function flags(): number { return sfFlags; }

// ---- binary32 helpers
const isNaN32 = (b: number): boolean => (b & 0x7fffffff) > 0x7f800000;
const isSNaN32 = (b: number): boolean => isNaN32(b) && (b & 0x400000) === 0;
const isDen32 = (b: number): boolean => (b & 0x7f800000) === 0 && (b & 0x7fffff) !== 0;
function num32(b: number): number { cI32[0] = b; return cF32[0]; }
function bits32(v: number): number { cF32[0] = v; return cI32[0]; }

// ---- binary64 helpers
const isNaN64 = (lo: number, hi: number): boolean => (hi & 0x7ff00000) === 0x7ff00000 && ((hi & 0xfffff) | lo) !== 0;
const isSNaN64 = (lo: number, hi: number): boolean => isNaN64(lo, hi) && (hi & 0x80000) === 0;
const isDen64 = (lo: number, hi: number): boolean => (hi & 0x7ff00000) === 0 && ((hi & 0xfffff) | lo) !== 0;
function num64(lo: number, hi: number): number { cD[0] = lo; cD[1] = hi; return cF64[0]; }
function set64(v: number): void { cF64[0] = v; rLo = cD[0]; rHi = cD[1]; }

export let invalid = false; // arith produced the default NaN

/** `arith` with an explicit rounding control (x87). */
export function arithRc(op: number, x: number, y: number, fmt: Fmt, rcv: number): number {
  const saved = rc;
  rc = rcv;
  const r = arith(op, x, y, fmt);
  rc = saved;
  return r;
}

/** Correctly rounded x op y in `fmt` (finite or infinite non-NaN operands). */
function arith(op: number, x: number, y: number, fmt: Fmt): number {
  invalid = false;
  clearTiny();
  switch (op) {
    case Op.SUB: y = -y; // fallthrough
    case Op.ADD: {
      if (x === Infinity || x === -Infinity || y === Infinity || y === -Infinity) {
        if (x === -y) { invalid = true; return 0; }
        return x === Infinity || x === -Infinity ? x : y;
      }
      const hi = exactAdd(x, y);
      if (hi === 0 && tail === 0) {
        const nx = x < 0 || Object.is(x, -0), ny = y < 0 || Object.is(y, -0);
        if (nx === ny) return nx ? -0 : 0;
        return rc === Rc.Down ? -0 : 0;
      }
      return roundTo(hi, tail, kOut, fmt, rc);
    }
    case Op.MUL: {
      const neg = (x < 0 || Object.is(x, -0)) !== (y < 0 || Object.is(y, -0));
      const xi = x === Infinity || x === -Infinity, yi = y === Infinity || y === -Infinity;
      if (xi || yi) {
        if (x === 0 || y === 0) { invalid = true; return 0; }
        return neg ? -Infinity : Infinity;
      }
      if (x === 0 || y === 0) return neg ? -0 : 0;
      const hi = exactMul(x, y);
      return roundTo(hi, tail, kOut, fmt, rc);
    }
    case Op.DIV: {
      const neg = (x < 0 || Object.is(x, -0)) !== (y < 0 || Object.is(y, -0));
      const xi = x === Infinity || x === -Infinity, yi = y === Infinity || y === -Infinity;
      if (xi) { if (yi) { invalid = true; return 0; } return neg ? -Infinity : Infinity; }
      if (yi) return neg ? -0 : 0;
      if (y === 0) {
        if (x === 0) { invalid = true; return 0; }
        orFlags(X.ZE);
        return neg ? -Infinity : Infinity;
      }
      if (x === 0) return neg ? -0 : 0;
      const hi = exactDiv(x, y);
      return roundTo(hi, tail, kOut, fmt, rc);
    }
    case Op.SQRT: {
      if (y === 0) return y;
      if (y < 0) { invalid = true; return 0; }
      if (y === Infinity) return y;
      const hi = exactSqrt(y);
      return roundTo(hi, tail, kOut, fmt, rc);
    }
  }
  return 0;
}

/** FTZ: tiny results become signed zero when underflow is masked. */
function flushTiny(r: number): number {
  if (ftz && umMasked && sfTiny && r !== 0) { orFlags(X.UE | X.PE); return r < 0 ? -0 : 0; }
  return r;
}

/** a op b for binary32 lanes (SQRT uses b only). Returns the result bits. */
export function lane32(op: number, a: number, b: number): number {
  const unary = op === Op.SQRT;
  const an = !unary && isNaN32(a), bn = isNaN32(b);
  if (an || bn) {
    if ((an && isSNaN32(a)) || (bn && isSNaN32(b))) orFlags(X.IE);
    if (op === Op.MIN || op === Op.MAX) { orFlags(X.IE); return daz && isDen32(b) ? b & 0x80000000 : b; }
    return an ? a | 0x400000 : b | 0x400000;
  }
  // A zero divisor reports ZE without DE for a denormal dividend.
  const zdiv = op === Op.DIV && (b & 0x7fffffff) === 0;
  if (!unary && isDen32(a)) { if (daz) a &= 0x80000000; else if (!zdiv) orFlags(X.DE); }
  if (isDen32(b)) { if (daz) b &= 0x80000000; else if (unary && b < 0) { orFlags(X.IE); return 0xffc00000 | 0; } else orFlags(X.DE); }
  const x = num32(a), y = num32(b);
  if (op === Op.MIN) return x < y ? a : b;
  if (op === Op.MAX) return x > y ? a : b;
  const r = arith(op, x, y, F32);
  if (invalid) { orFlags(X.IE); return 0xffc00000 | 0; }
  return bits32(flushTiny(r));
}

/** a op b for binary64 lanes. Result in rLo/rHi. */
export function lane64(op: number, aLo: number, aHi: number, bLo: number, bHi: number): void {
  const unary = op === Op.SQRT;
  const an = !unary && isNaN64(aLo, aHi), bn = isNaN64(bLo, bHi);
  if (an || bn) {
    if ((an && isSNaN64(aLo, aHi)) || (bn && isSNaN64(bLo, bHi))) orFlags(X.IE);
    if (op === Op.MIN || op === Op.MAX) {
      orFlags(X.IE);
      if (daz && isDen64(bLo, bHi)) { rLo = 0; rHi = bHi & 0x80000000; } else { rLo = bLo; rHi = bHi; }
      return;
    }
    if (an) { rLo = aLo; rHi = aHi | 0x80000; } else { rLo = bLo; rHi = bHi | 0x80000; }
    return;
  }
  const zdiv = op === Op.DIV && ((bHi & 0x7fffffff) | bLo) === 0;
  if (!unary && isDen64(aLo, aHi)) { if (daz) { aHi &= 0x80000000; aLo = 0; } else if (!zdiv) orFlags(X.DE); }
  if (isDen64(bLo, bHi)) {
    if (daz) { bHi &= 0x80000000; bLo = 0; }
    else if (unary && bHi < 0) { orFlags(X.IE); rLo = 0; rHi = 0xfff80000 | 0; return; }
    else orFlags(X.DE);
  }
  const x = num64(aLo, aHi), y = num64(bLo, bHi);
  if (op === Op.MIN) { if (x < y) { rLo = aLo; rHi = aHi; } else { rLo = bLo; rHi = bHi; } return; }
  if (op === Op.MAX) { if (x > y) { rLo = aLo; rHi = aHi; } else { rLo = bLo; rHi = bHi; } return; }
  const r = arith(op, x, y, F64);
  if (invalid) { orFlags(X.IE); rLo = 0; rHi = 0xfff80000 | 0; return; }
  set64(flushTiny(r));
}

// ---- Compares. Result: 0 = equal, 1 = less, 2 = greater, 3 = unordered. `signalQ`: QNaN raises IE too.
export function cmp32(a: number, b: number, signalQ: boolean): number {
  const an = isNaN32(a), bn = isNaN32(b);
  if (an || bn) {
    if (signalQ || isSNaN32(a) || isSNaN32(b)) orFlags(X.IE);
    return 3;
  }
  if (isDen32(a)) { if (daz) a &= 0x80000000; else orFlags(X.DE); }
  if (isDen32(b)) { if (daz) b &= 0x80000000; else orFlags(X.DE); }
  const x = num32(a), y = num32(b);
  return x === y ? 0 : x < y ? 1 : 2;
}

export function cmp64(aLo: number, aHi: number, bLo: number, bHi: number, signalQ: boolean): number {
  const an = isNaN64(aLo, aHi), bn = isNaN64(bLo, bHi);
  if (an || bn) {
    if (signalQ || isSNaN64(aLo, aHi) || isSNaN64(bLo, bHi)) orFlags(X.IE);
    return 3;
  }
  if (isDen64(aLo, aHi)) { if (daz) { aHi &= 0x80000000; aLo = 0; } else orFlags(X.DE); }
  if (isDen64(bLo, bHi)) { if (daz) { bHi &= 0x80000000; bLo = 0; } else orFlags(X.DE); }
  const x = num64(aLo, aHi), y = num64(bLo, bHi);
  return x === y ? 0 : x < y ? 1 : 2;
}

/** CMPPS predicate 0..7 applied to a compare outcome. */
export function predicate(p: number, c: number): boolean {
  switch (p & 7) {
    case 0: return c === 0;
    case 1: return c === 1;
    case 2: return c === 0 || c === 1;
    case 3: return c === 3;
    case 4: return c !== 0;
    case 5: return c !== 1;
    case 6: return c === 2 || c === 3;
    default: return c !== 3;
  }
}
/** Predicates that signal on QNaN (LT, LE, NLT, NLE). */
export const signalsOnQNaN = (p: number): boolean => (p & 3) === 1 || (p & 3) === 2;

// ---- Conversions between formats
/** binary32 -> binary64 (exact). */
export function cvt32to64(a: number): void {
  if (isNaN32(a)) {
    if (isSNaN32(a)) orFlags(X.IE);
    rHi = (a & 0x80000000) | 0x7ff80000 | ((a & 0x3fffff) >>> 3);
    rLo = (a << 29) | 0;
    return;
  }
  if (isDen32(a)) { if (daz) a &= 0x80000000; else orFlags(X.DE); }
  set64(num32(a));
}

/** binary64 -> binary32 (rounded). */
export function cvt64to32(lo: number, hi: number): number {
  if (isNaN64(lo, hi)) {
    if (isSNaN64(lo, hi)) orFlags(X.IE);
    return (hi & 0x80000000) | 0x7fc00000 | ((hi & 0x7ffff) << 3) | (lo >>> 29);
  }
  if (isDen64(lo, hi)) { if (daz) { hi &= 0x80000000; lo = 0; } else orFlags(X.DE); }
  const x = num64(lo, hi);
  if (x === 0 || x === Infinity || x === -Infinity) return bits32(x);
  clearTiny();
  const r = roundTo(x, 0, 0, F32, rc);
  return bits32(flushTiny(r));
}

/** Signed integer (int32 in lo, or int64 lo/hi when `is64`) -> binary32 bits or binary64 (rLo/rHi). */
export function cvtInt(lo: number, hi: number, is64: boolean, to64: boolean): number {
  let h: number, t: number;
  if (is64) { h = exactInt64(lo, hi, true); t = tail; } else { h = lo | 0; t = 0; }
  const r = h === 0 ? 0 : roundTo(h, t, 0, to64 ? F64 : F32, rc);
  if (to64) { set64(r); return 0; }
  return bits32(r);
}

/**
 * Float -> signed integer with `truncate` or MXCSR rounding. Source is binary32 bits (`is32`) or binary64
 * lo/hi. Result in rLo (and rHi for 64-bit); out of range or NaN gives the integer indefinite value.
 */
export function cvtToInt(lo: number, hi: number, is32: boolean, to64: boolean, truncate: boolean): void {
  let x: number;
  if (is32) {
    if (isNaN32(lo)) { indefinite(to64); return; }
    if (isDen32(lo) && daz) lo &= 0x80000000;
    x = num32(lo);
  } else {
    if (isNaN64(lo, hi)) { indefinite(to64); return; }
    if (isDen64(lo, hi) && daz) { hi &= 0x80000000; lo = 0; }
    x = num64(lo, hi);
  }
  if (x === Infinity || x === -Infinity) { indefinite(to64); return; }
  const r = roundInt(x, truncate ? Rc.Zero : rc);
  if (to64) {
    if (r < -9223372036854775808 || r >= 9223372036854775808) { indefinite(true); return; }
    const h = Math.floor(r / 4294967296);
    rHi = h | 0; rLo = (r - h * 4294967296) | 0;
  } else {
    if (r < -2147483648 || r > 2147483647) { indefinite(false); return; }
    rLo = r | 0; rHi = 0;
  }
  if (r !== x) orFlags(X.PE);
}
function indefinite(to64: boolean): void {
  orFlags(X.IE);
  if (to64) { rLo = 0; rHi = 0x80000000 | 0; } else { rLo = 0x80000000 | 0; rHi = 0; }
}

// ---- Approximations (RCPPS/RSQRTPS): hardware tables differ between vendors; both guarantee a relative
// error of at most 1.5*2^-12. We return the correctly rounded value, which is within that bound.
export function rcp32(a: number): number {
  if (isNaN32(a)) return a | 0x400000;
  if ((a & 0x7f800000) === 0) return (a & 0x80000000) | 0x7f800000; // zero or denormal input -> inf
  const x = num32(a);
  const r = Math.fround(1 / x);
  if (Math.abs(r) < 1.1754943508222875e-38) return bits32(r < 0 || Object.is(r, -0) ? -0 : 0);
  return bits32(r);
}
export function rsqrt32(a: number): number {
  if (isNaN32(a)) return a | 0x400000;
  if ((a & 0x7f800000) === 0) return (a & 0x80000000) | 0x7f800000;
  if (a < 0) return 0xffc00000 | 0;
  return bits32(Math.fround(1 / Math.sqrt(num32(a))));
}
