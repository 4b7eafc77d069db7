/**
 * x86 instruction decoder for 16-, 32- and 64-bit code. Decodes once into a reusable `Insn` record (kept in
 * the block cache) that names its handler directly, so executing a cached instruction decodes nothing.
 */
import type { Cpu } from './cpu.js';
import type { SimdInsn } from './simd/contract.js';
import * as A from './exec-alu.js';
import * as D from './exec-data.js';
import * as C from './exec-ctrl.js';
import * as S from './exec-string.js';
import * as Y from './exec-system.js';

export type Handler = (cpu: Cpu, i: Insn) => void;

/** Effective-address forms (see exec-common.ea). */
export const enum EA { B64 = 0, BI64 = 1, RIP64 = 2, I64 = 3, A32 = 4, RIP32 = 5, A16 = 6 }

/** Insn.flags bits. */
export const enum IF {
  /** Ends a block: transfers control, changes mode/paging/interrupt state, or may halt. */
  END = 1,
  /** Reads or writes memory through the RIP-relative form (tests/diagnostics). */
  RIPREL = 2,
  /** Ends a block and may change what interrupt is deliverable (IF, TPR, EOI, mode...): not a near branch. */
  SYS = 4,
}

export class Insn implements SimdInsn {
  fn: Handler = Y.opUD;
  len = 0;
  /** (map << 8) | opcode byte; map 1 = 0F, 2 = 0F 38, 3 = 0F 3A. */
  op = 0;
  /** Operand size in bytes (1, 2, 4, 8). */
  osz = 4;
  /** Address size in bytes (2, 4, 8). */
  asz = 8;
  mod = 0;
  reg = 0;
  rm = 0;
  /** Byte-register codes of reg and rm (0..15, or 16..19 = AH CH DH BH without REX). */
  reg8 = 0;
  rm8 = 0;
  base = -1;
  index = -1;
  scale = 0;
  disp = 0;
  eaKind = 0;
  /** Segment whose base applies to the memory operand (-1: none, 64-bit mode without FS/GS). */
  seg = -1;
  /** Segment override prefix (-1 none): string sources, xlat. */
  segOv = -1;
  imm = 0;
  immHi = 0;
  imm2 = 0;
  /** Last of F2/F3 (0 when none). */
  rep = 0;
  lock = false;
  mandatory = 0;
  rexW = false;
  hasRex = false;
  /** Condition code, ALU sub-operation or group /reg. */
  sub = 0;
  flags = 0;
  // SimdInsn fields (ea filled at execution)
  ea = 0;
  imm8 = 0;
  opsize = 32;
  long = false;
}

const SEG_PREFIX: Record<number, number> = { 0x26: 0, 0x2e: 1, 0x36: 2, 0x3e: 3, 0x64: 4, 0x65: 5 };

// ModRM presence for the one-byte map (1 = has ModRM).
const MODRM0 = new Uint8Array(256);
// ModRM presence for the 0F map.
const MODRM1 = new Uint8Array(256);
{
  for (let b = 0; b < 0x40; b++) if ((b & 7) < 4) MODRM0[b] = 1;
  for (const b of [0x62, 0x63, 0x69, 0x6b, 0xc0, 0xc1, 0xc4, 0xc5, 0xc6, 0xc7, 0xd0, 0xd1, 0xd2, 0xd3, 0xf6, 0xf7, 0xfe, 0xff]) MODRM0[b] = 1;
  for (let b = 0x80; b <= 0x8f; b++) MODRM0[b] = 1;
  for (let b = 0xd8; b <= 0xdf; b++) MODRM0[b] = 1;
  MODRM1.fill(1);
  for (const b of [0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0e, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x77, 0xa0, 0xa1, 0xa2, 0xa8, 0xa9, 0xaa]) MODRM1[b] = 0;
  for (let b = 0x80; b <= 0x8f; b++) MODRM1[b] = 0;
  for (let b = 0xc8; b <= 0xcf; b++) MODRM1[b] = 0;
}

/** 0F-map opcodes executed by the SIMD unit (SSE/SSE2/MMX forms). */
function isSimd0F(b: number): boolean {
  return (b >= 0x10 && b <= 0x17) || (b >= 0x28 && b <= 0x2f) || (b >= 0x50 && b <= 0x7f) || (b >= 0xc2 && b <= 0xc6) || b >= 0xd0;
}

const I16_BASE = [3, 3, 5, 5, 6, 7, 5, 3]; // BX+SI, BX+DI, BP+SI, BP+DI, SI, DI, BP, BX
const I16_INDEX = [6, 7, 6, 7, -1, -1, -1, -1];

/**
 * Decode one instruction from buf[off .. off+avail) for `mode` (0 real, 1 prot16, 2 prot32, 3 long).
 * Returns its length, or 0 when more than `avail` bytes would be needed. Invalid encodings decode to a #UD
 * handler (the fault is raised when executed). Lengths above 15 decode to a #GP handler.
 */
export function decode(i: Insn, buf: Uint8Array, off: number, avail: number, mode: number): number {
  const end = off + (avail < 15 ? avail : 15);
  const long = mode === 3;
  const defOp = mode === 2 || long ? 4 : 2;
  const defAd = long ? 8 : mode === 2 ? 4 : 2;
  let p = off;
  let opPfx = false, adPfx = false, lock = false, rep = 0, segOv = -1, rex = 0;
  let b = 0;
  // ---- prefixes
  for (;;) {
    if (p >= end) return avail < 15 ? 0 : tooLong(i);
    b = buf[p++];
    if (b === 0x66) { opPfx = true; rex = 0; continue; }
    if (b === 0x67) { adPfx = true; rex = 0; continue; }
    if (b === 0xf0) { lock = true; rex = 0; continue; }
    if (b === 0xf2 || b === 0xf3) { rep = b; rex = 0; continue; }
    if (b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0x64 || b === 0x65) {
      // In 64-bit mode only FS/GS overrides have an effect.
      const s = SEG_PREFIX[b];
      if (!long || s >= 4) segOv = s;
      rex = 0;
      continue;
    }
    if (long && (b & 0xf0) === 0x40) { rex = b; continue; }
    break;
  }
  const rexW = (rex & 8) !== 0;
  const rexR = (rex & 4) << 1, rexX = (rex & 2) << 2, rexB = (rex & 1) << 3;
  let osz = rexW ? 8 : opPfx ? (defOp === 4 ? 2 : 4) : defOp;
  // Near branches in 64-bit mode: 64-bit operand size, or 16 with 66 (AMD; Intel ignores 66 there).
  const br64 = opPfx && !rexW ? 2 : 8;
  const asz = long ? (adPfx ? 4 : 8) : adPfx ? (defAd === 4 ? 2 : 4) : defAd;

  let map = 0;
  if (b === 0x0f) {
    if (p >= end) return avail < 15 ? 0 : tooLong(i);
    b = buf[p++];
    map = 1;
    if (b === 0x38 || b === 0x3a) {
      map = b === 0x38 ? 2 : 3;
      if (p >= end) return avail < 15 ? 0 : tooLong(i);
      b = buf[p++];
    }
  }

  i.op = (map << 8) | b;
  i.rep = rep;
  i.lock = lock;
  i.mandatory = rep !== 0 ? rep : opPfx ? 0x66 : 0;
  i.rexW = rexW;
  i.hasRex = rex !== 0;
  i.segOv = segOv;
  i.asz = asz;
  i.long = long;
  i.flags = 0;
  i.imm = 0; i.immHi = 0; i.imm2 = 0; i.sub = 0;
  i.mod = 3; i.reg = 0; i.rm = 0; i.reg8 = 0; i.rm8 = 0;
  i.base = -1; i.index = -1; i.scale = 0; i.disp = 0; i.eaKind = 0; i.seg = -1;

  // ---- ModRM / SIB / displacement
  const hasModrm = map === 0 ? MODRM0[b] === 1 : map === 1 ? MODRM1[b] === 1 : true;
  // MOV to/from CR/DR always name a register: the mod field is ignored.
  const crdr = map === 1 && b >= 0x20 && b <= 0x23;
  // VEX (C4/C5) in 64-bit mode, or with mod=3 in legacy modes: AVX is not offered, so #UD (length best effort).
  if (hasModrm) {
    if (p >= end) return avail < 15 ? 0 : tooLong(i);
    const m = buf[p++];
    const mod = m >> 6;
    const regf = (m >> 3) & 7;
    const rmf = m & 7;
    i.mod = mod;
    i.reg = regf | rexR;
    i.reg8 = rex !== 0 || regf < 4 ? regf | rexR : regf + 12;
    i.rm = rmf | rexB;
    i.rm8 = rex !== 0 || rmf < 4 ? rmf | rexB : rmf + 12;
    if (crdr) i.mod = 3;
    else if (mod !== 3) {
      let seg = 3; // DS
      if (asz === 2) {
        i.eaKind = EA.A16;
        if (mod === 0 && rmf === 6) {
          if (p + 2 > end) return avail < 15 ? 0 : tooLong(i);
          i.disp = buf[p] | (buf[p + 1] << 8); p += 2;
        } else {
          i.base = I16_BASE[rmf]; i.index = I16_INDEX[rmf];
          if (rmf === 2 || rmf === 3 || rmf === 6) seg = 2;
        }
        if (mod === 1) {
          if (p >= end) return avail < 15 ? 0 : tooLong(i);
          i.disp = (buf[p++] << 24) >> 24;
        } else if (mod === 2) {
          if (p + 2 > end) return avail < 15 ? 0 : tooLong(i);
          i.disp = (buf[p] | (buf[p + 1] << 8)) << 16 >> 16; p += 2;
        }
      } else {
        const wide = asz === 8;
        let base = -1, index = -1, scale = 0, dispBytes = mod === 1 ? 1 : mod === 2 ? 4 : 0;
        let ripRel = false;
        if (rmf === 4) {
          if (p >= end) return avail < 15 ? 0 : tooLong(i);
          const sib = buf[p++];
          scale = sib >> 6;
          const ix = ((sib >> 3) & 7) | rexX;
          if (ix !== 4) index = ix;
          const bs = sib & 7;
          if (bs === 5 && mod === 0) { dispBytes = 4; } else { base = bs | rexB; }
        } else if (rmf === 5 && mod === 0) {
          dispBytes = 4;
          if (long) ripRel = true;
        } else {
          base = rmf | rexB;
        }
        if (p + dispBytes > end) return avail < 15 ? 0 : tooLong(i);
        let disp = 0;
        if (dispBytes === 1) disp = (buf[p] << 24) >> 24;
        else if (dispBytes === 4) disp = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24);
        p += dispBytes;
        if (base === 4 || base === 5) seg = 2; // RSP/RBP-based: SS
        i.base = base; i.index = index; i.scale = scale; i.disp = disp;
        if (ripRel) { i.eaKind = wide ? EA.RIP64 : EA.RIP32; i.flags |= IF.RIPREL; }
        else if (wide) i.eaKind = base < 0 ? EA.I64 : index < 0 ? EA.B64 : EA.BI64;
        else i.eaKind = EA.A32;
      }
      if (segOv >= 0) seg = segOv;
      i.seg = long ? (segOv >= 4 ? segOv : -1) : seg;
    }
  }

  // ---- opcode semantics and immediates
  let fn: Handler = Y.opUD;
  let immKind = 0; // 0 none, 1 ib (sign-extended), 2 iw, 3 iz (osz, 4 max, sign-extended to 64), 4 iv (osz, 8 allowed), 5 ub (zero-extended)
  let end_ = false;
  const mod = i.mod;
  const regf = i.reg & 7;
  if (map === 0) {
    if (b < 0x40 && (b & 7) < 6) {
      i.sub = b >> 3;
      const form = b & 7;
      if ((form & 1) === 0) osz = 1;
      if (form < 2) fn = form === 1 && mod === 3 && i.sub !== 2 && i.sub !== 3 && (osz === 4 || osz === 8) ? (osz === 4 ? A.aluRR32 : A.aluRR64) : A.aluEG;
      else if (form < 4) fn = A.aluGE;
      else { fn = A.aluAI; immKind = form === 4 ? 1 : 3; }
      if (lock && (form !== 0 && form !== 1 || mod === 3 || i.sub === 7)) fn = Y.opUD;
    } else switch (b) {
      case 0x06: case 0x0e: case 0x16: case 0x1e:
        if (!long) { fn = C.pushSeg; i.sub = b >> 3; } break;
      case 0x07: case 0x17: case 0x1f:
        if (!long) { fn = C.popSeg; i.sub = b >> 3; end_ = true; } break;
      case 0x27: if (!long) fn = A.daa; break;
      case 0x2f: if (!long) fn = A.das; break;
      case 0x37: if (!long) fn = A.aaa; break;
      case 0x3f: if (!long) fn = A.aas; break;
      case 0x40: case 0x41: case 0x42: case 0x43: case 0x44: case 0x45: case 0x46: case 0x47:
      case 0x48: case 0x49: case 0x4a: case 0x4b: case 0x4c: case 0x4d: case 0x4e: case 0x4f:
        i.rm = b & 7; i.mod = 3; i.sub = (b >> 3) & 1; fn = A.incDec; break;
      case 0x50: case 0x51: case 0x52: case 0x53: case 0x54: case 0x55: case 0x56: case 0x57:
        i.rm = (b & 7) | rexB; osz = long ? (opPfx ? 2 : 8) : osz; fn = osz === 8 ? C.pushR64 : C.pushReg; break;
      case 0x58: case 0x59: case 0x5a: case 0x5b: case 0x5c: case 0x5d: case 0x5e: case 0x5f:
        i.rm = (b & 7) | rexB; osz = long ? (opPfx ? 2 : 8) : osz; fn = osz === 8 ? C.popR64 : C.popReg; break;
      case 0x60: if (!long) fn = C.pusha; break;
      case 0x61: if (!long) fn = C.popa; break;
      case 0x62: if (!long && mod !== 3) fn = C.bound; break;
      case 0x63:
        if (long) fn = D.movsxd; else if (!long && mode !== 0) { osz = 2; fn = Y.arpl; } break;
      case 0x68: osz = long ? (opPfx ? 2 : 8) : osz; immKind = 3; fn = C.pushImm; break;
      case 0x6a: osz = long ? (opPfx ? 2 : 8) : osz; immKind = 1; fn = C.pushImm; break;
      case 0x69: immKind = 3; fn = A.imul3; break;
      case 0x6b: immKind = 1; fn = A.imul3; break;
      case 0x6c: osz = 1; fn = S.ins; break;
      case 0x6d: if (osz === 8) osz = 4; fn = S.ins; break;
      case 0x6e: osz = 1; fn = S.outs; break;
      case 0x6f: if (osz === 8) osz = 4; fn = S.outs; break;
      case 0x70: case 0x71: case 0x72: case 0x73: case 0x74: case 0x75: case 0x76: case 0x77:
      case 0x78: case 0x79: case 0x7a: case 0x7b: case 0x7c: case 0x7d: case 0x7e: case 0x7f:
        i.sub = b & 15; immKind = 1; osz = long ? br64 : osz; fn = C.jcc; end_ = true; break;
      case 0x80: case 0x82: osz = 1; immKind = 1; i.sub = regf; fn = A.aluEI; if (b === 0x82 && long) fn = Y.opUD; break;
      case 0x81: immKind = 3; i.sub = regf; fn = aluEIForm(mod, regf, osz); break;
      case 0x83: immKind = 1; i.sub = regf; fn = aluEIForm(mod, regf, osz); break;
      case 0x84: osz = 1; fn = A.testEG; break;
      case 0x85: fn = A.testEG; break;
      case 0x86: osz = 1; fn = D.xchgEG; break;
      case 0x87: fn = D.xchgEG; break;
      case 0x88: osz = 1; fn = D.movEG; break;
      case 0x89: fn = mod === 3 && osz === 4 ? D.movRR32 : mod === 3 && osz === 8 ? D.movRR64 : D.movEG; break;
      case 0x8a: osz = 1; fn = D.movGE; break;
      case 0x8b: fn = mod === 3 && osz === 4 ? D.movRR32r : mod === 3 && osz === 8 ? D.movRR64r : osz === 8 ? D.movGE64 : osz === 4 ? D.movGE32 : D.movGE; break;
      case 0x8c: if (regf < 6) { fn = D.movFromSeg; if (mod !== 3) osz = 2; } break;
      case 0x8d: if (mod !== 3) fn = D.lea; break;
      case 0x8e: if (regf < 6 && regf !== 1) { osz = 2; fn = C.movToSeg; end_ = true; } break;
      case 0x8f: if (regf === 0) { osz = long ? (opPfx ? 2 : 8) : osz; fn = C.popRM; } break;
      case 0x90:
        if (rexB) { i.rm = 8; fn = D.xchgAcc; } else fn = rep === 0xf3 ? Y.pause : Y.nop; break;
      case 0x91: case 0x92: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97:
        i.rm = (b & 7) | rexB; fn = D.xchgAcc; break;
      case 0x98: fn = D.cbw; break;
      case 0x99: fn = D.cwd; break;
      case 0x9a: if (!long) { fn = C.callFarImm; i.imm = 0; immKind = 6; end_ = true; } break;
      case 0x9b: fn = Y.fwait; break;
      case 0x9c: osz = long ? (opPfx ? 2 : 8) : osz; fn = C.pushf; break;
      case 0x9d: osz = long ? (opPfx ? 2 : 8) : osz; fn = C.popf; end_ = true; break;
      case 0x9e: fn = A.sahf; break;
      case 0x9f: fn = A.lahf; break;
      case 0xa0: case 0xa1: case 0xa2: case 0xa3:
        if ((b & 1) === 0) osz = 1;
        immKind = 7; fn = b < 0xa2 ? D.movAccMoffs : D.movMoffsAcc; break;
      case 0xa4: osz = 1; fn = S.movs; break;
      case 0xa5: fn = S.movs; break;
      case 0xa6: osz = 1; fn = S.cmps; break;
      case 0xa7: fn = S.cmps; break;
      case 0xa8: osz = 1; immKind = 1; fn = A.testAI; break;
      case 0xa9: immKind = 3; fn = A.testAI; break;
      case 0xaa: osz = 1; fn = S.stos; break;
      case 0xab: fn = S.stos; break;
      case 0xac: osz = 1; fn = S.lods; break;
      case 0xad: fn = S.lods; break;
      case 0xae: osz = 1; fn = S.scas; break;
      case 0xaf: fn = S.scas; break;
      case 0xb0: case 0xb1: case 0xb2: case 0xb3: case 0xb4: case 0xb5: case 0xb6: case 0xb7:
        osz = 1; i.rm8 = rex !== 0 || (b & 7) < 4 ? (b & 7) | rexB : (b & 7) + 12; immKind = 5; fn = D.movRegImm; break;
      case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf:
        i.rm = (b & 7) | rexB; immKind = 4; fn = D.movRegImm; break;
      case 0xc0: osz = 1; immKind = 5; i.sub = regf; fn = A.shiftImm; break;
      case 0xc1: immKind = 5; i.sub = regf; fn = A.shiftImm; break;
      case 0xc2: immKind = 2; osz = long ? 8 : osz; fn = C.retImm; end_ = true; break;
      case 0xc3: osz = long ? 8 : osz; fn = C.ret; end_ = true; break;
      case 0xc4: case 0xc5:
        if (!long && mod !== 3) { fn = C.loadFarPtr; i.sub = b === 0xc4 ? 0 : 3; end_ = true; } break;
      case 0xc6: if (regf === 0) { osz = 1; immKind = 5; fn = D.movEI; } else if (m8(i) === 0xf8) immKind = 5; break;
      case 0xc7: if (regf === 0) { immKind = 3; fn = D.movEI; } else if (m8(i) === 0xf8) immKind = 3; break;
      case 0xc8: immKind = 8; osz = long ? (opPfx ? 2 : 8) : osz; fn = C.enter; break;
      case 0xc9: osz = long ? (opPfx ? 2 : 8) : osz; fn = C.leave; break;
      case 0xca: immKind = 2; fn = C.retFar; end_ = true; break;
      case 0xcb: fn = C.retFar; end_ = true; break;
      case 0xcc: fn = C.int3; end_ = true; break;
      case 0xcd: immKind = 5; fn = C.intN; end_ = true; break;
      case 0xce: if (!long) { fn = C.into; end_ = true; } break;
      case 0xcf: fn = C.iret; end_ = true; break;
      case 0xd0: osz = 1; i.sub = regf; fn = A.shift1; break;
      case 0xd1: i.sub = regf; fn = A.shift1; break;
      case 0xd2: osz = 1; i.sub = regf; fn = A.shiftCl; break;
      case 0xd3: i.sub = regf; fn = A.shiftCl; break;
      case 0xd4: immKind = 5; if (!long) fn = A.aam; break;
      case 0xd5: immKind = 5; if (!long) fn = A.aad; break;
      case 0xd6: if (!long) fn = A.salc; break;
      case 0xd7: fn = D.xlat; break;
      case 0xd8: case 0xd9: case 0xda: case 0xdb: case 0xdc: case 0xdd: case 0xde: case 0xdf:
        fn = Y.x87; break;
      case 0xe0: case 0xe1: case 0xe2:
        i.sub = b & 3; immKind = 1; osz = long ? 8 : osz; fn = C.loop; end_ = true; break;
      case 0xe3: immKind = 1; osz = long ? 8 : osz; fn = C.jcxz; end_ = true; break;
      case 0xe4: osz = 1; immKind = 5; fn = S.inImm; break;
      case 0xe5: if (osz === 8) osz = 4; immKind = 5; fn = S.inImm; break;
      case 0xe6: osz = 1; immKind = 5; fn = S.outImm; break;
      case 0xe7: if (osz === 8) osz = 4; immKind = 5; fn = S.outImm; break;
      case 0xe8: if (long) osz = br64; immKind = 9; fn = C.callRel; end_ = true; break;
      case 0xe9: if (long) osz = br64; immKind = 9; fn = C.jmpRel; end_ = true; break;
      case 0xea: if (!long) { fn = C.jmpFarImm; immKind = 6; end_ = true; } break;
      case 0xeb: if (long) osz = br64; immKind = 1; fn = C.jmpRel; end_ = true; break;
      case 0xec: osz = 1; fn = S.inDx; break;
      case 0xed: if (osz === 8) osz = 4; fn = S.inDx; break;
      case 0xee: osz = 1; fn = S.outDx; break;
      case 0xef: if (osz === 8) osz = 4; fn = S.outDx; break;
      case 0xf1: fn = C.int1; end_ = true; break;
      case 0xf4: fn = Y.hlt; end_ = true; break;
      case 0xf5: fn = A.cmc; break;
      case 0xf6: case 0xf7:
        if (b === 0xf6) osz = 1;
        i.sub = regf;
        if (regf < 2) { immKind = b === 0xf6 ? 5 : 3; fn = A.testEI; } else fn = A.group3;
        break;
      case 0xf8: fn = A.clc; break;
      case 0xf9: fn = A.stc; break;
      case 0xfa: fn = Y.cli; end_ = true; break;
      case 0xfb: fn = Y.sti; end_ = true; break;
      case 0xfc: fn = A.cld; break;
      case 0xfd: fn = A.std; break;
      case 0xfe:
        osz = 1; if (regf < 2) { i.sub = regf; fn = A.incDec; } break;
      case 0xff:
        i.sub = regf;
        switch (regf) {
          case 0: case 1: fn = A.incDec; break;
          case 2: if (long) osz = 8; fn = C.callInd; end_ = true; break;
          case 3: if (mod !== 3) { fn = C.callFarInd; end_ = true; } break;
          case 4: if (long) osz = 8; fn = C.jmpInd; end_ = true; break;
          case 5: if (mod !== 3) { fn = C.jmpFarInd; end_ = true; } break;
          case 6: if (long) osz = opPfx ? 2 : 8; fn = C.pushRM; break;
        }
        break;
    }
  } else if (map === 1) {
    switch (b) {
      case 0x00: osz = 2; fn = Y.group6; end_ = true; break;
      case 0x01: fn = Y.group7; end_ = true; break;
      case 0x02: fn = Y.lar; break;
      case 0x03: fn = Y.lsl; break;
      case 0x05: if (long || mode === 2) { fn = Y.syscall; end_ = true; } break;
      case 0x06: fn = Y.clts; end_ = true; break;
      case 0x07: if (long || mode === 2) { fn = Y.sysret; end_ = true; } break;
      case 0x08: case 0x09: fn = Y.wbinvd; break;
      case 0x0b: fn = Y.ud2; break;
      case 0x0d: if (mod !== 3) fn = Y.nop; break; // prefetch/prefetchw
      case 0x18: fn = mod !== 3 ? Y.nop : Y.nop; break; // prefetch hints / reserved NOPs
      case 0x19: case 0x1a: case 0x1b: case 0x1c: case 0x1d: case 0x1e: case 0x1f: fn = Y.nop; break;
      case 0x20: case 0x22: fn = b === 0x20 ? Y.movFromCr : Y.movToCr; end_ = true; break;
      case 0x21: case 0x23: fn = b === 0x21 ? Y.movFromDr : Y.movToDr; end_ = true; break;
      case 0x30: fn = Y.wrmsr; end_ = true; break;
      case 0x31: fn = Y.rdtsc; break;
      case 0x32: fn = Y.rdmsr; break;
      case 0x33: fn = Y.rdpmc; break;
      case 0x34: fn = Y.sysenter; end_ = true; break;
      case 0x35: fn = Y.sysexit; end_ = true; break;
      case 0x40: case 0x41: case 0x42: case 0x43: case 0x44: case 0x45: case 0x46: case 0x47:
      case 0x48: case 0x49: case 0x4a: case 0x4b: case 0x4c: case 0x4d: case 0x4e: case 0x4f:
        i.sub = b & 15; fn = D.cmov; break;
      case 0x80: case 0x81: case 0x82: case 0x83: case 0x84: case 0x85: case 0x86: case 0x87:
      case 0x88: case 0x89: case 0x8a: case 0x8b: case 0x8c: case 0x8d: case 0x8e: case 0x8f:
        i.sub = b & 15; immKind = 9; if (long) osz = br64; fn = C.jcc; end_ = true; break;
      case 0x90: case 0x91: case 0x92: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97:
      case 0x98: case 0x99: case 0x9a: case 0x9b: case 0x9c: case 0x9d: case 0x9e: case 0x9f:
        i.sub = b & 15; osz = 1; fn = D.setcc; break;
      case 0xa0: case 0xa8: osz = long ? (opPfx ? 2 : 8) : osz; i.sub = b === 0xa0 ? 4 : 5; fn = C.pushSeg; break;
      case 0xa1: case 0xa9: osz = long ? (opPfx ? 2 : 8) : osz; i.sub = b === 0xa1 ? 4 : 5; fn = C.popSeg; end_ = true; break;
      case 0xa2: fn = Y.cpuid; break;
      case 0xa3: i.sub = 0; fn = A.btG; break;
      case 0xab: i.sub = 1; fn = A.btG; break;
      case 0xb3: i.sub = 2; fn = A.btG; break;
      case 0xbb: i.sub = 3; fn = A.btG; break;
      case 0xba: if (regf >= 4) { i.sub = regf - 4; immKind = 5; fn = A.btI; } break;
      case 0xa4: immKind = 5; i.sub = 0; fn = A.shld; break;
      case 0xa5: i.sub = 1; fn = A.shld; break;
      case 0xac: immKind = 5; i.sub = 0; fn = A.shrd; break;
      case 0xad: i.sub = 1; fn = A.shrd; break;
      case 0xae: fn = groupAE(i, mod, regf, rep, opPfx); break;
      case 0xaf: fn = A.imul2; break;
      case 0xb0: osz = 1; fn = A.cmpxchg; break;
      case 0xb1: fn = A.cmpxchg; break;
      case 0xb2: case 0xb4: case 0xb5:
        if (mod !== 3) { fn = C.loadFarPtr; i.sub = b === 0xb2 ? 2 : b === 0xb4 ? 4 : 5; end_ = true; } break;
      case 0xb6: fn = D.movzx8; break;
      case 0xb7: fn = D.movzx16; break;
      case 0xbe: fn = D.movsx8; break;
      case 0xbf: fn = D.movsx16; break;
      case 0xb9: fn = Y.ud2; break; // UD1
      case 0xbc: fn = A.bsf; break;
      case 0xbd: fn = A.bsr; break;
      case 0xc0: osz = 1; fn = A.xadd; break;
      case 0xc1: fn = A.xadd; break;
      case 0xc7: if (regf === 1 && mod !== 3) fn = rexW ? A.cmpxchg16b : A.cmpxchg8b; break;
      case 0xc8: case 0xc9: case 0xca: case 0xcb: case 0xcc: case 0xcd: case 0xce: case 0xcf:
        i.rm = (b & 7) | rexB; fn = A.bswap; break;
      case 0x0f: immKind = 5; break; // 3DNow!: not offered
      default:
        if (isSimd0F(b)) {
          fn = Y.sse;
          if (b >= 0x70 && b <= 0x73 || b === 0xc2 || b >= 0xc4 && b <= 0xc6) immKind = 5;
        }
    }
    // LOCK is valid only on read-modify-write memory forms
    if (lock && !(mod !== 3 && (b === 0xab || b === 0xb3 || b === 0xbb || (b === 0xba && regf >= 5) || b === 0xb0 || b === 0xb1 || b === 0xc0 || b === 0xc1 || b === 0xc7))) fn = Y.opUD;
  } else {
    fn = Y.sse;
    if (map === 3) immKind = 5;
  }
  if (lock && map === 0 && !(b < 0x40 || b === 0x80 || b === 0x81 || b === 0x83 || b === 0x86 || b === 0x87 || ((b === 0xf6 || b === 0xf7) && (regf === 2 || regf === 3)) || ((b === 0xfe || b === 0xff) && regf < 2))) fn = Y.opUD;
  if (lock && map === 0 && (mod === 3 || (b === 0x80 || b === 0x81 || b === 0x83) && regf === 7)) fn = Y.opUD;

  // ---- immediates
  switch (immKind) {
    case 0: break;
    case 1: if (p >= end) return need(i, avail); i.imm = (buf[p++] << 24) >> 24; i.immHi = i.imm >> 31; break;
    case 5: if (p >= end) return need(i, avail); i.imm = buf[p++]; break;
    case 2: if (p + 2 > end) return need(i, avail); i.imm = buf[p] | (buf[p + 1] << 8); p += 2; break;
    case 3:
      if (osz === 2) { if (p + 2 > end) return need(i, avail); i.imm = buf[p] | (buf[p + 1] << 8); p += 2; }
      else if (osz === 1) { if (p >= end) return need(i, avail); i.imm = buf[p++]; }
      else { if (p + 4 > end) return need(i, avail); i.imm = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24); p += 4; i.immHi = i.imm >> 31; }
      break;
    case 9: // relative displacement: rel16 with 16-bit operand size outside long mode, else rel32
      if (osz === 2) { if (p + 2 > end) return need(i, avail); i.imm = (buf[p] | (buf[p + 1] << 8)) << 16 >> 16; p += 2; }
      else { if (p + 4 > end) return need(i, avail); i.imm = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24); p += 4; }
      break;
    case 4:
      if (osz === 2) { if (p + 2 > end) return need(i, avail); i.imm = buf[p] | (buf[p + 1] << 8); p += 2; }
      else if (osz === 4) { if (p + 4 > end) return need(i, avail); i.imm = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24); p += 4; }
      else {
        if (p + 8 > end) return need(i, avail);
        i.imm = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24);
        i.immHi = buf[p + 4] | (buf[p + 5] << 8) | (buf[p + 6] << 16) | (buf[p + 7] << 24); p += 8;
      }
      break;
    case 6: { // far pointer: offset (2 or 4 bytes) then selector
      const ob = osz === 2 ? 2 : 4;
      if (p + ob + 2 > end) return need(i, avail);
      i.imm = ob === 2 ? buf[p] | (buf[p + 1] << 8) : (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)) >>> 0;
      p += ob;
      i.imm2 = buf[p] | (buf[p + 1] << 8); p += 2;
      break;
    }
    case 7: { // moffs: address-size offset
      if (p + asz > end) return need(i, avail);
      const lo = buf[p] | (buf[p + 1] << 8) | (asz >= 4 ? (buf[p + 2] << 16) | (buf[p + 3] << 24) : 0);
      const hi = asz === 8 ? buf[p + 4] | (buf[p + 5] << 8) | (buf[p + 6] << 16) | (buf[p + 7] << 24) : 0;
      p += asz;
      i.disp = hi * 4294967296 + (lo >>> 0);
      i.eaKind = asz === 8 ? EA.I64 : asz === 4 ? EA.A32 : EA.A16;
      i.mod = 0;
      const seg = segOv >= 0 ? segOv : 3;
      i.seg = long ? (segOv >= 4 ? segOv : -1) : seg;
      break;
    }
    case 8: // enter: iw, ib
      if (p + 3 > end) return need(i, avail);
      i.imm = buf[p] | (buf[p + 1] << 8); i.imm2 = buf[p + 2]; p += 3;
      break;
  }
  // A rep string instruction may stop early and run again (RIP unchanged), so it ends its block.
  if (rep !== 0 && map === 0 && ((b >= 0xa4 && b <= 0xa7) || (b >= 0xaa && b <= 0xaf) || (b >= 0x6c && b <= 0x6f))) end_ = true;
  i.osz = osz;
  i.opsize = osz === 8 ? 64 : osz === 2 ? 16 : 32;
  i.imm8 = i.imm & 0xff;
  i.fn = fn;
  if (end_) {
    i.flags |= IF.END;
    const nearBranch = fn === C.jcc || fn === C.jmpRel || fn === C.callRel || fn === C.jmpInd || fn === C.callInd ||
      fn === C.ret || fn === C.retImm || fn === C.loop || fn === C.jcxz;
    // rep string forms end blocks only to restart; their port and MMIO accesses raise irqCheck themselves.
    const repString = rep !== 0 && map === 0 && ((b >= 0xa4 && b <= 0xa7) || (b >= 0xaa && b <= 0xaf) || (b >= 0x6c && b <= 0x6f));
    if (!nearBranch && !repString) i.flags |= IF.SYS;
  }
  i.len = p - off;
  return i.len;
}

/** Group 1 with an immediate: register destinations of 32/64 bits (not adc/sbb) get the size-free handlers. */
function aluEIForm(mod: number, regf: number, osz: number): Handler {
  if (mod !== 3 || regf === 2 || regf === 3 || (osz !== 4 && osz !== 8)) return A.aluEI;
  return osz === 4 ? A.aluRI32 : A.aluRI64;
}

function m8(i: Insn): number { return (i.mod << 6) | ((i.reg & 7) << 3) | (i.rm & 7); }

function need(i: Insn, avail: number): number {
  return avail < 15 ? 0 : tooLong(i);
}

function tooLong(i: Insn): number {
  i.fn = Y.opGP; i.len = 15; i.flags = IF.END;
  return 15;
}

function groupAE(i: Insn, mod: number, regf: number, rep: number, opPfx: boolean): Handler {
  if (mod === 3) {
    if (rep !== 0 || opPfx) return Y.opUD; // RDFSBASE & co.: FSGSBASE not offered
    if (regf >= 5) return Y.nop; // lfence mfence sfence
    return Y.opUD;
  }
  switch (regf) {
    case 0: case 1: return rep === 0 && !opPfx ? Y.fxsaveRstor : Y.opUD;
    case 2: case 3: return rep === 0 && !opPfx ? Y.sse : Y.opUD; // ldmxcsr / stmxcsr
    case 7: return rep === 0 ? Y.clflush : Y.opUD; // clflush / clflushopt
    default: return Y.opUD; // xsave family: not offered
  }
}
