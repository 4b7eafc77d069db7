/**
 * (h) x87 basics. Each case is a short program (the test machine exposes no x87 stack, so results are stored
 * to memory and the status word is read with fnstsw ax):
 *   fninit; fldcw [cw]; fld/fild operands; OP; fstp/fistp result; fnstsw ax
 * OP: fadd fsub fsubr fmul fdiv fdivr (register-pop and m64/m32 forms), fsqrt, fchs, fabs, frndint,
 * fcomi/fucomi/fcomip (EFLAGS), fcom m64 (C0 C2 C3), fild m16/m32/m64, fistp m16/m32/m64 (not fisttp: SSE3),
 * fxch, fld1 fldz. Operands are small dyadic numbers (sums, products, quotients and roots exact in double
 * precision), special values (±0 ±inf NaN), and random doubles computed with precision control set to double
 * (fcw PC=10) so results round once, like a double operation. Rounding control takes all four modes.
 */
import type { DiffCase } from '../case.js';
import { bytesLe, makeCase } from '../build.js';
import { DATA_ADDR } from '../layout.js';
import type { Rng } from '../rng.js';

const f64 = (x: number) => { const b = new DataView(new ArrayBuffer(8)); b.setFloat64(0, x, true); return b.getBigUint64(0, true); };
const f32 = (x: number) => { const b = new DataView(new ArrayBuffer(4)); b.setFloat32(0, x, true); return BigInt(b.getUint32(0, true)); };

// [rbx+disp8] forms: rbx = DATA_ADDR
const A = 0x10, B = 0x18, C = 0x20, CW = 0x30, R = 0x40;
const m = (op: number, digit: number, disp: number) => [op, 0x43 | (digit << 3), disp]; // mod=01 rm=011 (rbx)

function dyadic(rng: Rng): number { return (rng.int(4001) - 2000) / 2 ** rng.int(6); }

export function generateX87(rng: Rng, n: number): DiffCase[] {
  const out: DiffCase[] = [];
  while (out.length < n) {
    const rc = rng.int(4);
    const randomMode = rng.bool(0.3);
    const fcw = (randomMode ? 0x027f : 0x037f) | (rc << 10);
    let a: number, b: number;
    const special = () => rng.pick([0, -0, Infinity, -Infinity, NaN, 1, -1]);
    if (randomMode) { a = (rng.u32() / 4294967296 - 0.5) * 2 ** rng.range(-20, 20); b = (rng.u32() / 4294967296 - 0.5) * 2 ** rng.range(-20, 20); }
    else { a = rng.bool(0.1) ? special() : dyadic(rng); b = rng.bool(0.1) ? special() : dyadic(rng); }
    const k = rng.int(9);
    const code: number[] = [0xdb, 0xe3, ...m(0xd9, 5, CW)]; // fninit; fldcw [rbx+CW]
    const patches: { offset: number; bytes: Uint8Array }[] = [{ offset: CW, bytes: bytesLe(BigInt(fcw), 2) }];
    let name: string;
    const ldA = () => code.push(...m(0xdd, 0, A)); // fld qword [rbx+A]
    const ldB = () => code.push(...m(0xdd, 0, B));
    const stR = () => code.push(...m(0xdd, 3, R)); // fstp qword [rbx+R]
    if (k <= 2) {
      const ops = [['fadd', 0xc1, 0], ['fmul', 0xc9, 1], ['fsub', 0xe9, 4], ['fsubr', 0xe1, 5], ['fdiv', 0xf9, 6], ['fdivr', 0xf1, 7]] as const;
      const [nm, regop, digit] = rng.pick(ops);
      if ((nm === 'fdiv' || nm === 'fdivr') && !randomMode && rng.bool(0.8)) {
        // exact quotient: a = b * q
        const q = dyadic(rng);
        if (nm === 'fdiv') { if (b === 0) b = 1; a = b * q; } else { if (a === 0) a = 1; b = a * q; }
      }
      const form = rng.int(3);
      if (form === 0) { ldA(); ldB(); code.push(0xde, regop); name = `${nm}p st1, st0`; }
      else if (form === 1) { ldA(); code.push(...m(0xdc, digit, B)); name = `${nm} st0, m64`; }
      else { ldA(); code.push(...m(0xd8, digit, B)); b = Math.fround(b); name = `${nm} st0, m32`; }
      stR();
      patches.push({ offset: B, bytes: form === 2 ? bytesLe(f32(b), 4) : bytesLe(f64(b), 8) });
    } else if (k === 3) {
      const u = rng.pick([['fsqrt', 0xfa], ['fchs', 0xe0], ['fabs', 0xe1], ['frndint', 0xfc]] as const);
      if (u[0] === 'fsqrt' && !randomMode && rng.bool(0.8)) { const r = dyadic(rng) / 8; a = r * r; }
      if (u[0] === 'frndint' && !randomMode) a = dyadic(rng);
      ldA(); code.push(0xd9, u[1]); stR();
      name = u[0];
    } else if (k === 4) {
      const v = rng.int(3);
      if (rng.bool(0.2)) b = a;
      ldB(); ldA(); // st0 = a, st1 = b
      if (v === 0) { code.push(0xdb, 0xf1); name = 'fcomi st0, st1'; }
      else if (v === 1) { code.push(0xdb, 0xe9); name = 'fucomi st0, st1'; }
      else { code.push(0xdf, 0xf1); name = 'fcomip st0, st1'; }
    } else if (k === 5) {
      if (rng.bool(0.2)) b = a;
      ldA(); code.push(...m(0xdc, rng.pick([2, 3]), B)); name = 'fcom/fcomp m64';
    } else if (k === 6) {
      const v = rng.int(3);
      const ival = rng.regValue([16, 32, 64][v]);
      patches.push({ offset: C, bytes: bytesLe(ival, [2, 4, 8][v]) });
      code.push(...(v === 0 ? m(0xdf, 0, C) : v === 1 ? m(0xdb, 0, C) : m(0xdf, 5, C)));
      stR();
      name = `fild m${[16, 32, 64][v]}`;
    } else if (k === 7) {
      const v = rng.int(3); // no fisttp: it is SSE3, #UD on our processor
      if (!randomMode && rng.bool(0.5)) a = rng.pick([32767.5, -32768.5, 32768, 2147483647.5, -2147483648.5, 2147483648, 9.2233720368547758e18, -9.2233720368547758e18, 0.5, -0.5, 1.5, 2.5, -2.5, NaN, Infinity]);
      ldA();
      code.push(...[m(0xdf, 3, R), m(0xdb, 3, R), m(0xdf, 7, R)][v]);
      name = ['fistp m16', 'fistp m32', 'fistp m64'][v];
    } else {
      const v = rng.int(3);
      if (v === 0) { ldA(); ldB(); code.push(0xd9, 0xc9); stR(); code.push(...m(0xdd, 3, R + 8)); name = 'fxch st1'; }
      else { code.push(0xd9, v === 1 ? 0xe8 : 0xee); stR(); name = v === 1 ? 'fld1' : 'fldz'; }
    }
    code.push(0xdf, 0xe0); // fnstsw ax
    patches.push({ offset: A, bytes: bytesLe(f64(a), 8) });
    if (!patches.some((p) => p.offset === B)) patches.push({ offset: B, bytes: bytesLe(f64(b), 8) });
    out.push(makeCase(rng, { name: `${name}${randomMode ? ' (random, PC=double)' : ''} RC=${rc}`, insn: code, gpr: { 3: BigInt(DATA_ADDR) }, patches, fcw }));
  }
  return out;
}
