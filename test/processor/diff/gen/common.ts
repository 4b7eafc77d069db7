/** Shared operand-form picking for the integer generators. */
import { bytesLe, pickMem } from '../build.js';
import { encode, type Operand } from '../encoder.js';
import type { Rng } from '../rng.js';

export type Size = 8 | 16 | 32 | 64;
export const SIZES: Size[] = [8, 16, 32, 64];

export interface RmForm {
  bytes: Uint8Array;
  gpr: Record<number, bigint>;
  patches: { offset: number; bytes: Uint8Array }[];
  mem: boolean;
  /** Register numbers used by the operands (bit mask). */
  used: number;
  /** Data offset of the memory operand, when mem. */
  offset?: number;
  rmReg?: number;
  /** Register holding the rm operand (differs from rmReg for AH..BH). */
  rmPhys?: number;
  reg?: number;
}

export interface RmOpts {
  size: Size;
  /** Opcode for the 8-bit form; the other sizes use opcode+1 unless `sameOpcode` (or `opcode16` given). */
  opcode: number[];
  /** true: opcode is used as is for every size (e.g. 0F AF imul). */
  sameOpcode?: boolean;
  /** ModRM.reg as an operand register (random) or as a /digit. */
  digit?: number;
  imm?: { size: number; value: bigint };
  /** Memory form allowed (default true) / forced. */
  mem?: boolean | 'only' | 'never';
  /** lock prefix sometimes (memory destination forms only). */
  lockable?: boolean;
  /** Registers that must not be used for operands or addressing (implicit operands). */
  avoid?: number;
  /** Width of the memory operand in bytes (default size/8). */
  memBytes?: number;
  /** Value for the rm operand (default: rng.operand(size)). */
  rmValue?: bigint;
  regValue?: bigint;
  prefixes?: number[];
  mode32?: boolean;
}

export function rmForm(rng: Rng, o: RmOpts): RmForm {
  const prefixes: number[] = [...(o.prefixes ?? [])];
  if (o.size === 16) prefixes.push(0x66);
  const opcode = [...o.opcode];
  if (o.size !== 8 && !o.sameOpcode) opcode[opcode.length - 1] += 1;
  const nregs = o.mode32 ? 8 : 16;
  const avoid = o.avoid ?? 0;
  // Byte registers: without REX, 4..7 are AH CH DH BH; with REX they are SPL BPL SIL DIL (and 8..15 exist).
  const rex8 = !o.mode32 && o.size === 8 && rng.bool(0.5);
  const regPool = (o.size === 8 && !rex8) || o.mode32 ? 8 : nregs;
  const pickReg = (extraAvoid: number): number => {
    const c: number[] = [];
    for (let r = 0; r < regPool; r++) {
      const phys = o.size === 8 && !rex8 && r >= 4 ? r - 4 : r;
      if (!(avoid & (1 << phys)) && !(extraAvoid & (1 << r))) c.push(r);
    }
    return rng.pick(c);
  };
  const gpr: Record<number, bigint> = {};
  const patches: RmForm['patches'] = [];
  let used = 0;
  const physOf = (r: number) => (o.size === 8 && !rex8 && r >= 4 ? r - 4 : r);
  let reg = o.digit ?? -1;
  if (o.digit === undefined) {
    reg = pickReg(0);
    used |= 1 << physOf(reg);
    gpr[physOf(reg)] = withUpper(rng, o.size, physOf(reg) !== reg, o.regValue ?? rng.operand(o.size));
  }
  const useMem = o.mem === 'only' || (o.mem !== 'never' && o.mem !== false && rng.bool(0.4));
  let rm: Operand;
  let offset: number | undefined;
  let rmReg: number | undefined;
  if (useMem) {
    const nbytes = o.memBytes ?? o.size / 8;
    const m = pickMem(rng, nbytes, avoid | used, { mode32: o.mode32 });
    Object.assign(gpr, m.regs);
    used |= m.used;
    offset = m.offset;
    patches.push({ offset: m.offset, bytes: bytesLe(o.rmValue ?? rng.operand(nbytes * 8), nbytes) });
    rm = { mem: m.mem };
    if (o.lockable && rng.bool(0.3)) prefixes.unshift(0xf0);
  } else {
    // Same register for both operands now and then (add rax, rax).
    rmReg = o.digit === undefined && rng.bool(0.1) ? reg : pickReg(used & ~0);
    const p = physOf(rmReg);
    if (rmReg !== reg || o.digit !== undefined) gpr[p] = withUpper(rng, o.size, p !== rmReg, o.rmValue ?? rng.operand(o.size));
    used |= 1 << p;
    rm = { reg: rmReg };
  }
  const bytes = encode({ prefixes, rexW: o.size === 64, forceRex: rex8 || (!o.mode32 && o.size !== 8 && rng.bool(0.1)), opcode, reg, rm, imm: o.imm, mode32: o.mode32 });
  return { bytes, gpr, patches, mem: useMem, used, offset, rmReg, rmPhys: rmReg === undefined ? undefined : physOf(rmReg), reg: o.digit === undefined ? reg : undefined };
}

/** Register value with `v` in the operand bits (bits 8..15 for AH..BH) and random bits elsewhere. */
function withUpper(rng: Rng, size: Size, highByte: boolean, v: bigint): bigint {
  const r = rng.u64();
  if (highByte) return BigInt.asUintN(64, (r & ~0xff00n) | (v << 8n));
  if (size === 64) return v;
  const m = (1n << BigInt(size)) - 1n;
  const up = rng.pick([0n, -1n, r]);
  return BigInt.asUintN(64, (up & ~m) | v);
}

export const sizeName = (s: Size) => String(s);
