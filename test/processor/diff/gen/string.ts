/**
 * (d) String instructions movs stos lods cmps scas, sizes 8/16/32/64, without prefix, with rep (F3) and
 * repe/repne (F3/F2 on cmps/scas), DF clear and set, address-size prefix 67 (ESI/EDI/ECX with junk in the
 * upper halves), counts 0..~200, overlapping moves, and some runs off the end of the data pages (#PF in the
 * middle of a rep: RCX/RSI/RDI must show the progress). All flags are defined (cmps/scas set them like cmp).
 */
import type { DiffCase } from '../case.js';
import { makeCase } from '../build.js';
import { encode } from '../encoder.js';
import { DATA_ADDR, DATA_SIZE, FL } from '../layout.js';
import type { Rng } from '../rng.js';
import { SIZES } from './common.js';

const OPS = [
  { name: 'movs', op: 0xa4, src: true, dst: true },
  { name: 'cmps', op: 0xa6, src: true, dst: true },
  { name: 'stos', op: 0xaa, src: false, dst: true },
  { name: 'lods', op: 0xac, src: true, dst: false },
  { name: 'scas', op: 0xae, src: false, dst: true },
];

export function generateString(rng: Rng, n: number): DiffCase[] {
  const out: DiffCase[] = [];
  while (out.length < n) {
    const o = rng.pick(OPS);
    const size = rng.pick(SIZES);
    const es = size / 8;
    const cmpLike = o.name === 'cmps' || o.name === 'scas';
    const rep = rng.pick(cmpLike ? [0, 0xf3, 0xf2, 0xf3, 0xf2] : [0, 0xf3, 0xf3]);
    const a32 = rng.bool(0.25);
    const df = rng.bool(0.35);
    const runOff = rep !== 0 && rng.bool(0.06);
    let count = rep ? rng.pick([0, 1, 2, 3, rng.range(0, 40), rng.range(0, 40), rng.range(0, 200)]) : rng.range(0, 3);
    const span = (count || 1) * es;
    // Source in the low half, destination in the high half; sometimes both anywhere (overlap).
    const overlap = o.name === 'movs' && rng.bool(0.2);
    const place = (lo: number, hi: number): number => {
      // offset of the first element touched
      if (!df) return lo + rng.int(Math.max(1, hi - lo - span + 1));
      return lo + span - es + rng.int(Math.max(1, hi - lo - span + 1));
    };
    const half = DATA_SIZE / 2;
    let srcOff = overlap ? place(0, DATA_SIZE) : place(0, half);
    let dstOff = overlap ? place(0, DATA_SIZE) : place(half, DATA_SIZE);
    if (runOff) {
      // Start near the edge so the run crosses out of the mapped data pages.
      count = rng.range(20, 300);
      if (!df) { srcOff = DATA_SIZE - es * rng.range(1, 16); dstOff = DATA_SIZE - es * rng.range(1, 16); }
      else { srcOff = es * rng.range(0, 15); dstOff = es * rng.range(0, 15); }
    }
    const patches: { offset: number; bytes: Uint8Array }[] = [];
    let al = rng.regValue(64);
    if (cmpLike && span <= half) {
      // Make the compared data equal for a while so repe/repne runs are long and end at a chosen element.
      const stop = rng.int(count + 1);
      const fill = rng.bytes(es);
      const base = df ? (o.name === 'cmps' ? srcOff : dstOff) - (count - 1) * es : (o.name === 'cmps' ? srcOff : dstOff);
      const b = new Uint8Array(Math.max(0, count) * es);
      for (let i = 0; i < b.length; i++) b[i] = rng.bool(0.9) ? fill[i % es] : rng.u32() & 0xff;
      if (o.name === 'cmps') {
        const other = df ? dstOff - (count - 1) * es : dstOff;
        const b2 = b.slice();
        const at = (df ? count - 1 - stop : stop) * es;
        if (at < b2.length) b2[at] ^= 1 + rng.int(255);
        if (base >= 0 && base + b.length <= DATA_SIZE && other >= 0 && other + b2.length <= DATA_SIZE) {
          patches.push({ offset: base, bytes: b }, { offset: other, bytes: b2 });
        }
      } else if (base >= 0 && base + b.length <= DATA_SIZE) {
        patches.push({ offset: base, bytes: b });
        let v = 0n;
        for (let i = es - 1; i >= 0; i--) v = (v << 8n) | BigInt(fill[i]);
        al = rng.bool(0.7) ? ((rng.u64() & ~((1n << BigInt(size)) - 1n)) | v) : al;
      }
    }
    const junk = () => (a32 ? rng.u64() & ~0xffffffffn : 0n);
    const gpr: Record<number, bigint> = {
      0: al,
      1: BigInt.asUintN(64, junk() | BigInt(count)),
      6: BigInt.asUintN(64, junk() | BigInt(DATA_ADDR + srcOff)),
      7: BigInt.asUintN(64, junk() | BigInt(DATA_ADDR + dstOff)),
    };
    if (!rep && rng.bool(0.5)) gpr[1] = rng.u64(); // rcx is not used without a rep prefix
    const prefixes: number[] = [];
    if (size === 16) prefixes.push(0x66);
    if (a32) prefixes.push(0x67);
    if (rep) prefixes.push(rep);
    if (rng.bool(0.3)) prefixes.reverse(); // prefix order does not matter
    const insn = encode({ prefixes, rexW: size === 64, opcode: [o.op + (size === 8 ? 0 : 1)] });
    const flags = (rng.u32() & (FL.CF | FL.PF | FL.AF | FL.ZF | FL.SF | FL.OF)) | (df ? FL.DF : 0);
    const pre = rep === 0xf3 ? (cmpLike ? 'repe ' : 'rep ') : rep === 0xf2 ? 'repne ' : '';
    out.push(makeCase(rng, {
      name: `${pre}${o.name}${['b', 'w', 'd', 'q'][Math.log2(es)]}${a32 ? ' (addr32)' : ''}${df ? ' DF=1' : ''}${runOff ? ' (runs off the pages)' : ''}`,
      insn, gpr, patches, rflags: flags,
    }));
  }
  return out;
}
