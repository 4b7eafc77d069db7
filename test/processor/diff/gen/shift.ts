/**
 * (b) Shifts and rotates: rol ror rcl rcr shl shr sal(/6) sar by 1 (D0/D1), by imm8 (C0/C1) and by CL (D2/D3),
 * counts 0..70 (the CPU masks to 5 bits, 6 with REX.W), plus shld/shrd by imm8 and CL.
 * Undefined-flag masks (SDM; the host is AMD, Intel differs here):
 *  - shl/shr/sar: masked count 0 leaves flags alone (compared); count > 1: OF undefined; AF undefined for
 *    any non-zero count; shl/shr with count >= operand width: CF undefined (8/16-bit only reachable).
 *  - rol/ror/rcl/rcr: only CF and OF are touched; OF undefined unless the masked count is 1.
 *  - shld/shrd: count > 1: OF undefined; AF undefined; count > operand width (16-bit only):
 *    destination and all flags undefined.
 */
import type { DiffCase } from '../case.js';
import { makeCase } from '../build.js';
import { FL } from '../layout.js';
import type { Rng } from '../rng.js';
import { rmForm, SIZES } from './common.js';

const NAMES = ['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'sal', 'sar'];
const ALL = FL.CF | FL.PF | FL.AF | FL.ZF | FL.SF | FL.OF;

function pickCount(rng: Rng): number {
  return rng.pick([0, 1, 1, 2, rng.range(0, 70), rng.range(0, 70), 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65]);
}

export function generateShift(rng: Rng, n: number): DiffCase[] {
  const out: DiffCase[] = [];
  while (out.length < n) {
    const size = rng.pick(SIZES);
    if (rng.int(5) === 0) {
      // shld (0F A4 imm / 0F A5 cl), shrd (0F AC / 0F AD); no 8-bit form
      const s16 = rng.pick([16, 32, 64] as const);
      const right = rng.bool();
      const byCl = rng.bool();
      const count = pickCount(rng);
      const op = (right ? 0xac : 0xa4) + (byCl ? 1 : 0);
      const f = rmForm(rng, {
        size: s16, opcode: [0x0f, op], sameOpcode: true, avoid: byCl ? 1 << 1 : 0,
        imm: byCl ? undefined : { value: BigInt(count), size: 1 },
      });
      const gpr = { ...f.gpr };
      if (byCl) gpr[1] = (rng.u64() & ~0xffn) | BigInt(count);
      const masked = count & (s16 === 64 ? 63 : 31);
      let undefFlags = 0, undefGprs = 0;
      if (masked > 1) undefFlags |= FL.OF;
      if (masked !== 0) undefFlags |= FL.AF;
      if (masked > s16) { undefFlags = ALL; if (!f.mem) undefGprs = 1 << f.rmReg!; }
      const memUndef = f.mem && masked > s16;
      if (memUndef) continue; // undefined memory result: not comparable
      out.push(makeCase(rng, { name: `${right ? 'shrd' : 'shld'} r/m${s16}, r${s16}, ${byCl ? 'cl' : 'imm8'}`, insn: f.bytes, gpr, patches: f.patches, undefFlags, undefGprs }));
      continue;
    }
    const digit = rng.int(8);
    const name = NAMES[digit];
    const how = rng.int(3); // 0: by 1, 1: imm8, 2: cl
    const count = how === 0 ? 1 : pickCount(rng);
    const f = rmForm(rng, {
      size, opcode: [how === 0 ? 0xd0 : how === 1 ? 0xc0 : 0xd2], digit, avoid: how === 2 ? 1 << 1 : 0,
      imm: how === 1 ? { value: BigInt(count), size: 1 } : undefined,
    });
    const gpr = { ...f.gpr };
    if (how === 2) gpr[1] = (rng.u64() & ~0xffn) | BigInt(count);
    const masked = count & (size === 64 ? 63 : 31);
    let undefFlags = 0;
    if (digit < 4) {
      if (masked !== 1) undefFlags |= FL.OF;
    } else {
      if (masked > 1) undefFlags |= FL.OF;
      if (masked !== 0) undefFlags |= FL.AF;
      if ((digit === 4 || digit === 5 || digit === 6) && masked >= size) undefFlags |= FL.CF;
    }
    if (masked === 0) undefFlags = 0; // nothing changes, all flags compared
    const cnt = how === 0 ? '1' : how === 1 ? 'imm8' : 'cl';
    out.push(makeCase(rng, { name: `${name} r/m${size}, ${cnt}`, insn: f.bytes, gpr, patches: f.patches, undefFlags }));
  }
  return out;
}
