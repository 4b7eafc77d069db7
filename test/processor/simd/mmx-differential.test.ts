/**
 * MMX checked against the host: every variant runs natively and in the emulator from the same state, and
 * the FXSAVE64 image (FCW, FSW with TOP, abridged tag word, MXCSR, all eight ST/MM slots, XMM0, XMM1),
 * RAX and a 16-byte memory operand must match bit for bit.
 *
 * Start state of each case: MM0..MM5 hold constants (exponents all ones), then FNINIT, LDMXCSR, XMM0 = a,
 * XMM1 = b, FLD m80 b, FLD m80 a. So TOP = 6, R6 = a, R7 = b: the variant's first MMX instruction reads
 * MM6/MM7 through the x87 stack (aliasing) and makes the x87-to-MMX transition itself. RCX = low qword of
 * b, RAX = 0x5555..., RDI = address of the memory operand (initially b).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execSse, execX87 } from '../../../src/processor/emulated/simd/index.js';
import { Rng, TestCpu, insn, setXmm, toHex } from './harness.js';
import type { SimdInsn } from '../../../src/processor/emulated/simd/contract.js';

/** One instruction for the emulator: x87 escapes (op D8..DF) or 0F-map SIMD. */
interface Step { op: number; m?: number; reg: number; rm: number; mem?: boolean; imm8?: number; w?: boolean }
/** Operand data: integers with edge lanes, shift counts in b, or floating-point lanes in b. */
type Kind = 'int' | 'count' | 'fp';
type Group = 'arithmetic' | 'shifts' | 'moves, shuffles, word insert/extract, maskmovq' | 'XMM/MMX conversions and moves' | 'EMMS and x87/MMX sequences';
interface Variant { name: string; asm: string; steps: Step[]; kind: Kind; group: Group }
/** Cases per variant, by group, so that every group has thousands of cases. */
const PER: Record<Group, number> = {
  'arithmetic': 40, 'shifts': 40, 'moves, shuffles, word insert/extract, maskmovq': 100,
  'XMM/MMX conversions and moves': 250, 'EMMS and x87/MMX sequences': 400,
};

const A_ADDR = 0x100, B_ADDR = 0x110, M_ADDR = 0x200, AREA = 0x400;
const K = [0x0123456789abcdefn, 0xfedcba9876543210n, 0x8000000000000000n, 0x0000000000000001n, 0x7fff8000ffff0000n, 0xdeadbeefcafef00dn];

const variants: Variant[] = [];
let group: Group = 'arithmetic';
const add = (name: string, asm: string, steps: Step[], kind: Kind = 'int'): void => { variants.push({ name, asm, steps, kind, group }); };

// Binary mm, mm/m64 forms: register (mm6, mm7) and memory.
const BIN: [string, number][] = [
  ['punpcklbw', 0x60], ['punpcklwd', 0x61], ['punpckldq', 0x62], ['packsswb', 0x63], ['pcmpgtb', 0x64], ['pcmpgtw', 0x65],
  ['pcmpgtd', 0x66], ['packuswb', 0x67], ['punpckhbw', 0x68], ['punpckhwd', 0x69], ['punpckhdq', 0x6a], ['packssdw', 0x6b],
  ['pcmpeqb', 0x74], ['pcmpeqw', 0x75], ['pcmpeqd', 0x76], ['paddq', 0xd4], ['pmullw', 0xd5], ['psubusb', 0xd8],
  ['psubusw', 0xd9], ['pminub', 0xda], ['pand', 0xdb], ['paddusb', 0xdc], ['paddusw', 0xdd], ['pmaxub', 0xde], ['pandn', 0xdf],
  ['pavgb', 0xe0], ['pavgw', 0xe3], ['pmulhuw', 0xe4], ['pmulhw', 0xe5], ['psubsb', 0xe8], ['psubsw', 0xe9], ['pminsw', 0xea],
  ['por', 0xeb], ['paddsb', 0xec], ['paddsw', 0xed], ['pmaxsw', 0xee], ['pxor', 0xef], ['pmuludq', 0xf4], ['pmaddwd', 0xf5],
  ['psadbw', 0xf6], ['psubb', 0xf8], ['psubw', 0xf9], ['psubd', 0xfa], ['psubq', 0xfb], ['paddb', 0xfc], ['paddw', 0xfd], ['paddd', 0xfe],
];
for (const [n, o] of BIN) {
  add(n, `${n} %%mm7, %%mm6`, [{ op: 0x100 | o, reg: 6, rm: 7 }]);
  add(`${n}_m`, `${n} %[m], %%mm6`, [{ op: 0x100 | o, reg: 6, rm: 0, mem: true }]);
}
// Shifts by mm/m64 counts.
group = 'shifts';
for (const [n, o] of [['psrlw', 0xd1], ['psrld', 0xd2], ['psrlq', 0xd3], ['psraw', 0xe1], ['psrad', 0xe2], ['psllw', 0xf1], ['pslld', 0xf2], ['psllq', 0xf3]] as [string, number][]) {
  add(n, `${n} %%mm7, %%mm6`, [{ op: 0x100 | o, reg: 6, rm: 7 }], 'count');
  add(`${n}_m`, `${n} %[m], %%mm6`, [{ op: 0x100 | o, reg: 6, rm: 0, mem: true }], 'count');
}
// Shifts by imm8.
for (const [n, o, g] of [['psrlw', 0x71, 2], ['psraw', 0x71, 4], ['psllw', 0x71, 6], ['psrld', 0x72, 2], ['psrad', 0x72, 4], ['pslld', 0x72, 6], ['psrlq', 0x73, 2], ['psllq', 0x73, 6]] as [string, number, number][]) {
  for (const c of [0, 1, 7, 15, 16, 31, 32, 33, 63, 64, 200]) add(`${n}_i${c}`, `${n} $${c}, %%mm6`, [{ op: 0x100 | o, reg: g, rm: 6, imm8: c }]);
}
group = 'moves, shuffles, word insert/extract, maskmovq';
for (const im of [0x1b, 0xe4, 0x4e, 0x00, 0xff, 0x93]) {
  add(`pshufw_${im}`, `pshufw $${im}, %%mm7, %%mm6`, [{ op: 0x170, reg: 6, rm: 7, imm8: im }]);
  add(`pshufw_m${im}`, `pshufw $${im}, %[m], %%mm6`, [{ op: 0x170, reg: 6, rm: 0, mem: true, imm8: im }]);
}
// Moves.
group = 'moves, shuffles, word insert/extract, maskmovq';
add('movq_rr', 'movq %%mm7, %%mm6', [{ op: 0x16f, reg: 6, rm: 7 }]);
add('movq_rr7f', '.byte 0x0f, 0x7f, 0xfe', [{ op: 0x17f, reg: 7, rm: 6 }]); // movq mm6, mm7 via 0F 7F
add('movq_ld', 'movq %[m], %%mm6', [{ op: 0x16f, reg: 6, rm: 0, mem: true }]);
add('movq_st', 'movq %%mm6, %[m]', [{ op: 0x17f, reg: 6, rm: 0, mem: true }]);
add('movntq', 'movntq %%mm6, %[m]', [{ op: 0x1e7, reg: 6, rm: 0, mem: true }]);
add('movd_from_r32', 'movd %%ecx, %%mm6', [{ op: 0x16e, reg: 6, rm: 1 }]);
add('movq_from_r64', 'movq %%rcx, %%mm6', [{ op: 0x16e, reg: 6, rm: 1, w: true }]);
add('movd_from_m32', 'movd %[m], %%mm6', [{ op: 0x16e, reg: 6, rm: 0, mem: true }]);
add('movq_from_m64w', '.byte 0x48, 0x0f, 0x6e, 0x37', [{ op: 0x16e, reg: 6, rm: 0, mem: true, w: true }]); // REX.W movq mm6, [rdi]
add('movd_to_r32', 'movd %%mm6, %%eax', [{ op: 0x17e, reg: 6, rm: 0 }]);
add('movq_to_r64', 'movq %%mm6, %%rax', [{ op: 0x17e, reg: 6, rm: 0, w: true }]);
add('movd_to_m32', 'movd %%mm6, %[m]', [{ op: 0x17e, reg: 6, rm: 0, mem: true }]);
add('movq_to_m64w', '.byte 0x48, 0x0f, 0x7e, 0x37', [{ op: 0x17e, reg: 6, rm: 0, mem: true, w: true }]); // REX.W movq [rdi], mm6
for (const i of [0, 1, 2, 3, 6]) {
  add(`pinsrw_r${i}`, `pinsrw $${i}, %%ecx, %%mm6`, [{ op: 0x1c4, reg: 6, rm: 1, imm8: i }]);
  add(`pinsrw_m${i}`, `pinsrw $${i}, %[m], %%mm6`, [{ op: 0x1c4, reg: 6, rm: 0, mem: true, imm8: i }]);
  add(`pextrw_${i}`, `pextrw $${i}, %%mm7, %%eax`, [{ op: 0x1c5, reg: 0, rm: 7, imm8: i }]);
}
add('pmovmskb', 'pmovmskb %%mm7, %%eax', [{ op: 0x1d7, reg: 0, rm: 7 }]);
add('maskmovq', 'maskmovq %%mm7, %%mm6', [{ op: 0x1f7, reg: 6, rm: 7 }]);
// Mixed XMM/MMX forms (MXCSR from the case's control value).
group = 'XMM/MMX conversions and moves';
add('cvtpi2ps', 'cvtpi2ps %%mm7, %%xmm0', [{ op: 0x12a, reg: 0, rm: 7 }]);
add('cvtpi2ps_m', 'cvtpi2ps %[m], %%xmm0', [{ op: 0x12a, reg: 0, rm: 0, mem: true }]);
add('cvtpi2pd', 'cvtpi2pd %%mm7, %%xmm0', [{ op: 0x12a, m: 0x66, reg: 0, rm: 7 }]);
add('cvtpi2pd_m', 'cvtpi2pd %[m], %%xmm0', [{ op: 0x12a, m: 0x66, reg: 0, rm: 0, mem: true }]);
for (const [n, o, m] of [['cvtps2pi', 0x12d, 0], ['cvttps2pi', 0x12c, 0], ['cvtpd2pi', 0x12d, 0x66], ['cvttpd2pi', 0x12c, 0x66]] as [string, number, number][]) {
  add(n, `${n} %%xmm1, %%mm6`, [{ op: o, m, reg: 6, rm: 1 }], 'fp');
  add(`${n}_m`, `${n} %[m], %%mm6`, [{ op: o, m, reg: 6, rm: 0, mem: true }], 'fp');
}
add('movq2dq', 'movq2dq %%mm7, %%xmm0', [{ op: 0x1d6, m: 0xf3, reg: 0, rm: 7 }]);
add('movdq2q', 'movdq2q %%xmm1, %%mm6', [{ op: 0x1d6, m: 0xf2, reg: 6, rm: 1 }]);
group = 'EMMS and x87/MMX sequences';
// EMMS and x87/MMX sequences (tag word, TOP, stack overflow after MMX, x87 reading an MMX register).
const PADDB: Step = { op: 0x1fc, reg: 6, rm: 7 }, EMMS: Step = { op: 0x177, reg: 0, rm: 0 };
const FLD1: Step = { op: 0xd9, reg: 5, rm: 0 };
add('emms', 'emms', [EMMS]);
add('paddb_emms', 'paddb %%mm7, %%mm6\n\temms', [PADDB, EMMS]);
add('paddb_emms_fld1', 'paddb %%mm7, %%mm6\n\temms\n\tfld1', [PADDB, EMMS, FLD1]);
add('paddb_fld1', 'paddb %%mm7, %%mm6\n\tfld1', [PADDB, FLD1]);
add('fld1_paddb_mm5', 'fld1\n\tpaddb %%mm5, %%mm6', [FLD1, { op: 0x1fc, reg: 6, rm: 5 }]);
add('paddb_ffree_fld', 'paddb %%mm7, %%mm6\n\tffree %%st(7)\n\tfld %%st(6)', [PADDB, { op: 0xdd, reg: 0, rm: 7 }, { op: 0xd9, reg: 0, rm: 6 }]);
add('pxor_fstp', 'pxor %%mm7, %%mm6\n\tfstp %%st(0)\n\tfldz', [{ op: 0x1ef, reg: 6, rm: 7 }, { op: 0xdd, reg: 3, rm: 0 }, { op: 0xd9, reg: 5, rm: 6 }]);

function cSource(): string {
  const clobbers = '"rax", "rcx", "rdi", "xmm0", "xmm1", "mm0", "mm1", "mm2", "mm3", "mm4", "mm5", "mm6", "mm7", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", "memory", "cc"';
  const pre = ['movq %[k], %%mm0', 'movq 8+%[k], %%mm1', 'movq 16+%[k], %%mm2', 'movq 24+%[k], %%mm3', 'movq 32+%[k], %%mm4', 'movq 40+%[k], %%mm5',
    'fninit', 'ldmxcsr %[mx]', 'movdqa %[a], %%xmm0', 'movdqa %[b], %%xmm1', 'fldt %[b]', 'fldt %[a]',
    'mov %[rcx], %%rcx', 'mov $0x5555555555555555, %%rax', 'lea %[m], %%rdi'].join('\\n\\t');
  const post = ['fxsave64 %[area]', 'mov %%rax, %[rax]', 'emms', 'fninit'].join('\\n\\t');
  const cases = variants.map((v) => `  if (!strcmp(op, "${v.name}")) { __asm__ volatile("${pre}\\n\\t${v.asm.replace(/\n/g, '\\n')}\\n\\t${post}"
      : [area] "=m"(area), [rax] "=m"(RAX), [m] "+m"(M)
      : [a] "m"(A), [b] "m"(B), [k] "m"(KC), [mx] "m"(MX), [rcx] "m"(RCX) : ${clobbers}); goto done; }`).join('\n');
  return `#include <stdio.h>
#include <stdint.h>
#include <string.h>
typedef struct { uint8_t b[16]; } __attribute__((aligned(16))) x128;
static x128 A, B, M;
static uint8_t area[512] __attribute__((aligned(16)));
static uint64_t KC[6] = { ${K.map((k) => `0x${k.toString(16)}ull`).join(', ')} };
static uint64_t RAX, RCX;
static uint32_t MX;
static int hexval(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }
static void parse(const char *s, x128 *v) { for (int i = 0; i < 16; i++) v->b[i] = hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]); }
static void hex(const uint8_t *p, int n) { for (int i = 0; i < n; i++) printf("%02x", p[i]); }
int main(void) {
  char op[64], as[40], bs[40];
  unsigned ctl;
  while (scanf("%63s %x %39s %39s", op, &ctl, as, bs) == 4) {
    parse(as, &A); parse(bs, &B); M = B; MX = ctl; memcpy(&RCX, &B, 8);
${cases}
    printf("unknown\\n"); continue;
  done:
    hex(area, 6); hex(area + 24, 4); hex(area + 32, 160); hex((uint8_t *)&RAX, 8); hex(M.b, 16); printf("\\n");
  }
  return 0;
}
`;
}

let dir: string | undefined;
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });
function runNative(lines: string[]): string[] {
  dir = mkdtempSync(join(tmpdir(), 'hyperts-mmx-'));
  const src = join(dir, 'host-mmx.c'), bin = join(dir, 'host-mmx');
  writeFileSync(src, cSource());
  execFileSync('gcc', ['-O1', '-o', bin, src]);
  const out = execFileSync(bin, { input: lines.join('\n') + '\n', maxBuffer: 256 * 1024 * 1024 }).toString().trim().split('\n');
  if (out.length !== lines.length) throw new Error(`native runner returned ${out.length} lines for ${lines.length}`);
  return out;
}

const EDGE16 = [0, 0xffff, 0x7fff, 0x8000, 0x0080, 0x7f7f, 0x8080, 0xff00, 0x00ff, 0x8001, 1, 2, 0x7ffe];
function intBytes(rng: Rng): Uint8Array {
  const out = new Uint8Array(16); const dv = new DataView(out.buffer);
  const mode = rng.int(4);
  for (let i = 0; i < 8; i++) {
    const w = mode === 0 ? rng.u32() & 0xffff : mode === 1 ? rng.pick(EDGE16) : rng.int(3) === 0 ? rng.pick(EDGE16) : rng.int(2) ? rng.u32() & 0xffff : rng.int(64);
    dv.setUint16(2 * i, w, true);
  }
  return out;
}
const F32 = [0, -0, 1, -1, 0.5, 1.5, 2.5, -2.5, 3.5, 2147483520, 2147483648, -2147483648, -2147483904, 1e10, -1e-40, 1e-45, Infinity, -Infinity, NaN, 0.49999997];
const F64 = [0, -0, 1, -1, 0.5, 2.5, -3.5, 2147483647, 2147483647.5, 2147483648, -2147483648, -2147483648.5, -2147483649, 1e300, 5e-324, Infinity, NaN, 1.0000000000000002];
function fpBytes(rng: Rng): Uint8Array {
  const out = new Uint8Array(16); const dv = new DataView(out.buffer);
  const dbl = rng.int(2) === 0;
  for (let i = 0; i < (dbl ? 2 : 4); i++) {
    const r = rng.int(4);
    const v = r === 0 ? rng.pick(dbl ? F64 : F32) : r === 1 ? (rng.int(2000001) - 1000000) / (1 + rng.int(8)) : r === 2 ? (rng.u32() | 0) * (rng.int(2) ? 1 : 0.75) : NaN;
    if (r === 3) { if (dbl) { dv.setUint32(8 * i, rng.u32(), true); dv.setUint32(8 * i + 4, rng.u32(), true); } else dv.setUint32(4 * i, rng.u32(), true); }
    else if (dbl) dv.setFloat64(8 * i, v, true); else dv.setFloat32(4 * i, v, true);
  }
  return out;
}
function countBytes(rng: Rng): Uint8Array {
  const out = intBytes(rng); const dv = new DataView(out.buffer);
  if (rng.int(4) !== 0) { dv.setUint32(0, rng.int(4) === 0 ? rng.int(300) : rng.int(70), true); dv.setUint32(4, rng.int(8) === 0 ? 1 << rng.int(32) : 0, true); }
  return out;
}
function mxcsr(rng: Rng): number {
  return (0x1f80 | (rng.int(4) << 13) | (rng.int(4) === 0 ? 0x8040 : 0) | (rng.int(3) === 0 ? rng.int(64) : 0)) >>> 0;
}

/** The emulator's result for one case, in the native runner's output format. */
function emulate(cpu: TestCpu, v: Variant, ctl: number, a: Uint8Array, b: Uint8Array): string {
  const f = cpu.f;
  for (let r = 0; r < 6; r++) { f.mlo[r] = Number(K[r] & 0xffffffffn) | 0; f.mhi[r] = Number(K[r] >> 32n) | 0; f.sexp[r] = 0xffff; }
  f.fcw = 0x37f; f.fsw = 0; f.top = 0; f.empty = 0xff; f.mxcsr = ctl;
  setXmm(cpu, 0, a); setXmm(cpu, 1, b);
  cpu.mem.set(a, A_ADDR); cpu.mem.set(b, B_ADDR); cpu.mem.set(b, M_ADDR);
  execX87(cpu, insn(0xdb, 0, { mod: 0, reg: 5, rm: 0, ea: B_ADDR }));
  execX87(cpu, insn(0xdb, 0, { mod: 0, reg: 5, rm: 0, ea: A_ADDR }));
  const bv = new DataView(b.buffer, b.byteOffset, 16);
  cpu.gpr[2] = bv.getInt32(0, true); cpu.gpr[3] = bv.getInt32(4, true);
  cpu.gpr[0] = 0x55555555; cpu.gpr[1] = 0x55555555;
  for (const s of v.steps) {
    const i: SimdInsn = insn(s.op, s.m ?? 0, { reg: s.reg, rm: s.rm, mod: s.mem ? 0 : 3, ea: M_ADDR, imm8: s.imm8 ?? 0, rexW: s.w ?? false });
    if (s.op < 0x100) assert.ok(execX87(cpu, i), `${v.name}: x87 step`);
    else if (s.op === 0x1f7) assert.ok(execSse(cpu, i), `${v.name}: step`); // ea = DS:rDI, the memory operand
    else assert.ok(execSse(cpu, i), `${v.name}: step`);
  }
  execSse(cpu, insn(0x1ae, 0, { mod: 0, reg: 0, ea: AREA, rexW: true }));
  const m = cpu.mem;
  const rax = new Uint8Array(8); const rv = new DataView(rax.buffer);
  rv.setInt32(0, cpu.gpr[0], true); rv.setInt32(4, cpu.gpr[1], true);
  return toHex(m.subarray(AREA, AREA + 6)) + toHex(m.subarray(AREA + 24, AREA + 28)) + toHex(m.subarray(AREA + 32, AREA + 192)) + toHex(rax) + toHex(m.subarray(M_ADDR, M_ADDR + 16));
}

/** Readable difference: which FXSAVE field or register differs. */
function explain(want: string, got: string): string {
  const fields: [string, number, number][] = [['fcw', 0, 2], ['fsw', 2, 2], ['ftw', 4, 2], ['mxcsr', 6, 4]];
  for (let r = 0; r < 8; r++) fields.push([`st${r}`, 10 + 16 * r, 16]);
  fields.push(['xmm0', 138, 16], ['xmm1', 154, 16], ['rax', 170, 8], ['mem', 178, 16]);
  return fields.filter(([, o, n]) => want.slice(2 * o, 2 * (o + n)) !== got.slice(2 * o, 2 * (o + n)))
    .map(([k, o, n]) => `${k}: host ${want.slice(2 * o, 2 * (o + n))} emulated ${got.slice(2 * o, 2 * (o + n))}`).join('; ');
}

interface Case { v: Variant; ctl: number; a: Uint8Array; b: Uint8Array; host: string }
let all: Case[] | undefined;
/** All cases of all groups, run natively in one process (one compile). */
function cases(): Case[] {
  if (all) return all;
  const rng = new Rng(0x4d4d5831);
  const list: Case[] = [];
  for (const v of variants) {
    for (let k = 0; k < PER[v.group]; k++) {
      const a = intBytes(rng);
      const b = v.kind === 'fp' ? fpBytes(rng) : v.kind === 'count' ? countBytes(rng) : intBytes(rng);
      list.push({ v, ctl: v.name.startsWith('cvt') ? mxcsr(rng) : 0x1f80, a, b, host: '' });
    }
  }
  const out = runNative(list.map((c) => `${c.v.name} ${c.ctl.toString(16)} ${toHex(c.a)} ${toHex(c.b)}`));
  list.forEach((c, i) => { c.host = out[i]; });
  all = list;
  return list;
}

describe('MMX against the host (FXSAVE image with TOP and tags, all ST/MM slots, XMM0-1, RAX, memory)', () => {
  for (const g of Object.keys(PER) as Group[]) {
    const vs = variants.filter((v) => v.group === g);
    it(`${g}: ${vs.length} variants, ${vs.length * PER[g]} cases`, () => {
      const cpu = new TestCpu();
      const bad: string[] = [];
      const failed = new Set<string>();
      let n = 0;
      for (const c of cases()) {
        if (c.v.group !== g) continue;
        n++;
        assert.notEqual(c.host, 'unknown', c.v.name);
        const got = emulate(cpu, c.v, c.ctl, c.a, c.b);
        if (got !== c.host && !failed.has(c.v.name)) {
          failed.add(c.v.name);
          bad.push(`${c.v.name} mxcsr=${c.ctl.toString(16)} a=${toHex(c.a)} b=${toHex(c.b)}: ${explain(c.host, got)}`);
        }
      }
      assert.equal(n, vs.length * PER[g]);
      assert.deepEqual(bad, [], bad.slice(0, 20).join('\n'));
    });
  }
});
