/** The instruction groups of the differential tests, each a generator with a default case count. */
import type { DiffCase } from './case.js';
import type { Rng } from './rng.js';
import { generateAlu } from './gen/alu.js';
import { generateShift } from './gen/shift.js';
import { generateMulDiv } from './gen/muldiv.js';
import { generateString } from './gen/string.js';
import { generateBitMisc } from './gen/bitmisc.js';
import { generateSseInt } from './gen/sse-int.js';
import { generateSseFp } from './gen/sse-fp.js';
import { generateX87 } from './gen/x87.js';
import { bcdReference, generateBcd32 } from './gen/bcd32.js';
import type { CaseResult } from './case.js';

export interface Group {
  generate(rng: Rng, n: number): DiffCase[];
  defaultCases: number;
  describe: string;
  /** Stand-in for the host CPU for cases the host cannot run (32-bit code without compatibility mode). */
  reference?(c: DiffCase): CaseResult;
}

export const GROUPS: Record<string, Group> = {
  alu: { generate: generateAlu, defaultCases: 4000, describe: 'add adc sub sbb and or xor cmp test inc dec neg not' },
  shift: { generate: generateShift, defaultCases: 4000, describe: 'shl shr sar rol ror rcl rcr shld shrd, counts 0..70, imm8 and cl' },
  muldiv: { generate: generateMulDiv, defaultCases: 3000, describe: 'mul imul (1/2/3 operands) div idiv incl. #DE' },
  string: { generate: generateString, defaultCases: 3000, describe: 'movs stos lods cmps scas with rep/repe/repne, DF, addr32, #PF mid-run' },
  bitmisc: { generate: generateBitMisc, defaultCases: 4000, describe: 'bt* bsf bsr bswap movzx movsx movsxd cmovcc setcc xchg xadd cmpxchg* lea cbw..cqo lahf sahf' },
  sseint: { generate: generateSseInt, defaultCases: 3000, describe: 'SSE2 integer: padd/psub/pmul/pack/unpck/shifts/shuffles/moves' },
  ssefp: { generate: generateSseFp, defaultCases: 3000, describe: 'SSE/SSE2 floating point: arithmetic, compares, conversions, all rounding modes, special values' },
  x87: { generate: generateX87, defaultCases: 2000, describe: 'x87 fld/fst/fadd/fmul/fdiv/fsqrt/fild/fistp/fcomi/fnstsw, results exact in double' },
  bcd32: { generate: generateBcd32, defaultCases: 2000, describe: '32-bit daa das aaa aas aam aad (compatibility mode), #UD in 64-bit mode', reference: bcdReference },
};
