/**
 * (f) SSE2 integer instructions (66 0F ..): add/sub (wrapping, saturating), multiplies, psadbw, pavg, min/max,
 * logic, compares, packs, unpacks, shifts by xmm and by imm8, psrldq/pslldq, pshufd/pshuflw/pshufhw,
 * pmovmskb, movd/movq, movdqa/movdqu, pextrw/pinsrw. Register and memory forms; m128 operands are 16-byte
 * aligned for the alignment-checking forms except a few cases that must raise #GP. No undefined results.
 */
import type { DiffCase } from '../case.js';
import { bytesLe, makeCase, pickMem } from '../build.js';
import { encode } from '../encoder.js';
import type { Rng } from '../rng.js';

const BINARY: [string, number][] = [
  ['paddb', 0xfc], ['paddw', 0xfd], ['paddd', 0xfe], ['paddq', 0xd4], ['psubb', 0xf8], ['psubw', 0xf9], ['psubd', 0xfa], ['psubq', 0xfb],
  ['paddsb', 0xec], ['paddsw', 0xed], ['paddusb', 0xdc], ['paddusw', 0xdd], ['psubsb', 0xe8], ['psubsw', 0xe9], ['psubusb', 0xd8], ['psubusw', 0xd9],
  ['pmullw', 0xd5], ['pmulhw', 0xe5], ['pmulhuw', 0xe4], ['pmuludq', 0xf4], ['pmaddwd', 0xf5], ['psadbw', 0xf6], ['pavgb', 0xe0], ['pavgw', 0xe3],
  ['pminub', 0xda], ['pmaxub', 0xde], ['pminsw', 0xea], ['pmaxsw', 0xee], ['pand', 0xdb], ['pandn', 0xdf], ['por', 0xeb], ['pxor', 0xef],
  ['pcmpeqb', 0x74], ['pcmpeqw', 0x75], ['pcmpeqd', 0x76], ['pcmpgtb', 0x64], ['pcmpgtw', 0x65], ['pcmpgtd', 0x66],
  ['packsswb', 0x63], ['packuswb', 0x67], ['packssdw', 0x6b], ['punpcklbw', 0x60], ['punpcklwd', 0x61], ['punpckldq', 0x62], ['punpcklqdq', 0x6c],
  ['punpckhbw', 0x68], ['punpckhwd', 0x69], ['punpckhdq', 0x6a], ['punpckhqdq', 0x6d],
  ['psllw', 0xf1], ['pslld', 0xf2], ['psllq', 0xf3], ['psrlw', 0xd1], ['psrld', 0xd2], ['psrlq', 0xd3], ['psraw', 0xe1], ['psrad', 0xe2],
];
const SHIFT_IMM: [string, number, number][] = [
  ['psrlw', 0x71, 2], ['psraw', 0x71, 4], ['psllw', 0x71, 6], ['psrld', 0x72, 2], ['psrad', 0x72, 4], ['pslld', 0x72, 6],
  ['psrlq', 0x73, 2], ['psrldq', 0x73, 3], ['psllq', 0x73, 6], ['pslldq', 0x73, 7],
];

/** A 128-bit value built from lanes of one width, each an edge case or random. */
export function laneValue(rng: Rng, w?: number): bigint {
  const width = w ?? rng.pick([8, 16, 32, 64]);
  let v = 0n;
  for (let i = 0; i < 128 / width; i++) v |= rng.operand(width) << BigInt(i * width);
  return v;
}

export function generateSseInt(rng: Rng, n: number): DiffCase[] {
  const out: DiffCase[] = [];
  while (out.length < n) {
    const k = rng.int(10);
    const dst = rng.int(16), src = rng.int(16);
    const xmm: Record<number, bigint> = { [dst]: laneValue(rng), [src]: laneValue(rng) };
    const memForm = rng.bool(0.3);
    const mem = memForm ? pickMem(rng, 16, 0) : undefined;
    if (mem && rng.bool(0.97)) alignMem(mem);
    const rm = mem ? { mem: mem.mem } : { reg: src };
    const patches = mem ? [{ offset: mem.offset, bytes: bytesLe(laneValue(rng), 16) }] : [];
    const gpr = mem ? { ...mem.regs } : {};
    let name: string, insn: Uint8Array;
    if (k <= 5) {
      const [nm, op] = rng.pick(BINARY);
      if (nm.startsWith('ps') && !memForm && rng.bool(0.5)) xmm[src] = BigInt(rng.pick([0, 1, 7, 8, 15, 16, 31, 32, 63, 64, 65, rng.int(300)])) | (rng.bool(0.2) ? rng.u64() << 64n : 0n);
      insn = encode({ prefixes: [0x66], forceRex: rng.bool(0.1), opcode: [0x0f, op], reg: dst, rm });
      name = `${nm} xmm, ${memForm ? 'm128' : 'xmm'}`;
    } else if (k === 6) {
      const [nm, op, digit] = rng.pick(SHIFT_IMM);
      const imm = rng.pick([0, 1, 3, 7, 8, 15, 16, 17, 31, 32, 63, 64, 255, rng.int(256)]);
      insn = encode({ prefixes: [0x66], opcode: [0x0f, op], reg: digit, rm: { reg: dst }, imm: { value: imm, size: 1 } });
      name = `${nm} xmm, imm8`;
    } else if (k === 7) {
      const v = rng.int(3);
      const pre = [0x66, 0xf2, 0xf3][v];
      insn = encode({ prefixes: [pre], opcode: [0x0f, 0x70], reg: dst, rm, imm: { value: rng.int(256), size: 1 } });
      name = `${['pshufd', 'pshuflw', 'pshufhw'][v]} xmm, ${memForm ? 'm128' : 'xmm'}, imm8`;
    } else if (k === 8) {
      // moves between xmm, memory and GPRs
      const v = rng.int(9);
      const g = freeGpr(rng, mem?.used ?? 0);
      gpr[g] = rng.u64();
      const m8 = mem ? { mem: mem.mem } : { reg: g };
      switch (v) {
        case 0: insn = encode({ prefixes: [0x66], opcode: [0x0f, 0x6e], reg: dst, rm: m8 }); name = `movd xmm, ${mem ? 'm32' : 'r32'}`; break;
        case 1: insn = encode({ prefixes: [0x66], rexW: true, opcode: [0x0f, 0x6e], reg: dst, rm: m8 }); name = `movq xmm, ${mem ? 'm64' : 'r64'}`; break;
        case 2: insn = encode({ prefixes: [0x66], opcode: [0x0f, 0x7e], reg: dst, rm: m8 }); name = `movd ${mem ? 'm32' : 'r32'}, xmm`; break;
        case 3: insn = encode({ prefixes: [0x66], rexW: true, opcode: [0x0f, 0x7e], reg: dst, rm: m8 }); name = `movq ${mem ? 'm64' : 'r64'}, xmm`; break;
        case 4: insn = encode({ prefixes: [0xf3], opcode: [0x0f, 0x7e], reg: dst, rm }); name = `movq xmm, ${mem ? 'm64' : 'xmm'}`; break;
        case 5: insn = encode({ prefixes: [0x66], opcode: [0x0f, 0xd6], reg: dst, rm }); name = `movq ${mem ? 'm64' : 'xmm'}, xmm`; break;
        case 6: insn = encode({ prefixes: [0x66], opcode: [0x0f, rng.pick([0x6f, 0x7f])], reg: dst, rm }); name = `movdqa (${mem ? 'mem' : 'reg'})`; break;
        case 7: {
          if (mem && rng.bool(0.5)) unalign(rng, mem);
          insn = encode({ prefixes: [0xf3], opcode: [0x0f, rng.pick([0x6f, 0x7f])], reg: dst, rm: mem ? { mem: mem.mem } : rm }); name = `movdqu (${mem ? 'mem' : 'reg'})`; break;
        }
        default: insn = encode({ prefixes: [0x66], opcode: [0x0f, 0xd7], reg: g, rm: { reg: src } }); name = 'pmovmskb r32, xmm';
      }
    } else {
      const g = freeGpr(rng, mem?.used ?? 0);
      gpr[g] = rng.u64();
      if (rng.bool()) { insn = encode({ prefixes: [0x66], opcode: [0x0f, 0xc5], reg: g, rm: { reg: src }, imm: { value: rng.int(256), size: 1 } }); name = 'pextrw r32, xmm, imm8'; }
      else { insn = encode({ prefixes: [0x66], opcode: [0x0f, 0xc4], reg: dst, rm: mem ? { mem: mem.mem } : { reg: g }, imm: { value: rng.int(256), size: 1 } }); name = `pinsrw xmm, ${mem ? 'm16' : 'r32'}, imm8`; }
    }
    out.push(makeCase(rng, { name, insn, gpr, xmm, patches }));
  }
  return out;
}

type Picked = ReturnType<typeof pickMem>;
/** Moves a picked m128 operand down to a 16-byte boundary (adjusting base or displacement). */
export function alignMem(m: Picked): void {
  const mis = m.offset & 15;
  if (!mis) return;
  m.offset -= mis;
  if (m.mem.base !== undefined) m.regs[m.mem.base] = BigInt.asUintN(64, m.regs[m.mem.base] - BigInt(mis));
  else m.mem.disp -= mis;
}
function unalign(rng: Rng, m: Picked): void {
  const d = 1 + rng.int(15);
  if (m.offset + d + 16 > 0x2000) return;
  m.offset += d;
  if (m.mem.base !== undefined) m.regs[m.mem.base] = BigInt.asUintN(64, m.regs[m.mem.base] + BigInt(d));
  else m.mem.disp += d;
}

export function freeGpr(rng: Rng, used: number): number {
  const c: number[] = [];
  for (let r = 0; r < 16; r++) if (!(used & (1 << r))) c.push(r);
  return rng.pick(c);
}
