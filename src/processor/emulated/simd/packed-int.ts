/**
 * Packed-integer operations shared by SSE2 (XMM, 16 bytes) and MMX (8 bytes in the low half): operands are
 * staged in module-level 16-byte buffers D (destination, first source), S (second source) and R (result),
 * so no instruction allocates and a faulting access leaves the destination unchanged.
 */

function buf() {
  const b = new ArrayBuffer(16);
  return { i32: new Int32Array(b), u32: new Uint32Array(b), i16: new Int16Array(b), u16: new Uint16Array(b), i8: new Int8Array(b), u8: new Uint8Array(b) };
}
// D: destination (first source), S: second source, R: result.
export const D = buf(), S = buf(), R = buf();
export const d32 = D.i32, s32 = S.i32, r32 = R.i32;

// ---- Integer helpers
const sat8 = (v: number): number => (v > 127 ? 127 : v < -128 ? -128 : v);
const satu8 = (v: number): number => (v > 255 ? 255 : v < 0 ? 0 : v);
const sat16 = (v: number): number => (v > 32767 ? 32767 : v < -32768 ? -32768 : v);
const satu16 = (v: number): number => (v > 65535 ? 65535 : v < 0 ? 0 : v);

/** Packed integer binary op on D and S into R (all SSE2 66-prefixed integer ops). Returns false if unknown. */
export function intOp(b: number): boolean {
  const da = D, sa = S, ra = R;
  switch (b) {
    case 0xfc: for (let i = 0; i < 16; i++) ra.u8[i] = da.u8[i] + sa.u8[i]; return true; // paddb
    case 0xfd: for (let i = 0; i < 8; i++) ra.u16[i] = da.u16[i] + sa.u16[i]; return true;
    case 0xfe: for (let i = 0; i < 4; i++) r32[i] = (d32[i] + s32[i]) | 0; return true;
    case 0xd4: for (let i = 0; i < 4; i += 2) add64(i, d32[i], d32[i + 1], s32[i], s32[i + 1], false); return true; // paddq
    case 0xf8: for (let i = 0; i < 16; i++) ra.u8[i] = da.u8[i] - sa.u8[i]; return true;
    case 0xf9: for (let i = 0; i < 8; i++) ra.u16[i] = da.u16[i] - sa.u16[i]; return true;
    case 0xfa: for (let i = 0; i < 4; i++) r32[i] = (d32[i] - s32[i]) | 0; return true;
    case 0xfb: for (let i = 0; i < 4; i += 2) add64(i, d32[i], d32[i + 1], s32[i], s32[i + 1], true); return true; // psubq
    case 0xec: for (let i = 0; i < 16; i++) ra.i8[i] = sat8(da.i8[i] + sa.i8[i]); return true; // paddsb
    case 0xed: for (let i = 0; i < 8; i++) ra.i16[i] = sat16(da.i16[i] + sa.i16[i]); return true;
    case 0xdc: for (let i = 0; i < 16; i++) ra.u8[i] = satu8(da.u8[i] + sa.u8[i]); return true; // paddusb
    case 0xdd: for (let i = 0; i < 8; i++) ra.u16[i] = satu16(da.u16[i] + sa.u16[i]); return true;
    case 0xe8: for (let i = 0; i < 16; i++) ra.i8[i] = sat8(da.i8[i] - sa.i8[i]); return true; // psubsb
    case 0xe9: for (let i = 0; i < 8; i++) ra.i16[i] = sat16(da.i16[i] - sa.i16[i]); return true;
    case 0xd8: for (let i = 0; i < 16; i++) ra.u8[i] = satu8(da.u8[i] - sa.u8[i]); return true; // psubusb
    case 0xd9: for (let i = 0; i < 8; i++) ra.u16[i] = satu16(da.u16[i] - sa.u16[i]); return true;
    case 0xd5: for (let i = 0; i < 8; i++) ra.i16[i] = Math.imul(da.i16[i], sa.i16[i]); return true; // pmullw
    case 0xe5: for (let i = 0; i < 8; i++) ra.i16[i] = (da.i16[i] * sa.i16[i]) >> 16; return true; // pmulhw
    case 0xe4: for (let i = 0; i < 8; i++) ra.u16[i] = (da.u16[i] * sa.u16[i]) / 65536; return true; // pmulhuw
    case 0xf4: // pmuludq: low dword of each qword, 64-bit product
      for (let i = 0; i < 4; i += 2) mulu32(i, d32[i], s32[i]);
      return true;
    case 0xf5: // pmaddwd
      for (let i = 0; i < 4; i++) r32[i] = (da.i16[2 * i] * sa.i16[2 * i] + da.i16[2 * i + 1] * sa.i16[2 * i + 1]) | 0;
      return true;
    case 0xf6: { // psadbw
      for (let h = 0; h < 2; h++) {
        let s = 0;
        for (let i = 8 * h; i < 8 * h + 8; i++) s += Math.abs(da.u8[i] - sa.u8[i]);
        r32[2 * h] = s; r32[2 * h + 1] = 0;
      }
      return true;
    }
    case 0xe0: for (let i = 0; i < 16; i++) ra.u8[i] = (da.u8[i] + sa.u8[i] + 1) >> 1; return true; // pavgb
    case 0xe3: for (let i = 0; i < 8; i++) ra.u16[i] = (da.u16[i] + sa.u16[i] + 1) >> 1; return true;
    case 0xda: for (let i = 0; i < 16; i++) ra.u8[i] = Math.min(da.u8[i], sa.u8[i]); return true; // pminub
    case 0xde: for (let i = 0; i < 16; i++) ra.u8[i] = Math.max(da.u8[i], sa.u8[i]); return true;
    case 0xea: for (let i = 0; i < 8; i++) ra.i16[i] = Math.min(da.i16[i], sa.i16[i]); return true; // pminsw
    case 0xee: for (let i = 0; i < 8; i++) ra.i16[i] = Math.max(da.i16[i], sa.i16[i]); return true;
    case 0x74: for (let i = 0; i < 16; i++) ra.u8[i] = da.u8[i] === sa.u8[i] ? 0xff : 0; return true; // pcmpeqb
    case 0x75: for (let i = 0; i < 8; i++) ra.u16[i] = da.u16[i] === sa.u16[i] ? 0xffff : 0; return true;
    case 0x76: for (let i = 0; i < 4; i++) r32[i] = d32[i] === s32[i] ? -1 : 0; return true;
    case 0x64: for (let i = 0; i < 16; i++) ra.u8[i] = da.i8[i] > sa.i8[i] ? 0xff : 0; return true; // pcmpgtb
    case 0x65: for (let i = 0; i < 8; i++) ra.u16[i] = da.i16[i] > sa.i16[i] ? 0xffff : 0; return true;
    case 0x66: for (let i = 0; i < 4; i++) r32[i] = d32[i] > s32[i] ? -1 : 0; return true;
    case 0xdb: for (let i = 0; i < 4; i++) r32[i] = d32[i] & s32[i]; return true; // pand
    case 0xeb: for (let i = 0; i < 4; i++) r32[i] = d32[i] | s32[i]; return true;
    case 0xef: for (let i = 0; i < 4; i++) r32[i] = d32[i] ^ s32[i]; return true;
    case 0xdf: for (let i = 0; i < 4; i++) r32[i] = ~d32[i] & s32[i]; return true; // pandn
    case 0x60: for (let i = 0; i < 8; i++) { ra.u8[2 * i] = da.u8[i]; ra.u8[2 * i + 1] = sa.u8[i]; } return true; // punpcklbw
    case 0x61: for (let i = 0; i < 4; i++) { ra.u16[2 * i] = da.u16[i]; ra.u16[2 * i + 1] = sa.u16[i]; } return true;
    case 0x62: r32[0] = d32[0]; r32[1] = s32[0]; r32[2] = d32[1]; r32[3] = s32[1]; return true;
    case 0x6c: r32[0] = d32[0]; r32[1] = d32[1]; r32[2] = s32[0]; r32[3] = s32[1]; return true; // punpcklqdq
    case 0x68: for (let i = 0; i < 8; i++) { ra.u8[2 * i] = da.u8[i + 8]; ra.u8[2 * i + 1] = sa.u8[i + 8]; } return true;
    case 0x69: for (let i = 0; i < 4; i++) { ra.u16[2 * i] = da.u16[i + 4]; ra.u16[2 * i + 1] = sa.u16[i + 4]; } return true;
    case 0x6a: r32[0] = d32[2]; r32[1] = s32[2]; r32[2] = d32[3]; r32[3] = s32[3]; return true;
    case 0x6d: r32[0] = d32[2]; r32[1] = d32[3]; r32[2] = s32[2]; r32[3] = s32[3]; return true; // punpckhqdq
    case 0x63: for (let i = 0; i < 8; i++) { ra.i8[i] = sat8(da.i16[i]); ra.i8[i + 8] = sat8(sa.i16[i]); } return true; // packsswb
    case 0x6b: for (let i = 0; i < 4; i++) { ra.i16[i] = sat16(d32[i]); ra.i16[i + 4] = sat16(s32[i]); } return true; // packssdw
    case 0x67: for (let i = 0; i < 8; i++) { ra.u8[i] = satu8(da.i16[i]); ra.u8[i + 8] = satu8(sa.i16[i]); } return true; // packuswb
    case 0xd1: case 0xd2: case 0xd3: case 0xe1: case 0xe2: case 0xf1: case 0xf2: case 0xf3: {
      // shifts by the low 64 bits of S (a count above the width gives 0, or sign fill for psra)
      const big = s32[1] !== 0 || (s32[0] >>> 0) > 255;
      const c = big ? 255 : s32[0] & 255;
      shift(b, c);
      return true;
    }
  }
  return false;
}

/** Opcodes (66 0F xx) handled by intOp. */
export const INT_OPS = new Uint8Array(256);
for (const o of [0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x74, 0x75, 0x76,
  0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5,
  0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe]) INT_OPS[o] = 1;

function add64(i: number, aLo: number, aHi: number, bLo: number, bHi: number, sub: boolean): void {
  if (sub) {
    const lo = (aLo >>> 0) - (bLo >>> 0);
    r32[i] = lo | 0; r32[i + 1] = (aHi - bHi - (lo < 0 ? 1 : 0)) | 0;
  } else {
    const lo = (aLo >>> 0) + (bLo >>> 0);
    r32[i] = lo | 0; r32[i + 1] = (aHi + bHi + (lo > 0xffffffff ? 1 : 0)) | 0;
  }
}
function mulu32(i: number, a: number, b: number): void {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const lo = a0 * b0, mid1 = a1 * b0, mid2 = a0 * b1, hi = a1 * b1;
  const mid = mid1 + mid2; // < 2^33
  const low = lo + (mid % 65536) * 65536; // < 2^49
  r32[i] = low % 4294967296 | 0;
  r32[i + 1] = (hi + Math.floor(mid / 65536) + Math.floor(low / 4294967296)) | 0;
}

/** Shift D by count c (0..255) into R: opcode selects width/direction (D1.. register-count forms). */
export function shift(b: number, c: number): void {
  const da = D, ra = R;
  switch (b) {
    case 0xd1: for (let i = 0; i < 8; i++) ra.u16[i] = c > 15 ? 0 : da.u16[i] >>> c; return; // psrlw
    case 0xf1: for (let i = 0; i < 8; i++) ra.u16[i] = c > 15 ? 0 : da.u16[i] << c; return;
    case 0xe1: for (let i = 0; i < 8; i++) ra.i16[i] = da.i16[i] >> (c > 15 ? 15 : c); return;
    case 0xd2: for (let i = 0; i < 4; i++) r32[i] = c > 31 ? 0 : d32[i] >>> c; return;
    case 0xf2: for (let i = 0; i < 4; i++) r32[i] = c > 31 ? 0 : d32[i] << c; return;
    case 0xe2: for (let i = 0; i < 4; i++) r32[i] = d32[i] >> (c > 31 ? 31 : c); return;
    case 0xd3: // psrlq
      for (let i = 0; i < 4; i += 2) {
        const lo = d32[i], hi = d32[i + 1];
        if (c > 63) { r32[i] = 0; r32[i + 1] = 0; }
        else if (c >= 32) { r32[i] = hi >>> (c - 32); r32[i + 1] = 0; }
        else if (c === 0) { r32[i] = lo; r32[i + 1] = hi; }
        else { r32[i] = (lo >>> c) | (hi << (32 - c)); r32[i + 1] = hi >>> c; }
      }
      return;
    case 0xf3: // psllq
      for (let i = 0; i < 4; i += 2) {
        const lo = d32[i], hi = d32[i + 1];
        if (c > 63) { r32[i] = 0; r32[i + 1] = 0; }
        else if (c >= 32) { r32[i + 1] = lo << (c - 32); r32[i] = 0; }
        else if (c === 0) { r32[i] = lo; r32[i + 1] = hi; }
        else { r32[i + 1] = (hi << c) | (lo >>> (32 - c)); r32[i] = lo << c; }
      }
      return;
  }
}

/** Byte shift of D by n bytes (pslldq left when `left`), into R. */
export function byteShift(n: number, left: boolean): void {
  if (n > 16) n = 16;
  for (let i = 0; i < 16; i++) {
    const j = left ? i - n : i + n;
    R.u8[i] = j >= 0 && j < 16 ? D.u8[j] : 0;
  }
}

