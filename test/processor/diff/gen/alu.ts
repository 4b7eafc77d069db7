/**
 * (a) ALU: add or adc sbb and sub xor cmp in every encoding (r/m,r  r,r/m  acc,imm  r/m,imm  r/m,imm8 sign-extended),
 * test, inc, dec, neg, not; sizes 8/16/32/64, register and memory (sometimes locked) forms, random incoming flags.
 * Undefined-flag masks: AF after and/or/xor/test (SDM: "AF is undefined"). Everything else is defined.
 */
import type { DiffCase } from '../case.js';
import { makeCase } from '../build.js';
import { encode } from '../encoder.js';
import { FL } from '../layout.js';
import type { Rng } from '../rng.js';
import { rmForm, SIZES, type Size } from './common.js';

const OPS = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
const LOGIC = new Set(['or', 'and', 'xor', 'test']);

export function generateAlu(rng: Rng, n: number): DiffCase[] {
  const out: DiffCase[] = [];
  while (out.length < n) {
    const size = rng.pick(SIZES);
    const immSize = size === 8 ? 1 : size === 16 ? 2 : 4;
    const kind = rng.int(10);
    const lockable = true;
    let name: string, form;
    if (kind <= 5) {
      const opi = rng.int(8);
      const op = OPS[opi];
      const lk = op !== 'cmp' && lockable;
      const enc = rng.int(6);
      if (enc === 0) { form = rmForm(rng, { size, opcode: [opi * 8], lockable: lk }); name = `${op} r/m${size}, r${size}`; }
      else if (enc === 1) { form = rmForm(rng, { size, opcode: [opi * 8 + 2] }); name = `${op} r${size}, r/m${size}`; }
      else if (enc === 2) {
        const imm = rng.operand(immSize * 8);
        const prefixes = size === 16 ? [0x66] : [];
        const bytes = encode({ prefixes, rexW: size === 64, opcode: [opi * 8 + (size === 8 ? 4 : 5)], imm: { value: imm, size: immSize } });
        form = { bytes, gpr: { 0: rng.regValue(size) }, patches: [] };
        name = `${op} ${size === 8 ? 'al' : size === 16 ? 'ax' : size === 32 ? 'eax' : 'rax'}, imm`;
      } else if (enc === 3) {
        form = rmForm(rng, { size, opcode: [0x80], digit: opi, imm: { value: rng.operand(immSize * 8), size: immSize }, lockable: lk });
        name = `${op} r/m${size}, imm${immSize * 8}`;
      } else if (enc === 4 && size !== 8) {
        form = rmForm(rng, { size, opcode: [0x83], sameOpcode: true, digit: opi, imm: { value: rng.operand(8), size: 1 }, lockable: lk });
        name = `${op} r/m${size}, imm8 (sign-extended)`;
      } else {
        form = rmForm(rng, { size, opcode: [0x00 + opi * 8], lockable: lk, mem: 'never' });
        name = `${op} r/m${size}, r${size} (reg)`;
      }
      out.push(makeCase(rng, { name, insn: form.bytes, gpr: form.gpr, patches: form.patches, undefFlags: LOGIC.has(op) ? FL.AF : 0 }));
      continue;
    }
    if (kind === 6) {
      const enc = rng.int(3);
      if (enc === 0) { form = rmForm(rng, { size, opcode: [0x84] }); name = `test r/m${size}, r${size}`; }
      else if (enc === 1) {
        const bytes = encode({ prefixes: size === 16 ? [0x66] : [], rexW: size === 64, opcode: [size === 8 ? 0xa8 : 0xa9], imm: { value: rng.operand(immSize * 8), size: immSize } });
        form = { bytes, gpr: { 0: rng.regValue(size) }, patches: [] };
        name = `test acc${size}, imm`;
      } else { form = rmForm(rng, { size, opcode: [0xf6], digit: 0, imm: { value: rng.operand(immSize * 8), size: immSize } }); name = `test r/m${size}, imm`; }
      out.push(makeCase(rng, { name, insn: form.bytes, gpr: form.gpr, patches: form.patches, undefFlags: FL.AF }));
      continue;
    }
    // inc dec (FE/FF /0 /1), not neg (F6/F7 /2 /3)
    const which = rng.pick(['inc', 'dec', 'not', 'neg'] as const);
    const digit = { inc: 0, dec: 1, not: 2, neg: 3 }[which];
    form = rmForm(rng, { size, opcode: [which === 'inc' || which === 'dec' ? 0xfe : 0xf6], digit, lockable });
    out.push(makeCase(rng, { name: `${which} r/m${size}`, insn: form.bytes, gpr: form.gpr, patches: form.patches }));
  }
  return out;
}

export const ALU_SIZES: readonly Size[] = SIZES;
