/**
 * Block translator: turns a hot decoded block of 64-bit code into one JavaScript function (`new Function`),
 * the way QEMU emits host code. The commonest forms (mov, lea, add/sub/and/or/xor/cmp/test in 8/32/64 bits,
 * inc/dec, not/neg, shifts and rotates, imul, cmov/setcc, push/pop, call/ret/jmp/jcc, movzx/movsx) become
 * straight-line code with operand sizes, registers and displacements as constants; every other instruction
 * calls its ordinary handler. The decoded block stays the source of truth (the interpreter still runs
 * partial blocks, e.g. after STI).
 *
 * Contract of a translated block `fn(cpu, b, budget)`: entered with cpu.rip at the block start, runs all its
 * instructions, leaves cpu.rip at the next instruction and returns the number retired (fewer when a store
 * invalidated the block). A self-loop block repeats while the total stays within `budget`, keeping the
 * passes already completed in b.loopDone. Before anything that can fault, cpu.rip (and cpu.nextRip for
 * handler calls) hold that instruction's address, so a fault is reported exactly as by the interpreter; the
 * run loop recovers the retired count from cpu.rip (see `retiredBefore`) plus b.loopDone.
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
import { getCF, testCondition, getArithFlags, setArithFlags } from './flags.js';

/**
 * Runs the block (looping blocks: repeatedly, while the total stays within `budget` instructions and nothing
 * asks the run loop to look at interrupts); returns the instructions retired.
 */
export type TranslatedBlock = (cpu: Cpu, b: Block, budget: number) => number;

/** Statistics for benchmarks: blocks translated / not translatable, instructions retired in translated code. */
export const jitStats = { translated: 0, failed: 0, insns: 0 };

const DEFAULT_THRESHOLD = 40000;

/**
 * Executions of a block before it is translated (HYPERTS_JIT_THRESHOLD: a number, or "off").
 * Every translated block is a separate function V8 must warm up and optimize (on a background thread), so
 * only really hot blocks pay back: a Linux boot decodes ~100k blocks; at 500 it translated ~10k and ran
 * slower than the interpreter (192 s vs 155 s CPU), at 20000 it translates ~1.4k and runs faster (93 s).
 * With more forms translated (bench/README.md), side by side: 3000 / 8000 / 20000 took 64.9 / 58.9 / 55.4 s CPU
 * and 20000 / 40000 took 46.0 / 43.1 s; 80000 was no better than 40000.
 */

/**
 * Which translator hot blocks go to (HYPERTS_JIT): 'js' (the default, this file), 'wasm' (wasm/translate.ts,
 * blocks batched into WebAssembly modules, much cheaper to produce, so its threshold is far lower; the Debian
 * boot takes ~45% less CPU than with 'js'), or 'off' (interpreter only). wasm is not the default yet: in a
 * clean-clone CI run a VM worker running a long disk workload with it exceeded its memory limit (1280 MB for a
 * 512 MiB guest), so its memory use over long runs must be bounded first.
 */
export type JitEngine = 'js' | 'wasm' | 'off';
export let jitEngine: JitEngine = 'js';

/** Executions before translation with the wasm translator (see bench/README.md for the measurements). */
const DEFAULT_WASM_THRESHOLD = 1000;

function parseThreshold(v: string | undefined): number {
  const e = typeof process !== 'undefined' ? process.env.HYPERTS_JIT : undefined;
  if (e !== undefined && e !== '' && e !== 'js' && e !== 'wasm' && e !== 'off') {
    throw new Error(`HYPERTS_JIT must be js, wasm or off (got "${e}")`);
  }
  if (e === 'js' || e === 'wasm' || e === 'off') jitEngine = e;
  const dflt = jitEngine === 'wasm' ? DEFAULT_WASM_THRESHOLD : DEFAULT_THRESHOLD;
  if (jitEngine === 'off') return Infinity;
  if (v === undefined || v === '') return dflt;
  if (v === 'off') return Infinity;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : dflt;
}

export let jitThreshold = parseThreshold(typeof process !== 'undefined' ? process.env.HYPERTS_JIT_THRESHOLD : undefined);

/** Tests and benchmarks: choose the translator. */
export function setJitEngine(e: JitEngine): void { jitEngine = e; }

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
  /** The instruction being translated has flag results nobody can see (see flagsDeadAfter). */
  flagsDead?: boolean;
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

/**
 * Only a TLB miss can fault (the slow accessors raise #PF/#GP), so cpu.rip is set to the instruction's address
 * there and not on the hit path; translateBlock replaces the mark by that assignment.
 */
const RIP_MARK = '/*rip*/';

/** Declare `lo` (int32; zero-extended for 1 and 2 bytes) and for 8 bytes `hi` with the value at ea. */
function ld(s: number, lo: string, hi: string): string {
  const lim = 4096 - s;
  const hit = s === 8 ? `${lo} = view.getInt32(p, true); ${hi} = view.getInt32(p + 4, true);`
    : s === 4 ? `${lo} = view.getInt32(p, true);` : s === 2 ? `${lo} = view.getUint16(p, true);` : `${lo} = ram[p];`;
  const miss = s === 8 ? `${lo} = read64(cpu, ea) | 0; ${hi} = cpu.memHi | 0;`
    : s === 4 ? `${lo} = read32(cpu, ea) | 0;` : s === 2 ? `${lo} = read16(cpu, ea);` : `${lo} = read8(cpu, ea);`;
  return `let ${lo} = 0${s === 8 ? `, ${hi} = 0` : ''}; { const x = ub + ((ea >>> 12) & 1023), o = ea & 4095; ` +
    `if (tag[x] === ea - o${s > 1 ? ` && o <= ${lim}` : ''}) { const p = ea + add[x]; ${hit} } else { ${RIP_MARK} ${miss} } }`;
}

/** Store `lo` (and `hi` for 8 bytes) at ea. */
function st(s: number, lo: string, hi: string): string {
  const lim = 4096 - s;
  const hit = s === 8 ? `view.setInt32(p, ${lo}, true); view.setInt32(p + 4, ${hi}, true);`
    : s === 4 ? `view.setInt32(p, ${lo}, true);` : `ram[p] = ${lo};`;
  const miss = s === 8 ? `write64(cpu, ea, ${lo}, ${hi});` : s === 4 ? `write32(cpu, ea, ${lo});` : `write8(cpu, ea, (${lo}) & 255);`;
  return `{ const x = 2048 + ub + ((ea >>> 12) & 1023), o = ea & 4095; ` +
    `if (tag[x] === ea - o${s > 1 ? ` && o <= ${lim}` : ''}) { const p = ea + add[x]; ${hit} } else { ${RIP_MARK} ${miss} } }`;
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
  // ---- 8-bit ALU and test (byte registers include AH..BH; values and flag records are zero-extended)
  if ((fn === A.aluEG || fn === A.aluGE || fn === A.aluEI || fn === A.aluAI || fn === A.aluRR32 || fn === A.aluRI32) && s === 1 && aluOp) {
    return translateAlu8(i, end, ctx, fn === A.aluRR32 ? A.aluEG : fn === A.aluRI32 ? A.aluEI : fn);
  }
  if ((fn === A.testEG || fn === A.testEI || fn === A.testAI) && s === 1) {
    const lines: string[] = [];
    if (fn === A.testAI) lines.push('const a = g[0] & 255;');
    else if (!mem) lines.push(`const a = ${reg8(i.rm8)};`);
    else { const e = eaExpr(i, end); if (e === null) return null; lines.push(`const ea = ${e}; ${ld(1, 'a', '')}`); }
    lines.push(`const b = ${fn === A.testEG ? reg8(i.reg8) : `${i.imm & 255}`};`);
    lines.push(`cpu.ccOp = ${CC_LOGIC << 2}; cpu.ccRes = a & b; cpu.ccResHi = 0;`);
    ctx.flags = Fl.UNKNOWN;
    return [lines.join(' '), Out.NONE];
  }
  // ---- setcc / cmovcc (flags unchanged, so what the record holds stays known)
  if (fn === D.setcc) {
    const c = condExpr(i.sub, ctx.flags) ?? `testCondition(cpu, ${i.sub})`;
    if (mem) { const e = eaExpr(i, end); if (e === null) return null; return [`const v = ${c} ? 1 : 0; const ea = ${e}; ${st(1, 'v', '')}`, Out.STORE]; }
    return [`const v = ${c} ? 1 : 0; ${setReg8(i.rm8, 'v')}`, Out.NONE];
  }
  if (fn === D.cmov && (s === 8 || s === 4)) {
    const l = loadRM(i, s, 'vL', 'vH', end); if (l === null) return null;
    const c = condExpr(i.sub, ctx.flags) ?? `testCondition(cpu, ${i.sub})`;
    return [`${l} if (${c}) { ${storeReg(i.reg, s, 'vL', 'vH')} }${s === 4 ? ` else ${RH(i.reg)} = 0;` : ''}`, Out.NONE];
  }
  // ---- multiply
  if ((fn === A.imul2 || fn === A.imul3) && s === 8) {
    const lines: string[] = [];
    if (fn === A.imul2) {
      const l = loadRM(i, 8, 'bL', 'bH', end); if (l === null) return null;
      lines.push(l, `const aL = ${R(i.reg)}, aH = ${RH(i.reg)};`);
    } else {
      const l = loadRM(i, 8, 'aL', 'aH', end); if (l === null) return null;
      lines.push(l, `const bL = ${i.imm}, bH = ${i.immHi};`);
    }
    lines.push(`const r = mul64(aL, aH, bL, bH), hi = mulOut[0]; ${R(i.reg)} = r; ${RH(i.reg)} = hi; cpu.ccOp = ${(8 << 2) | 3}; cpu.ccRes = r; cpu.ccResHi = hi; cpu.ccAux = mulOut[1];`);
    ctx.flags = Fl.UNKNOWN;
    return [lines.join(' '), Out.NONE];
  }
  // ---- not / neg on registers
  if (fn === A.group3 && !mem && (s === 8 || s === 4) && (i.sub === 2 || i.sub === 3)) {
    const r = i.rm;
    if (i.sub === 2) return [s === 8 ? `${R(r)} = ~${R(r)}; ${RH(r)} = ~${RH(r)};` : `${R(r)} = ~${R(r)}; ${RH(r)} = 0;`, Out.NONE];
    const lines = ['const aL = 0, aH = 0;', s === 8 ? `const bL = ${R(r)}, bH = ${RH(r)};` : `const bL = ${R(r)}, bH = 0;`, aluLines(5, s)!, storeReg(r, s, 'rL', 'rH'), recordLines(5, s)];
    ctx.flags = flagsAfter(5, s);
    return [lines.join(' '), Out.NONE];
  }
  // ---- shl/shr/sar r32/r64 by CL (count 0 leaves the flags; a 32-bit destination is still zero-extended)
  if (fn === A.shiftCl && !mem && (s === 8 || s === 4) && (i.sub === 4 || i.sub === 5 || i.sub === 6 || i.sub === 7)) {
    ctx.flags = Fl.UNKNOWN;
    return [`shiftVar(cpu, g, ${i.rm}, ${i.sub === 7 ? 2 : i.sub === 5 ? 1 : 0}, ${s}, g[2] & ${s === 8 ? 63 : 31});`, Out.NONE];
  }
  // ---- rol/ror r32/r64 by imm: CF and OF change, the other flags stay (materialized unless dead)
  if (fn === A.shiftImm && !mem && (s === 8 || s === 4) && (i.sub === 0 || i.sub === 1)) {
    const c = i.imm & (s === 8 ? 63 : 31);
    if (c === 0) return [s === 4 ? `${RH(i.rm)} = 0;` : '', Out.NONE];
    const rol = i.sub === 0, lines = [`const a = ${R(i.rm)};`];
    if (s === 4) {
      lines.push(rol ? `const r = (a << ${c}) | (a >>> ${32 - c}), hi = 0;` : `const r = (a >>> ${c}) | (a << ${32 - c}), hi = 0;`);
      lines.push(rol ? 'const cf = r & 1, of = (r >>> 31) ^ cf;' : 'const cf = r >>> 31, of = cf ^ ((r >>> 30) & 1);');
    } else {
      // Rotate left by k (ror by c = rol by 64 - c): swap halves for k >= 32, then shift across them.
      let k = rol ? c : 64 - c;
      const swap = k >= 32;
      if (swap) k -= 32;
      const l = swap ? 'aH' : 'a', h = swap ? 'a' : 'aH';
      lines.push(`const aH = ${RH(i.rm)};`);
      lines.push(k === 0 ? `const r = ${l}, hi = ${h};` : `const r = (${l} << ${k}) | (${h} >>> ${32 - k}), hi = (${h} << ${k}) | (${l} >>> ${32 - k});`);
      lines.push(rol ? 'const cf = r & 1, of = (hi >>> 31) ^ cf;' : 'const cf = hi >>> 31, of = cf ^ ((hi >>> 30) & 1);');
    }
    lines.push(`${R(i.rm)} = r; ${RH(i.rm)} = hi;`);
    if (!ctx.flagsDead) { lines.push('rotFlags(cpu, cf, of);'); ctx.flags = Fl.UNKNOWN; }
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

/** Translate a long-mode block; null when the source cannot be built (the block keeps being interpreted). */
export function translateBlock(b: Block): TranslatedBlock | null {
  if (b.mode !== 3) return null;
  const ctx: Ctx = { code: [], flags: Fl.UNKNOWN };
  const handlers: Handler[] = [];
  const insns: Insn[] = [];
  const lines: string[] = [];
  let off = 0;
  let branched = false;
  // A block whose last jcc jumps back to its own start loops inside the function (no dispatch per pass)
  // when it calls no handler: only its memory slow paths can then raise irqCheck / exitRequested.
  const loop = isSelfLoop(b);
  const ret = (x: string): string => (loop ? `{ b.loopDone = 0; return n + ${x}; }` : `return ${x};`);
  for (let k = 0; k < b.count; k++) {
    const i = b.insns[k];
    const end = off + i.len;
    const last = k === b.count - 1;
    if (loop && last) {
      const c = condExpr(i.sub, ctx.flags) ?? `testCondition(cpu, ${i.sub})`;
      lines.push(`if (!(${c})) { cpu.rip = rip + ${end}; ${ret(`${b.count}`)} }`);
      lines.push(`n += ${b.count}; if (n + ${b.count} > budget || cpu.irqCheck || cpu.exitRequested) { cpu.rip = rip; b.loopDone = 0; return n; }`);
      lines.push('b.loopDone = n;');
      branched = true;
      break;
    }
    ctx.flagsDead = flagsDeadAfter(b, k);
    const t = translate(i, end, ctx);
    if (t !== null) {
      const [code, kind] = t;
      lines.push(`{ ${code.split(RIP_MARK).join(`cpu.rip = rip + ${off};`)} }`);
      if (kind === Out.BRANCH) branched = true;
      else if (kind === Out.STORE && !last) lines.push(`if (!b.valid) { cpu.rip = rip + ${end}; ${ret(`${k + 1}`)} }`);
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
  if (loop) { lines.unshift('let n = 0; for (;;) {'); lines.push('}'); } else lines.push(`return ${b.count};`);
  const params = ['read8', 'read16', 'read32', 'read64', 'write8', 'write32', 'write64', 'getCF', 'testCondition', 'wrap', 'ult64', 'slt64', 'spAdd', 'mul64', 'mulOut', 'shiftVar', 'rotFlags'];
  const hNames = handlers.map((_, k) => `h${k}`), iNames = handlers.map((_, k) => `i${k}`);
  const src = `"use strict"; return function block(cpu, b, budget) { const g = cpu.gpr; const rip = cpu.rip;\n` +
    'const tag = cpu.tlbTag, add = cpu.tlbAddend, ram = cpu.ram, view = cpu.ramView, ub = cpu.cpl === 3 ? 1024 : 0;\n' +
    `${lines.join('\n')}\n};`;
  try {
    const make = new Function(...params, ...hNames, ...iNames, src) as (...a: unknown[]) => TranslatedBlock;
    jitStats.translated++;
    return make(mmu.read8, mmu.read16, mmu.read32, mmu.read64, mmu.write8, mmu.write32, mmu.write64, getCF, testCondition, wrap, ult64, slt64, spAdd, mul64, mulOut, shiftVar, rotFlags, ...handlers, ...insns);
  } catch {
    jitStats.failed++;
    return null;
  }
}

function reg8(r: number): string {
  return r < 16 ? `(${R(r)} & 255)` : `((${R(r - 16)} >>> 8) & 255)`;
}
function setReg8(r: number, v: string): string {
  return r < 16 ? `${R(r)} = (${R(r)} & -256) | (${v});` : `${R(r - 16)} = (${R(r - 16)} & -65281) | ((${v}) << 8);`;
}

/** 8-bit op r/m8, reg8 | reg8, r/m8 | r/m8, imm8 | AL, imm8. */
function translateAlu8(i: Insn, end: number, ctx: Ctx, fn: Handler): [string, Out] | null {
  const op = i.sub, mem = i.mod !== 3;
  const lines: string[] = [];
  const res = op === 0 ? '(a + b) & 255' : op === 5 || op === 7 ? '(a - b) & 255' : op === 1 ? 'a | b' : op === 4 ? 'a & b' : 'a ^ b';
  const rec = op === 1 || op === 4 || op === 6 ? `cpu.ccOp = ${CC_LOGIC << 2}; cpu.ccRes = r; cpu.ccResHi = 0;`
    : `cpu.ccOp = ${(op === 0 ? CC_ADD : CC_SUB) << 2}; cpu.ccRes = r; cpu.ccResHi = 0; cpu.ccSrc1 = a; cpu.ccSrc1Hi = 0; cpu.ccSrc2 = b; cpu.ccSrc2Hi = 0;`;
  ctx.flags = Fl.UNKNOWN;
  if (fn === A.aluGE || fn === A.aluAI || !mem) {
    const dst = fn === A.aluAI ? 0 : fn === A.aluGE ? i.reg8 : i.rm8;
    lines.push(`const a = ${reg8(dst)};`);
    if (fn === A.aluGE) {
      if (!mem) lines.push(`const b = ${reg8(i.rm8)};`);
      else { const e = eaExpr(i, end); if (e === null) return null; lines.push(`const ea = ${e}; ${ld(1, 'b', '')}`); }
    } else if (fn === A.aluEG) lines.push(`const b = ${reg8(i.reg8)};`);
    else lines.push(`const b = ${i.imm & 255};`);
    lines.push(`const r = ${res};`);
    if (op !== 7) lines.push(setReg8(dst, 'r'));
    lines.push(rec);
    return [lines.join(' '), Out.NONE];
  }
  const e = eaExpr(i, end); if (e === null) return null;
  lines.push(`const ea = ${e}; ${ld(1, 'a', '')}`);
  lines.push(`const b = ${fn === A.aluEG ? reg8(i.reg8) : `${i.imm & 255}`};`, `const r = ${res};`);
  if (op !== 7) lines.push(st(1, 'r', ''));
  lines.push(rec);
  return [lines.join(' '), op !== 7 ? Out.STORE : Out.NONE];
}

/** Out-values of mul64: high half of the product, then the RESCO CF|OF bits. */
const mulOut = new Int32Array(2);

/** Low 64 bits of a signed 64x64 product (high half in mulOut[0]); OF/CF in mulOut[1]. */
function mul64(aL: number, aH: number, bL: number, bH: number): number {
  const al = aL & 0xffff, ah = aL >>> 16, bl = bL & 0xffff, bh = bL >>> 16;
  const t = al * bl, m1 = ah * bl, m2 = al * bh;
  const mid = (t >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
  const hi32 = ah * bh + (m1 >>> 16) + (m2 >>> 16) + (mid >>> 16);
  mulOut[0] = (hi32 + Math.imul(aL, bH) + Math.imul(aH, bL)) | 0;
  // Two sign-extended 32-bit factors cannot overflow 64 bits; otherwise ask the interpreter's exact routine.
  mulOut[1] = aH === (aL >> 31) && bH === (bL >> 31) ? 0 : A.imul64Overflows(aL, aH, bL, bH) ? 3 : 0;
  return ((mid << 16) | (t & 0xffff)) | 0;
}

/** shl (kind 0), shr (1), sar (2) of register r by c (already masked), as exec-alu's shiftOp records them. */
function shiftVar(cpu: Cpu, g: Int32Array, r: number, kind: number, s: number, c: number): void {
  const k = r << 1;
  if (c === 0) { if (s === 4) g[k + 1] = 0; return; }
  const a = g[k];
  let lo: number, hi: number, cf: number, of: number;
  if (s === 4) {
    if (kind === 0) { lo = a << c; cf = (a >>> (32 - c)) & 1; of = (lo >>> 31) ^ cf; }
    else if (kind === 1) { lo = (a >>> c) | 0; cf = (a >>> (c - 1)) & 1; of = a >>> 31; }
    else { lo = a >> c; cf = (a >> (c - 1)) & 1; of = 0; }
    hi = 0;
  } else {
    const aH = g[k + 1];
    if (kind === 0) {
      if (c < 32) { hi = (aH << c) | (a >>> (32 - c)); lo = a << c; cf = (aH >>> (32 - c)) & 1; }
      else { hi = a << (c - 32); lo = 0; cf = c === 32 ? aH & 1 : (a >>> (64 - c)) & 1; }
      of = (hi >>> 31) ^ cf;
    } else {
      if (c < 32) { lo = (a >>> c) | (aH << (32 - c)); hi = kind === 1 ? aH >>> c : aH >> c; cf = (a >>> (c - 1)) & 1; }
      else { lo = kind === 1 ? aH >>> (c - 32) : aH >> (c - 32); hi = kind === 1 ? 0 : aH >> 31; cf = c === 32 ? a >>> 31 : (aH >>> (c - 33)) & 1; }
      of = kind === 1 ? aH >>> 31 : 0;
    }
  }
  g[k] = lo; g[k + 1] = hi;
  cpu.ccOp = (8 << 2) | (s === 8 ? 3 : 2); cpu.ccRes = lo | 0; cpu.ccResHi = hi | 0; cpu.ccAux = cf | (of << 1);
}

/** Register-only forms that neither read nor write flags and cannot fault. */
function flagTransparent(i: Insn): boolean {
  const fn = i.fn;
  if (fn === D.lea || fn === D.movRegImm || fn === Y.nop) return true;
  if (i.mod !== 3) return false;
  return fn === D.movRR64 || fn === D.movRR32 || fn === D.movRR64r || fn === D.movRR32r || fn === D.movEI || fn === D.movzx8 ||
    fn === D.movzx16 || fn === D.movsx8 || fn === D.movsx16 || fn === D.movsxd ||
    (fn === A.shiftImm && (i.sub === 0 || i.sub === 1) && (i.osz === 4 || i.osz === 8)); // rol/ror: dead like the one asking
}

/** Register-only forms that overwrite all six arithmetic flags without reading them and cannot fault. */
function flagFullWriter(i: Insn): boolean {
  const fn = i.fn, s = i.osz, op = i.sub;
  if (s !== 4 && s !== 8) return false;
  if (fn === A.aluAI) return op === 0 || op === 1 || op === 4 || op === 5 || op === 6 || op === 7;
  if (fn === A.testAI) return true;
  if (i.mod !== 3) return false;
  if (fn === A.aluRR32 || fn === A.aluRR64 || fn === A.aluRI32 || fn === A.aluRI64 || fn === A.aluEG || fn === A.aluGE || fn === A.aluEI) {
    return op === 0 || op === 1 || op === 4 || op === 5 || op === 6 || op === 7;
  }
  if (fn === A.testEG || fn === A.testEI) return true;
  return fn === A.shiftImm && op >= 4 && (i.imm & (s === 8 ? 63 : 31)) !== 0;
}

/**
 * The flags instruction k leaves are unobservable: a later instruction of the block overwrites them all
 * with only transparent register forms in between (no reader, no fault, no handler, no block exit).
 */
function flagsDeadAfter(b: Block, k: number): boolean {
  for (let j = k + 1; j < b.count; j++) {
    const i = b.insns[j];
    if (flagFullWriter(i)) return true;
    if (!flagTransparent(i)) return false;
  }
  return false;
}

/** The block ends with a jcc back to its first instruction, and every instruction translates inline. */
function isSelfLoop(b: Block): boolean {
  const last = b.insns[b.count - 1];
  if (last.fn !== C.jcc || last.osz !== 8) return false;
  let len = 0;
  for (let k = 0; k < b.count; k++) len += b.insns[k].len;
  if (len + last.imm !== 0) return false;
  const ctx: Ctx = { code: [], flags: Fl.UNKNOWN };
  let off = 0;
  for (let k = 0; k < b.count - 1; k++) {
    const i = b.insns[k];
    if (translate(i, off + i.len, ctx) === null) return false;
    off += i.len;
  }
  return true;
}

/** Rotates change only CF and OF. */
function rotFlags(cpu: Cpu, cf: number, of: number): void {
  setArithFlags(cpu, (getArithFlags(cpu) & ~0x801) | cf | (of << 11));
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
