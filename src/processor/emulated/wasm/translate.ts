/**
 * Block translator to WebAssembly: one decoded long-mode block becomes one wasm function
 * `(rip: f64, budget: i32) -> retired: i32` in a batch module (runtime.ts). It keeps the contract jit.ts
 * documents: the block runs to its end and leaves RIP (state page RIP slot) at the next instruction; a store
 * that invalidates the block stops it after that instruction; a self-loop repeats within `budget`; before
 * anything that can fault, the registers and flags are in their architectural places and the JS side can set
 * cpu.rip from the instruction offset it is passed.
 *
 * Guest registers live in i64 locals (loaded on first use, written back at exits and before every call out).
 * Flags are kept as a pending record (kind known at translation time, operands in locals) and written to the
 * state page only at exits and calls out; conditions on a known record are computed inline.
 * Memory operands call JS imports (TLB hit path in JS); guest RAM is not in wasm memory yet.
 * Anything not translated here calls its ordinary handler through an import.
 */
import { Code, ModuleBuilder, Op, T } from './emitter.js';
import { EA, type Insn } from '../decoder.js';
import type { Block } from '../block-cache.js';
import * as A from '../exec-alu.js';
import * as D from '../exec-data.js';
import * as C from '../exec-ctrl.js';
import * as Y from '../exec-system.js';
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
const K_FLAGS = 0, K_ADD = 1, K_ADC = 2, K_SUB = 3, K_SBB = 4, K_LOGIC = 5, K_INC = 6, K_DEC = 7, K_RESCO = 8;
/** Kinds whose record holds both sources. */
const hasSrc = (k: number): boolean => k >= K_ADD && k <= K_SBB || k === K_INC || k === K_DEC;
const SIDX: Record<number, number> = { 1: 0, 2: 1, 4: 2, 8: 3 };
const P_RIP = 0, P_BUDGET = 1, P_N = 2;
/** Most instructions in a block (block-cache.ts MAX_BLOCK): a chained block needs this much budget left. */
const MAX_BLOCK = 64;
const enum RS { NONE = 0, CLEAN = 1, DIRTY = 2 }

/** Mask of an operand size as i64 halves. */
function maskLo(s: number): number { return s === 8 ? -1 : s === 4 ? -1 : s === 2 ? 0xffff : 0xff; }
function maskHi(s: number): number { return s === 8 ? -1 : 0; }

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
class Fn {
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
