/**
 * Correctly rounded IEEE arithmetic on top of JS doubles, for any rounding mode and for the binary32,
 * binary64 (and, with reduced precision, x87) formats, with exact exception flags.
 *
 * Every operation first produces the exact result as `hi + lo` scaled by 2^k, where hi = RN(hi + lo) is a
 * double and lo is the exact tail (or a stand-in with the tail's sign that is far below half an ulp of hi),
 * using error-free transformations (TwoSum, Veltkamp/Dekker products). `roundTo` then rounds that exact
 * value once to the target format. No allocation: results go through module-level variables.
 */

/** Exception flag bits (MXCSR and x87 status word share the order). */
export const enum X { IE = 1, DE = 2, ZE = 4, OE = 8, UE = 16, PE = 32 }
/** Rounding control (MXCSR.RC / FCW.RC). */
export const enum Rc { Nearest = 0, Down = 1, Up = 2, Zero = 3 }

/** Flags raised by the operations (callers clear and read it). */
export let sfFlags = 0;
export function clearFlags(): void { sfFlags = 0; sfTiny = false; }
export function clearTiny(): void { sfTiny = false; }
export function orFlags(f: number): void { sfFlags |= f; }
export function setFlags(f: number): void { sfFlags = f; }
/** Whether the last rounding was tiny (after rounding, as x86 detects it), regardless of exactness. */
export let sfTiny = false;
/** The last roundTo result as integer significand and grid exponent (|result| = rndM * 2^rndQ), and whether
 * its magnitude was rounded up (x87 C1). rndOverflow: the result overflowed (masked response returned). */
export let rndM = 0;
export let rndQ = 0;
export let rndUp = false;
export let rndOverflow = false;
/** Incremented by every roundTo call (tells callers whether a result came from rounding). */
export let rndSeq = 0;
/** Signal UE for exact tiny results too (underflow unmasked). */
export let sfUeStrict = false;
export function setUeStrict(v: boolean): void { sfUeStrict = v; }
/** Overflow unmasked: PE then reports only the inexactness of the significand (unbounded exponent). */
export let sfOeStrict = false;
export function setOeStrict(v: boolean): void { sfOeStrict = v; }

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

const POW2 = new Float64Array(2048 + 1100);
const P2OFF = 1100;
for (let i = -1074; i <= 1023; i++) POW2[i + P2OFF] = 2 ** i;

/** x * 2^n, exact whenever the result is representable. */
export function scale(x: number, n: number): number {
  if (n >= -1022 && n <= 1023) return x * POW2[n + P2OFF];
  const h = n >> 1;
  return scale(scale(x, h), n - h);
}

/** floor(log2(a)) for finite a > 0. */
export function expOf(a: number): number {
  f64[0] = a;
  const e = (u32[1] >>> 20) & 0x7ff;
  if (e !== 0) return e - 1023;
  f64[0] = a * 18446744073709551616; // 2^64
  return ((u32[1] >>> 20) & 0x7ff) - 1023 - 64;
}

function isPow2(a: number): boolean {
  f64[0] = a;
  if ((u32[1] & 0x7ff00000) === 0) f64[0] = a * 18446744073709551616;
  return (u32[1] & 0xfffff) === 0 && u32[0] === 0;
}

/** Target formats. */
export interface Fmt { readonly p: number; readonly emin: number; readonly emax: number }
export const F32: Fmt = { p: 24, emin: -126, emax: 127 };
export const F64: Fmt = { p: 53, emin: -1022, emax: 1023 };

// Rounding helper: integer-grid rounding of t = n + frac (+ tail of sign l) toward the mode.
function roundGrid(n: number, frac: number, l: number, rc: number, neg: boolean): number {
  if (frac === 0 && l === 0) return n;
  if (rc === Rc.Nearest) {
    if (frac > 0.5) return n + 1;
    if (frac < 0.5) return n;
    if (l > 0) return n + 1;
    if (l < 0) return n;
    return n % 2 === 1 ? n + 1 : n;
  }
  const away = rc === Rc.Up ? !neg : rc === Rc.Down ? neg : false;
  if (frac === 0 && l < 0) return away ? n : n - 1;
  return away ? n + 1 : n;
}

/**
 * Round (hi + lo) * 2^k to `fmt` with rounding mode rc. hi must be RN(hi+lo) (or lo a same-sign stand-in).
 * Sets PE/UE/OE in sfFlags and sfTiny. Returns the rounded value as a double (exactly representable).
 */
export function roundTo(hi: number, lo: number, k: number, fmt: Fmt, rc: number): number {
  sfTiny = false; rndUp = false; rndOverflow = false; rndSeq++;
  if (hi === 0) { rndM = 0; rndQ = 0; return hi; }
  const neg = hi < 0;
  const a = neg ? -hi : hi;
  const l = neg ? -lo : lo;
  let e = expOf(a) + k;
  if (l < 0 && isPow2(a)) e--; // the exact value lies just below a power of two: it belongs to the lower binade
  const p = fmt.p;
  const q = (e > fmt.emin ? e : fmt.emin) - (p - 1);
  let n: number, frac: number;
  if (e - q < -3) { n = 0; frac = 0.125; } // far below the grid: only its sign and stickiness matter
  else { const t = scale(a, k - q); n = Math.floor(t); frac = t - n; }
  const m = roundGrid(n, frac, l, rc, neg);
  rndM = m; rndQ = q;
  rndUp = m > n || (m === n && frac === 0 && l < 0);
  const inexact = frac !== 0 || l !== 0;
  const top = POW2[p + P2OFF];
  // Overflow: exponent above emax before or after rounding.
  if (e > fmt.emax || (m >= top && q + p > fmt.emax)) {
    // Unmasked overflow delivers no rounded result: PE reflects the significand rounding only.
    sfFlags |= sfOeStrict ? (inexact ? X.OE | X.PE : X.OE) : X.OE | X.PE;
    rndOverflow = true;
    const away = rc === Rc.Nearest || (rc === Rc.Up ? !neg : rc === Rc.Down ? neg : false);
    rndUp = away;
    const big = away ? Infinity : scale(2 - POW2[1 - p + P2OFF], fmt.emax);
    return neg ? -big : big;
  }
  // Tininess after rounding with unbounded exponent.
  let tiny = false;
  if (e < fmt.emin - 1) tiny = true;
  else if (e === fmt.emin - 1) {
    const q2 = e - (p - 1);
    const t2 = scale(a, k - q2);
    const n2 = Math.floor(t2);
    tiny = roundGrid(n2, t2 - n2, l, rc, neg) < top;
  }
  sfTiny = tiny;
  if (tiny && sfUeStrict) {
    // Unmasked underflow: like overflow, PE comes from rounding with an unbounded exponent.
    const t3 = scale(a, k - (e - (p - 1)));
    sfFlags |= t3 !== Math.floor(t3) || l !== 0 ? X.UE | X.PE : X.UE;
  } else {
    if (inexact) sfFlags |= X.PE;
    if (tiny && inexact) sfFlags |= X.UE;
  }
  const r = scale(m, q);
  return neg ? -r : r;
}

// ---- Error-free transformations. Results: the function returns hi, the tail is in `tail`.
export let tail = 0;

function twoSum(a: number, b: number): number {
  const s = a + b;
  const bb = s - a;
  tail = (a - (s - bb)) + (b - bb);
  return s;
}

const SPLIT = 134217729; // 2^27 + 1
function twoProd(a: number, b: number): number {
  const p = a * b;
  let c = SPLIT * a;
  const ah = c - (c - a), al = a - ah;
  c = SPLIT * b;
  const bh = c - (c - b), bl = b - bh;
  tail = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
  return p;
}

/** Mantissa in [1,2) and exponent of a finite nonzero |x| (exponent in `fexp`). */
let fexp = 0;
function frexp(x: number): number {
  const e = expOf(x < 0 ? -x : x);
  fexp = e;
  return scale(x, -e);
}

/**
 * Exact-sum kernels. Each returns hi and sets `tail` and `kOut` so that the exact result is (hi+tail)*2^kOut.
 * Inputs are finite; zero operands are handled by callers.
 */
export let kOut = 0;

export function exactAdd(a: number, b: number): number {
  const ea = a === 0 ? -2000 : expOf(Math.abs(a));
  const eb = b === 0 ? -2000 : expOf(Math.abs(b));
  // Too far apart: the smaller one only contributes a sticky bit of its sign.
  if (ea - eb > 120 && b !== 0) { kOut = 0; tail = b > 0 ? scale(Math.abs(a), -110) : -scale(Math.abs(a), -110); return a; }
  if (eb - ea > 120 && a !== 0) { kOut = 0; tail = a > 0 ? scale(Math.abs(b), -110) : -scale(Math.abs(b), -110); return b; }
  if (ea >= 1020 || eb >= 1020) { kOut = 4; return twoSum(a * 0.0625, b * 0.0625); }
  kOut = 0;
  return twoSum(a, b);
}

export function exactMul(a: number, b: number): number {
  const ma = frexp(a); const ea = fexp;
  const mb = frexp(b); const eb = fexp;
  kOut = ea + eb;
  return twoProd(ma, mb);
}

export function exactDiv(a: number, b: number): number {
  const ma = frexp(a); const ea = fexp;
  const mb = frexp(b); const eb = fexp;
  kOut = ea - eb;
  const q = ma / mb;
  const p = twoProd(q, mb);
  const rem = (ma - p) - tail;
  const qa = q < 0 ? -q : q;
  const st = rem === 0 ? 0 : scale(qa, -70);
  // sign of the tail: rem / mb
  tail = rem === 0 ? 0 : ((rem > 0) === (mb > 0) ? st : -st);
  return q;
}

/** a > 0 finite. */
export function exactSqrt(a: number): number {
  let m = frexp(a); let e = fexp;
  if (e & 1) { m *= 2; e--; }
  kOut = e / 2;
  const r = Math.sqrt(m);
  const p = twoProd(r, r);
  const rem = (m - p) - tail;
  tail = rem === 0 ? 0 : rem > 0 ? scale(r, -70) : -scale(r, -70);
  return r;
}

/** 64-bit integer from halves (hi signed or unsigned per `signed`) as exact hi+tail. */
export function exactInt64(lo: number, hi: number, signed: boolean): number {
  kOut = 0;
  const h = signed ? (hi | 0) : (hi >>> 0);
  return twoSum(h * 4294967296, lo >>> 0);
}

// ---- Float <-> integer

/** Round double v to an integer per rc (v finite). */
export function roundInt(v: number, rc: number): number {
  switch (rc) {
    case Rc.Zero: return Math.trunc(v);
    case Rc.Down: return Math.floor(v);
    case Rc.Up: return Math.ceil(v);
    default: {
      const f = Math.floor(v);
      const d = v - f;
      if (d > 0.5) return f + 1;
      if (d < 0.5) return f;
      return f % 2 === 0 ? f : f + 1;
    }
  }
}
