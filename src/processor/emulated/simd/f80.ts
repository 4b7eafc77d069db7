/**
 * The x87 80-bit extended format: exact conversions to and from binary32/binary64 memory formats and
 * doubles, classification, and construction from the rounded (significand, exponent) of softfloat.ts.
 * Values are (mlo, mhi, se): significand low/high 32 bits (bit 63 = explicit integer bit), sign|exponent.
 */
import { F32, F64, Rc, X, orFlags, roundTo, rndM, rndQ, rndOverflow, scale, expOf, type Fmt, clearFlags, sfFlags } from './softfloat.js';

/** Output of constructors. */
export let oLo = 0;
export let oHi = 0;
export let oSe = 0;

export const enum Cls { Zero = 0, Normal = 1, Denormal = 2, Inf = 3, QNaN = 4, SNaN = 5, Unsupported = 6 }

export function classify(lo: number, hi: number, se: number): number {
  const e = se & 0x7fff;
  const j = hi < 0; // integer bit
  if (e === 0) return (lo | hi) === 0 ? Cls.Zero : Cls.Denormal; // includes pseudo-denormals (J=1)
  if (e === 0x7fff) {
    if (!j) return Cls.Unsupported; // pseudo-infinity / pseudo-NaN
    if ((hi & 0x7fffffff) === 0 && lo === 0) return Cls.Inf;
    return (hi & 0x40000000) !== 0 ? Cls.QNaN : Cls.SNaN;
  }
  return j ? Cls.Normal : Cls.Unsupported; // unnormal
}

/** Exact value of a finite 80-bit number as hi+tail scaled by 2^k (module outputs), hi returned. */
let vT = 0, vK = 0;
function exactParts(lo: number, hi: number, se: number): number {
  let e = se & 0x7fff;
  if (e === 0) e = 1; // denormals and pseudo-denormals share the minimum exponent
  const h = (hi >>> 0) * 4294967296;
  const l = lo >>> 0;
  const s = h + l;
  const bb = s - h;
  vT = (h - (s - bb)) + (l - bb);
  vK = e - 16383 - 63;
  if (se & 0x8000) { vT = -vT; return -s; }
  return s;
}

/** Finite/infinite 80-bit value to a double, rounded to `fmt` with `rc`; flags go to softfloat's sfFlags. */
export function f80ToNumber(lo: number, hi: number, se: number, fmt: Fmt, rc: number): number {
  const c = classify(lo, hi, se);
  if (c === Cls.Zero) return se & 0x8000 ? -0 : 0;
  if (c === Cls.Inf) return se & 0x8000 ? -Infinity : Infinity;
  const h = exactParts(lo, hi, se);
  return roundTo(h, vT, vK, fmt, rc);
}

/** Value of a finite/infinite 80-bit number as the nearest double, without touching flags. */
export function f80Value(lo: number, hi: number, se: number): number {
  const saved = sfFlags;
  const v = f80ToNumber(lo, hi, se, F64, Rc.Nearest);
  clearFlags(); orFlags(saved);
  return v;
}

/** Double (non-NaN) to 80-bit, exact. */
export function fromNumber(v: number): void {
  const neg = v < 0 || Object.is(v, -0);
  const a = neg ? -v : v;
  const s = neg ? 0x8000 : 0;
  if (a === 0) { oLo = 0; oHi = 0; oSe = s; return; }
  if (a === Infinity) { oLo = 0; oHi = 0x80000000 | 0; oSe = s | 0x7fff; return; }
  const e = expOf(a);
  const m = scale(a, 63 - e); // integer in [2^63, 2^64)
  const h = Math.floor(m / 4294967296);
  oHi = h | 0; oLo = (m - h * 4294967296) | 0;
  oSe = s | (e + 16383);
}

/**
 * Build the 80-bit result from softfloat's last rounding (rndM * 2^rndQ), with sign `neg`. Handles the
 * extended exponent range, including denormal results, for precisions up to 53 bits.
 */
export function fromRounded(neg: boolean, p: number, rc: number): void {
  const s = neg ? 0x8000 : 0;
  if (rndOverflow) {
    const away = rc === Rc.Nearest || (rc === Rc.Up ? !neg : rc === Rc.Down ? neg : false);
    if (away) { oLo = 0; oHi = 0x80000000 | 0; oSe = s | 0x7fff; return; }
    // largest finite value at precision p
    oHi = -1; oLo = p >= 64 ? -1 : p > 32 ? (-1 << (64 - p)) : 0; oSe = s | 0x7ffe;
    if (p <= 32) oHi = (-1 << (32 - p)) | 0;
    return;
  }
  const m = rndM;
  if (m === 0) { oLo = 0; oHi = 0; oSe = s; return; }
  const L = expOf(m) + 1;
  let E = rndQ + L - 1 + 16383;
  let mant: number;
  if (E <= 0) { mant = scale(m, rndQ + 16445); E = 0; } else mant = scale(m, 64 - L);
  const h = Math.floor(mant / 4294967296);
  oHi = h | 0; oLo = (mant - h * 4294967296) | 0; oSe = s | E;
}

// ---- Memory formats
/** binary32 bits -> 80-bit (exact). With `quiet` (FLD) an SNaN is quieted and raises IE; DE for denormals. */
export function from32(b: number, quiet: boolean): void {
  const s = (b >>> 16) & 0x8000;
  const e = (b >>> 23) & 0xff, f = b & 0x7fffff;
  if (e === 0xff) {
    if (f === 0) { oLo = 0; oHi = 0x80000000 | 0; oSe = s | 0x7fff; return; }
    if ((f & 0x400000) === 0 && quiet) orFlags(X.IE);
    oHi = ((quiet ? 0xc0000000 : 0x80000000) | (f << 8)) | 0; oLo = 0; oSe = s | 0x7fff; return;
  }
  if (e === 0 && f !== 0) orFlags(X.DE);
  cvt32[0] = b; fromNumber(cvtF32[0]);
}
const cvt32 = new Int32Array(1);
const cvtF32 = new Float32Array(cvt32.buffer);
const cvt64 = new Int32Array(2);
const cvtF64 = new Float64Array(cvt64.buffer);

/** binary64 halves -> 80-bit (exact). */
export function from64(lo: number, hi: number, quiet: boolean): void {
  const s = (hi >>> 16) & 0x8000;
  const e = (hi >>> 20) & 0x7ff;
  const fz = ((hi & 0xfffff) | lo) === 0;
  if (e === 0x7ff) {
    if (fz) { oLo = 0; oHi = 0x80000000 | 0; oSe = s | 0x7fff; return; }
    if ((hi & 0x80000) === 0 && quiet) orFlags(X.IE);
    oHi = ((quiet ? 0xc0000000 : 0x80000000) | ((hi & 0xfffff) << 11) | (lo >>> 21)) | 0; oLo = (lo << 11) | 0; oSe = s | 0x7fff; return;
  }
  if (e === 0 && !fz) orFlags(X.DE);
  cvt64[0] = lo; cvt64[1] = hi; fromNumber(cvtF64[0]);
}

/** 80-bit -> binary32 bits with rounding and flags (NaN: quieted, IE if signaling). */
export function to32(lo: number, hi: number, se: number, rc: number): number {
  const c = classify(lo, hi, se);
  const s = (se & 0x8000) << 16;
  if (c === Cls.QNaN || c === Cls.SNaN) {
    if (c === Cls.SNaN) orFlags(X.IE);
    return s | 0x7fc00000 | ((hi >>> 8) & 0x3fffff);
  }
  if (c === Cls.Unsupported) { orFlags(X.IE); return 0xffc00000 | 0; }
  cvtF32[0] = f80ToNumber(lo, hi, se, F32, rc);
  return cvt32[0];
}

/** 80-bit -> binary64 halves (lo returned, hi in oHi). */
export function to64(lo: number, hi: number, se: number, rc: number): number {
  const c = classify(lo, hi, se);
  const s = (se & 0x8000) << 16;
  if (c === Cls.QNaN || c === Cls.SNaN) {
    if (c === Cls.SNaN) orFlags(X.IE);
    oHi = s | 0x7ff80000 | ((hi >>> 11) & 0x7ffff);
    return ((hi << 21) | (lo >>> 11)) | 0;
  }
  if (c === Cls.Unsupported) { orFlags(X.IE); oHi = 0xfff80000 | 0; return 0; }
  cvtF64[0] = f80ToNumber(lo, hi, se, F64, rc);
  oHi = cvt64[1];
  return cvt64[0];
}

/** Signed 64-bit integer (lo, hi) to 80-bit, exact, into oLo/oHi/oSe. */
export function fromInt(lo: number, hi: number): void {
  const neg = (hi | 0) < 0; // memory reads may return unsigned values
  let l = lo >>> 0, h = hi >>> 0;
  if (neg) { l = (~l + 1) >>> 0; h = (~h + (l === 0 ? 1 : 0)) >>> 0; }
  if (h === 0 && l === 0) { fromNumber(0); return; }
  let lz = h !== 0 ? Math.clz32(h) : 32 + Math.clz32(l);
  let mh: number, ml: number;
  if (lz >= 32) { mh = l << (lz - 32); ml = 0; } else if (lz === 0) { mh = h; ml = l; } else { mh = (h << lz) | (l >>> (32 - lz)); ml = l << lz; }
  oHi = mh | 0; oLo = ml | 0; oSe = (neg ? 0x8000 : 0) | (16383 + 63 - lz);
}


export { F32, F64 };
