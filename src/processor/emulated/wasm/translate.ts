/**
 * Block translator to WebAssembly: one decoded long-mode block becomes one wasm function
 * `(rip: f64, budget: i32, n: i32) -> retired: i32` in a batch module (runtime.ts). It keeps the contract
 * jit.ts documents: the block runs to its end and leaves RIP (state page RIP slot) at the next instruction; a
 * store that invalidates cached code stops it after that instruction; a self-loop repeats within `budget`;
 * before anything that can fault, registers and flags are in their architectural places and the JS side sets
 * cpu.rip from the instruction offset it is passed. A direct exit to the same page tail-calls the target's
 * table slot (chaining) while the budget allows a whole block; `n` counts what the chain retired so far.
 *
 * Registers, flags and memory operands: block-fn.ts. Anything not translated here calls its ordinary handler
 * through an import (state written back first, reloaded after).
 */
import { Code, ModuleBuilder, Op, T } from './emitter.js';
import { EA, type Insn } from '../decoder.js';
import type { Block } from '../block-cache.js';
import * as A from '../exec-alu.js';
import * as D from '../exec-data.js';
import * as C from '../exec-ctrl.js';
import * as Y from '../exec-system.js';
import { CC_AUX, CC_OP, CC_RES, CC_VALID, LOOP_N, RIP, STOP } from './state.js';
import { Fn, Imp, K_ADC, K_DEC, K_INC, K_LOGIC, K_RESCO, K_SBB, K_SUB, K_ADD, P_BUDGET, P_N, P_RIP, RS, SIDX, maskHi, maskLo, type WasmLayout } from './block-fn.js';

export { IMPORTS, declareImports, type WasmLayout } from './block-fn.js';

/** Result of translating one instruction inline. */
const enum Out { NO = 0, NONE = 1, STORE = 2, BRANCH = 3 }

/** ALU sub-operations that overwrite every flag without reading one (adc/sbb read CF). */
const ALU_OPS = [0, 1, 4, 5, 6, 7];
const ALU_ALL = [0, 1, 2, 3, 4, 5, 6, 7];

/** Compute tR = tA op tB at size s (tA, tB zero-extended). */
function aluCompute(f: Fn, op: number, s: number): void {
  const c = f.c;
  c.get(f.tA).get(f.tB);
  switch (op) {
    case 0: c.op(Op.I64Add); break;
    case 1: c.op(Op.I64Or); break;
    case 4: c.op(Op.I64And); break;
    case 6: c.op(Op.I64Xor); break;
    case 2: c.op(Op.I64Add).get(f.t32).op(Op.I64ExtendI32U, Op.I64Add); break; // adc: carry-in in t32
    case 3: c.op(Op.I64Sub).get(f.t32).op(Op.I64ExtendI32U, Op.I64Sub); break; // sbb
    default: c.op(Op.I64Sub); break;
  }
  if (s !== 8 && op !== 1 && op !== 4 && op !== 6) c.i64(maskLo(s), maskHi(s)).op(Op.I64And);
  c.set(f.tR);
}
function aluKind(op: number): number { return op === 0 ? K_ADD : op === 2 ? K_ADC : op === 3 ? K_SBB : op === 5 || op === 7 ? K_SUB : K_LOGIC; }

/** Push the zero-extended immediate of size s. */
function imm(f: Fn, i: Insn, s: number): void {
  if (s === 8) f.c.i64(i.imm, i.immHi);
  else f.c.i64(i.imm & maskLo(s), 0);
}

/** Register code of the r/m (byte registers use rm8) and of reg. */
const rmOf = (i: Insn, s: number): number => (s === 1 ? i.rm8 : i.rm);
const regOf = (i: Insn, s: number): number => (s === 1 ? i.reg8 : i.reg);

/** Translate one instruction at byte offset `off` (`end` after it). */
function insn(f: Fn, i: Insn, off: number, end: number, flagsDead: boolean): Out {
  const c = f.c, fn = i.fn, s = i.osz, mem = i.mod !== 3;
  if (mem && !eaOk(i) && fn !== D.lea) return Out.NO;
  // ---- moves
  if ((fn === D.movRR64 || fn === D.movRR32) && (s === 8 || s === 4)) { f.regSized(i.reg, s); f.setRegSized(i.rm, s); return Out.NONE; }
  if ((fn === D.movRR64r || fn === D.movRR32r) && (s === 8 || s === 4)) { f.regSized(i.rm, s); f.setRegSized(i.reg, s); return Out.NONE; }
  if ((fn === D.movGE64 || fn === D.movGE32) && (s === 8 || s === 4)) {
    if (!f.ea(i, end)) return Out.NO;
    f.load(s, off); f.setReg(i.reg); return Out.NONE;
  }
  if (fn === D.movGE && (s === 1 || s === 2)) {
    if (!mem) f.regSized(rmOf(i, s), s); else { if (!f.ea(i, end)) return Out.NO; f.load(s, off); }
    f.setRegSized(regOf(i, s), s); return Out.NONE;
  }
  if (fn === D.movEG && !mem && (s === 1 || s === 2)) { f.regSized(regOf(i, s), s); f.setRegSized(rmOf(i, s), s); return Out.NONE; }
  if (fn === D.movEI && (s === 1 || s === 2)) {
    if (!mem) { imm(f, i, s); f.setRegSized(rmOf(i, s), s); return Out.NONE; }
    f.store(s, off, () => f.ea(i, end), () => imm(f, i, s));
    return Out.STORE;
  }
  if (fn === D.movEG && mem) {
    if (!eaOk(i)) return Out.NO;
    f.store(s, off, () => f.ea(i, end), () => f.regSized(regOf(i, s), s));
    return Out.STORE;
  }
  if ((fn === D.movEI || fn === D.movRegImm) && (s === 8 || s === 4)) {
    if (fn === D.movRegImm || !mem) { imm(f, i, s); f.setReg(i.rm); return Out.NONE; }
    if (!eaOk(i)) return Out.NO;
    f.store(s, off, () => f.ea(i, end), () => imm(f, i, s));
    return Out.STORE;
  }
  if (fn === D.lea && (s === 8 || s === 4) && (i.eaKind === EA.B64 || i.eaKind === EA.BI64 || i.eaKind === EA.RIP64 || i.eaKind === EA.I64)) {
    if (i.eaKind === EA.RIP64) { f.rip(end + i.disp); c.op(Op.I64TruncF64S); } else {
      if (i.eaKind === EA.I64 && i.index < 0) c.i64s(i.disp);
      else {
        if (i.eaKind !== EA.I64) f.reg(i.base);
        if (i.eaKind !== EA.B64) { f.reg(i.index); if (i.scale) c.i64s(i.scale).op(Op.I64Shl); if (i.eaKind === EA.BI64) c.op(Op.I64Add); }
        if (i.disp !== 0) c.i64s(i.disp).op(Op.I64Add);
      }
    }
    if (s === 4) c.i64(-1, 0).op(Op.I64And);
    f.setReg(i.reg);
    return Out.NONE;
  }
  if ((fn === D.movzx8 || fn === D.movzx16 || fn === D.movsx8 || fn === D.movsx16) && (s === 8 || s === 4)) {
    const byte = fn === D.movzx8 || fn === D.movsx8, from = byte ? 1 : 2;
    if (!mem) f.regSized(byte ? i.rm8 : i.rm, from);
    else { if (!f.ea(i, end)) return Out.NO; f.load(from, off); }
    if (fn === D.movsx8 || fn === D.movsx16) {
      c.op(byte ? Op.I64Extend8S : Op.I64Extend16S);
      if (s === 4) c.i64(-1, 0).op(Op.I64And);
    }
    f.setReg(i.reg);
    return Out.NONE;
  }
  if (fn === D.movsxd && s === 8) {
    if (!mem) f.regSized(i.rm, 4); else { if (!f.ea(i, end)) return Out.NO; f.load(4, off); }
    c.op(Op.I64Extend32S); f.setReg(i.reg);
    return Out.NONE;
  }
  // ---- ALU
  let afn = fn;
  if (fn === A.aluRR32 || fn === A.aluRR64) afn = A.aluEG;
  if (fn === A.aluRI32 || fn === A.aluRI64) afn = A.aluEI;
  const op = i.sub;
  if ((afn === A.aluEG || afn === A.aluGE || afn === A.aluEI || afn === A.aluAI) && ALU_ALL.includes(op)) {
    if (op === 2 || op === 3) { f.carry(); c.set(f.t32); }
    if (afn === A.aluAI || afn === A.aluGE || !mem) {
      const dst = afn === A.aluAI ? 0 : afn === A.aluGE ? regOf(i, s) : rmOf(i, s);
      f.regSized(dst, s); c.set(f.tA);
      if (afn === A.aluGE) {
        if (!mem) f.regSized(rmOf(i, s), s); else { if (!f.ea(i, end)) return Out.NO; f.load(s, off); }
      } else if (afn === A.aluEG) f.regSized(regOf(i, s), s);
      else imm(f, i, s);
      c.set(f.tB);
      aluCompute(f, op, s);
      if (op !== 7) { c.get(f.tR); f.setRegSized(dst, s); }
      f.setFlags(aluKind(op), s);
      if (op === 2 || op === 3) c.get(f.t32).set(f.fAux);
      return Out.NONE;
    }
    if (!eaOk(i)) return Out.NO;
    f.ea(i, end); f.load(s, off); c.set(f.tA); // load() leaves the address in tE
    if (afn === A.aluEG) f.regSized(regOf(i, s), s); else imm(f, i, s);
    c.set(f.tB);
    aluCompute(f, op, s);
    if (op !== 7) f.store(s, off, () => c.get(f.tE), () => c.get(f.tR));
    f.setFlags(aluKind(op), s);
    if (op === 2 || op === 3) c.get(f.t32).set(f.fAux);
    return op !== 7 ? Out.STORE : Out.NONE;
  }
  if (fn === A.testEG || fn === A.testAI || fn === A.testEI) {
    if (fn === A.testAI) f.regSized(0, s);
    else if (!mem) f.regSized(rmOf(i, s), s);
    else { if (!f.ea(i, end)) return Out.NO; f.load(s, off); }
    if (fn === A.testEG) f.regSized(regOf(i, s), s); else imm(f, i, s);
    c.op(Op.I64And).set(f.tR);
    f.setFlags(K_LOGIC, s);
    return Out.NONE;
  }
  if (fn === A.incDec && (i.sub === 0 || i.sub === 1)) {
    // CF is kept: it becomes the record's aux (flags.ts INC/DEC).
    const dec = i.sub === 1;
    f.carry(); c.set(f.t32);
    if (!mem) f.regSized(rmOf(i, s), s); else { f.ea(i, end); f.load(s, off); }
    c.set(f.tA);
    c.i64s(1).set(f.tB);
    aluCompute(f, dec ? 5 : 0, s);
    if (!mem) { c.get(f.tR); f.setRegSized(rmOf(i, s), s); } else f.store(s, off, () => c.get(f.tE), () => c.get(f.tR));
    f.setFlags(dec ? K_DEC : K_INC, s);
    c.get(f.t32).set(f.fAux);
    return mem ? Out.STORE : Out.NONE;
  }
  if (fn === A.bswap && (s === 8 || s === 4)) {
    if (s === 8) {
      f.reg(i.rm); c.set(f.tA);
      c.get(f.tA).i64s(8).op(Op.I64ShrU).i64(0x00ff00ff, 0x00ff00ff).op(Op.I64And).get(f.tA).i64(0x00ff00ff, 0x00ff00ff).op(Op.I64And).i64s(8).op(Op.I64Shl, Op.I64Or).set(f.tA);
      c.get(f.tA).i64s(16).op(Op.I64ShrU).i64(0x0000ffff, 0x0000ffff).op(Op.I64And).get(f.tA).i64(0x0000ffff, 0x0000ffff).op(Op.I64And).i64s(16).op(Op.I64Shl, Op.I64Or);
      c.i64s(32).op(Op.I64Rotl);
    } else {
      f.reg(i.rm); c.op(Op.I32WrapI64).set(f.t32);
      c.get(f.t32).i32(8).op(Op.I32ShrU).i32(0x00ff00ff).op(Op.I32And).get(f.t32).i32(0x00ff00ff).op(Op.I32And).i32(8).op(Op.I32Shl, Op.I32Or);
      c.i32(16).op(Op.I32Rotl, Op.I64ExtendI32U);
    }
    f.setReg(i.rm);
    return Out.NONE;
  }
  if (fn === A.group3 && !mem && (s === 8 || s === 4) && (i.sub === 2 || i.sub === 3)) {
    if (i.sub === 2) { f.regSized(i.rm, s); c.i64(maskLo(s), maskHi(s)).op(Op.I64Xor); f.setReg(i.rm); return Out.NONE; }
    c.i64s(0).set(f.tA); f.regSized(i.rm, s); c.set(f.tB);
    aluCompute(f, 5, s);
    c.get(f.tR); f.setReg(i.rm);
    f.setFlags(K_SUB, s);
    return Out.NONE;
  }
  const shiftN = fn === A.shift1 ? 1 : i.imm & (s === 8 ? 63 : 31);
  if ((fn === A.shiftImm || fn === A.shift1) && !mem && (s === 8 || s === 4) && i.sub >= 4) {
    const n = shiftN;
    if (n === 0) return Out.NO;
    const shl = i.sub === 4 || i.sub === 6, shr = i.sub === 5;
    const B = s * 8;
    f.regSized(i.rm, s); c.set(f.tA);
    if (shl) c.get(f.tA).i64s(n).op(Op.I64Shl);
    else if (shr) c.get(f.tA).i64s(n).op(Op.I64ShrU);
    else { c.get(f.tA); if (s === 4) c.op(Op.I64Extend32S); c.i64s(n).op(Op.I64ShrS); }
    if (s === 4) c.i64(-1, 0).op(Op.I64And);
    c.set(f.tR);
    c.get(f.tR); f.setReg(i.rm);
    if (!flagsDead) {
      // cf | of << 1
      if (shl) c.get(f.tA).i64s(B - n).op(Op.I64ShrU);
      else if (shr) c.get(f.tA).i64s(n - 1).op(Op.I64ShrU);
      else { c.get(f.tA); if (s === 4) c.op(Op.I64Extend32S); c.i64s(n - 1).op(Op.I64ShrS); }
      c.op(Op.I32WrapI64).i32(1).op(Op.I32And).set(f.t32);
      if (shl) c.get(f.tR).i64s(B - 1).op(Op.I64ShrU, Op.I32WrapI64).get(f.t32).op(Op.I32Xor);
      else if (shr) c.get(f.tA).i64s(B - 1).op(Op.I64ShrU, Op.I32WrapI64);
      else c.i32(0);
      c.i32(1).op(Op.I32Shl).get(f.t32).op(Op.I32Or).set(f.fAux);
      f.setFlags(K_RESCO, s);
    } else f.fKind = -2; // dead: nothing can observe them before the next full writer
    return Out.NONE;
  }
  if ((fn === A.shiftImm || fn === A.shift1) && !mem && (s === 8 || s === 4) && (i.sub === 0 || i.sub === 1)) {
    const n = shiftN, B = s * 8;
    if (s === 8) { if (n !== 0) { f.reg(i.rm); c.i64s(n).op(i.sub === 0 ? Op.I64Rotl : Op.I64Rotr); f.setReg(i.rm); } }
    else { f.reg(i.rm); c.op(Op.I32WrapI64).i32(n).op(i.sub === 0 ? Op.I32Rotl : Op.I32Rotr, Op.I64ExtendI32U); f.setReg(i.rm); }
    if (n === 0) return Out.NONE;
    if (flagsDead) { f.fKind = -2; return Out.NONE; }
    // Only CF and OF change: rol CF = bit 0, OF = msb ^ CF; ror CF = msb, OF = msb ^ next bit.
    f.reg(i.rm); c.set(f.tR);
    const bitOf = (k: number): void => { c.get(f.tR).i64s(k).op(Op.I64ShrU, Op.I32WrapI64).i32(1).op(Op.I32And); };
    if (i.sub === 0) { bitOf(0); c.set(f.t32); bitOf(B - 1); c.get(f.t32).op(Op.I32Xor); }
    else { bitOf(B - 1); c.set(f.t32); bitOf(B - 1); bitOf(B - 2); c.op(Op.I32Xor); }
    c.set(f.t32b); // OF
    f.bits(); c.i32(~0x801).op(Op.I32And).get(f.t32).op(Op.I32Or).get(f.t32b).i32(11).op(Op.I32Shl, Op.I32Or);
    f.setFlagBits();
    return Out.NONE;
  }
  if (fn === A.shiftCl && !mem && (s === 8 || s === 4) && i.sub >= 4) {
    // Count 0 changes nothing (a 32-bit destination is still zero-extended): flags are only known at run time,
    // so a live record goes to the state page now and the new one is written there when the count is not 0.
    const shl = i.sub === 4 || i.sub === 6, shr = i.sub === 5, B = s * 8;
    f.reg(1); c.op(Op.I32WrapI64).i32(B - 1).op(Op.I32And).set(f.t32b);
    f.regSized(i.rm, s); c.set(f.tA);
    const shift = (count: () => void): void => {
      if (shl) { c.get(f.tA); count(); c.op(Op.I64Shl); }
      else if (shr) { c.get(f.tA); count(); c.op(Op.I64ShrU); }
      else { c.get(f.tA); if (s === 4) c.op(Op.I64Extend32S); count(); c.op(Op.I64ShrS); }
      if (s === 4) c.i64(-1, 0).op(Op.I64And);
    };
    shift(() => c.get(f.t32b).op(Op.I64ExtendI32U));
    c.set(f.tR);
    c.get(f.tR); f.setReg(i.rm);
    if (flagsDead) { f.fKind = -2; return Out.NONE; }
    f.flushFlags(true);
    c.get(f.t32b).if();
    if (shl) c.get(f.tA).i64s(B).get(f.t32b).op(Op.I64ExtendI32U, Op.I64Sub, Op.I64ShrU);
    else if (shr) c.get(f.tA).get(f.t32b).i32(1).op(Op.I32Sub, Op.I64ExtendI32U, Op.I64ShrU);
    else { c.get(f.tA); if (s === 4) c.op(Op.I64Extend32S); c.get(f.t32b).i32(1).op(Op.I32Sub, Op.I64ExtendI32U, Op.I64ShrS); }
    c.op(Op.I32WrapI64).i32(1).op(Op.I32And).set(f.t32);
    if (shl) c.get(f.tR).i64s(B - 1).op(Op.I64ShrU, Op.I32WrapI64).get(f.t32).op(Op.I32Xor);
    else if (shr) c.get(f.tA).i64s(B - 1).op(Op.I64ShrU, Op.I32WrapI64);
    else c.i32(0);
    c.i32(1).op(Op.I32Shl).get(f.t32).op(Op.I32Or).set(f.fAux);
    c.i32(0).i32((K_RESCO << 2) | SIDX[s]).i32Store(f.B + CC_OP);
    c.i32(0).get(f.tR).i64Store(f.B + CC_RES);
    c.i32(0).get(f.fAux).i32Store(f.B + CC_AUX);
    c.i32(0).i32(1).i32Store(f.B + CC_VALID);
    c.end();
    f.fKind = -1; f.fDirty = false;
    return Out.NONE;
  }
  if ((fn === A.imul2 || fn === A.imul3) && (s === 8 || s === 4)) {
    if (fn === A.imul2) {
      if (!mem) f.regSized(i.rm, s); else { if (!f.ea(i, end)) return Out.NO; f.load(s, off); }
      c.set(f.tB); f.regSized(i.reg, s); c.set(f.tA);
    } else {
      if (!mem) f.regSized(i.rm, s); else { if (!f.ea(i, end)) return Out.NO; f.load(s, off); }
      c.set(f.tA); c.i64(i.imm, s === 8 ? i.immHi : i.imm >> 31).set(f.tB);
    }
    if (s === 4) {
      c.get(f.tA).op(Op.I64Extend32S).get(f.tB).op(Op.I64Extend32S).op(Op.I64Mul).set(f.tR); // exact product
      c.get(f.tR).get(f.tR).op(Op.I64Extend32S).op(Op.I64Ne).set(f.t32);
      c.get(f.tR).i64(-1, 0).op(Op.I64And).set(f.tR);
    } else {
      c.get(f.tA).get(f.tB).op(Op.I64Mul).set(f.tR);
      if (!flagsDead) {
        // Overflow iff a != 0 and (a == -1 ? b == MIN : r / a != b) (the quotient is exact when nothing overflowed).
        c.get(f.tA).op(Op.I64Eqz).if(T.I32).i32(0).else();
        c.get(f.tA).i64s(-1).op(Op.I64Eq).if(T.I32).get(f.tB).i64(0, 0x80000000 | 0).op(Op.I64Eq);
        c.else().get(f.tR).get(f.tA).op(Op.I64DivS).get(f.tB).op(Op.I64Ne).end();
        c.end().set(f.t32);
      }
    }
    c.get(f.tR); f.setReg(i.reg);
    if (!flagsDead) { c.get(f.t32).i32(3).op(Op.I32Mul).set(f.fAux); f.setFlags(K_RESCO, s); } else f.fKind = -2;
    return Out.NONE;
  }
  // ---- setcc / cmov
  if (fn === D.setcc) {
    if (mem) {
      if (!eaOk(i)) return Out.NO;
      f.cond(i.sub); c.set(f.t32b);
      f.store(1, off, () => f.ea(i, end), () => c.get(f.t32b).op(Op.I64ExtendI32U));
      return Out.STORE;
    }
    f.cond(i.sub); c.op(Op.I64ExtendI32U); f.setRegSized(i.rm8, 1);
    return Out.NONE;
  }
  if (fn === D.cmov && (s === 8 || s === 4)) {
    if (!mem) f.regSized(i.rm, s); else { if (!f.ea(i, end)) return Out.NO; f.load(s, off); }
    f.regSized(i.reg, s);
    f.cond(i.sub); c.select(); f.setReg(i.reg);
    return Out.NONE;
  }
  // ---- stack and control transfer (64-bit)
  if ((fn === C.pushReg || fn === C.pushR64) && s === 8) {
    f.store(8, off, () => { f.reg(4); c.i64s(-8).op(Op.I64Add); }, () => f.reg(i.rm));
    f.reg(4); c.i64s(-8).op(Op.I64Add); f.setReg(4);
    return Out.STORE;
  }
  if ((fn === C.popReg || fn === C.popR64) && s === 8) {
    f.reg(4); f.load(8, off); c.set(f.tR);
    f.reg(4); c.i64s(8).op(Op.I64Add); f.setReg(4);
    c.get(f.tR); f.setReg(i.rm);
    return Out.NONE;
  }
  if (fn === C.callRel && s === 8) {
    f.store(8, off, () => { f.reg(4); c.i64s(-8).op(Op.I64Add); }, () => { f.rip(end); c.op(Op.I64TruncF64S); });
    f.reg(4); c.i64s(-8).op(Op.I64Add); f.setReg(4);
    return Out.BRANCH;
  }
  if (fn === C.ret && s === 8) {
    f.reg(4); f.load(8, off); c.set(f.tR);
    f.reg(4); c.i64s(8).op(Op.I64Add); f.setReg(4);
    return Out.BRANCH;
  }
  if (fn === C.jmpRel && s === 8) return Out.BRANCH;
  if (fn === C.jcc && s === 8) return Out.BRANCH;
  if (fn === Y.nop) return Out.NONE;
  return Out.NO;
}

function eaOk(i: Insn): boolean {
  return (i.seg === -1 || i.seg === 4 || i.seg === 5) && (i.eaKind === EA.B64 || i.eaKind === EA.BI64 || i.eaKind === EA.RIP64 || i.eaKind === EA.I64);
}

/** Register-only forms that neither read nor write flags and cannot fault (translated inline). */
function flagTransparent(i: Insn): boolean {
  const fn = i.fn;
  if (fn === D.lea || fn === D.movRegImm || fn === Y.nop) return true;
  if (i.mod !== 3) return false;
  return fn === D.movRR64 || fn === D.movRR32 || fn === D.movRR64r || fn === D.movRR32r || fn === D.movEI || fn === D.movzx8 ||
    fn === D.movzx16 || fn === D.movsx8 || fn === D.movsx16 || fn === D.movsxd ||
    (fn === A.group3 && i.sub === 2 && (i.osz === 4 || i.osz === 8));
}

/** Register-only forms that overwrite all six arithmetic flags without reading them and cannot fault. */
function flagFullWriter(i: Insn): boolean {
  const fn = i.fn, s = i.osz, op = i.sub;
  if (s !== 4 && s !== 8 && s !== 1) return false;
  if (fn === A.aluAI) return ALU_OPS.includes(op);
  if (fn === A.testAI) return true;
  if (i.mod !== 3) return false;
  if (fn === A.aluRR32 || fn === A.aluRR64 || fn === A.aluRI32 || fn === A.aluRI64 || fn === A.aluEG || fn === A.aluGE || fn === A.aluEI) return ALU_OPS.includes(op);
  if (fn === A.testEG || fn === A.testEI) return true;
  if (s === 1) return false;
  if (fn === A.imul2 || fn === A.imul3) return true;
  return fn === A.shiftImm && op >= 4 && (i.imm & (s === 8 ? 63 : 31)) !== 0;
}

/** The flags instruction k leaves cannot be observed (overwritten later in the block before any reader or exit). */
function flagsDeadAfter(b: Block, k: number): boolean {
  for (let j = k + 1; j < b.count; j++) {
    const i = b.insns[j];
    if (flagFullWriter(i)) return true;
    if (!flagTransparent(i)) return false;
  }
  return false;
}

/** The block ends with a 64-bit jcc back to its first instruction. */
function isSelfLoop(b: Block): boolean {
  const last = b.insns[b.count - 1];
  if (last.fn !== C.jcc || last.osz !== 8) return false;
  let len = 0;
  for (let k = 0; k < b.count; k++) len += b.insns[k].len;
  return len + last.imm === 0;
}

/**
 * Emit block `b` as a function of `mb`. `handlerBase` = index in the module's handler list of this block's
 * first handler call; the handlers used are appended to `handlers`. Returns the function index.
 */
export function translateBlockWasm(mb: ModuleBuilder, b: Block, handlers: Insn[], exportName: string, layout: WasmLayout): number {
  let loop = isSelfLoop(b);
  if (loop) {
    // A self-loop runs inside the function only when it calls no handler (no dispatch per pass).
    const probe = new Fn(new Code(3), { ...layout, slotFor: null });
    let off = 0;
    for (let k = 0; k < b.count - 1 && loop; k++) {
      const i = b.insns[k];
      if (insn(probe, i, off, off + i.len, flagsDeadAfter(b, k)) === Out.NO) loop = false;
      off += i.len;
    }
    if (loop) return emit(mb, b, handlers, exportName, layout, probe.used);
  }
  return emit(mb, b, handlers, exportName, layout, null);
}

function emit(mb: ModuleBuilder, b: Block, handlers: Insn[], exportName: string, layout: WasmLayout, loopRegs: Uint8Array | null): number {
  const { index, code: c } = mb.func([T.F64, T.I32, T.I32], [T.I32], exportName);
  const f = new Fn(c, layout);
  f.fnType = mb.type([T.F64, T.I32, T.I32], [T.I32]);
  f.pageOff = b.phys % 4096; f.physPage = b.phys - f.pageOff; f.mode = b.mode;
  c.get(P_RIP).op(Op.I64TruncF64S).set(f.ripI);
  const loop = loopRegs !== null;
  if (loop) {
    // Registers stay in locals across passes: load them all up front, write all back at every exit.
    for (let r = 0; r < 16; r++) if (loopRegs[r]) { f.reg(r); c.drop(); f.regS[r] = RS.DIRTY; }
    f.loop = true;
    c.get(P_N).set(f.nL);
    c.loop();
  }
  let off = 0;
  let ended = false;
  for (let k = 0; k < b.count; k++) {
    const i = b.insns[k];
    const end = off + i.len;
    const last = k === b.count - 1;
    if (loop && last) {
      f.cond(i.sub);
      c.op(Op.I32Eqz).if(); f.exitTo(b.count, end); c.end();
      c.get(f.nL).i32(b.count).op(Op.I32Add).set(f.nL);
      // Flags leave the loop body in the state page so the next pass starts from "unknown" flags.
      f.flushFlags(true); f.fKind = -1;
      c.get(f.nL).i32(b.count).op(Op.I32Add).get(P_BUDGET).op(Op.I32GtS);
      c.i32(0).i32Load(f.B + STOP).op(Op.I32Or).if();
      f.flushRegs(false); c.i32(0).get(P_RIP).f64Store(f.B + RIP).get(f.nL).ret();
      c.end();
      c.i32(0).get(f.nL).i32Store(f.B + LOOP_N);
      c.br(0).end();
      c.i32(0); // not reached: the loop leaves only through its exits
      ended = true;
      break;
    }
    const dead = flagsDeadAfter(b, k);
    const out = insn(f, i, off, end, dead);
    if (f.fKind === -2) { f.fKind = -1; f.fDirty = false; }
    if (out === Out.NO) {
      // Ordinary handler: state written back, JS sets cpu.rip/nextRip from the offsets.
      f.sync();
      const h = handlers.length;
      handlers.push(i);
      c.i32(h).i32(off).i32(end).call(Imp.CALL);
      for (let r = 0; r < 16; r++) f.regS[r] = RS.NONE;
      f.fKind = -1; f.fDirty = false;
      if (last) { c.drop(); f.exit(k + 1, null); ended = true; } else { c.if(); f.exit(k + 1, () => f.rip(end)); c.end(); }
    } else if (out === Out.BRANCH) {
      // Last instruction by construction (control transfers end blocks).
      if (i.fn === C.jcc) {
        f.cond(i.sub);
        c.if(); f.exitTo(b.count, end + i.imm); c.end();
        f.exitTo(b.count, end);
      } else if (i.fn === C.ret) f.exit(b.count, () => c.get(f.tR).op(Op.F64ConvertI64S));
      else f.exitTo(b.count, end + i.imm); // jmp, call
      ended = true;
      break;
    } else if (out === Out.STORE && !last) {
      c.get(f.stopL).if(); f.exit(k + 1, () => f.rip(end)); c.end();
    }
    off = end;
  }
  if (!ended) f.exitTo(b.count, off);
  return index;
}
