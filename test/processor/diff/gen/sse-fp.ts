/**
 * (g) SSE/SSE2 floating point, scalar (ss/sd) and packed (ps/pd): add sub mul div min max sqrt, cmp with all
 * eight predicates, comis/ucomis, logic (and andn or xor), unpck/shuf, conversions between int32/int64/float/
 * double (cvt and cvtt), movss/movsd. Operands mix special values (±0, ±inf, QNaN, SNaN, denormals, extremes,
 * integer-conversion boundaries) with random ones; MXCSR takes every rounding mode, sometimes FTZ/DAZ and
 * sticky flags, and sometimes unmasked exceptions (#XM). rcpss/rsqrtss are left out: their approximations are
 * model-specific. Nothing is masked: results, MXCSR flags and EFLAGS after comis are all architectural.
 */
import type { DiffCase } from '../case.js';
import { bytesLe, makeCase, pickMem } from '../build.js';
import { encode } from '../encoder.js';
import type { Rng } from '../rng.js';
import { alignMem, freeGpr } from './sse-int.js';

const f32 = (x: number) => { const b = new DataView(new ArrayBuffer(4)); b.setFloat32(0, x, true); return BigInt(b.getUint32(0, true)); };
const f64 = (x: number) => { const b = new DataView(new ArrayBuffer(8)); b.setFloat64(0, x, true); return b.getBigUint64(0, true); };

export function special32(rng: Rng): bigint {
  switch (rng.int(14)) {
    case 0: return rng.pick([0n, 0x80000000n]);
    case 1: return rng.pick([0x7f800000n, 0xff800000n]); // inf
    case 2: return (rng.bool() ? 0x7fc00000n : 0xffc00000n) | BigInt(rng.int(4) ? 0 : rng.u32() & 0x3fffff); // QNaN
    case 3: return (rng.bool() ? 0x7f800000n : 0xff800000n) | BigInt(1 + (rng.u32() & 0x3ffffe)); // SNaN
    case 4: return BigInt(rng.u32() & 0x807fffff); // denormal
    case 5: return rng.pick([0x7f7fffffn, 0xff7fffffn, 0x00800000n, 0x80800000n]);
    case 6: return f32(rng.pick([1, -1, 0.5, 1.5, 2.5, -2.5, 3, 1e-3, 2147483648, -2147483648, 2147483520, 9.2233720368547758e18, -9.2233720368547758e18, 4294967296]));
    case 7: return f32((rng.int(2000) - 1000) / 8);
    default: return BigInt(rng.u32());
  }
}
export function special64(rng: Rng): bigint {
  switch (rng.int(14)) {
    case 0: return rng.pick([0n, 0x8000000000000000n]);
    case 1: return rng.pick([0x7ff0000000000000n, 0xfff0000000000000n]);
    case 2: return (rng.bool() ? 0x7ff8000000000000n : 0xfff8000000000000n) | (rng.int(4) ? 0n : rng.u64() & 0x7ffffffffffffn);
    case 3: return (rng.bool() ? 0x7ff0000000000000n : 0xfff0000000000000n) | (1n + (rng.u64() & 0x7fffffffffffen));
    case 4: return rng.u64() & 0x800fffffffffffffn;
    case 5: return rng.pick([0x7fefffffffffffffn, 0xffefffffffffffffn, 0x0010000000000000n, 0x8010000000000000n, 0x3ff0000000000001n]);
    case 6: return f64(rng.pick([1, -1, 0.5, 1.5, 2.5, -2.5, -0.5, 2147483647.5, 2147483648, -2147483648.5, -2147483649, 9223372036854775807, -9223372036854775808, 1e300, 1e-300, 3.4028235677973366e38, 1.401298464324817e-45]));
    case 7: return f64((rng.int(2000) - 1000) / 8);
    default: return rng.u64();
  }
}
const v128 = (rng: Rng, dbl: boolean) => dbl ? special64(rng) | (special64(rng) << 64n) :
  special32(rng) | (special32(rng) << 32n) | (special32(rng) << 64n) | (special32(rng) << 96n);

const ARITH: [string, number][] = [['add', 0x58], ['mul', 0x59], ['sub', 0x5c], ['div', 0x5e], ['min', 0x5d], ['max', 0x5f], ['sqrt', 0x51]];
const KINDS = [{ s: 'ps', p: [] as number[], dbl: false }, { s: 'pd', p: [0x66], dbl: true }, { s: 'ss', p: [0xf3], dbl: false }, { s: 'sd', p: [0xf2], dbl: true }];

export function generateSseFp(rng: Rng, n: number): DiffCase[] {
  const out: DiffCase[] = [];
  while (out.length < n) {
    const dst = rng.int(16), src = rng.int(16);
    const kind = rng.pick(KINDS);
    const xmm: Record<number, bigint> = { [dst]: v128(rng, kind.dbl), [src]: v128(rng, kind.dbl) };
    const memForm = rng.bool(0.25);
    const mem = memForm ? pickMem(rng, 16, 0) : undefined;
    if (mem) alignMem(mem);
    const rm = mem ? { mem: mem.mem } : { reg: src };
    const patches = mem ? [{ offset: mem.offset, bytes: bytesLe(v128(rng, kind.dbl), 16) }] : [];
    const gpr: Record<number, bigint> = mem ? { ...mem.regs } : {};
    // MXCSR: rounding mode, FTZ/DAZ now and then, sticky flags, and a few unmasked exceptions.
    let mxcsr = (rng.int(4) << 13) | 0x1f80;
    if (rng.bool(0.15)) mxcsr |= 0x8000;
    if (rng.bool(0.15)) mxcsr |= 0x40;
    if (rng.bool(0.2)) mxcsr |= rng.u32() & 0x3f;
    if (rng.bool(0.08)) mxcsr &= ~(1 << (7 + rng.int(6)));
    const k = rng.int(12);
    let name: string, insn: Uint8Array;
    const ms = memForm ? 'm' : 'xmm';
    if (k <= 4) {
      const [nm, op] = rng.pick(ARITH);
      insn = encode({ prefixes: kind.p, opcode: [0x0f, op], reg: dst, rm });
      name = `${nm}${kind.s} xmm, ${ms}`;
    } else if (k === 5) {
      const pred = rng.int(8);
      insn = encode({ prefixes: kind.p, opcode: [0x0f, 0xc2], reg: dst, rm, imm: { value: pred, size: 1 } });
      name = `cmp${['eq', 'lt', 'le', 'unord', 'neq', 'nlt', 'nle', 'ord'][pred]}${kind.s} xmm, ${ms}`;
    } else if (k === 6) {
      const dbl = rng.bool();
      const u = rng.bool();
      insn = encode({ prefixes: dbl ? [0x66] : [], opcode: [0x0f, u ? 0x2e : 0x2f], reg: dst, rm });
      xmm[dst] = v128(rng, dbl); xmm[src] = rng.bool(0.3) ? xmm[dst] : v128(rng, dbl);
      name = `${u ? 'ucomi' : 'comi'}${dbl ? 'sd' : 'ss'} xmm, ${ms}`;
    } else if (k === 7) {
      const v = rng.int(6);
      const pd = kind.dbl;
      const op = [0x54, 0x55, 0x56, 0x57, 0x14, 0x15][v];
      insn = encode({ prefixes: pd ? [0x66] : [], opcode: [0x0f, op], reg: dst, rm });
      name = `${['and', 'andn', 'or', 'xor', 'unpckl', 'unpckh'][v]}${pd ? 'pd' : 'ps'} xmm, ${ms}`;
    } else if (k === 8) {
      const pd = kind.dbl;
      insn = encode({ prefixes: pd ? [0x66] : [], opcode: [0x0f, 0xc6], reg: dst, rm, imm: { value: rng.int(256), size: 1 } });
      name = `shuf${pd ? 'pd' : 'ps'} xmm, ${ms}, imm8`;
    } else if (k === 9) {
      // int <-> scalar: cvtsi2ss/sd (F3/F2 0F 2A), cvtt/cvt ss/sd 2si (2C/2D), 32 and 64-bit GPR
      const dbl = rng.bool();
      const w = rng.bool();
      const g = freeGpr(rng, mem?.used ?? 0);
      const toInt = rng.bool(0.6);
      if (toInt) {
        const t = rng.bool();
        xmm[src] = v128(rng, dbl);
        if (mem) patches[0] = { offset: mem.offset, bytes: bytesLe(dbl ? special64(rng) : special32(rng), 16) };
        insn = encode({ prefixes: [dbl ? 0xf2 : 0xf3], rexW: w, opcode: [0x0f, t ? 0x2c : 0x2d], reg: g, rm });
        name = `${t ? 'cvtt' : 'cvt'}${dbl ? 'sd' : 'ss'}2si r${w ? 64 : 32}, ${ms}`;
      } else {
        gpr[g] = rng.regValue(w ? 64 : 32);
        insn = encode({ prefixes: [dbl ? 0xf2 : 0xf3], rexW: w, opcode: [0x0f, 0x2a], reg: dst, rm: mem ? { mem: mem.mem } : { reg: g } });
        if (mem) patches[0] = { offset: mem.offset, bytes: bytesLe(rng.regValue(64), 16) };
        name = `cvtsi2${dbl ? 'sd' : 'ss'} xmm, ${mem ? 'm' : 'r'}${w ? 64 : 32}`;
      }
    } else if (k === 10) {
      const forms: [string, number[], number, boolean][] = [
        ['cvtss2sd', [0xf3], 0x5a, false], ['cvtsd2ss', [0xf2], 0x5a, true], ['cvtps2pd', [], 0x5a, false], ['cvtpd2ps', [0x66], 0x5a, true],
        ['cvtdq2ps', [], 0x5b, false], ['cvtps2dq', [0x66], 0x5b, false], ['cvttps2dq', [0xf3], 0x5b, false],
        ['cvtdq2pd', [0xf3], 0xe6, false], ['cvtpd2dq', [0xf2], 0xe6, true], ['cvttpd2dq', [0x66], 0xe6, true],
      ];
      const [nm, pre, op, srcDbl] = rng.pick(forms);
      const intSrc = nm.startsWith('cvtdq');
      xmm[src] = intSrc ? (rng.u64() | (rng.u64() << 64n)) : v128(rng, srcDbl);
      if (mem) patches[0] = { offset: mem.offset, bytes: bytesLe(xmm[src], 16) };
      insn = encode({ prefixes: pre, opcode: [0x0f, op], reg: dst, rm });
      name = `${nm} xmm, ${ms}`;
    } else {
      const dbl = rng.bool();
      const store = rng.bool();
      insn = encode({ prefixes: [dbl ? 0xf2 : 0xf3], opcode: [0x0f, store ? 0x11 : 0x10], reg: dst, rm });
      name = `mov${dbl ? 'sd' : 'ss'} ${store ? `${ms}, xmm` : `xmm, ${ms}`}`;
    }
    out.push(makeCase(rng, { name, insn, gpr, xmm, patches, mxcsr }));
  }
  return out;
}
