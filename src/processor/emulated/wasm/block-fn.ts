/**
 * Emission state of one translated block function (translate.ts): guest registers cached in i64 locals
 * (loaded on first use, written back at exits and calls out), the pending flag record and the conditions
 * computed from it, memory operands with the inline TLB lookup, and the exits (plain or chained).
 */
import { Code, ModuleBuilder, Op, T } from './emitter.js';
import { EA, type Insn } from '../decoder.js';
import { CUR_RIP, CUR_SLOT, CC_AUX, CC_OP, CC_RES, CC_SRC1, CC_SRC2, CC_VALID, FS_BASE, GS_BASE, LOOP_N, MEM_HI, RIP, STOP, TLB_ADD, TLB_TAG, TLB_USER, TLB_WRITE } from './state.js';

/** Import function indices (runtime.ts provides them in this order). */
export const enum Imp { LD8, LD16, LD32, LD64, ST8, ST16, ST32, ST64, COND, GETCF, CALL, FLAGS }

/** The JS helpers translated code calls, in Imp order: name, parameter and result types. */
export const IMPORTS: ReadonlyArray<readonly [string, T[], T[]]> = [
  ['ld8', [T.F64, T.I32], [T.I32]], ['ld16', [T.F64, T.I32], [T.I32]], ['ld32', [T.F64, T.I32], [T.I32]], ['ld64', [T.F64, T.I32], [T.I32]],
  ['st8', [T.F64, T.I32, T.I32], [T.I32]], ['st16', [T.F64, T.I32, T.I32], [T.I32]], ['st32', [T.F64, T.I32, T.I32], [T.I32]],
  ['st64', [T.F64, T.I32, T.I32, T.I32], [T.I32]],
  ['cond', [T.I32], [T.I32]], ['getcf', [], [T.I32]], ['call', [T.I32, T.I32, T.I32], [T.I32]], ['flags', [], [T.I32]],
];

export function declareImports(mb: ModuleBuilder): void {
  mb.importMemory('e', 'm', 1);
  mb.importTable('e', 't', 1);
  for (const [n, p, r] of IMPORTS) mb.importFunc('e', n, p, r);
}

// Flag-record kinds (flags.ts CC).
export const K_FLAGS = 0, K_ADD = 1, K_ADC = 2, K_SUB = 3, K_SBB = 4, K_LOGIC = 5, K_INC = 6, K_DEC = 7, K_RESCO = 8;
/** Kinds whose record holds both sources. */
export const hasSrc = (k: number): boolean => k >= K_ADD && k <= K_SBB || k === K_INC || k === K_DEC;
export const SIDX: Record<number, number> = { 1: 0, 2: 1, 4: 2, 8: 3 };
export const P_RIP = 0, P_BUDGET = 1, P_N = 2;
/** Most instructions in a block (block-cache.ts MAX_BLOCK): a chained block needs this much budget left. */
export const MAX_BLOCK = 64;
export const enum RS { NONE = 0, CLEAN = 1, DIRTY = 2 }

/** Mask of an operand size as i64 halves. */
export function maskLo(s: number): number { return s === 8 ? -1 : s === 4 ? -1 : s === 2 ? 0xffff : 0xff; }
export function maskHi(s: number): number { return s === 8 ? -1 : 0; }

/** Where the translated code finds its state: area base, and guest RAM + TLB when they share the memory. */
export interface WasmLayout {
  /** Byte offset of the vCPU's area (state page, TLB) in the memory. */
  base: number;
  /** Guest RAM's byte offset in the memory, or -1 when RAM is elsewhere (memory operands call JS). */
  ramBase: number;
  /** Table slot of the block with this key (phys * 4 + mode), for chaining; null: never chain. */
  slotFor: ((key: number) => number) | null;
}

/** Per-function emission state. */
export class Fn {
  readonly c: Code;
  /** Area base (added to every state-page offset). */
  readonly B: number;
  readonly ramBase: number;
  readonly ripI: number;
  readonly tX: number;
  readonly tN: number;
  readonly slotFor: ((key: number) => number) | null;
  /** Physical page and in-page offset of the block start, its mode, and the block function type (chaining). */
  physPage = 0; pageOff = 0; mode = 3; fnType = 0;
  private readonly regL: number[] = new Array(16).fill(-1);
  readonly regS = new Uint8Array(16);
  /** Registers read / written anywhere (first pass of a self-loop). */
  readonly used = new Uint8Array(16);
  /** Pending flag record: kind (-1: unknown, i.e. in cpu fields / state page), size, dirty. */
  fKind = -1; fSize = 8; fDirty = false;
  readonly fRes: number; readonly fS1: number; readonly fS2: number; readonly fAux: number;
  readonly tA: number; readonly tB: number; readonly tR: number; readonly tE: number;
  /** Scratch of store(), setRegSized() and of() (never live across the users above). */
  readonly tS: number; readonly tM: number; readonly tO: number;
  readonly t32: number; readonly t32b: number; readonly stopL: number; readonly nL: number;
  loop = false;
  /** Retired count of the current exit is `n + k` in a self-loop. */
  constructor(c: Code, layout: WasmLayout) {
    this.c = c;
    this.B = layout.base; this.ramBase = layout.ramBase;
    this.ripI = c.local(T.I64); this.tX = c.local(T.I32); this.tN = c.local(T.I32);
    this.slotFor = layout.slotFor;
    this.fRes = c.local(T.I64); this.fS1 = c.local(T.I64); this.fS2 = c.local(T.I64);
    this.tA = c.local(T.I64); this.tB = c.local(T.I64); this.tR = c.local(T.I64);
    this.tS = c.local(T.I64); this.tM = c.local(T.I64); this.tO = c.local(T.I64);
    this.fAux = c.local(T.I32); this.t32 = c.local(T.I32); this.t32b = c.local(T.I32); this.stopL = c.local(T.I32); this.nL = c.local(T.I32);
    this.tE = c.local(T.I64);
  }

  private regLocal(r: number): number {
    if (this.regL[r] < 0) this.regL[r] = this.c.local(T.I64);
    return this.regL[r];
  }
  /** Push the full 64-bit value of register r. */
  reg(r: number): void {
    const l = this.regLocal(r);
    this.used[r] = 1;
    if (this.regS[r] === RS.NONE) { this.c.i32(0).i64Load(this.B + r * 8).set(l); this.regS[r] = RS.CLEAN; }
    this.c.get(l);
  }
  /** Pop an i64 into register r. */
  setReg(r: number): void {
    this.used[r] = 1;
    this.c.set(this.regLocal(r));
    this.regS[r] = RS.DIRTY;
  }
  /** Push register r zero-extended from size s (1: byte register code r8). */
  regSized(r: number, s: number): void {
    const c = this.c;
    if (s === 1) {
      if (r < 16) { this.reg(r); c.i64(0xff, 0).op(Op.I64And); } else { this.reg(r - 16); c.i64s(8).op(Op.I64ShrU).i64(0xff, 0).op(Op.I64And); }
      return;
    }
    this.reg(r);
    if (s !== 8) c.i64(maskLo(s), 0).op(Op.I64And);
  }
  /** Pop an i64 (zero-extended value of size s) into register r as an x86 write of that size. */
  setRegSized(r: number, s: number): void {
    const c = this.c;
    if (s === 8 || s === 4) { this.setReg(r); return; } // 32-bit writes zero-extend; the value already is
    c.set(this.tM);
    if (s === 1 && r >= 16) {
      this.reg(r - 16); c.i64(~0xff00, -1).op(Op.I64And).get(this.tM).i64s(8).op(Op.I64Shl, Op.I64Or); this.setReg(r - 16);
    } else {
      this.reg(r); c.i64(s === 1 ? ~0xff : ~0xffff, -1).op(Op.I64And).get(this.tM).op(Op.I64Or); this.setReg(r);
    }
  }
  /** Write back dirty registers (stay cached). In a self-loop every written register counts as dirty. */
  flushRegs(markClean: boolean): void {
    for (let r = 0; r < 16; r++) {
      if (this.regS[r] !== RS.DIRTY) continue;
      this.c.i32(0).get(this.regL[r]).i64Store(this.B + r * 8);
      if (markClean && !this.loop) this.regS[r] = RS.CLEAN;
    }
  }
  flushFlags(markClean: boolean): void {
    if (!this.fDirty) return;
    const c = this.c, k = this.fKind;
    c.i32(0).i32(k === K_FLAGS ? 0 : (k << 2) | SIDX[this.fSize]).i32Store(this.B + CC_OP);
    c.i32(0).get(this.fRes).i64Store(this.B + CC_RES);
    if (hasSrc(k) || k === K_FLAGS) c.i32(0).get(this.fS1).i64Store(this.B + CC_SRC1);
    if (hasSrc(k)) c.i32(0).get(this.fS2).i64Store(this.B + CC_SRC2);
    if (k === K_INC || k === K_DEC || k === K_RESCO || k === K_ADC || k === K_SBB) c.i32(0).get(this.fAux).i32Store(this.B + CC_AUX);
    c.i32(0).i32(1).i32Store(this.B + CC_VALID);
    if (markClean) this.fDirty = false;
  }
  /** Before a call out to JS that may fault or read state. */
  sync(): void { this.flushRegs(true); this.flushFlags(true); }
  /** Leave the function: write back, set RIP (f64 on the stack unless `ripPushed` false → not stored), return count. */
  exit(retired: number, setRip: (() => void) | null): void {
    const c = this.c;
    this.flushRegs(false); this.flushFlags(false);
    if (setRip !== null) { c.i32(0); setRip(); c.f64Store(this.B + RIP); }
    c.get(this.loop ? this.nL : P_N).i32(retired).op(Op.I32Add);
    c.ret();
  }
  /**
   * Leave for rip + delta. A target in the same page (so the same physical page and permissions) is entered
   * directly through its table slot (a stub that returns, until it is translated; invalidation puts the stub
   * back) while the budget allows a whole block and nothing asked for the run loop.
   */
  exitTo(retired: number, delta: number): void {
    const t = this.pageOff + delta;
    if (this.slotFor === null || t < 0 || t >= 4096) { this.exit(retired, () => this.rip(delta)); return; }
    const c = this.c, slot = this.slotFor((this.physPage + t) * 4 + this.mode);
    this.flushRegs(false); this.flushFlags(false);
    c.get(this.loop ? this.nL : P_N).i32(retired).op(Op.I32Add).set(this.tN);
    c.get(this.tN).i32(MAX_BLOCK).op(Op.I32Add).get(P_BUDGET).op(Op.I32LeS);
    c.i32(0).i32Load(this.B + STOP).op(Op.I32Eqz, Op.I32And).if();
    c.i32(0).get(this.tN).i32Store(this.B + LOOP_N);
    c.i32(0).i32(slot).i32Store(this.B + CUR_SLOT);
    c.i32(0); this.rip(delta); c.f64Store(this.B + CUR_RIP);
    this.rip(delta); c.get(P_BUDGET).get(this.tN).i32(slot).returnCallIndirect(this.fnType);
    c.end();
    c.i32(0); this.rip(delta); c.f64Store(this.B + RIP);
    c.get(this.tN).ret();
  }
  /** Push rip + delta (f64). */
  rip(delta: number): void { this.c.get(P_RIP); if (delta !== 0) this.c.f64(delta).op(Op.F64Add); }

  /** Set a pending flag record from tA/tB/tR (already computed). */
  setFlags(kind: number, s: number): void {
    const c = this.c;
    this.fKind = kind; this.fSize = s; this.fDirty = true;
    c.get(this.tR).set(this.fRes);
    if (hasSrc(kind)) { c.get(this.tA).set(this.fS1); c.get(this.tB).set(this.fS2); }
  }
  /** Pending record = materialized flags `bits` (i32 on the stack), as setArithFlags does. */
  setFlagBits(): void {
    const c = this.c;
    c.i32(0x8d5).op(Op.I32And, Op.I64ExtendI32U).set(this.fS1);
    c.i64s(0).set(this.fRes);
    this.fKind = K_FLAGS; this.fSize = 1; this.fDirty = true;
  }
  /** Bit `n` (0/1 i32) of the materialized flags in fS1. */
  private bit(n: number): void { this.c.get(this.fS1).op(Op.I32WrapI64).i32(n).op(Op.I32ShrU).i32(1).op(Op.I32And); }
  private af(): void {
    const c = this.c;
    switch (this.fKind) {
      case K_FLAGS: this.bit(4); return;
      case K_LOGIC: c.i32(0); return;
      case K_RESCO: c.get(this.fAux).i32(2).op(Op.I32ShrU).i32(1).op(Op.I32And); return;
      default: c.get(this.fS1).get(this.fS2).op(Op.I64Xor).get(this.fRes).op(Op.I64Xor, Op.I32WrapI64).i32(4).op(Op.I32ShrU).i32(1).op(Op.I32And);
    }
  }
  /** Push CF PF AF ZF SF OF as RFLAGS bits (i32). */
  bits(): void {
    const c = this.c;
    if (this.fKind < 0) { this.sync(); c.call(Imp.FLAGS); return; }
    if (this.fKind === K_FLAGS) { c.get(this.fS1).op(Op.I32WrapI64); return; }
    this.cf();
    this.pf(); c.i32(2).op(Op.I32Shl, Op.I32Or);
    this.af(); c.i32(4).op(Op.I32Shl, Op.I32Or);
    this.zf(); c.i32(6).op(Op.I32Shl, Op.I32Or);
    this.sf(); c.i32(7).op(Op.I32Shl, Op.I32Or);
    this.of(); c.i32(11).op(Op.I32Shl, Op.I32Or);
  }

  // ---- conditions on the pending record
  private sign(l: number): void {
    this.c.get(l).i64s(this.fSize * 8 - 1).op(Op.I64ShrU).i64s(1).op(Op.I64And, Op.I32WrapI64);
  }
  private cf(): void {
    const c = this.c;
    switch (this.fKind) {
      case K_ADD: c.get(this.fRes).get(this.fS1).op(Op.I64LtU); return;
      case K_SUB: c.get(this.fS1).get(this.fS2).op(Op.I64LtU); return;
      case K_ADC: // carry-in 1: a + b + 1 carries when the result is <= a
        c.get(this.fRes).get(this.fS1).op(Op.I64LeU).get(this.fRes).get(this.fS1).op(Op.I64LtU).get(this.fAux).select(); return;
      case K_SBB:
        c.get(this.fS1).get(this.fS2).op(Op.I64LeU).get(this.fS1).get(this.fS2).op(Op.I64LtU).get(this.fAux).select(); return;
      case K_FLAGS: this.bit(0); return;
      case K_LOGIC: c.i32(0); return;
      default: c.get(this.fAux).i32(1).op(Op.I32And); return;
    }
  }
  private of(): void {
    const c = this.c;
    switch (this.fKind) {
      case K_FLAGS: this.bit(11); return;
      case K_ADD: case K_INC: case K_ADC:
        c.get(this.fS1).get(this.fRes).op(Op.I64Xor).get(this.fS2).get(this.fRes).op(Op.I64Xor, Op.I64And).set(this.tO);
        this.sign(this.tO); return;
      case K_SUB: case K_DEC: case K_SBB:
        c.get(this.fS1).get(this.fS2).op(Op.I64Xor).get(this.fS1).get(this.fRes).op(Op.I64Xor, Op.I64And).set(this.tO);
        this.sign(this.tO); return;
      case K_LOGIC: c.i32(0); return;
      default: c.get(this.fAux).i32(1).op(Op.I32ShrU).i32(1).op(Op.I32And); return;
    }
  }
  private zf(): void { if (this.fKind === K_FLAGS) this.bit(6); else this.c.get(this.fRes).op(Op.I64Eqz); }
  private sf(): void { if (this.fKind === K_FLAGS) this.bit(7); else this.sign(this.fRes); }
  private pf(): void { if (this.fKind === K_FLAGS) { this.bit(2); return; } this.c.get(this.fRes).op(Op.I32WrapI64).i32(0xff).op(Op.I32And, Op.I32Popcnt).i32(1).op(Op.I32And, Op.I32Eqz); }
  /** Signed view of a pending operand at the record's size. */
  private sext(l: number): void {
    const c = this.c;
    c.get(l);
    if (this.fSize === 4) c.op(Op.I64Extend32S); else if (this.fSize === 2) c.op(Op.I64Extend16S); else if (this.fSize === 1) c.op(Op.I64Extend8S);
  }
  /** Push condition cc (0/1 i32). Unknown flags ask testCondition through an import. */
  cond(cc: number): void {
    const c = this.c;
    if (this.fKind < 0) { this.sync(); c.i32(cc).call(Imp.COND); return; }
    const inv = (cc & 1) !== 0;
    if (this.fKind === K_SUB && cc !== 0 && cc !== 1 && cc !== 8 && cc !== 9 && cc !== 10 && cc !== 11) {
      const a = this.fS1, b = this.fS2;
      switch (cc >> 1) {
        case 1: c.get(a).get(b).op(inv ? Op.I64GeU : Op.I64LtU); return;
        case 2: c.get(a).get(b).op(inv ? Op.I64Ne : Op.I64Eq); return;
        case 3: c.get(a).get(b).op(inv ? Op.I64GtU : Op.I64LeU); return;
        case 6: this.sext(a); this.sext(b); c.op(inv ? Op.I64GeS : Op.I64LtS); return;
        case 7: this.sext(a); this.sext(b); c.op(inv ? Op.I64GtS : Op.I64LeS); return;
      }
    }
    switch (cc >> 1) {
      case 0: this.of(); break;
      case 1: this.cf(); break;
      case 2: this.zf(); break;
      case 3: this.cf(); this.zf(); c.op(Op.I32Or); break;
      case 4: this.sf(); break;
      case 5: this.pf(); break;
      case 6: this.sf(); this.of(); c.op(Op.I32Xor); break;
      default: this.zf(); this.sf(); this.of(); c.op(Op.I32Xor, Op.I32Or); break;
    }
    if (inv) c.op(Op.I32Eqz);
  }
  /** Push CF (0/1 i32) of the current flags. */
  carry(): void {
    if (this.fKind < 0) { this.sync(); this.c.call(Imp.GETCF); return; }
    this.cf();
  }

  // ---- memory operands
  /** Push the effective address (i64; FS/GS base added modulo 2^64 as the hardware does) or return false. */
  ea(i: Insn, end: number): boolean {
    const c = this.c;
    if (i.seg !== -1 && i.seg !== 4 && i.seg !== 5) return false;
    switch (i.eaKind) {
      case EA.B64: case EA.BI64: case EA.I64:
        if (i.eaKind === EA.I64 && i.index < 0) c.i64s(i.disp);
        else {
          if (i.eaKind !== EA.I64) this.reg(i.base);
          if (i.eaKind !== EA.B64) {
            this.reg(i.index);
            if (i.scale !== 0) c.i64s(i.scale).op(Op.I64Shl);
            if (i.eaKind === EA.BI64) c.op(Op.I64Add);
          }
          if (i.disp !== 0) c.i64s(i.disp).op(Op.I64Add);
        }
        break;
      case EA.RIP64: c.get(this.ripI).i64s(end + i.disp).op(Op.I64Add); break;
      default: return false;
    }
    if (i.seg >= 0) c.i32(0).i64Load(this.B + (i.seg === 4 ? FS_BASE : GS_BASE)).op(Op.I64Add);
    return true;
  }
  /** Inline TLB probe of tE for an access of `s` bytes in table `table` (byte offset): leaves tX, pushes hit (i32). */
  private tlbHit(s: number, table: number): void {
    const c = this.c;
    c.get(this.tE).i64s(12).op(Op.I64ShrU, Op.I32WrapI64).i32(1023).op(Op.I32And).i32(3).op(Op.I32Shl);
    c.i32(0).i32Load(this.B + TLB_USER).op(Op.I32Add).set(this.tX);
    c.get(this.tX).f64Load(this.B + TLB_TAG + table).get(this.tE).i64s(-4096).op(Op.I64And, Op.F64ConvertI64S, Op.F64Eq);
    if (s > 1) c.get(this.tE).op(Op.I32WrapI64).i32(4095).op(Op.I32And).i32(4096 - s).op(Op.I32LeU, Op.I32And);
  }
  /** Push the i32 RAM address of tE after a hit (tX set by tlbHit). */
  private ramAddr(table: number): void {
    this.c.get(this.tE).get(this.tX).f64Load(this.B + TLB_ADD + table).op(Op.I64TruncF64S, Op.I64Add, Op.I32WrapI64);
  }
  /** Slow-path load through JS: pushes the zero-extended i64 value. */
  private loadCall(s: number, off: number): void {
    const c = this.c;
    c.get(this.tE).op(Op.F64ConvertI64S).i32(off).call(s === 1 ? Imp.LD8 : s === 2 ? Imp.LD16 : s === 4 ? Imp.LD32 : Imp.LD64).op(Op.I64ExtendI32U);
    if (s === 8) c.i32(0).i32Load(this.B + MEM_HI).op(Op.I64ExtendI32U).i64s(32).op(Op.I64Shl, Op.I64Or);
  }
  /** With an i64 address on the stack, push the zero-extended i64 value of size s loaded from it (address kept in tE). */
  load(s: number, off: number): void {
    const c = this.c;
    c.set(this.tE);
    if (this.ramBase < 0) { this.sync(); this.loadCall(s, off); return; }
    this.tlbHit(s, 0);
    c.if(T.I64);
    this.ramAddr(0);
    c.mem(s === 1 ? 0x31 : s === 2 ? 0x33 : s === 4 ? 0x35 : 0x29, s === 1 ? 0 : s === 2 ? 1 : s === 4 ? 2 : 3, this.ramBase);
    c.else();
    // Only the miss can fault: state is written back on this path alone (the hit path keeps it cached).
    this.flushRegs(false); this.flushFlags(false);
    this.loadCall(s, off);
    c.end();
  }
  /** Store: i64 address pushed by `addr`, i64 value by `val`; the "block invalidated" result goes to stopL. */
  store(s: number, off: number, addr: () => void, val: () => void): void {
    const c = this.c;
    addr(); c.set(this.tE);
    val(); c.set(this.tS);
    const call = (): void => {
      c.get(this.tE).op(Op.F64ConvertI64S);
      if (s === 8) c.get(this.tS).op(Op.I32WrapI64).get(this.tS).i64s(32).op(Op.I64ShrU, Op.I32WrapI64).i32(off).call(Imp.ST64);
      else c.get(this.tS).op(Op.I32WrapI64).i32(off).call(s === 1 ? Imp.ST8 : s === 2 ? Imp.ST16 : Imp.ST32);
      c.set(this.stopL);
    };
    if (this.ramBase < 0) { this.sync(); call(); return; }
    this.tlbHit(s, TLB_WRITE);
    c.if();
    this.ramAddr(TLB_WRITE);
    c.get(this.tS).mem(s === 1 ? 0x3c : s === 2 ? 0x3d : s === 4 ? 0x3e : 0x37, s === 1 ? 0 : s === 2 ? 1 : s === 4 ? 2 : 3, this.ramBase);
    c.i32(0).set(this.stopL);
    c.else();
    this.flushRegs(false); this.flushFlags(false);
    call();
    c.end();
  }
}
