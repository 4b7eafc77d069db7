/**
 * Block translator: turns a hot decoded block of 64-bit code into one JavaScript function (`new Function`),
 * the way QEMU emits host code. The commonest forms (mov, lea, add/sub/and/or/xor/cmp/test, inc/dec,
 * push/pop, call/ret/jmp/jcc, movzx/movsx) become straight-line code with operand sizes, registers and
 * displacements as constants; every other instruction calls its ordinary handler. The decoded block stays
 * the source of truth (the interpreter still runs partial blocks, e.g. after STI).
 *
 * Contract of a translated block `fn(cpu, b)`: entered with cpu.rip at the block start, runs all its
 * instructions, leaves cpu.rip at the next instruction and returns the number retired (fewer when a store
 * invalidated the block). Before anything that can fault, cpu.rip (and cpu.nextRip for handler calls) hold
 * that instruction's address, so a fault is reported exactly as by the interpreter; the run loop recovers the
 * retired count from cpu.rip (see `retiredBefore`).
 */
import type { Cpu } from './cpu.js';
import type { Handler } from './decoder.js';
import { EA, Insn } from './decoder.js';
import type { Block } from './block-cache.js';
import * as A from './exec-alu.js';
import * as D from './exec-data.js';
import * as C from './exec-ctrl.js';
import * as Y from './exec-system.js';
import * as mmu from './mmu.js';
import { getCF, testCondition } from './flags.js';

export type TranslatedBlock = (cpu: Cpu, b: Block) => number;

/** Statistics for benchmarks. */
export const jitStats = { translated: 0, failed: 0 };

const DEFAULT_THRESHOLD = 20000;

/**
 * Executions of a block before it is translated (HYPERTS_JIT_THRESHOLD: a number, or "off").
 * Every translated block is a separate function V8 must warm up and optimize (on a background thread), so
 * only really hot blocks pay back: a Linux boot decodes ~100k blocks; at 500 it translated ~10k and ran
 * slower than the interpreter (192 s vs 155 s CPU), at 20000 it translates ~1.4k and runs faster (93 s).
 */
export let jitThreshold = parseThreshold(typeof process !== 'undefined' ? process.env.HYPERTS_JIT_THRESHOLD : undefined);


function parseThreshold(v: string | undefined): number {
  if (v === undefined || v === '') return DEFAULT_THRESHOLD;
  if (v === 'off') return Infinity;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : DEFAULT_THRESHOLD;
}

/** Tests: translate blocks after `n` executions (0 = at once, Infinity = never). */
export function setJitThreshold(n: number): void { jitThreshold = n; }

// Flag-record kinds (flags.ts CC) and size indexes.
const CC_ADD = 1, CC_SUB = 3, CC_LOGIC = 5, CC_INC = 6, CC_DEC = 7;
const SIDX: Record<number, number> = { 1: 0, 2: 1, 4: 2, 8: 3 };

/** What the last translated instruction left in the flag record (for fusing a following jcc). */
const enum Fl { UNKNOWN = 0, SUB32 = 1, SUB64 = 2, LOGIC32 = 3, LOGIC64 = 4 }

interface Ctx {
  code: string[];
  /** Offsets of instruction starts and of the end of the block, relative to the block start. */
  flags: Fl;
}

const R = (r: number): string => `g[${r << 1}]`;
const RH = (r: number): string => `g[${(r << 1) + 1}]`;

/** Expression of the effective linear address of a 64-bit-mode memory operand (`end` = offset after it). */
function eaExpr(i: Insn, end: number): string | null {
  let e: string;
  switch (i.eaKind) {
    case EA.B64: e = `(${RH(i.base)} * 4294967296 + (${R(i.base)} >>> 0) + ${i.disp})`; break;
    case EA.BI64:
      e = `(${RH(i.base)} * 4294967296 + (${R(i.base)} >>> 0) + (${RH(i.index)} * 4294967296 + (${R(i.index)} >>> 0)) * ${1 << i.scale} + ${i.disp})`;
      break;
    case EA.RIP64: return i.seg >= 0 ? `(rip + ${end + i.disp} + cpu.segBase[${i.seg}])` : `(rip + ${end + i.disp})`;
    case EA.I64:
      if (i.index < 0) e = `${i.disp}`;
      else e = `((${RH(i.index)} * 4294967296 + (${R(i.index)} >>> 0)) * ${1 << i.scale} + ${i.disp})`;
      break;
    default: return null;
  }
  // Wrap to the signed canonical range as exec-common.ea does, then the FS/GS base.
  e = `wrap(${e})`;
  return i.seg >= 0 ? `(${e} + cpu.segBase[${i.seg}])` : e;
}

function wrap(a: number): number {
  if (a >= 9223372036854775808) return a - 18446744073709551616;
  if (a < -9223372036854775808) return a + 18446744073709551616;
  return a;
}

/** Lines computing 64- or 32-bit ALU op `op` (0 add, 1 or, 4 and, 5 sub, 6 xor, 7 cmp) of aL/aH and bL/bH into rL/rH. */
function aluLines(op: number, s: number): string | null {
  if (s === 8) {
    switch (op) {
      case 0: return 'const t = (aL >>> 0) + (bL >>> 0); const rL = t | 0; const rH = (aH + bH + (t > 4294967295 ? 1 : 0)) | 0;';
      case 5: case 7: return 'const t = (aL >>> 0) - (bL >>> 0); const rL = t | 0; const rH = (aH - bH - (t < 0 ? 1 : 0)) | 0;';
      case 1: return 'const rL = aL | bL; const rH = aH | bH;';
      case 4: return 'const rL = aL & bL; const rH = aH & bH;';
      case 6: return 'const rL = aL ^ bL; const rH = aH ^ bH;';
    }
    return null;
  }
  switch (op) {
    case 0: return 'const rL = (aL + bL) | 0; const rH = 0;';
    case 5: case 7: return 'const rL = (aL - bL) | 0; const rH = 0;';
    case 1: return 'const rL = aL | bL; const rH = 0;';
    case 4: return 'const rL = aL & bL; const rH = 0;';
    case 6: return 'const rL = aL ^ bL; const rH = 0;';
  }
  return null;
}

/** Lines recording the flags of ALU op `op` (as exec-alu's record()). */
function recordLines(op: number, s: number): string {
  const si = SIDX[s];
  if (op === 1 || op === 4 || op === 6) return `cpu.ccOp = ${(CC_LOGIC << 2) | si}; cpu.ccRes = rL; cpu.ccResHi = rH;`;
  const kind = op === 0 ? CC_ADD : CC_SUB;
  return `cpu.ccOp = ${(kind << 2) | si}; cpu.ccRes = rL; cpu.ccResHi = rH; cpu.ccSrc1 = aL; cpu.ccSrc1Hi = aH; cpu.ccSrc2 = bL; cpu.ccSrc2Hi = bH;`;
}

function flagsAfter(op: number, s: number): Fl {
  if (op === 5 || op === 7) return s === 8 ? Fl.SUB64 : Fl.SUB32;
  if (op === 1 || op === 4 || op === 6) return s === 8 ? Fl.LOGIC64 : Fl.LOGIC32;
  return Fl.UNKNOWN;
}

/** Condition `cc` from a known flag record, or null when testCondition must decide. */
function condExpr(cc: number, f: Fl): string | null {
  if (f === Fl.SUB32) {
    const a = 'cpu.ccSrc1', b = 'cpu.ccSrc2';
    switch (cc) {
      case 2: return `(${a} >>> 0) < (${b} >>> 0)`;
      case 3: return `(${a} >>> 0) >= (${b} >>> 0)`;
      case 4: return `${a} === ${b}`;
      case 5: return `${a} !== ${b}`;
      case 6: return `(${a} >>> 0) <= (${b} >>> 0)`;
      case 7: return `(${a} >>> 0) > (${b} >>> 0)`;
      case 12: return `(${a} | 0) < (${b} | 0)`;
      case 13: return `(${a} | 0) >= (${b} | 0)`;
      case 14: return `(${a} | 0) <= (${b} | 0)`;
      case 15: return `(${a} | 0) > (${b} | 0)`;
    }
    return null;
  }
  if (f === Fl.SUB64) {
    const lt = 'ult64(cpu.ccSrc1, cpu.ccSrc1Hi, cpu.ccSrc2, cpu.ccSrc2Hi)';
    const eq = '(cpu.ccSrc1 === cpu.ccSrc2 && cpu.ccSrc1Hi === cpu.ccSrc2Hi)';
    const slt = 'slt64(cpu.ccSrc1, cpu.ccSrc1Hi, cpu.ccSrc2, cpu.ccSrc2Hi)';
    switch (cc) {
      case 2: return lt;
      case 3: return `!${lt}`;
      case 4: return eq;
      case 5: return `!${eq}`;
      case 6: return `(${lt} || ${eq})`;
      case 7: return `!(${lt} || ${eq})`;
      case 12: return slt;
      case 13: return `!${slt}`;
      case 14: return `(${slt} || ${eq})`;
      case 15: return `!(${slt} || ${eq})`;
    }
    return null;
  }
  if (f === Fl.LOGIC32 || f === Fl.LOGIC64) {
    const z = f === Fl.LOGIC32 ? 'cpu.ccRes === 0' : '(cpu.ccRes | cpu.ccResHi) === 0';
    const neg = f === Fl.LOGIC32 ? 'cpu.ccRes < 0' : 'cpu.ccResHi < 0';
    switch (cc) {
      case 2: case 0: return 'false';
      case 3: case 1: return 'true';
      case 4: case 6: return `(${z})`;
      case 5: case 7: return `!(${z})`;
      case 8: case 12: return `(${neg})`;
      case 9: case 13: return `!(${neg})`;
      case 14: return `((${z}) || ${neg})`;
      case 15: return `!((${z}) || ${neg})`;
    }
    return null;
  }
  return null;
}

function ult64(aLo: number, aHi: number, bLo: number, bHi: number): boolean {
  return aHi === bHi ? (aLo >>> 0) < (bLo >>> 0) : (aHi >>> 0) < (bHi >>> 0);
}
function slt64(aLo: number, aHi: number, bLo: number, bHi: number): boolean {
  return aHi === bHi ? (aLo >>> 0) < (bLo >>> 0) : (aHi | 0) < (bHi | 0);
}

/** Load of the r/m operand (size 4 or 8) into aL/aH-style names; null when not translatable. */
function loadRM(i: Insn, s: number, lo: string, hi: string, end: number): string | null {
  if (i.mod === 3) return s === 8 ? `const ${lo} = ${R(i.rm)}, ${hi} = ${RH(i.rm)};` : `const ${lo} = ${R(i.rm)}, ${hi} = 0;`;
  const e = eaExpr(i, end);
  if (e === null) return null;
  return s === 8 ? `const ea = ${e}; ${ld(8, lo, hi)}` : `const ea = ${e}; ${ld(4, lo, '')} const ${hi} = 0;`;
}

function storeReg(r: number, s: number, lo: string, hi: string): string {
  return s === 8 ? `${R(r)} = ${lo}; ${RH(r)} = ${hi};` : `${R(r)} = ${lo}; ${RH(r)} = 0;`;
}

// ---- memory access with the TLB hit inlined (mmu.ts layout: tag/addend per (kind, user) table of 1024
// entries; read tables at 0 / 1024, write tables at 2048 / 3072). A miss calls the ordinary accessor, which
// fills the TLB, faults, reaches MMIO or notifies a code write. Expects `ea` in scope; `ub` = 1024 at CPL 3.

/** Declare `lo` (int32; zero-extended for 1 and 2 bytes) and for 8 bytes `hi` with the value at ea. */
function ld(s: number, lo: string, hi: string): string {
  const lim = 4096 - s;
  const hit = s === 8 ? `${lo} = view.getInt32(p, true); ${hi} = view.getInt32(p + 4, true);`
    : s === 4 ? `${lo} = view.getInt32(p, true);` : s === 2 ? `${lo} = view.getUint16(p, true);` : `${lo} = ram[p];`;
  const miss = s === 8 ? `${lo} = read64(cpu, ea) | 0; ${hi} = cpu.memHi | 0;`
    : s === 4 ? `${lo} = read32(cpu, ea) | 0;` : s === 2 ? `${lo} = read16(cpu, ea);` : `${lo} = read8(cpu, ea);`;
  return `let ${lo} = 0${s === 8 ? `, ${hi} = 0` : ''}; { const x = ub + ((ea >>> 12) & 1023), o = ea & 4095; ` +
    `if (tag[x] === ea - o${s > 1 ? ` && o <= ${lim}` : ''}) { const p = ea + add[x]; ${hit} } else { ${miss} } }`;
}

/** Store `lo` (and `hi` for 8 bytes) at ea. */
function st(s: number, lo: string, hi: string): string {
  const lim = 4096 - s;
  const hit = s === 8 ? `view.setInt32(p, ${lo}, true); view.setInt32(p + 4, ${hi}, true);`
    : s === 4 ? `view.setInt32(p, ${lo}, true);` : `ram[p] = ${lo};`;
  const miss = s === 8 ? `write64(cpu, ea, ${lo}, ${hi});` : s === 4 ? `write32(cpu, ea, ${lo});` : `write8(cpu, ea, (${lo}) & 255);`;
  return `{ const x = 2048 + ub + ((ea >>> 12) & 1023), o = ea & 4095; ` +
    `if (tag[x] === ea - o${s > 1 ? ` && o <= ${lim}` : ''}) { const p = ea + add[x]; ${hit} } else { ${miss} } }`;
}

/** Scratch copy used to translate a specialised handler's instruction through its generic form. */
const tmpInsn = new Insn();

const enum Out { NONE = 0, STORE = 1, BRANCH = 2 }

/**
 * Code for one instruction, or null to call its handler. `end` = offset of the next instruction.
 * Sets ctx.flags to what the flag record holds afterwards. Returns [code, kind].
 */
function translate(i: Insn, end: number, ctx: Ctx): [string, Out] | null {
  const fn = i.fn, s = i.osz;
  const mem = i.mod !== 3;
  if (fn === D.movRR64 || fn === D.movRR32) return [storeReg(i.rm, s, R(i.reg), RH(i.reg)), Out.NONE];
  if (fn === D.movRR64r || fn === D.movRR32r) return [storeReg(i.reg, s, R(i.rm), RH(i.rm)), Out.NONE];
  if (fn === D.movGE64 || fn === D.movGE32) {
    const e = eaExpr(i, end); if (e === null) return null;
    return [s === 8 ? `const ea = ${e}; ${ld(8, 'lo', 'hi')} ${R(i.reg)} = lo; ${RH(i.reg)} = hi;`
      : `const ea = ${e}; ${ld(4, 'lo', '')} ${R(i.reg)} = lo; ${RH(i.reg)} = 0;`, Out.NONE];
  }
  if (fn === D.movEG && mem && (s === 8 || s === 4)) {
    const e = eaExpr(i, end); if (e === null) return null;
    return [`const ea = ${e}; ${st(s, R(i.reg), RH(i.reg))}`, Out.STORE];
  }
  if (fn === D.movEG && mem && s === 1) {
    const e = eaExpr(i, end); if (e === null) return null;
    const r = i.reg8;
    const v = r < 16 ? `${R(r)} & 255` : `(${R(r - 16)} >>> 8) & 255`;
    return [`const ea = ${e}; ${st(1, v, '')}`, Out.STORE];
  }
  if (fn === D.movEI && (s === 8 || s === 4)) {
    if (!mem) return [s === 8 ? `${R(i.rm)} = ${i.imm}; ${RH(i.rm)} = ${i.immHi};` : `${R(i.rm)} = ${i.imm}; ${RH(i.rm)} = 0;`, Out.NONE];
    const e = eaExpr(i, end); if (e === null) return null;
    return [`const ea = ${e}; ${st(s, `${i.imm}`, `${i.immHi}`)}`, Out.STORE];
  }
  if (fn === D.movRegImm && (s === 8 || s === 4)) {
    return [s === 8 ? `${R(i.rm)} = ${i.imm}; ${RH(i.rm)} = ${i.immHi};` : `${R(i.rm)} = ${i.imm}; ${RH(i.rm)} = 0;`, Out.NONE];
  }
  if (fn === D.lea && (s === 8 || s === 4) && (i.eaKind === EA.B64 || i.eaKind === EA.BI64 || i.eaKind === EA.RIP64)) {
    // Exact 64-bit sum in halves (as exec-common.eaHalves), truncated to the operand size.
    const lines: string[] = [];
    if (i.eaKind === EA.RIP64) {
      lines.push(`const v = rip + ${end}; let lo = v >>> 0; let hi = Math.floor(v / 4294967296) | 0;`);
    } else {
      lines.push(`let lo = ${R(i.base)} >>> 0; let hi = ${RH(i.base)};`);
      if (i.eaKind === EA.BI64) {
        const sc = i.scale, xl = R(i.index), xh = RH(i.index);
        const sh = sc === 0 ? xh : `((${xh} << ${sc}) | (${xl} >>> ${32 - sc}))`;
        lines.push(`{ const sl = (${xl} << ${sc}) >>> 0; const t = lo + sl; hi = (hi + ${sh} + (t > 4294967295 ? 1 : 0)) | 0; lo = t >>> 0; }`);
      }
    }
    const d = i.disp;
    lines.push(`{ const t = lo + ${d >>> 0}; hi = (hi + ${d < 0 ? -1 : 0} + (t > 4294967295 ? 1 : 0)) | 0; lo = t | 0; }`);
    lines.push(s === 8 ? `${R(i.reg)} = lo; ${RH(i.reg)} = hi;` : `${R(i.reg)} = lo; ${RH(i.reg)} = 0;`);
    return [lines.join(' '), Out.NONE];
  }
  if ((fn === D.movzx8 || fn === D.movzx16 || fn === D.movsx8 || fn === D.movsx16) && (s === 8 || s === 4)) {
    const byte = fn === D.movzx8 || fn === D.movsx8;
    let v: string, pre = '';
    if (!mem) {
      if (byte) { const r = i.rm8; v = r < 16 ? `(${R(r)} & 255)` : `((${R(r - 16)} >>> 8) & 255)`; } else v = `(${R(i.rm)} & 65535)`;
    } else {
      const e = eaExpr(i, end); if (e === null) return null;
      pre = `const ea = ${e}; ${ld(byte ? 1 : 2, 'm', '')}`;
      v = 'm';
    }
    if (fn === D.movzx8 || fn === D.movzx16) return [`${pre} ${R(i.reg)} = ${v}; ${RH(i.reg)} = 0;`, Out.NONE];
    const sh = byte ? 24 : 16;
    return [`${pre} const v = (${v} << ${sh}) >> ${sh}; ${R(i.reg)} = v; ${RH(i.reg)} = ${s === 8 ? 'v >> 31' : '0'};`, Out.NONE];
  }
  if (fn === D.movsxd && s === 8) {
    let pre: string;
    if (!mem) pre = `const v = ${R(i.rm)};`;
    else { const e = eaExpr(i, end); if (e === null) return null; pre = `const ea = ${e}; ${ld(4, 'v', '')}`; }
    return [`${pre} ${R(i.reg)} = v; ${RH(i.reg)} = v >> 31;`, Out.NONE];
  }
  // ---- ALU (register-register forms have their own interpreter handlers; translate them as op r/m, reg)
  if (fn === A.aluRR32 || fn === A.aluRR64) return translate(Object.assign(tmpInsn, i, { fn: A.aluEG }), end, ctx);
  if (fn === A.aluRI32 || fn === A.aluRI64) return translate(Object.assign(tmpInsn, i, { fn: A.aluEI }), end, ctx);
  const op = i.sub;
  const aluOp = op === 0 || op === 1 || op === 4 || op === 5 || op === 6 || op === 7;
  if ((fn === A.aluEG || fn === A.aluGE || fn === A.aluEI || fn === A.aluAI) && aluOp && (s === 8 || s === 4)) {
    const lines: string[] = [];
    const body = aluLines(op, s)!;
    if (fn === A.aluAI || (fn === A.aluEI && !mem) || (fn === A.aluEG && !mem) || fn === A.aluGE) {
      // Destination is a register.
      const dst = fn === A.aluAI ? 0 : fn === A.aluGE ? i.reg : i.rm;
      if (fn === A.aluGE) {
        const ld = loadRM(i, s, 'bL', 'bH', end); if (ld === null) return null;
        lines.push(ld);
      } else if (fn === A.aluEG) lines.push(s === 8 ? `const bL = ${R(i.reg)}, bH = ${RH(i.reg)};` : `const bL = ${R(i.reg)}, bH = 0;`);
      else lines.push(`const bL = ${i.imm}, bH = ${s === 8 ? i.immHi : 0};`);
      lines.push(s === 8 ? `const aL = ${R(dst)}, aH = ${RH(dst)};` : `const aL = ${R(dst)}, aH = 0;`);
      lines.push(body);
      if (op !== 7) lines.push(storeReg(dst, s, 'rL', 'rH'));
      lines.push(recordLines(op, s));
      ctx.flags = flagsAfter(op, s);
      return [lines.join(' '), Out.NONE];
    }
    // Memory destination: read, compute, write, then flags (a faulting store leaves the flags).
    const e = eaExpr(i, end); if (e === null) return null;
    lines.push(`const ea = ${e};`);
    lines.push(s === 8 ? ld(8, 'aL', 'aH') : `${ld(4, 'aL', '')} const aH = 0;`);
    if (fn === A.aluEG) lines.push(s === 8 ? `const bL = ${R(i.reg)}, bH = ${RH(i.reg)};` : `const bL = ${R(i.reg)}, bH = 0;`);
    else lines.push(`const bL = ${i.imm}, bH = ${s === 8 ? i.immHi : 0};`);
    lines.push(body);
    if (op !== 7) lines.push(st(s, 'rL', 'rH'));
    lines.push(recordLines(op, s));
    ctx.flags = flagsAfter(op, s);
    return [lines.join(' '), op !== 7 ? Out.STORE : Out.NONE];
  }
  if ((fn === A.testEG || fn === A.testAI || fn === A.testEI) && (s === 8 || s === 4)) {
    const lines: string[] = [];
    if (fn === A.testAI) lines.push(s === 8 ? `const aL = g[0], aH = g[1];` : 'const aL = g[0], aH = 0;');
    else { const ld = loadRM(i, s, 'aL', 'aH', end); if (ld === null) return null; lines.push(ld); }
    if (fn === A.testEG) lines.push(s === 8 ? `const bL = ${R(i.reg)}, bH = ${RH(i.reg)};` : `const bL = ${R(i.reg)}, bH = 0;`);
    else lines.push(`const bL = ${i.imm}, bH = ${s === 8 ? i.immHi : 0};`);
    lines.push(`cpu.ccOp = ${(CC_LOGIC << 2) | SIDX[s]}; cpu.ccRes = aL & bL; cpu.ccResHi = aH & bH;`);
    ctx.flags = s === 8 ? Fl.LOGIC64 : Fl.LOGIC32;
    return [lines.join(' '), Out.NONE];
  }
  if (fn === A.incDec && (s === 8 || s === 4) && !mem) {
    const dec = i.sub === 1, r = i.rm;
    const lines = [s === 8 ? `const aL = ${R(r)}, aH = ${RH(r)};` : `const aL = ${R(r)}, aH = 0;`];
    if (s === 8) lines.push(dec ? 'const t = (aL >>> 0) - 1; const rL = t | 0; const rH = (aH - (t < 0 ? 1 : 0)) | 0;'
      : 'const t = (aL >>> 0) + 1; const rL = t | 0; const rH = (aH + (t > 4294967295 ? 1 : 0)) | 0;');
    else lines.push(dec ? 'const rL = (aL - 1) | 0, rH = 0;' : 'const rL = (aL + 1) | 0, rH = 0;');
    lines.push('const cf = getCF(cpu);');
    lines.push(storeReg(r, s, 'rL', 'rH'));
    lines.push(`cpu.ccOp = ${((dec ? CC_DEC : CC_INC) << 2) | SIDX[s]}; cpu.ccAux = cf; cpu.ccRes = rL; cpu.ccResHi = rH; cpu.ccSrc1 = aL; cpu.ccSrc1Hi = aH; cpu.ccSrc2 = 1; cpu.ccSrc2Hi = 0;`);
    ctx.flags = Fl.UNKNOWN;
    return [lines.join(' '), Out.NONE];
  }
  if (fn === A.shiftImm && !mem && (s === 8 || s === 4) && (i.sub === 4 || i.sub === 5 || i.sub === 6 || i.sub === 7)) {
    const c = i.imm & (s === 8 ? 63 : 31);
    if (c === 0) return null;
    const shl = i.sub === 4 || i.sub === 6, shr = i.sub === 5;
    const lines = [`const a = ${R(i.rm)};`];
    if (s === 4) {
      if (shl) lines.push(`const r = a << ${c}, hi = 0, cf = (a >>> ${32 - c}) & 1, of = (r >>> 31) ^ cf;`);
      else if (shr) lines.push(`const r = (a >>> ${c}) | 0, hi = 0, cf = (a >>> ${c - 1}) & 1, of = a >>> 31;`);
      else lines.push(`const r = a >> ${c}, hi = 0, cf = (a >> ${c - 1}) & 1, of = 0;`);
    } else {
      lines.push(`const aH = ${RH(i.rm)};`);
      if (shl) {
        if (c < 32) lines.push(`const hi = (aH << ${c}) | (a >>> ${32 - c}), r = a << ${c}, cf = (aH >>> ${32 - c}) & 1;`);
        else lines.push(`const hi = a << ${c - 32}, r = 0, cf = ${c === 32 ? 'aH & 1' : `(a >>> ${64 - c}) & 1`};`);
        lines.push('const of = (hi >>> 31) ^ cf;');
      } else {
        const sgn = shr ? '>>>' : '>>';
        if (c < 32) lines.push(`const r = (a >>> ${c}) | (aH << ${32 - c}), hi = aH ${sgn} ${c}, cf = (a >>> ${c - 1}) & 1;`);
        else lines.push(`const r = aH ${sgn} ${c - 32}, hi = ${shr ? '0' : 'aH >> 31'}, cf = ${c === 32 ? 'a >>> 31' : `(aH >>> ${c - 33}) & 1`};`);
        lines.push(shr ? 'const of = aH >>> 31;' : 'const of = 0;');
      }
    }
    lines.push(`${R(i.rm)} = r; ${RH(i.rm)} = hi; cpu.ccOp = ${(8 << 2) | SIDX[s]}; cpu.ccRes = r | 0; cpu.ccResHi = hi | 0; cpu.ccAux = cf | (of << 1);`);
    ctx.flags = Fl.UNKNOWN;
    return [lines.join(' '), Out.NONE];
  }
  if ((fn === A.imul2 || fn === A.imul3) && s === 4) {
    const lines: string[] = [];
    if (fn === A.imul2) {
      const ld = loadRM(i, 4, 'bL', 'bH', end); if (ld === null) return null;
      lines.push(ld, `const aL = ${R(i.reg)};`);
    } else {
      const ld = loadRM(i, 4, 'aL', 'aH', end); if (ld === null) return null;
      lines.push(ld, `const bL = ${i.imm};`);
    }
    // The double product is exact whenever it fits in 32 bits, so comparing it detects overflow.
    lines.push(`const r = Math.imul(aL, bL), of = aL * bL !== r; ${R(i.reg)} = r; ${RH(i.reg)} = 0; cpu.ccOp = ${(8 << 2) | 2}; cpu.ccRes = r; cpu.ccResHi = 0; cpu.ccAux = of ? 3 : 0;`);
    ctx.flags = Fl.UNKNOWN;
    return [lines.join(' '), Out.NONE];
  }
  // ---- stack and control transfer (64-bit stack: this translator only runs long-mode blocks)
  if ((fn === C.pushReg || fn === C.pushR64) && s === 8) {
    return [`const ea = g[9] * 4294967296 + (g[8] >>> 0) - 8; ${st(8, R(i.rm), RH(i.rm))} spAdd(g, -8);`, Out.STORE];
  }
  if ((fn === C.popReg || fn === C.popR64) && s === 8) {
    return [`const ea = g[9] * 4294967296 + (g[8] >>> 0); ${ld(8, 'lo', 'hi')} spAdd(g, 8); ${R(i.rm)} = lo; ${RH(i.rm)} = hi;`, Out.NONE];
  }
  if (fn === C.callRel && s === 8) {
    return [`const ret = rip + ${end}; const ea = g[9] * 4294967296 + (g[8] >>> 0) - 8; ${st(8, 'ret >>> 0', 'Math.floor(ret / 4294967296) | 0')} spAdd(g, -8); cpu.rip = rip + ${end + i.imm};`, Out.BRANCH];
  }
  if (fn === C.ret && s === 8) {
    return [`const ea = g[9] * 4294967296 + (g[8] >>> 0); ${ld(8, 'lo', 'hi')} const t = hi * 4294967296 + (lo >>> 0); spAdd(g, 8); cpu.rip = t;`, Out.BRANCH];
  }
  if (fn === C.jmpRel && s === 8) return [`cpu.rip = rip + ${end + i.imm};`, Out.BRANCH];
  if (fn === C.jcc && s === 8) {
    const c = condExpr(i.sub, ctx.flags) ?? `testCondition(cpu, ${i.sub})`;
    return [`cpu.rip = rip + (${c} ? ${end + i.imm} : ${end});`, Out.BRANCH];
  }
  if (fn === Y.nop) return ['', Out.NONE];
  return null;
}

/** Memory accesses may fault: cpu.rip must name the instruction first. Register-only forms cannot fault. */
function mayFault(code: string): boolean {
  return code.includes('read') || code.includes('write');
}

/** Translate a long-mode block; null when the source cannot be built (the block keeps being interpreted). */
export function translateBlock(b: Block): TranslatedBlock | null {
  if (b.mode !== 3) return null;
  const ctx: Ctx = { code: [], flags: Fl.UNKNOWN };
  const handlers: Handler[] = [];
  const insns: Insn[] = [];
  const lines: string[] = [];
  let off = 0;
  let branched = false;
  for (let k = 0; k < b.count; k++) {
    const i = b.insns[k];
    const end = off + i.len;
    const last = k === b.count - 1;
    const t = translate(i, end, ctx);
    if (t !== null) {
      const [code, kind] = t;
      if (mayFault(code)) lines.push(`cpu.rip = rip + ${off};`);
      lines.push(`{ ${code} }`);
      if (kind === Out.BRANCH) branched = true;
      else if (kind === Out.STORE && !last) lines.push(`if (!b.valid) { cpu.rip = rip + ${end}; return ${k + 1}; }`);
    } else {
      ctx.flags = Fl.UNKNOWN;
      const h = handlers.length;
      handlers.push(i.fn); insns.push(i);
      lines.push(`cpu.rip = rip + ${off}; cpu.nextRip = rip + ${end}; h${h}(cpu, i${h});`);
      if (last) { lines.push('cpu.rip = cpu.nextRip;'); branched = true; }
      else lines.push(`if (!b.valid) { cpu.rip = rip + ${end}; return ${k + 1}; }`);
    }
    off = end;
  }
  if (!branched) lines.push(`cpu.rip = rip + ${off};`);
  lines.push(`return ${b.count};`);
  const params = ['read8', 'read16', 'read32', 'read64', 'write8', 'write32', 'write64', 'getCF', 'testCondition', 'wrap', 'ult64', 'slt64', 'spAdd'];
  const hNames = handlers.map((_, k) => `h${k}`), iNames = handlers.map((_, k) => `i${k}`);
  const src = `"use strict"; return function block(cpu, b) { const g = cpu.gpr; const rip = cpu.rip;\n` +
    'const tag = cpu.tlbTag, add = cpu.tlbAddend, ram = cpu.ram, view = cpu.ramView, ub = cpu.cpl === 3 ? 1024 : 0;\n' +
    `${lines.join('\n')}\n};`;
  try {
    const make = new Function(...params, ...hNames, ...iNames, src) as (...a: unknown[]) => TranslatedBlock;
    jitStats.translated++;
    return make(mmu.read8, mmu.read16, mmu.read32, mmu.read64, mmu.write8, mmu.write32, mmu.write64, getCF, testCondition, wrap, ult64, slt64, spAdd, ...handlers, ...insns);
  } catch {
    jitStats.failed++;
    return null;
  }
}

/** Add a small signed amount to RSP (64-bit, carry between halves). */
function spAdd(g: Int32Array, n: number): void {
  const lo = (g[8] + n) | 0;
  if (n >= 0) { if ((lo >>> 0) < (g[8] >>> 0)) g[9] = (g[9] + 1) | 0; } else if ((lo >>> 0) > (g[8] >>> 0)) g[9] = (g[9] - 1) | 0;
  g[8] = lo;
}

/** Instructions of `b` completed before the one at byte offset `off` (after a fault inside a translated block). */
export function retiredBefore(b: Block, off: number): number {
  let p = 0;
  for (let k = 0; k < b.count; k++) {
    if (p >= off) return k;
    p += b.insns[k].len;
  }
  return b.count;
}
