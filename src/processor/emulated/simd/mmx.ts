/**
 * MMX, with the integer instructions SSE and SSE2 added on MMX registers (pshufw, pavgb, psadbw, maskmovq,
 * paddq, pmuludq, ...): the 0F-map forms without a mandatory prefix. The forms that mix XMM and MMX
 * registers (cvtpi2ps, movq2dq, ...) live in sse.ts and use the helpers exported here.
 *
 * MM0..MM7 are the 64-bit significands of the x87 physical registers R0..R7 (not stack-relative).
 * Writing MMi sets bits 79..64 of Ri to all ones. Every MMX instruction except EMMS sets TOP to 0 and all
 * tags valid; EMMS sets TOP to 0 and all tags empty. CR0.EM gives #UD (not #NM as for x87), CR0.TS #NM, and a pending
 * unmasked x87 exception #MF (CR0.NE; without NE, FERR# is not modelled, as in x87.ts).
 */
import type { SimdCpu, SimdInsn } from './contract.js';
import type { FpuState } from './state.js';
import { D, S, R, d32, s32, r32, INT_OPS, intOp, shift } from './packed-int.js';

const UD = 6, NM = 7, MF = 16;
const CR0_EM = 1 << 2, CR0_TS = 1 << 3, CR0_NE = 1 << 5;
const ES = 0x80;

/** #MF when an unmasked x87 exception is pending. */
export function mmxPending(cpu: SimdCpu): void {
  if (((cpu.fpu as FpuState).fsw & ES) !== 0 && (cpu.cr0 & CR0_NE) !== 0) cpu.raise(MF);
}

/** #UD/#NM/#MF checks of MMX instructions (no CR4.OSFXSR requirement: MMX predates FXSR). */
export function mmxAvail(cpu: SimdCpu): void {
  if ((cpu.cr0 & CR0_EM) !== 0) cpu.raise(UD);
  if ((cpu.cr0 & CR0_TS) !== 0) cpu.raise(NM);
  mmxPending(cpu);
}

/** The x87-to-MMX transition every MMX instruction but EMMS makes. */
export function mmxEnter(f: FpuState): void {
  f.top = 0;
  f.empty = 0;
}

/** Write MMr (r 0..7): the significand of Rr, exponent and sign all ones. */
export function mmWrite(f: FpuState, r: number, lo: number, hi: number): void {
  f.mlo[r] = lo; f.mhi[r] = hi; f.sexp[r] = 0xffff;
}

/** Opcodes (0F xx, no prefix) executed here. */
const MMX_OPS = new Uint8Array(256);
for (let b = 0; b < 256; b++) if (INT_OPS[b] === 1 && b !== 0x6c && b !== 0x6d) MMX_OPS[b] = 1;
for (const b of [0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73, 0x77, 0x7e, 0x7f, 0xc4, 0xc5, 0xd7, 0xe7, 0xf7]) MMX_OPS[b] = 1;

export function isMmxOp(b: number): boolean { return MMX_OPS[b] === 1; }

/** D = MMr with the upper half of the staging buffer cleared. */
function loadD(f: FpuState, r: number): void {
  d32[0] = f.mlo[r]; d32[1] = f.mhi[r]; d32[2] = 0; d32[3] = 0;
}
/** S = mm/m64 operand. */
function loadS(cpu: SimdCpu, f: FpuState, insn: SimdInsn): void {
  if (insn.mod === 3) { const r = insn.rm & 7; s32[0] = f.mlo[r]; s32[1] = f.mhi[r]; }
  else { const ea = insn.ea; s32[0] = cpu.read32(ea); s32[1] = cpu.read32(ea + 4); }
  s32[2] = 0; s32[3] = 0;
}
function store64(cpu: SimdCpu, ea: number, lo: number, hi: number): void {
  cpu.probeWrite(ea, 8);
  cpu.write32(ea, lo); cpu.write32(ea + 4, hi);
}

/** Execute one MMX instruction (0F map, no mandatory prefix). Returns false for an invalid form (#UD). */
export function execMmx(cpu: SimdCpu, insn: SimdInsn): boolean {
  const b = insn.op & 0xff;
  if (insn.op >> 8 !== 1 || MMX_OPS[b] === 0) return false;
  const f = cpu.fpu as FpuState;
  const mem = insn.mod !== 3;
  const reg = insn.reg & 7; // REX.R/REX.B do not extend MMX register numbers
  if (INT_OPS[b] === 1) {
    mmxAvail(cpu);
    loadS(cpu, f, insn);
    loadD(f, reg);
    if (b >= 0x68 && b <= 0x6a) {
      // punpckh* interleave the upper halves of the 64-bit operands: shift them down, reuse punpckl*.
      d32[0] = d32[1]; s32[0] = s32[1];
      intOp(b - 8);
    } else {
      intOp(b);
      // pack*: the 128-bit form puts the source's results at bytes 8..; the 64-bit form at bytes 4..
      if (b === 0x63 || b === 0x67 || b === 0x6b) r32[1] = r32[2];
    }
    mmxEnter(f);
    mmWrite(f, reg, r32[0], r32[1]);
    return true;
  }
  switch (b) {
    case 0x6e: { // movd/movq mm, r/m32/64
      mmxAvail(cpu);
      let lo: number, hi = 0;
      if (mem) { lo = cpu.read32(insn.ea); if (insn.rexW) hi = cpu.read32(insn.ea + 4); }
      else { lo = cpu.gpr[insn.rm * 2]; if (insn.rexW) hi = cpu.gpr[insn.rm * 2 + 1]; }
      mmxEnter(f);
      mmWrite(f, reg, lo, hi);
      return true;
    }
    case 0x6f: // movq mm, mm/m64
      mmxAvail(cpu);
      loadS(cpu, f, insn);
      mmxEnter(f);
      mmWrite(f, reg, s32[0], s32[1]);
      return true;
    case 0x7e: { // movd/movq r/m32/64, mm
      mmxAvail(cpu);
      const lo = f.mlo[reg], hi = f.mhi[reg];
      if (mem) { if (insn.rexW) store64(cpu, insn.ea, lo, hi); else cpu.write32(insn.ea, lo); }
      else { cpu.gpr[insn.rm * 2] = lo; cpu.gpr[insn.rm * 2 + 1] = insn.rexW ? hi : 0; }
      mmxEnter(f);
      return true;
    }
    case 0x7f: case 0xe7: { // movq mm/m64, mm; movntq m64, mm
      if (b === 0xe7 && !mem) return false;
      mmxAvail(cpu);
      const lo = f.mlo[reg], hi = f.mhi[reg];
      if (mem) store64(cpu, insn.ea, lo, hi); else mmWrite(f, insn.rm & 7, lo, hi);
      mmxEnter(f);
      return true;
    }
    case 0x70: { // pshufw
      mmxAvail(cpu);
      loadS(cpu, f, insn);
      const im = insn.imm8;
      for (let i = 0; i < 4; i++) R.u16[i] = S.u16[(im >> (2 * i)) & 3];
      mmxEnter(f);
      mmWrite(f, reg, r32[0], r32[1]);
      return true;
    }
    case 0x71: case 0x72: case 0x73: { // shifts by imm8 of mm (rm)
      if (mem) return false;
      const g = insn.reg & 7;
      let sb = 0;
      if (b === 0x71) sb = g === 2 ? 0xd1 : g === 4 ? 0xe1 : g === 6 ? 0xf1 : 0;
      else if (b === 0x72) sb = g === 2 ? 0xd2 : g === 4 ? 0xe2 : g === 6 ? 0xf2 : 0;
      else sb = g === 2 ? 0xd3 : g === 6 ? 0xf3 : 0; // psrldq/pslldq have no MMX form
      if (sb === 0) return false;
      mmxAvail(cpu);
      const r = insn.rm & 7;
      loadD(f, r);
      shift(sb, insn.imm8 & 255);
      mmxEnter(f);
      mmWrite(f, r, r32[0], r32[1]);
      return true;
    }
    case 0x77: // emms: all tags empty, and TOP 0 as well (as the host and Bochs do)
      mmxAvail(cpu);
      f.top = 0;
      f.empty = 0xff;
      return true;
    case 0xc4: { // pinsrw mm, r32/m16, imm8
      mmxAvail(cpu);
      const v = mem ? cpu.read16(insn.ea) : cpu.gpr[insn.rm * 2] & 0xffff;
      loadD(f, reg);
      D.u16[insn.imm8 & 3] = v;
      mmxEnter(f);
      mmWrite(f, reg, d32[0], d32[1]);
      return true;
    }
    case 0xc5: { // pextrw r32, mm, imm8
      if (mem) return false;
      mmxAvail(cpu);
      loadD(f, insn.rm & 7);
      cpu.gpr[insn.reg * 2] = D.u16[insn.imm8 & 3]; cpu.gpr[insn.reg * 2 + 1] = 0;
      mmxEnter(f);
      return true;
    }
    case 0xd7: { // pmovmskb r32, mm
      if (mem) return false;
      mmxAvail(cpu);
      loadD(f, insn.rm & 7);
      let v = 0;
      for (let i = 0; i < 8; i++) v |= (D.u8[i] >> 7) << i;
      cpu.gpr[insn.reg * 2] = v; cpu.gpr[insn.reg * 2 + 1] = 0;
      mmxEnter(f);
      return true;
    }
    case 0xf7: { // maskmovq mm1, mm2: the core supplies DS:rDI as insn.ea
      if (mem) return false;
      mmxAvail(cpu);
      loadD(f, reg);
      loadS(cpu, f, insn);
      let any = false;
      for (let i = 0; i < 8; i++) if (S.u8[i] & 0x80) any = true;
      if (any) {
        cpu.probeWrite(insn.ea, 8);
        for (let i = 0; i < 8; i++) if (S.u8[i] & 0x80) cpu.write8(insn.ea + i, D.u8[i]);
      }
      mmxEnter(f);
      return true;
    }
  }
  return false;
}
