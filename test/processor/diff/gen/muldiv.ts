/**
 * (c) mul, imul (one operand F6/F7 /5, two operand 0F AF, three operand 69/6B), div, idiv incl. #DE
 * (divide by zero and quotient overflow), sizes 8/16/32/64, register and memory forms.
 * Undefined-flag masks: after mul/imul SF ZF AF PF (CF OF defined); after div/idiv all six arithmetic flags.
 * A #DE leaves every register and flag as before, so those cases compare everything.
 */
import type { DiffCase } from '../case.js';
import { makeCase } from '../build.js';
import { FL } from '../layout.js';
import type { Rng } from '../rng.js';
import { rmForm, SIZES } from './common.js';

const MUL_UNDEF = FL.SF | FL.ZF | FL.AF | FL.PF;
const DIV_UNDEF = MUL_UNDEF | FL.CF | FL.OF;

export function generateMulDiv(rng: Rng, n: number): DiffCase[] {
  const out: DiffCase[] = [];
  while (out.length < n) {
    const size = rng.pick(SIZES);
    const k = rng.int(7);
    if (k <= 1) {
      // mul / imul one-operand: rDX:rAX (AX for 8-bit) <- rAX * r/m
      const imul = k === 1;
      const f = rmForm(rng, { size, opcode: [0xf6], digit: imul ? 5 : 4, avoid: 0b101 });
      const gpr = { ...f.gpr, 0: rng.regValue(size), 2: rng.regValue(size) };
      out.push(makeCase(rng, { name: `${imul ? 'imul' : 'mul'} r/m${size}`, insn: f.bytes, gpr, patches: f.patches, undefFlags: MUL_UNDEF }));
    } else if (k === 2 && size !== 8) {
      const f = rmForm(rng, { size, opcode: [0x0f, 0xaf], sameOpcode: true });
      out.push(makeCase(rng, { name: `imul r${size}, r/m${size}`, insn: f.bytes, gpr: f.gpr, patches: f.patches, undefFlags: MUL_UNDEF }));
    } else if (k === 3 && size !== 8) {
      const imm8 = rng.bool();
      const isz = imm8 ? 1 : size === 16 ? 2 : 4;
      const f = rmForm(rng, { size, opcode: [imm8 ? 0x6b : 0x69], sameOpcode: true, imm: { value: rng.operand(isz * 8), size: isz } });
      out.push(makeCase(rng, { name: `imul r${size}, r/m${size}, imm${isz * 8}`, insn: f.bytes, gpr: f.gpr, patches: f.patches, undefFlags: MUL_UNDEF }));
    } else {
      // div / idiv: dividend rDX:rAX (AX for 8-bit). Choose operands so that most cases do not fault.
      const idiv = rng.bool();
      const bits = BigInt(size);
      const m = (1n << bits) - 1n;
      let divisor = rng.operand(size);
      const fault = rng.int(10);
      if (fault === 0) divisor = 0n;
      let hi: bigint, lo = rng.operand(size);
      if (fault === 1) hi = rng.operand(size); // often overflows
      else if (divisor === 0n) hi = rng.operand(size);
      else if (!idiv) {
        hi = rng.u64() & m;
        hi = divisor === 0n ? 0n : hi % divisor; // hi < divisor: quotient fits
      } else {
        // |dividend| < |divisor| * 2^(size-1): sign-extend a small-enough low part
        const sd = BigInt.asIntN(size, divisor);
        const ad = sd < 0n ? -sd : sd;
        const q = BigInt.asIntN(size, rng.operand(size)) >> BigInt(rng.int(size));
        const r = ad > 1n ? (rng.u64() % ad) : 0n;
        let dividend = q * sd + (q < 0n ? -r : r);
        const lim = 1n << (bits * 2n - 1n);
        if (dividend >= lim || dividend < -lim) dividend = 0n;
        lo = BigInt.asUintN(size, dividend);
        hi = BigInt.asUintN(size, dividend >> bits);
      }
      const f = rmForm(rng, { size, opcode: [0xf6], digit: idiv ? 7 : 6, avoid: 0b101, rmValue: divisor });
      const gpr = { ...f.gpr };
      const up = () => rng.u64();
      if (size === 8) gpr[0] = (up() & ~0xffffn) | (hi << 8n) | lo;
      else { gpr[0] = (size === 64 ? 0n : up() & ~m) | lo; gpr[2] = (size === 64 ? 0n : up() & ~m) | hi; if (size !== 64) { gpr[0] = BigInt.asUintN(64, gpr[0]); gpr[2] = BigInt.asUintN(64, gpr[2]); } }
      if (size === 8) gpr[2] = rng.u64();
      out.push(makeCase(rng, { name: `${idiv ? 'idiv' : 'div'} r/m${size}`, insn: f.bytes, gpr, patches: f.patches, undefFlags: DIV_UNDEF }));
    }
  }
  return out;
}
