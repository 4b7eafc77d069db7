/**
 * (e) Bit and data-movement instructions: bt bts btr btc (register and imm8 bit offsets; memory forms with
 * bit offsets reaching other bytes), bsf bsr, bswap, movzx movsx movsxd, cmovcc setcc, xchg xadd cmpxchg
 * cmpxchg8b/16b, lea with every addressing form (incl. 67 and RIP-relative), cbw cwde cdqe cwd cdq cqo,
 * lahf sahf.
 * Undefined masks: bt*: OF SF AF PF (CF defined, ZF unchanged); bsf/bsr: CF OF SF AF PF, and with a zero
 * source the destination too (AMD leaves it unchanged, Intel documents it as undefined); bswap r16 result
 * undefined (not generated).
 */
import type { DiffCase } from '../case.js';
import { bytesLe, makeCase, pickMem } from '../build.js';
import { encode } from '../encoder.js';
import { DATA_ADDR, DATA_SIZE, FL } from '../layout.js';
import type { Rng } from '../rng.js';
import { rmForm, type Size } from './common.js';

const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
const W: Size[] = [16, 32, 64];
const opsz = (s: Size) => (s === 16 ? [0x66] : []);

export function generateBitMisc(rng: Rng, n: number): DiffCase[] {
  const out: DiffCase[] = [];
  const push = (name: string, f: { bytes: Uint8Array; gpr: Record<number, bigint>; patches: { offset: number; bytes: Uint8Array }[] }, extra: { undefFlags?: number; undefGprs?: number; rflags?: number } = {}) =>
    out.push(makeCase(rng, { name, insn: f.bytes, gpr: f.gpr, patches: f.patches, ...extra }));
  while (out.length < n) {
    const k = rng.int(14);
    const size = rng.pick(W);
    if (k === 0 || k === 1) {
      const which = rng.int(4); // bt bts btr btc
      const nm = ['bt', 'bts', 'btr', 'btc'][which];
      const undef = FL.OF | FL.SF | FL.AF | FL.PF;
      if (k === 0) {
        const f = rmForm(rng, { size, opcode: [0x0f, 0xba], sameOpcode: true, digit: 4 + which, imm: { value: BigInt(rng.int(256)), size: 1 }, lockable: which > 0 });
        push(`${nm} r/m${size}, imm8`, f, { undefFlags: undef });
      } else {
        const f = rmForm(rng, { size, opcode: [0x0f, 0xa3 + which * 8], sameOpcode: true, lockable: which > 0 });
        if (f.mem && f.reg !== undefined) {
          // Register bit offsets address other bytes: keep the touched operand inside the data pages.
          const bytes = size / 8;
          const lo = -Math.floor(f.offset! / bytes) * size;
          const hi = Math.floor((DATA_SIZE - bytes - f.offset!) / bytes) * size + size - 1;
          const bit = rng.bool(0.5) ? rng.range(-size, 2 * size) : rng.range(lo, hi);
          const clamped = Math.max(lo, -(2 ** (size - 1)), Math.min(hi, 2 ** (size - 1) - 1, bit));
          f.gpr[f.reg] = BigInt.asUintN(64, BigInt(clamped)) & (size === 64 ? 0xffffffffffffffffn : size === 32 ? 0xffffffffn : 0xffffn);
          if (size < 64) f.gpr[f.reg] |= rng.u64() & ~((1n << BigInt(size)) - 1n);
        }
        push(`${nm} r/m${size}, r${size}${f.mem ? ' (mem)' : ''}`, f, { undefFlags: undef });
      }
    } else if (k === 2) {
      const rev = rng.bool();
      const zero = rng.bool(0.15);
      const f = rmForm(rng, { size, opcode: [0x0f, rev ? 0xbd : 0xbc], sameOpcode: true, rmValue: zero ? 0n : undefined });
      const srcZero = f.mem ? zero : ((f.gpr[f.rmPhys!] ?? 0n) & ((1n << BigInt(size)) - 1n)) === 0n;
      push(`${rev ? 'bsr' : 'bsf'} r${size}, r/m${size}`, f, {
        undefFlags: FL.CF | FL.OF | FL.SF | FL.AF | FL.PF, undefGprs: srcZero && f.reg !== undefined ? 1 << f.reg : 0,
      });
    } else if (k === 3) {
      const s = rng.pick([32, 64] as const);
      const r = rng.int(16);
      push(`bswap r${s}`, { bytes: encode({ rexW: s === 64, opcode: [0x0f, 0xc8], opreg: r }), gpr: {}, patches: [] });
    } else if (k === 4) {
      const sx = rng.bool();
      const src = rng.pick([8, 16] as const);
      const dst = src === 16 ? rng.pick([32, 64] as const) : size;
      const f = rmForm(rng, { size: dst, opcode: [0x0f, (sx ? 0xbe : 0xb6) + (src === 16 ? 1 : 0)], sameOpcode: true, memBytes: src / 8 });
      push(`${sx ? 'movsx' : 'movzx'} r${dst}, r/m${src}`, f);
    } else if (k === 5) {
      const w = rng.bool(0.8);
      const f = rmForm(rng, { size: w ? 64 : 32, opcode: [0x63], sameOpcode: true, memBytes: 4 });
      push(`movsxd r${w ? 64 : 32}, r/m32`, f);
    } else if (k === 6) {
      const cc = rng.int(16);
      const f = rmForm(rng, { size, opcode: [0x0f, 0x40 + cc], sameOpcode: true });
      push(`cmov${CC[cc]} r${size}, r/m${size}`, f);
    } else if (k === 7) {
      const cc = rng.int(16);
      const f = rmForm(rng, { size: 8, opcode: [0x0f, 0x90 + cc], sameOpcode: true, digit: rng.int(8) });
      push(`set${CC[cc]} r/m8`, f);
    } else if (k === 8) {
      const s = rng.pick([8, 16, 32, 64] as const);
      const v = rng.int(4);
      if (v === 0 && s !== 8) {
        const r = rng.int(16);
        push(`xchg ${s === 64 ? 'rax' : s === 32 ? 'eax' : 'ax'}, r${s}`, { bytes: encode({ prefixes: opsz(s), rexW: s === 64, opcode: [0x90], opreg: r }), gpr: {}, patches: [] });
      } else if (v <= 1) push(`xchg r/m${s}, r${s}`, rmForm(rng, { size: s, opcode: [0x86] }));
      else push(`xadd r/m${s}, r${s}`, rmForm(rng, { size: s, opcode: [0x0f, 0xc0], lockable: true }));
    } else if (k === 9) {
      const s = rng.pick([8, 16, 32, 64] as const);
      const f = rmForm(rng, { size: s, opcode: [0x0f, 0xb0], lockable: true, avoid: 1 });
      // accumulator equal to the destination half of the time
      const m = (1n << BigInt(s)) - 1n;
      const rmv = f.mem ? bytesToBig(f.patches[0].bytes) : (f.gpr[f.rmPhys!] ?? 0n) >> (f.rmPhys !== f.rmReg ? 8n : 0n);
      const dst = rmv & m;
      f.gpr[0] = rng.bool() ? ((rng.u64() & ~m) | dst) : rng.regValue(s);
      push(`cmpxchg r/m${s}, r${s}`, f);
    } else if (k === 10) {
      const wide = rng.bool(0.4);
      const bytes = wide ? 16 : 8;
      const m = pickMem(rng, bytes, 0b1111);
      if (wide) {
        // cmpxchg16b needs a 16-byte aligned operand (#GP otherwise): move the target down to alignment mostly
        const mis = rng.bool(0.9) ? (m.offset & 15) : 0;
        for (const r in m.regs) if (Number(r) === m.mem.base) m.regs[r] = BigInt.asUintN(64, m.regs[r] - BigInt(mis));
        if (m.mem.base === undefined) m.mem.disp -= mis;
        m.offset -= mis;
      }
      const old = rng.u128() & ((1n << BigInt(bytes * 8)) - 1n);
      const half = BigInt(bytes * 4);
      const hm = (1n << half) - 1n;
      const equal = rng.bool();
      const gpr: Record<number, bigint> = { ...m.regs, 0: equal ? old & hm : rng.u64() & hm, 2: equal ? old >> half : rng.u64() & hm, 1: rng.u64(), 3: rng.u64() };
      if (!wide) { gpr[0] |= rng.u64() & ~0xffffffffn; gpr[2] |= rng.u64() & ~0xffffffffn; }
      const insn = encode({ prefixes: rng.bool(0.3) ? [0xf0] : [], rexW: wide, opcode: [0x0f, 0xc7], reg: 1, rm: { mem: m.mem } });
      out.push(makeCase(rng, { name: wide ? 'cmpxchg16b m128' : 'cmpxchg8b m64', insn, gpr, patches: [{ offset: m.offset, bytes: bytesLe(old, bytes) }] }));
    } else if (k === 11) {
      // lea: any registers/values; no memory access happens
      const s = rng.pick([16, 32, 64] as const);
      const a32 = rng.bool(0.25);
      const base = rng.bool(0.85) ? rng.int(16) : undefined;
      const index = rng.bool(0.5) ? rng.pick([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]) : undefined;
      const rip = base === undefined && index === undefined && rng.bool(0.5);
      const disp = rng.pick([0, rng.range(-128, 127), (rng.u32() | 0), -1, 0x7fffffff, -0x80000000]);
      const prefixes = [...opsz(s), ...(a32 ? [0x67] : [])];
      const insn = encode({ prefixes, rexW: s === 64, opcode: [0x8d], reg: rng.int(16), rm: { mem: { base, index, scale: rng.pick([1, 2, 4, 8] as const), disp, rip, forceSib: rng.bool(0.1), dispSize: rng.pick([undefined, 4]) } } });
      const gpr: Record<number, bigint> = {};
      for (let r = 0; r < 16; r++) gpr[r] = rng.regValue(64);
      out.push(makeCase(rng, { name: `lea r${s}, m${a32 ? ' (addr32)' : ''}${rip ? ' rip-relative' : ''}`, insn, gpr }));
    } else if (k === 12) {
      const s = rng.pick([16, 32, 64] as const);
      const op = rng.pick([0x98, 0x99]);
      const nm = op === 0x98 ? { 16: 'cbw', 32: 'cwde', 64: 'cdqe' }[s] : { 16: 'cwd', 32: 'cdq', 64: 'cqo' }[s];
      out.push(makeCase(rng, { name: nm, insn: encode({ prefixes: opsz(s), rexW: s === 64, opcode: [op] }), gpr: { 0: rng.regValue(rng.pick([8, 16, 32, 64])) } }));
    } else {
      const sahf = rng.bool();
      out.push(makeCase(rng, { name: sahf ? 'sahf' : 'lahf', insn: [sahf ? 0x9e : 0x9f], gpr: { 0: rng.u64() } }));
    }
  }
  return out;
}

function bytesToBig(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  return v;
}
export { DATA_ADDR };
