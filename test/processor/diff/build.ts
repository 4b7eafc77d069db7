/** Turns instruction bytes plus operand choices into complete DiffCases (code page layout, random state). */
import type { DiffCase } from './case.js';
import { type Mem } from './encoder.js';
import { CODE_ADDR, COMPARED_FLAGS, DATA_ADDR, DATA_SIZE, USER32_CS, USER64_CS, USER_DS } from './layout.js';
import type { Rng } from './rng.js';

export interface CaseSpec {
  name: string;
  /** The instruction(s) under test. */
  insn: Uint8Array | number[];
  mode32?: boolean;
  /** Register values (undefined entries are random). */
  gpr?: Record<number, bigint>;
  rflags?: number;
  mxcsr?: number;
  fcw?: number;
  xmm?: Record<number, bigint>;
  patches?: { offset: number; bytes: Uint8Array }[];
  undefFlags?: number;
  undefGprs?: number;
  undefXmm?: number;
  undefMxcsr?: number;
}

/** Offset of the 32-bit body in the code page; the selector constants live at CONST_OFF. */
const BODY32_OFF = 0x20;
const CONST_OFF = 0x800;
/** Offset of the far jump into compatibility mode (a #GP there means the host has no 32-bit code segment). */
export const FAR_JUMP_TO_32_OFFSET = 18;

export function makeCase(rng: Rng, s: CaseSpec): DiffCase {
  const insn = Uint8Array.from(s.insn);
  const gpr: bigint[] = [];
  for (let i = 0; i < 16; i++) gpr.push(s.gpr?.[i] ?? rng.regValue(rng.pick([8, 16, 32, 64])));
  const xmm: bigint[] = [];
  for (let i = 0; i < 16; i++) xmm.push(s.xmm?.[i] ?? rng.u128());
  let code: Uint8Array, endOffset: number, insnOffset: number;
  if (!s.mode32) {
    code = new Uint8Array(insn.length + 1);
    code.set(insn);
    code[insn.length] = 0xcc;
    endOffset = insn.length;
    insnOffset = 0;
  } else {
    // 64-bit stub: load DS/ES/SS with the flat user data selector (a 64-bit process may run with null DS,
    // which would fault in compatibility mode), far-jump to 0x23:body; the body far-jumps back to 0x33.
    code = new Uint8Array(CONST_OFF + 16).fill(0xcc);
    const dv = new DataView(code.buffer);
    const rel = (at: number, target: number) => dv.setInt32(at, target - (at + 4), true);
    code.set([0x8e, 0x1d], 0); rel(2, CONST_OFF); // mov ds, [rip+sel]
    code.set([0x8e, 0x05], 6); rel(8, CONST_OFF); // mov es, [rip+sel]
    code.set([0x8e, 0x15], 12); rel(14, CONST_OFF); // mov ss, [rip+sel]
    code.set([0xff, 0x2d], 18); rel(20, CONST_OFF + 4); // jmp far m16:32
    dv.setUint16(CONST_OFF, USER_DS, true);
    dv.setUint32(CONST_OFF + 4, CODE_ADDR + BODY32_OFF, true);
    dv.setUint16(CONST_OFF + 8, USER32_CS, true);
    code.set(insn, BODY32_OFF);
    const back = BODY32_OFF + insn.length;
    endOffset = back + 7;
    code[back] = 0xea; // jmp far ptr16:32 (valid outside 64-bit mode)
    dv.setUint32(back + 1, CODE_ADDR + endOffset, true);
    dv.setUint16(back + 5, USER64_CS, true);
    code[endOffset] = 0xcc;
    insnOffset = BODY32_OFF;
  }
  return {
    name: s.name,
    code,
    endOffset,
    insnOffset,
    insnLength: insn.length,
    mode32: s.mode32,
    gpr,
    rflags: (s.rflags ?? rng.u32()) & COMPARED_FLAGS,
    mxcsr: s.mxcsr ?? 0x1f80,
    fcw: s.fcw ?? 0x37f,
    xmm,
    dataSeed: rng.u32(),
    patches: s.patches ?? [],
    undefFlags: s.undefFlags,
    undefGprs: s.undefGprs,
    gprLow32Only: s.mode32,
    undefXmm: s.undefXmm,
    undefMxcsr: s.undefMxcsr,
  };
}

/**
 * Picks a memory operand that addresses `size` bytes at a random offset in the data pages, in a random
 * addressing form, avoiding registers in `avoid` (bit mask) for base/index. Returns the operand, the register
 * values it needs, and the data offset it points at.
 */
export function pickMem(rng: Rng, size: number, avoid: number, opts: { mode32?: boolean; noIndex?: boolean } = {}):
  { mem: Mem; regs: Record<number, bigint>; offset: number; used: number } {
  const nregs = opts.mode32 ? 8 : 16;
  const free: number[] = [];
  for (let r = 0; r < nregs; r++) if (!(avoid & (1 << r))) free.push(r);
  const offset = rng.int(DATA_SIZE - size + 1);
  const target = BigInt(DATA_ADDR + offset);
  const regs: Record<number, bigint> = {};
  const form = rng.int(6);
  const disp = rng.pick([0, rng.range(-128, 127), rng.range(-0x1000, 0x1000), 0]);
  const mask = opts.mode32 ? 0xffffffffn : 0xffffffffffffffffn;
  const hiJunk = () => (opts.mode32 ? (rng.u64() & ~0xffffffffn) : 0n); // upper halves are ignored in 32-bit code
  if (form === 0 && !opts.mode32) {
    // absolute disp32 through SIB (no base, no index)
    return { mem: { disp: DATA_ADDR + offset }, regs, offset, used: 0 };
  }
  const base = rng.pick(free);
  let used = 1 << base;
  const withIndex = !opts.noIndex && form >= 3;
  if (withIndex) {
    const idxChoices = free.filter((r) => r !== 4 && r !== base);
    const index = rng.pick(idxChoices);
    const scale = rng.pick([1, 2, 4, 8] as const);
    const iv = BigInt(rng.range(-64, 64));
    regs[index] = (BigInt.asUintN(64, iv) & mask) | hiJunk();
    regs[base] = (BigInt.asUintN(64, target - BigInt(disp) - iv * BigInt(scale)) & mask) | hiJunk();
    used |= 1 << index;
    return { mem: { base, index, scale, disp, dispSize: rng.bool(0.2) ? 4 : undefined }, regs, offset, used };
  }
  regs[base] = (BigInt.asUintN(64, target - BigInt(disp)) & mask) | hiJunk();
  return { mem: { base, disp, dispSize: rng.pick([undefined, undefined, 1, 4]), forceSib: rng.bool(0.15) }, regs, offset, used };
}

/** Little-endian bytes of `v` (size bytes). */
export function bytesLe(v: bigint, size: number): Uint8Array {
  const b = new Uint8Array(size);
  let x = BigInt.asUintN(size * 8, v);
  for (let i = 0; i < size; i++) { b[i] = Number(x & 0xffn); x >>= 8n; }
  return b;
}
