/**
 * (e, 32-bit part) BCD adjustments daa das aaa aas aam aad, valid only outside 64-bit mode: run as
 * compatibility-mode code (far jump to selector 0x23 and back to 0x33). The same bytes in 64-bit mode must
 * raise #UD (those cases run natively everywhere).
 * Undefined-flag masks (SDM): daa/das OF; aaa/aas OF SF ZF PF; aam/aad OF AF CF.
 * aaa/aas inputs avoid AL > 0xf9 / AL < 6 with an adjustment, where CPU generations differ on whether the
 * carry of AL+6 reaches AH.
 *
 * Hosts without compatibility mode (PVM guests) cannot run the 32-bit cases; there `bcdReference` (written
 * from the SDM pseudo-code) stands in for the host CPU so the emulator is still checked.
 */
import type { CaseResult, DiffCase } from '../case.js';
import { initialData } from '../case.js';
import { makeCase } from '../build.js';
import { CODE_ADDR, FL } from '../layout.js';
import type { Rng } from '../rng.js';

const OPS: [string, number[], number][] = [
  ['daa', [0x27], FL.OF], ['das', [0x2f], FL.OF], ['aaa', [0x37], FL.OF | FL.SF | FL.ZF | FL.PF],
  ['aas', [0x3f], FL.OF | FL.SF | FL.ZF | FL.PF], ['aam', [0xd4], FL.OF | FL.AF | FL.CF], ['aad', [0xd5], FL.OF | FL.AF | FL.CF],
];

export function generateBcd32(rng: Rng, n: number): DiffCase[] {
  const out: DiffCase[] = [];
  while (out.length < n) {
    const [nm, op, undef] = rng.pick(OPS);
    const imm = nm === 'aam' || nm === 'aad' ? [rng.pick([10, 10, 10, 16, 7, 1, 0xff, 0, rng.int(256)])] : [];
    let al = rng.int(256);
    const flags = rng.u32() & (FL.CF | FL.PF | FL.AF | FL.ZF | FL.SF | FL.OF);
    const adj = (al & 0xf) > 9 || (flags & FL.AF) !== 0;
    if (nm === 'aaa' && adj && al > 0xf9) al &= 0x7f;
    if (nm === 'aas' && adj && al < 6) al |= 0x10;
    const rax = (rng.u64() & ~0xffn) | BigInt(al);
    const in64 = rng.bool(0.1);
    out.push(makeCase(rng, {
      name: in64 ? `${nm} in 64-bit mode (#UD)` : `${nm}${imm.length ? ` imm8` : ''}`,
      insn: [...op, ...imm], mode32: !in64, gpr: { 0: rax }, rflags: flags, undefFlags: undef,
    }));
  }
  return out;
}

function szp(v: number): number {
  let f = 0;
  if ((v & 0xff) === 0) f |= FL.ZF;
  if (v & 0x80) f |= FL.SF;
  let p = v & 0xff; p ^= p >> 4; p ^= p >> 2; p ^= p >> 1;
  if (!(p & 1)) f |= FL.PF;
  return f;
}

/** Expected result of a 32-bit BCD case per the SDM (only for cases the host cannot run). */
export function bcdReference(c: DiffCase): CaseResult {
  const op = c.code[c.insnOffset], imm = c.code[c.insnOffset + 1];
  const rax = c.gpr[0];
  let al = Number(rax & 0xffn), ah = Number((rax >> 8n) & 0xffn);
  const cf = c.rflags & FL.CF, af = c.rflags & FL.AF;
  let f = c.rflags & ~(FL.CF | FL.PF | FL.AF | FL.ZF | FL.SF | FL.OF);
  const base = { gpr: [...c.gpr], rip: BigInt(CODE_ADDR + c.endOffset), xmm: [...c.xmm], mxcsr: c.mxcsr, fcw: c.fcw, data: initialData(c) };
  switch (op) {
    case 0x27: case 0x2f: { // daa / das
      const sub = op === 0x2f;
      const old = al;
      let ncf = 0, naf = 0;
      if ((al & 0xf) > 9 || af) {
        const r = sub ? al - 6 : al + 6;
        ncf = cf || r < 0 || r > 0xff ? FL.CF : 0;
        al = r & 0xff; naf = FL.AF;
      }
      if (old > 0x99 || cf) { al = (sub ? al - 0x60 : al + 0x60) & 0xff; ncf = FL.CF; } else if (!sub) ncf = 0;
      f |= ncf | naf | szp(al);
      break;
    }
    case 0x37: case 0x3f: { // aaa / aas
      if ((al & 0xf) > 9 || af) {
        if (op === 0x37) { al = (al + 6) & 0xff; ah = (ah + 1) & 0xff; } else { al = (al - 6) & 0xff; ah = (ah - 1) & 0xff; }
        f |= FL.AF | FL.CF;
      }
      al &= 0xf;
      break;
    }
    case 0xd4: // aam
      if (imm === 0) return { kind: 'fault', vector: 0, ...base, rip: BigInt(CODE_ADDR + c.insnOffset), rflags: c.rflags };
      ah = Math.floor(al / imm); al = al % imm; f |= szp(al);
      break;
    default: // aad
      al = (al + ah * imm) & 0xff; ah = 0; f |= szp(al);
  }
  base.gpr[0] = (rax & ~0xffffn) | BigInt((ah << 8) | al);
  return { kind: 'stop', ...base, rflags: f };
}
