/**
 * x87 checked against the host FPU: stack setup, operation, FNSTSW and FSTP m80 run natively and in the
 * emulator; results (80-bit), status words and RFLAGS must match bit for bit, for every precision and
 * rounding control, on raw 80-bit operands (denormals, unsupported encodings) and on doubles.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execX87 } from '../../../src/processor/emulated/simd/index.js';
import { statusWord } from '../../../src/processor/emulated/simd/x87.js';
import { getArithFlags } from '../../../src/processor/emulated/flags.js';
import { Rng, TestCpu, cleanup, insn, runHost, toHex, type HostCase } from './harness.js';

after(cleanup);

/** Exact double -> 80-bit bytes (independent of the code under test). */
function f80FromDouble(v: number): Uint8Array {
  const out = new Uint8Array(16);
  const dv = new DataView(out.buffer);
  const d = new DataView(new Float64Array([v]).buffer);
  const hi = d.getUint32(4, true), lo = d.getUint32(0, true);
  const sign = hi >>> 31, e = (hi >>> 20) & 0x7ff;
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let se: number;
  if (e === 0x7ff) { se = 0x7fff; mant = (1n << 63n) | (mant << 11n); }
  else if (e === 0) {
    if (mant === 0n) se = 0;
    else { let ex = -1022; while (!(mant & (1n << 52n))) { mant <<= 1n; ex--; } se = ex + 16383; mant <<= 11n; }
  } else { se = e - 1023 + 16383; mant = (mant | (1n << 52n)) << 11n; }
  dv.setBigUint64(0, mant, true);
  dv.setUint16(8, se | (sign << 15), true);
  return out;
}
function f80Raw(rng: Rng): Uint8Array {
  const out = new Uint8Array(16); const dv = new DataView(out.buffer);
  const s = rng.int(2) << 15;
  let hi = rng.u32(), lo = rng.u32(), e: number;
  switch (rng.int(10)) {
    case 0: e = 0; hi = 0; lo = 0; break; // zero
    case 1: e = 0x7fff; hi = 0x80000000; lo = 0; break; // inf
    case 2: e = 0x7fff; hi |= 0xc0000000; break; // QNaN
    case 3: e = 0x7fff; hi = (hi | 0x80000000) & ~0x40000000; if ((hi & 0x3fffffff) === 0 && lo === 0) lo = 1; break; // SNaN
    case 4: e = 0; hi &= 0x7fffffff; break; // denormal
    case 5: e = 1 + rng.int(0x7ffe); hi &= 0x7fffffff; break; // unnormal
    case 6: e = 16383 + rng.int(80) - 10; hi |= 0x80000000; break; // near integers
    default: e = 1 + rng.int(0x7ffe); hi |= 0x80000000;
  }
  dv.setUint32(0, lo, true); dv.setUint32(4, hi, true); dv.setUint16(8, s | e, true);
  return out;
}
function dbl(rng: Rng): number {
  const d = new DataView(new ArrayBuffer(8));
  switch (rng.int(5)) {
    case 0: return rng.pick([0, -0, 1, -1, 0.5, 3, Infinity, -Infinity, NaN, 1e300, -1e-300, 5e-324, 2 ** 63, -(2 ** 63), 1.5, 2.5, -2.5]);
    case 1: return (rng.int(200001) - 100000) / (1 + rng.int(7));
    default:
      d.setUint32(0, rng.u32()); d.setUint32(4, ((rng.int(2) << 31) | ((rng.int(2046) + 1) << 20) | (rng.u32() & 0xfffff)) >>> 0);
      return d.getFloat64(0);
  }
}

type Form = 'two' | 'st' | 'ld' | 'fl';
interface XSpec { name: string; form: Form; esc: number; reg: number; rm?: number; gen: 'dbl' | 'raw' | 'f32' | 'f64' | 'i16' | 'i32' | 'i64' | 'bcd' | 'prem' | 'scale'; arith?: boolean }
const X: XSpec[] = [
  { name: 'fadd', form: 'two', esc: 0xd8, reg: 0, rm: 1, gen: 'dbl', arith: true },
  { name: 'fmul', form: 'two', esc: 0xd8, reg: 1, rm: 1, gen: 'dbl', arith: true },
  { name: 'fsub', form: 'two', esc: 0xd8, reg: 4, rm: 1, gen: 'dbl', arith: true },
  { name: 'fsubr', form: 'two', esc: 0xd8, reg: 5, rm: 1, gen: 'dbl', arith: true },
  { name: 'fdiv', form: 'two', esc: 0xd8, reg: 6, rm: 1, gen: 'dbl', arith: true },
  { name: 'fdivr', form: 'two', esc: 0xd8, reg: 7, rm: 1, gen: 'dbl', arith: true },
  { name: 'fsqrt', form: 'two', esc: 0xd9, reg: 7, rm: 2, gen: 'dbl', arith: true },
  { name: 'fcom', form: 'two', esc: 0xd8, reg: 2, rm: 1, gen: 'raw' },
  { name: 'fucom', form: 'two', esc: 0xdd, reg: 4, rm: 1, gen: 'raw' },
  { name: 'ftst', form: 'two', esc: 0xd9, reg: 4, rm: 4, gen: 'raw' },
  { name: 'fxam', form: 'two', esc: 0xd9, reg: 4, rm: 5, gen: 'raw' },
  { name: 'fchs', form: 'two', esc: 0xd9, reg: 4, rm: 0, gen: 'raw' },
  { name: 'fabs', form: 'two', esc: 0xd9, reg: 4, rm: 1, gen: 'raw' },
  { name: 'frndint', form: 'two', esc: 0xd9, reg: 7, rm: 4, gen: 'raw' },
  { name: 'fscale', form: 'two', esc: 0xd9, reg: 7, rm: 5, gen: 'scale' },
  { name: 'fprem', form: 'two', esc: 0xd9, reg: 7, rm: 0, gen: 'prem' },
  { name: 'fprem1', form: 'two', esc: 0xd9, reg: 6, rm: 5, gen: 'prem' },
  { name: 'fxtract', form: 'two', esc: 0xd9, reg: 6, rm: 4, gen: 'dbl' },
  { name: 'fld1', form: 'two', esc: 0xd9, reg: 5, rm: 0, gen: 'raw' },
  { name: 'fldl2t', form: 'two', esc: 0xd9, reg: 5, rm: 1, gen: 'raw' },
  { name: 'fldl2e', form: 'two', esc: 0xd9, reg: 5, rm: 2, gen: 'raw' },
  { name: 'fldpi', form: 'two', esc: 0xd9, reg: 5, rm: 3, gen: 'raw' },
  { name: 'fldlg2', form: 'two', esc: 0xd9, reg: 5, rm: 4, gen: 'raw' },
  { name: 'fldln2', form: 'two', esc: 0xd9, reg: 5, rm: 5, gen: 'raw' },
  { name: 'fldz', form: 'two', esc: 0xd9, reg: 5, rm: 6, gen: 'raw' },
  { name: 'fcomi', form: 'fl', esc: 0xdb, reg: 6, rm: 1, gen: 'raw' },
  { name: 'fucomi', form: 'fl', esc: 0xdb, reg: 5, rm: 1, gen: 'raw' },
  { name: 'fsts', form: 'st', esc: 0xd9, reg: 3, gen: 'raw' },
  { name: 'fstl', form: 'st', esc: 0xdd, reg: 3, gen: 'raw' },
  { name: 'fistps', form: 'st', esc: 0xdf, reg: 3, gen: 'raw' },
  { name: 'fistpl', form: 'st', esc: 0xdb, reg: 3, gen: 'raw' },
  { name: 'fistpll', form: 'st', esc: 0xdf, reg: 7, gen: 'raw' },
  { name: 'fbstp', form: 'st', esc: 0xdf, reg: 6, gen: 'raw' },
  { name: 'flds', form: 'ld', esc: 0xd9, reg: 0, gen: 'f32' },
  { name: 'fldl', form: 'ld', esc: 0xdd, reg: 0, gen: 'f64' },
  { name: 'filds', form: 'ld', esc: 0xdf, reg: 0, gen: 'i16' },
  { name: 'fildl', form: 'ld', esc: 0xdb, reg: 0, gen: 'i32' },
  { name: 'fildll', form: 'ld', esc: 0xdf, reg: 5, gen: 'i64' },
  { name: 'fbld', form: 'ld', esc: 0xdf, reg: 4, gen: 'bcd' },
];

function operands(rng: Rng, s: XSpec): [Uint8Array, Uint8Array] {
  const rnd = () => { const b = new Uint8Array(16); for (let i = 0; i < 16; i++) b[i] = rng.int(256); return b; };
  switch (s.gen) {
    case 'dbl': {
      if (rng.int(2) === 0) { // raw 80-bit operands (64-bit significands, denormals, unsupported encodings)
        const a = f80Raw(rng), b = rng.int(6) === 0 ? a.slice() : f80Raw(rng);
        if (rng.int(6) === 0) b[0] ^= 1 << rng.int(8);
        return [a, b];
      }
      const a = dbl(rng);
      const b = rng.int(6) === 0 ? a * (1 + (rng.int(5) - 2) * 2 ** -52) : dbl(rng);
      return [f80FromDouble(a), f80FromDouble(b)];
    }
    case 'raw': {
      const a = f80Raw(rng);
      // comparisons: sometimes equal or nearly equal operands
      const b = rng.int(4) === 0 ? a.slice() : f80Raw(rng);
      if (rng.int(4) === 0) b[0] ^= 1;
      return [a, b];
    }
    case 'prem': {
      if (rng.int(2) === 0) {
        // raw operands with exponent differences below 64 (complete reduction; the partial-reduction step
        // for larger differences is implementation-specific and differs between vendors)
        const a = f80Raw(rng), b = f80Raw(rng);
        const e = (b[9] & 0x7f) << 8 | b[8];
        const eaOld = (a[9] & 0x7f) << 8 | a[8];
        if (e !== 0x7fff && eaOld !== 0x7fff) { const ea = Math.min(0x7ffe, e + rng.int(80) - 16); a[8] = ea & 0xff; a[9] = (a[9] & 0x80) | (ea >> 8); }
        return [a, b];
      }
      const y = dbl(rng); const x = Number.isFinite(y) && y !== 0 ? y * (rng.int(1 << 20) + rng.u32() / 2 ** 32) * (rng.int(2) ? 1 : -1) : dbl(rng);
      return [f80FromDouble(x), f80FromDouble(y)];
    }
    case 'scale': return [f80FromDouble(dbl(rng)), f80FromDouble(rng.int(4) === 0 ? dbl(rng) : rng.int(200) - 100 + rng.int(10) / 10)];
    case 'f32': { const b = rnd(); if (rng.int(3) === 0) b[3] = rng.pick([0, 0x80, 0x7f, 0xff]); return [rnd(), b]; }
    case 'f64': { const b = rnd(); if (rng.int(3) === 0) { b[7] = rng.pick([0, 0x80, 0x7f, 0xff]); b[6] = rng.pick([0, 0xf0, 0xf8, 0x08]); } return [rnd(), b]; }
    case 'i16': case 'i32': case 'i64': { const b = rnd(); if (rng.int(3) === 0) b.fill(0, 1); return [rnd(), b]; }
    case 'bcd': {
      const b = rnd();
      for (let i = 0; i < 9; i++) b[i] = (rng.int(10) << 4) | rng.int(10);
      b[9] = rng.int(2) ? 0x80 : 0;
      return [rnd(), b];
    }
  }
}

function cwFor(rng: Rng): number {
  const pc = rng.pick([0, 2, 3]);
  return 0x7f | (pc << 8) | (rng.int(4) << 10);
}

const BUF = 0x2000, OUT = 0x2100, CW = 0x2200;
function emu(cpu: TestCpu, s: XSpec, c: HostCase): { r: string; sw: number; flags: number } {
  const m = cpu.mem;
  const x = (esc: number, reg: number, rm: number) => execX87(cpu, insn(esc, 0, { mod: 3, reg, rm }));
  const xm = (esc: number, reg: number, ea: number) => execX87(cpu, insn(esc, 0, { mod: 0, reg, rm: 0, ea }));
  x(0xdb, 4, 3); // fninit
  m[CW] = c.ctl & 0xff; m[CW + 1] = c.ctl >> 8;
  xm(0xd9, 5, CW); // fldcw
  const res = c.a.slice();
  let flags = 0;
  if (s.form === 'ld') {
    m.set(c.b, BUF);
    assert.ok(xm(s.esc, s.reg, BUF));
  } else {
    m.set(c.b, BUF);
    if (s.form !== 'st') xm(0xdb, 5, BUF); // fld m80 b
    m.set(c.a, BUF);
    xm(0xdb, 5, BUF); // fld m80 a
    if (s.form === 'st') {
      m.fill(0, OUT, OUT + 16);
      assert.ok(xm(s.esc, s.reg, OUT));
      const sw = statusWord(cpu.f);
      return { r: toHex(m.subarray(OUT, OUT + 16)), sw, flags: 0 };
    }
    cpu.ccOp = 0; cpu.ccSrc1 = 0x8d5;
    assert.ok(x(s.esc, s.reg, s.rm ?? 0), s.name);
    if (s.form === 'fl') { flags = getArithFlags(cpu); return { r: toHex(c.a), sw: statusWord(cpu.f), flags }; }
  }
  const sw = statusWord(cpu.f);
  xm(0xdb, 7, OUT); // fstp m80
  res.set(m.subarray(OUT, OUT + 10));
  return { r: toHex(res), sw, flags };
}

describe('x87 vs host FPU', () => {
  const rng = new Rng(Number(process.env.SIMD_SEED ?? 0x87));
  const per = Math.round(250 * Number(process.env.SIMD_SCALE ?? 1));
  const cases: HostCase[] = [], owner: XSpec[] = [];
  for (const s of X) for (let k = 0; k < per; k++) { const [a, b] = operands(rng, s); cases.push({ op: s.name, ctl: cwFor(rng), a, b }); owner.push(s); }
  const host = runHost(cases);
  for (const s of X) {
    it(`${s.name} (${per} cases)`, () => {
      const cpu = new TestCpu();
      const fails: string[] = [];
      owner.forEach((o, i) => {
        if (o !== s) return;
        const c = cases[i], h = host[i];
        const e = emu(cpu, s, c);
        if (e.r !== h.r || e.sw !== h.ctl || e.flags !== h.flags)
          fails.push(`cw=${c.ctl.toString(16)} a=${toHex(c.a)} b=${toHex(c.b)}: host ${h.r} sw=${h.ctl.toString(16)} fl=${h.flags.toString(16)} emu ${e.r} sw=${e.sw.toString(16)} fl=${e.flags.toString(16)}`);
      });
      assert.equal(fails.length, 0, `${fails.length} mismatches, first:\n${fails.slice(0, 6).join('\n')}`);
    });
  }
});
