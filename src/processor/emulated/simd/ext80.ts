/**
 * Exact x87 arithmetic on 80-bit operands: add, subtract, multiply, divide and square root computed on
 * integer significands (16-bit limbs in plain numbers), then rounded once to the precision control
 * (24, 53 or 64 bits) with the rounding control over the extended exponent range, with IEEE flags.
 * Operands are finite, non-zero unless stated, and not NaN (callers handle specials).
 */
import { Rc, X, orFlags, sfUeStrict, sfOeStrict } from './softfloat.js';

const L = 18; // limbs of 16 bits: 288 bits of working space
const A = new Float64Array(L), B = new Float64Array(L), R = new Float64Array(L), T = new Float64Array(L);

/** Results. */
export let xLo = 0, xHi = 0, xSe = 0;
/** Magnitude rounded up (C1). */
export let xUp = false;

function clear(a: Float64Array): void { a.fill(0); }
/** Put the 64-bit significand (hi, lo halves) into a at limb offset `at`. */
function put(a: Float64Array, hi: number, lo: number, at: number): void {
  a[at] = lo & 0xffff; a[at + 1] = (lo >>> 16) & 0xffff; a[at + 2] = hi & 0xffff; a[at + 3] = (hi >>> 16) & 0xffff;
}
function bitLen(a: Float64Array): number {
  for (let i = L - 1; i >= 0; i--) if (a[i] !== 0) return 16 * i + (32 - Math.clz32(a[i]));
  return 0;
}
function getBit(a: Float64Array, b: number): number { return b < 0 ? 0 : (a[b >> 4] >> (b & 15)) & 1; }
function anyBelow(a: Float64Array, b: number): boolean { // any bit set in positions [0, b)
  if (b <= 0) return false;
  const full = b >> 4;
  for (let i = 0; i < full && i < L; i++) if (a[i] !== 0) return true;
  return full < L && (b & 15) !== 0 && (a[full] & ((1 << (b & 15)) - 1)) !== 0;
}
/** dst = src >> s (s >= 0). */
function shr(dst: Float64Array, src: Float64Array, s: number): void {
  const w = s >> 4, r = s & 15;
  for (let i = 0; i < L; i++) {
    const lo = i + w < L ? src[i + w] : 0, hi = i + w + 1 < L ? src[i + w + 1] : 0;
    dst[i] = r === 0 ? lo : ((lo >> r) | (hi << (16 - r))) & 0xffff;
  }
}
/** dst = src << s (s >= 0), bits beyond the window are dropped (callers keep room). */
function shl(dst: Float64Array, src: Float64Array, s: number): void {
  const w = s >> 4, r = s & 15;
  for (let i = L - 1; i >= 0; i--) {
    const a = i - w >= 0 ? src[i - w] : 0, b = i - w - 1 >= 0 ? src[i - w - 1] : 0;
    dst[i] = r === 0 ? a : ((a << r) | (b >> (16 - r))) & 0xffff;
  }
}
function cmp(a: Float64Array, b: Float64Array): number {
  for (let i = L - 1; i >= 0; i--) if (a[i] !== b[i]) return a[i] > b[i] ? 1 : -1;
  return 0;
}
function addTo(a: Float64Array, b: Float64Array): void { // a += b
  let c = 0;
  for (let i = 0; i < L; i++) { const v = a[i] + b[i] + c; a[i] = v & 0xffff; c = v > 0xffff ? 1 : 0; }
}
function subFrom(a: Float64Array, b: Float64Array): void { // a -= b (a >= b)
  let c = 0;
  for (let i = 0; i < L; i++) { let v = a[i] - b[i] - c; c = 0; if (v < 0) { v += 65536; c = 1; } a[i] = v; }
}
function decr(a: Float64Array): void { for (let i = 0; i < L; i++) { if (a[i] > 0) { a[i]--; return; } a[i] = 0xffff; } }

/** Unpacked operand: significand with bit 63 set (denormals normalized), unbiased exponent of bit 63. */
let uHi = 0, uLo = 0, uE = 0;
function unpack(lo: number, hi: number, se: number): void {
  let e = se & 0x7fff; if (e === 0) e = 1;
  let h = hi >>> 0, l = lo >>> 0;
  e -= 16383;
  while (h < 0x80000000) { h = ((h << 1) | (l >>> 31)) >>> 0; l = (l << 1) >>> 0; e--; }
  uHi = h; uLo = l; uE = e;
}

/**
 * Round R * 2^e0 (plus `sticky` below bit 0) to p bits, sign `neg`, rounding rc, into xLo/xHi/xSe and flags.
 */
function round(neg: boolean, e0: number, sticky: boolean, p: number, rc: number): void {
  xUp = false;
  const s = neg ? 0x8000 : 0;
  const bl = bitLen(R);
  if (bl === 0) { xLo = 0; xHi = 0; xSe = s; return; } // callers handle exact zeros
  const E = e0 + bl - 1;
  const emin = -16382;
  let q = (E > emin ? E : emin) - (p - 1);
  let sh = q - e0;
  let keepLen: number;
  let inexact: boolean, up = false;
  if (sh <= 0) { shl(T, R, -sh); inexact = sticky; keepLen = bl - sh; }
  else {
    shr(T, R, sh);
    const rb = getBit(R, sh - 1), st = sticky || anyBelow(R, sh - 1);
    inexact = rb === 1 || st;
    if (inexact) {
      if (rc === Rc.Nearest) up = rb === 1 && (st || (T[0] & 1) === 1);
      else if (rc === Rc.Up) up = !neg;
      else if (rc === Rc.Down) up = neg;
    }
    if (up) { clear(A); A[0] = 1; addTo(T, A); }
    keepLen = bitLen(T);
  }
  if (keepLen > p) { shr(T, T, 1); q++; keepLen--; } // carry out of the top
  // Tininess after rounding (unbounded exponent): only E = emin-1 can round up into the normal range.
  let tiny = E < emin;
  if (tiny && E === emin - 1 && sh > 0) {
    const sh2 = sh - 1; // one more bit of precision at the unbounded grid
    const rb = getBit(R, sh2 - 1), st = sticky || anyBelow(R, sh2 - 1);
    let allOnes = true;
    for (let b = sh2; b < bl; b++) if (getBit(R, b) === 0) { allOnes = false; break; }
    let u = false;
    if (rb === 1 || st) {
      if (rc === Rc.Nearest) u = rb === 1 && (st || getBit(R, sh2) === 1);
      else if (rc === Rc.Up) u = !neg;
      else if (rc === Rc.Down) u = neg;
    }
    if (allOnes && u) tiny = false;
  }
  const field = keepLen === p ? q + p - 1 + 16383 : 0;
  if (field >= 0x7fff) { // overflow
    orFlags(sfOeStrict ? (inexact ? X.OE | X.PE : X.OE) : X.OE | X.PE);
    const away = rc === Rc.Nearest || (rc === Rc.Up ? !neg : rc === Rc.Down ? neg : false);
    xUp = away;
    if (away) { xLo = 0; xHi = 0x80000000 | 0; xSe = s | 0x7fff; }
    else { xHi = p >= 32 ? -1 : (-1 << (32 - p)) | 0; xLo = p >= 64 ? -1 : p > 32 ? (-1 << (64 - p)) | 0 : 0; xSe = s | 0x7ffe; }
    return;
  }
  if (inexact) orFlags(X.PE);
  if (tiny && (inexact || sfUeStrict)) orFlags(X.UE);
  xUp = up;
  // significand: keep << (64 - p), as halves
  shl(A, T, 64 - p);
  xLo = (A[0] | (A[1] << 16)) | 0; xHi = (A[2] | (A[3] << 16)) | 0; xSe = s | field;
}

export const enum XOp { ADD = 0, MUL = 2, DIV = 3, SQRT = 6 }

/** a + b (or a - b with `negB`): finite operands, at least one non-zero. */
export function add80(aLo: number, aHi: number, aSe: number, bLo: number, bHi: number, bSe: number, p: number, rc: number): void {
  const aZero = (aLo | aHi) === 0, bZero = (bLo | bHi) === 0;
  let na = (aSe & 0x8000) !== 0, nb = (bSe & 0x8000) !== 0;
  clear(R);
  if (aZero || bZero) { // the other operand, rounded to the precision control
    if (aZero) { unpack(bLo, bHi, bSe); na = nb; } else unpack(aLo, aHi, aSe);
    put(R, uHi, uLo, 0);
    round(na, uE - 63, false, p, rc);
    return;
  }
  unpack(aLo, aHi, aSe); let ah = uHi, al = uLo, ea = uE;
  unpack(bLo, bHi, bSe); let bh = uHi, bl2 = uLo, eb = uE;
  if (eb > ea || (eb === ea && (bh > ah || (bh === ah && bl2 > al)))) { // |b| > |a|: swap
    let t = ah; ah = bh; bh = t;
    t = al; al = bl2; bl2 = t;
    t = ea; ea = eb; eb = t;
    const tn = na; na = nb; nb = tn;
  }
  const d = ea - eb;
  clear(A); clear(B);
  put(A, ah, al, 8); // bits 128..191
  let sticky = false;
  if (d <= 128) { put(B, bh, bl2, 8); if (d > 0) { sticky = anyBelow(B, d); shr(B, B, d); } }
  else sticky = true;
  if (na === nb) { addTo(A, B); for (let i = 0; i < L; i++) R[i] = A[i]; }
  else {
    subFrom(A, B);
    if (sticky) decr(A);
    for (let i = 0; i < L; i++) R[i] = A[i];
    if (bitLen(R) === 0 && !sticky) { xLo = 0; xHi = 0; xSe = rc === Rc.Down ? 0x8000 : 0; xUp = false; return; }
  }
  round(na, ea - 63 - 128, sticky, p, rc);
}

export function mul80(aLo: number, aHi: number, aSe: number, bLo: number, bHi: number, bSe: number, p: number, rc: number): void {
  const neg = ((aSe ^ bSe) & 0x8000) !== 0;
  unpack(aLo, aHi, aSe); const ea = uE; clear(A); put(A, uHi, uLo, 0);
  unpack(bLo, bHi, bSe); const eb = uE; clear(B); put(B, uHi, uLo, 0);
  clear(R);
  for (let i = 0; i < 4; i++) {
    let c = 0;
    for (let j = 0; j < 4; j++) { const v = R[i + j] + A[i] * B[j] + c; R[i + j] = v % 65536; c = Math.floor(v / 65536); }
    let k = i + 4; while (c !== 0) { const v = R[k] + c; R[k] = v % 65536; c = Math.floor(v / 65536); k++; }
  }
  round(neg, ea + eb - 126, false, p, rc);
}

export function div80(aLo: number, aHi: number, aSe: number, bLo: number, bHi: number, bSe: number, p: number, rc: number): void {
  const neg = ((aSe ^ bSe) & 0x8000) !== 0;
  unpack(aLo, aHi, aSe); const ea = uE; clear(A); put(A, uHi, uLo, 0);
  unpack(bLo, bHi, bSe); const eb = uE; clear(B); put(B, uHi, uLo, 0);
  // Q = floor(Ma * 2^70 / Mb): at least 70 quotient bits; the remainder gives the sticky bit.
  clear(R); clear(T);
  const n = 64 + 70;
  shl(A, A, 70);
  for (let bit = n - 1; bit >= 0; bit--) {
    shl(T, T, 1);
    T[0] |= getBit(A, bit);
    if (cmp(T, B) >= 0) { subFrom(T, B); R[bit >> 4] += 1 << (bit & 15); }
  }
  const sticky = bitLen(T) !== 0;
  round(neg, ea - eb - 70, sticky, p, rc);
}

/** sqrt of a positive finite operand. */
export function sqrt80(aLo: number, aHi: number, aSe: number, p: number, rc: number): void {
  unpack(aLo, aHi, aSe);
  // radicand N = M * 2^s with (E - 63 - s) even and s >= 70: root has >= 67 bits
  let s = 70;
  if (((uE - 63 - s) & 1) !== 0) s++;
  clear(A); put(A, uHi, uLo, 0); shl(A, A, s);
  const nb = bitLen(A);
  // bitwise integer square root
  clear(R); clear(T); clear(B);
  const top = nb + (nb & 1); // even number of bits
  for (let bit = top - 2; bit >= 0; bit -= 2) {
    // T = T*4 + next two bits of A
    shl(T, T, 2);
    T[0] |= (getBit(A, bit + 1) << 1) | getBit(A, bit);
    // trial = (R << 2) | 1
    shl(B, R, 2); B[0] |= 1;
    shl(R, R, 1);
    if (cmp(T, B) >= 0) { subFrom(T, B); R[0] |= 1; }
  }
  const sticky = bitLen(T) !== 0;
  round(false, (uE - 63 - s) / 2, sticky, p, rc);
}

/** Quotient low bits and partial flag of the last rem80. */
export let xQ = 0;
export let xPartial = false;

/**
 * FPREM (truncating quotient) / FPREM1 (`nearest` quotient) of finite non-zero operands, exactly. When the
 * exponent difference D is 64 or more the reduction is partial (C2): by 2^(32*floor((D-32)/32)) less than a
 * full one, as the host FPU does.
 */
export function rem80(aLo: number, aHi: number, aSe: number, bLo: number, bHi: number, bSe: number, nearest: boolean): void {
  unpack(aLo, aHi, aSe); const ah = uHi, al = uLo, ea = uE;
  unpack(bLo, bHi, bSe); const eb = uE;
  clear(B); put(B, uHi, uLo, 0);
  let neg = (aSe & 0x8000) !== 0;
  let d = ea - eb, scaleUp = 0;
  xPartial = false; xQ = 0;
  if (d >= 64) { scaleUp = 32 * Math.floor((d - 32) / 32); d -= scaleUp; xPartial = true; }
  clear(R); clear(T);
  if (d < 0) {
    // |a| < |b|: truncating quotient 0; the nearest quotient is 1 when |a| > |b|/2
    put(T, ah, al, 0);
    let e0 = ea - 63;
    if (nearest && d === -1) {
      // compare 2|a| with |b| on the same scale: |a| = Ma*2^(ea-63), |b|/2 = Mb*2^(eb-64) = Mb*2^(ea-63)
      // exact halves round to the even quotient 0, so only a strictly larger |a| takes quotient 1
      const c = cmp(T, B);
      if (c > 0) { // r = |b| - |a|, opposite sign; |b| = (2*Mb) * 2^(ea-63) on a's grid
        shl(A, B, 1); subFrom(A, T); for (let i = 0; i < L; i++) T[i] = A[i];
        neg = !neg; xQ = 1;
      }
    }
    for (let i = 0; i < L; i++) R[i] = T[i];
    round(neg, e0, false, 64, Rc.Nearest);
    return;
  }
  // (Ma << d) divided by Mb: remainder in T, low quotient bits in xQ
  clear(A); put(A, ah, al, 0); shl(A, A, d);
  const n = 64 + d;
  let q = 0;
  for (let bit = n - 1; bit >= 0; bit--) {
    shl(T, T, 1);
    T[0] |= getBit(A, bit);
    q = (q << 1) & 7;
    if (cmp(T, B) >= 0) { subFrom(T, B); q |= 1; }
  }
  if (nearest && !xPartial) {
    shl(A, T, 1);
    const c = cmp(A, B);
    if (c > 0 || (c === 0 && (q & 1) === 1)) { // round the quotient up: r = Mb - r, opposite sign
      for (let i = 0; i < L; i++) A[i] = B[i];
      subFrom(A, T);
      for (let i = 0; i < L; i++) T[i] = A[i];
      neg = !neg; q = (q + 1) & 7;
    }
  }
  xQ = q;
  for (let i = 0; i < L; i++) R[i] = T[i];
  if (bitLen(R) === 0) { xLo = 0; xHi = 0; xSe = (aSe & 0x8000); xUp = false; return; }
  round(neg, eb - 63 + scaleUp, false, 64, Rc.Nearest);
}
