/**
 * SSE and SSE2 on XMM registers, plus the forms that mix XMM and MMX registers (cvtpi2ps, movq2dq, ...);
 * MMX-only forms (no mandatory prefix) are in mmx.ts. SSE3 and later are #UD.
 * Operands are staged in module-level 16-byte buffers so a faulting memory access or an unmasked #XM
 * leaves the destination unchanged, and so no instruction allocates.
 */
import type { CpuState } from '../cpu-state.js';
import { setArithFlags } from '../flags.js';
import type { SimdCpu, SimdInsn } from './contract.js';
import { MXCSR_MASK, type FpuState } from './state.js';
import { Op, begin, cmp32, cmp64, cvt32to64, cvt64to32, cvtInt, cvtToInt, flags, lane32, lane64, predicate, rHi, rLo, rcp32, rsqrt32, signalsOnQNaN } from './sse-fp.js';
import { fxrstor, fxsave } from './fxsave.js';
import { D, S, R, d32, s32, r32, INT_OPS, intOp, shift, byteShift } from './packed-int.js';
import { execMmx, isMmxOp, mmWrite, mmxEnter, mmxPending } from './mmx.js';

const UD = 6, NM = 7, GP = 13, XM = 19;
const CR0_EM = 1 << 2, CR0_TS = 1 << 3;
const CR4_OSFXSR = 1 << 9, CR4_OSXMMEXCPT = 1 << 10;

/** #UD/#NM checks common to SSE instructions. */
function avail(cpu: SimdCpu): void {
  if ((cpu.cr0 & CR0_EM) !== 0 || (cpu.cr4 & CR4_OSFXSR) === 0) cpu.raise(UD);
  if ((cpu.cr0 & CR0_TS) !== 0) cpu.raise(NM);
}

function loadD(cpu: SimdCpu, r: number): void {
  const x = cpu.xmm, o = r << 2;
  d32[0] = x[o]; d32[1] = x[o + 1]; d32[2] = x[o + 2]; d32[3] = x[o + 3];
}
/** Second operand, 128 bits; `align`: memory must be 16-byte aligned (#GP(0)). */
function loadS128(cpu: SimdCpu, insn: SimdInsn, align: boolean): void {
  if (insn.mod === 3) {
    const x = cpu.xmm, o = insn.rm << 2;
    s32[0] = x[o]; s32[1] = x[o + 1]; s32[2] = x[o + 2]; s32[3] = x[o + 3];
  } else {
    const ea = insn.ea;
    if (align && (ea & 15) !== 0) cpu.raise(GP, 0);
    s32[0] = cpu.read32(ea); s32[1] = cpu.read32(ea + 4); s32[2] = cpu.read32(ea + 8); s32[3] = cpu.read32(ea + 12);
  }
}
/** Second operand, low `dwords` (1 or 2) only from memory; the whole register for register forms. */
function loadSLow(cpu: SimdCpu, insn: SimdInsn, dwords: number): void {
  if (insn.mod === 3) { loadS128(cpu, insn, false); return; }
  const ea = insn.ea;
  s32[0] = cpu.read32(ea);
  s32[1] = dwords > 1 ? cpu.read32(ea + 4) : 0;
  s32[2] = 0; s32[3] = 0;
}
function storeR(cpu: SimdCpu, r: number): void {
  const x = cpu.xmm, o = r << 2;
  x[o] = r32[0]; x[o + 1] = r32[1]; x[o + 2] = r32[2]; x[o + 3] = r32[3];
}
function store128(cpu: SimdCpu, ea: number, src: Int32Array, o: number, align: boolean): void {
  if (align && (ea & 15) !== 0) cpu.raise(GP, 0);
  cpu.probeWrite(ea, 16);
  cpu.write32(ea, src[o]); cpu.write32(ea + 4, src[o + 1]); cpu.write32(ea + 8, src[o + 2]); cpu.write32(ea + 12, src[o + 3]);
}
function store64(cpu: SimdCpu, ea: number, lo: number, hi: number): void {
  cpu.probeWrite(ea, 8);
  cpu.write32(ea, lo); cpu.write32(ea + 4, hi);
}

/** Read a GPR or memory operand of 32/64 bits into rdLo/rdHi. */
let gLo = 0, gHi = 0;
function readGprOrMem(cpu: SimdCpu, insn: SimdInsn, is64: boolean): void {
  if (insn.mod === 3) { gLo = cpu.gpr[insn.rm * 2]; gHi = is64 ? cpu.gpr[insn.rm * 2 + 1] : 0; return; }
  gLo = cpu.read32(insn.ea);
  gHi = is64 ? cpu.read32(insn.ea + 4) : 0;
}
/** Write a 32-bit (zero-extending) or 64-bit value to GPR `r`. */
function writeGpr(cpu: SimdCpu, r: number, lo: number, hi: number, is64: boolean): void {
  cpu.gpr[r * 2] = lo; cpu.gpr[r * 2 + 1] = is64 ? hi : 0;
}

/**
 * End of a floating-point instruction: record flags or raise #XM/#UD for unmasked ones. Returns false
 * when the result must not be written (never: it raises instead).
 */
function finishFp(cpu: SimdCpu): void {
  const fpu = cpu.fpu as FpuState;
  let f = flags();
  const mx = fpu.mxcsr;
  let unmasked = f & ~(mx >>> 7) & 0x3f;
  if (unmasked !== 0) {
    // Pre-computation exceptions (IE DE ZE) suppress the post-computation ones.
    if ((unmasked & 7) !== 0) f &= 7;
    fpu.mxcsr = mx | f;
    cpu.raise((cpu.cr4 & CR4_OSXMMEXCPT) !== 0 ? XM : UD);
  }
  fpu.mxcsr = mx | f;
}

// Kind of packed/scalar operation selected by the mandatory prefix.
const PS = 0, PD = 1, SS = 2, SD = 3;
function kindOf(m: number): number { return m === 0 ? PS : m === 0x66 ? PD : m === 0xf3 ? SS : SD; }

function fpArith(cpu: SimdCpu, insn: SimdInsn, op: number): void {
  const k = kindOf(insn.mandatory);
  avail(cpu);
  if (k === SS) loadSLow(cpu, insn, 1);
  else if (k === SD) loadSLow(cpu, insn, 2);
  else loadS128(cpu, insn, true);
  loadD(cpu, insn.reg);
  begin((cpu.fpu as FpuState).mxcsr);
  r32[0] = d32[0]; r32[1] = d32[1]; r32[2] = d32[2]; r32[3] = d32[3];
  switch (k) {
    case PS:
      for (let i = 0; i < 4; i++) r32[i] = lane32(op, d32[i], s32[i]);
      break;
    case SS: r32[0] = lane32(op, d32[0], s32[0]); break;
    case PD:
      lane64(op, d32[0], d32[1], s32[0], s32[1]); r32[0] = rLo; r32[1] = rHi;
      lane64(op, d32[2], d32[3], s32[2], s32[3]); r32[2] = rLo; r32[3] = rHi;
      break;
    default: lane64(op, d32[0], d32[1], s32[0], s32[1]); r32[0] = rLo; r32[1] = rHi;
  }
  finishFp(cpu);
  storeR(cpu, insn.reg);
}

function fpCompare(cpu: SimdCpu, insn: SimdInsn): void {
  const k = kindOf(insn.mandatory);
  avail(cpu);
  if (k === SS) loadSLow(cpu, insn, 1);
  else if (k === SD) loadSLow(cpu, insn, 2);
  else loadS128(cpu, insn, true);
  loadD(cpu, insn.reg);
  const p = insn.imm8 & 7; // imm8 bits 3..7 are ignored without AVX
  const sq = signalsOnQNaN(p);
  begin((cpu.fpu as FpuState).mxcsr);
  r32[0] = d32[0]; r32[1] = d32[1]; r32[2] = d32[2]; r32[3] = d32[3];
  if (k === PS || k === SS) {
    const n = k === PS ? 4 : 1;
    for (let i = 0; i < n; i++) r32[i] = predicate(p, cmp32(d32[i], s32[i], sq)) ? -1 : 0;
  } else {
    const n = k === PD ? 2 : 1;
    for (let i = 0; i < n; i++) {
      const m = predicate(p, cmp64(d32[2 * i], d32[2 * i + 1], s32[2 * i], s32[2 * i + 1], sq)) ? -1 : 0;
      r32[2 * i] = m; r32[2 * i + 1] = m;
    }
  }
  finishFp(cpu);
  storeR(cpu, insn.reg);
}

/** COMISS/UCOMISS/COMISD/UCOMISD. */
function comi(cpu: SimdCpu, insn: SimdInsn, signalQ: boolean): void {
  const dbl = insn.mandatory === 0x66;
  avail(cpu);
  loadSLow(cpu, insn, dbl ? 2 : 1);
  loadD(cpu, insn.reg);
  begin((cpu.fpu as FpuState).mxcsr);
  const c = dbl ? cmp64(d32[0], d32[1], s32[0], s32[1], signalQ) : cmp32(d32[0], s32[0], signalQ);
  finishFp(cpu);
  // ZF PF CF: unordered 111, less 001, equal 100, greater 000; OF SF AF cleared.
  const f = c === 3 ? 0x45 : c === 1 ? 0x01 : c === 0 ? 0x40 : 0;
  setArithFlags(cpu as unknown as CpuState, f);
}

/** Execute one SSE/SSE2 instruction. Returns false when the opcode/prefix combination is not one (#UD). */
export function execSse(cpu: SimdCpu, insn: SimdInsn): boolean {
  if (insn.op >> 8 !== 1) return false;
  const b = insn.op & 0xff;
  const m = insn.mandatory;
  if (m === 0 && isMmxOp(b)) return execMmx(cpu, insn);
  const mem = insn.mod !== 3;
  const reg = insn.reg;
  const x = cpu.xmm;
  switch (b) {
    case 0x10: case 0x11: { // movups/movupd/movss/movsd
      avail(cpu);
      const load = b === 0x10;
      if (m === 0 || m === 0x66) {
        if (load) { loadS128(cpu, insn, false); const o = reg << 2; x[o] = s32[0]; x[o + 1] = s32[1]; x[o + 2] = s32[2]; x[o + 3] = s32[3]; }
        else if (mem) store128(cpu, insn.ea, x, reg << 2, false);
        else { const o = insn.rm << 2, p = reg << 2; x[o] = x[p]; x[o + 1] = x[p + 1]; x[o + 2] = x[p + 2]; x[o + 3] = x[p + 3]; }
        return true;
      }
      const n = m === 0xf3 ? 1 : 2;
      if (load) {
        const o = reg << 2;
        if (mem) { loadSLow(cpu, insn, n); x[o] = s32[0]; x[o + 1] = s32[1]; x[o + 2] = 0; x[o + 3] = 0; }
        else { const p = insn.rm << 2; x[o] = x[p]; if (n === 2) x[o + 1] = x[p + 1]; }
      } else if (mem) {
        const o = reg << 2;
        if (n === 1) { cpu.write32(insn.ea, x[o]); } else store64(cpu, insn.ea, x[o], x[o + 1]);
      } else { const o = insn.rm << 2, p = reg << 2; x[o] = x[p]; if (n === 2) x[o + 1] = x[p + 1]; }
      return true;
    }
    case 0x12: case 0x16: { // movlps/movhlps/movlpd, movhps/movlhps/movhpd
      if (m !== 0 && m !== 0x66) return false;
      if (m === 0x66 && !mem) return false;
      avail(cpu);
      const o = reg << 2;
      const hiHalf = b === 0x16 ? 2 : 0;
      if (mem) { const lo = cpu.read32(insn.ea), hi = cpu.read32(insn.ea + 4); x[o + hiHalf] = lo; x[o + hiHalf + 1] = hi; }
      else if (b === 0x12) { const p = insn.rm << 2; x[o] = x[p + 2]; x[o + 1] = x[p + 3]; } // movhlps
      else { const p = insn.rm << 2; x[o + 2] = x[p]; x[o + 3] = x[p + 1]; } // movlhps
      return true;
    }
    case 0x13: case 0x17: { // movlps/movlpd/movhps/movhpd store
      if ((m !== 0 && m !== 0x66) || !mem) return false;
      avail(cpu);
      const o = (reg << 2) + (b === 0x17 ? 2 : 0);
      store64(cpu, insn.ea, x[o], x[o + 1]);
      return true;
    }
    case 0x14: case 0x15: case 0x54: case 0x55: case 0x56: case 0x57: case 0xc6: {
      if (m !== 0 && m !== 0x66) return false;
      avail(cpu);
      loadS128(cpu, insn, true);
      loadD(cpu, reg);
      const pd = m === 0x66;
      switch (b) {
        case 0x14: if (pd) { r32[0] = d32[0]; r32[1] = d32[1]; r32[2] = s32[0]; r32[3] = s32[1]; } else { r32[0] = d32[0]; r32[1] = s32[0]; r32[2] = d32[1]; r32[3] = s32[1]; } break;
        case 0x15: if (pd) { r32[0] = d32[2]; r32[1] = d32[3]; r32[2] = s32[2]; r32[3] = s32[3]; } else { r32[0] = d32[2]; r32[1] = s32[2]; r32[2] = d32[3]; r32[3] = s32[3]; } break;
        case 0x54: for (let i = 0; i < 4; i++) r32[i] = d32[i] & s32[i]; break;
        case 0x55: for (let i = 0; i < 4; i++) r32[i] = ~d32[i] & s32[i]; break;
        case 0x56: for (let i = 0; i < 4; i++) r32[i] = d32[i] | s32[i]; break;
        case 0x57: for (let i = 0; i < 4; i++) r32[i] = d32[i] ^ s32[i]; break;
        default: { // shufps / shufpd
          const im = insn.imm8;
          if (pd) {
            const a = (im & 1) * 2, c = ((im >> 1) & 1) * 2;
            r32[0] = d32[a]; r32[1] = d32[a + 1]; r32[2] = s32[c]; r32[3] = s32[c + 1];
          } else {
            r32[0] = d32[im & 3]; r32[1] = d32[(im >> 2) & 3]; r32[2] = s32[(im >> 4) & 3]; r32[3] = s32[(im >> 6) & 3];
          }
        }
      }
      storeR(cpu, reg);
      return true;
    }
    case 0x18: // prefetch hints (and reserved NOP forms)
      if (!mem) return false;
      return true;
    case 0x28: case 0x29: { // movaps/movapd
      if (m !== 0 && m !== 0x66) return false;
      avail(cpu);
      if (b === 0x28) { loadS128(cpu, insn, true); const o = reg << 2; x[o] = s32[0]; x[o + 1] = s32[1]; x[o + 2] = s32[2]; x[o + 3] = s32[3]; }
      else if (mem) store128(cpu, insn.ea, x, reg << 2, true);
      else { const o = insn.rm << 2, p = reg << 2; x[o] = x[p]; x[o + 1] = x[p + 1]; x[o + 2] = x[p + 2]; x[o + 3] = x[p + 3]; }
      return true;
    }
    case 0x2a: { // cvtsi2ss / cvtsi2sd; cvtpi2ps / cvtpi2pd
      if (m === 0 || m === 0x66) { cvtpi2p(cpu, insn, m === 0x66); return true; }
      avail(cpu);
      readGprOrMem(cpu, insn, insn.rexW);
      begin((cpu.fpu as FpuState).mxcsr);
      const o = reg << 2;
      if (m === 0xf3) { const v = cvtInt(gLo, gHi, insn.rexW, false); finishFp(cpu); x[o] = v; }
      else { cvtInt(gLo, gHi, insn.rexW, true); const lo = rLo, hi = rHi; finishFp(cpu); x[o] = lo; x[o + 1] = hi; }
      return true;
    }
    case 0x2b: case 0xe7: { // movntps/movntpd, movntdq
      if (!mem) return false;
      if (b === 0x2b ? m !== 0 && m !== 0x66 : m !== 0x66) return false;
      avail(cpu);
      store128(cpu, insn.ea, x, reg << 2, true);
      return true;
    }
    case 0x2c: case 0x2d: { // cvttss2si/cvtss2si/cvttsd2si/cvtsd2si; cvt(t)ps2pi / cvt(t)pd2pi
      if (m === 0 || m === 0x66) { cvtp2pi(cpu, insn, m === 0x66, b === 0x2c); return true; }
      avail(cpu);
      const dbl = m === 0xf2;
      loadSLow(cpu, insn, dbl ? 2 : 1);
      begin((cpu.fpu as FpuState).mxcsr);
      cvtToInt(s32[0], s32[1], !dbl, insn.rexW, b === 0x2c);
      const lo = rLo, hi = rHi;
      finishFp(cpu);
      writeGpr(cpu, reg, lo, hi, insn.rexW);
      return true;
    }
    case 0x2e: case 0x2f:
      if (m !== 0 && m !== 0x66) return false;
      comi(cpu, insn, b === 0x2f);
      return true;
    case 0x50: { // movmskps/pd
      if ((m !== 0 && m !== 0x66) || mem) return false;
      avail(cpu);
      const p = insn.rm << 2;
      const v = m === 0 ? (x[p] >>> 31) | ((x[p + 1] >>> 31) << 1) | ((x[p + 2] >>> 31) << 2) | ((x[p + 3] >>> 31) << 3)
        : (x[p + 1] >>> 31) | ((x[p + 3] >>> 31) << 1);
      writeGpr(cpu, reg, v, 0, false);
      return true;
    }
    case 0x51: fpArith(cpu, insn, Op.SQRT); return true;
    case 0x52: case 0x53: { // rsqrtps/ss, rcpps/ss
      if (m !== 0 && m !== 0xf3) return false;
      avail(cpu);
      if (m === 0xf3) loadSLow(cpu, insn, 1); else loadS128(cpu, insn, true);
      const o = reg << 2;
      const n = m === 0 ? 4 : 1;
      for (let i = 0; i < n; i++) r32[i] = b === 0x52 ? rsqrt32(s32[i]) : rcp32(s32[i]);
      for (let i = 0; i < n; i++) x[o + i] = r32[i];
      return true;
    }
    case 0x58: fpArith(cpu, insn, Op.ADD); return true;
    case 0x59: fpArith(cpu, insn, Op.MUL); return true;
    case 0x5c: fpArith(cpu, insn, Op.SUB); return true;
    case 0x5d: fpArith(cpu, insn, Op.MIN); return true;
    case 0x5e: fpArith(cpu, insn, Op.DIV); return true;
    case 0x5f: fpArith(cpu, insn, Op.MAX); return true;
    case 0x5a: { // cvtps2pd / cvtpd2ps / cvtss2sd / cvtsd2ss
      avail(cpu);
      if (m === 0) loadSLow(cpu, insn, 2);
      else if (m === 0x66) loadS128(cpu, insn, true);
      else loadSLow(cpu, insn, m === 0xf3 ? 1 : 2);
      loadD(cpu, reg);
      begin((cpu.fpu as FpuState).mxcsr);
      r32[0] = d32[0]; r32[1] = d32[1]; r32[2] = d32[2]; r32[3] = d32[3];
      switch (m) {
        case 0: {
          const a = s32[0], c = s32[1];
          cvt32to64(a); r32[0] = rLo; r32[1] = rHi;
          cvt32to64(c); r32[2] = rLo; r32[3] = rHi;
          break;
        }
        case 0x66: r32[0] = cvt64to32(s32[0], s32[1]); r32[1] = cvt64to32(s32[2], s32[3]); r32[2] = 0; r32[3] = 0; break;
        case 0xf3: cvt32to64(s32[0]); r32[0] = rLo; r32[1] = rHi; break;
        default: r32[0] = cvt64to32(s32[0], s32[1]);
      }
      finishFp(cpu);
      storeR(cpu, reg);
      return true;
    }
    case 0x5b: { // cvtdq2ps / cvtps2dq / cvttps2dq
      if (m === 0xf2) return false;
      avail(cpu);
      loadS128(cpu, insn, true);
      begin((cpu.fpu as FpuState).mxcsr);
      for (let i = 0; i < 4; i++) {
        if (m === 0) r32[i] = cvtInt(s32[i], 0, false, false);
        else { cvtToInt(s32[i], 0, true, false, m === 0xf3); r32[i] = rLo; }
      }
      finishFp(cpu);
      storeR(cpu, reg);
      return true;
    }
    case 0xe6: { // cvttpd2dq / cvtdq2pd / cvtpd2dq
      if (m === 0) return false;
      avail(cpu);
      if (m === 0xf3) loadSLow(cpu, insn, 2); else loadS128(cpu, insn, true);
      begin((cpu.fpu as FpuState).mxcsr);
      if (m === 0xf3) {
        const a = s32[0], c = s32[1];
        cvtInt(a, 0, false, true); r32[0] = rLo; r32[1] = rHi;
        cvtInt(c, 0, false, true); r32[2] = rLo; r32[3] = rHi;
      } else {
        cvtToInt(s32[0], s32[1], false, false, m === 0x66); r32[0] = rLo;
        cvtToInt(s32[2], s32[3], false, false, m === 0x66); r32[1] = rLo;
        r32[2] = 0; r32[3] = 0;
      }
      finishFp(cpu);
      storeR(cpu, reg);
      return true;
    }
    case 0x6e: { // movd/movq xmm, r/m
      if (m !== 0x66) return false;
      avail(cpu);
      readGprOrMem(cpu, insn, insn.rexW);
      const o = reg << 2;
      x[o] = gLo; x[o + 1] = gHi; x[o + 2] = 0; x[o + 3] = 0;
      return true;
    }
    case 0x7e: {
      if (m === 0x66) { // movd/movq r/m, xmm
        avail(cpu);
        const o = reg << 2;
        if (!mem) writeGpr(cpu, insn.rm, x[o], x[o + 1], insn.rexW);
        else if (insn.rexW) store64(cpu, insn.ea, x[o], x[o + 1]);
        else cpu.write32(insn.ea, x[o]);
        return true;
      }
      if (m === 0xf3) { // movq xmm, xmm/m64
        avail(cpu);
        loadSLow(cpu, insn, 2);
        const o = reg << 2;
        x[o] = s32[0]; x[o + 1] = s32[1]; x[o + 2] = 0; x[o + 3] = 0;
        return true;
      }
      return false;
    }
    case 0xd6: { // movq xmm/m64, xmm; movq2dq xmm, mm; movdq2q mm, xmm
      if ((m === 0xf3 || m === 0xf2) && !mem) {
        avail(cpu);
        mmxPending(cpu);
        const f = cpu.fpu as FpuState;
        if (m === 0xf3) { const o = reg << 2, r = insn.rm & 7; x[o] = f.mlo[r]; x[o + 1] = f.mhi[r]; x[o + 2] = 0; x[o + 3] = 0; }
        else { const o = insn.rm << 2; mmWrite(f, reg & 7, x[o], x[o + 1]); }
        mmxEnter(f);
        return true;
      }
      if (m !== 0x66) return false;
      avail(cpu);
      const o = reg << 2;
      if (mem) store64(cpu, insn.ea, x[o], x[o + 1]);
      else { const p = insn.rm << 2; x[p] = x[o]; x[p + 1] = x[o + 1]; x[p + 2] = 0; x[p + 3] = 0; }
      return true;
    }
    case 0x6f: case 0x7f: { // movdqa / movdqu
      if (m !== 0x66 && m !== 0xf3) return false;
      avail(cpu);
      const al = m === 0x66;
      if (b === 0x6f) { loadS128(cpu, insn, al); const o = reg << 2; x[o] = s32[0]; x[o + 1] = s32[1]; x[o + 2] = s32[2]; x[o + 3] = s32[3]; }
      else if (mem) store128(cpu, insn.ea, x, reg << 2, al);
      else { const o = insn.rm << 2, p = reg << 2; x[o] = x[p]; x[o + 1] = x[p + 1]; x[o + 2] = x[p + 2]; x[o + 3] = x[p + 3]; }
      return true;
    }
    case 0x70: { // pshufd / pshufhw / pshuflw
      if (m === 0) return false;
      avail(cpu);
      loadS128(cpu, insn, true);
      const im = insn.imm8;
      if (m === 0x66) for (let i = 0; i < 4; i++) r32[i] = s32[(im >> (2 * i)) & 3];
      else if (m === 0xf3) { r32[0] = s32[0]; r32[1] = s32[1]; for (let i = 0; i < 4; i++) R.u16[4 + i] = S.u16[4 + ((im >> (2 * i)) & 3)]; }
      else { r32[2] = s32[2]; r32[3] = s32[3]; for (let i = 0; i < 4; i++) R.u16[i] = S.u16[(im >> (2 * i)) & 3]; }
      storeR(cpu, reg);
      return true;
    }
    case 0x71: case 0x72: case 0x73: { // shift groups by imm8 (register operand is rm)
      if (m !== 0x66 || mem) return false;
      const g = reg & 7;
      let sb = 0;
      if (b === 0x71) sb = g === 2 ? 0xd1 : g === 4 ? 0xe1 : g === 6 ? 0xf1 : 0;
      else if (b === 0x72) sb = g === 2 ? 0xd2 : g === 4 ? 0xe2 : g === 6 ? 0xf2 : 0;
      else sb = g === 2 ? 0xd3 : g === 6 ? 0xf3 : g === 3 ? 1 : g === 7 ? 2 : 0;
      if (sb === 0) return false;
      avail(cpu);
      loadD(cpu, insn.rm);
      if (sb === 1 || sb === 2) byteShift(insn.imm8, sb === 2);
      else shift(sb, insn.imm8 & 255);
      storeR(cpu, insn.rm);
      return true;
    }
    case 0xae: return groupAE(cpu, insn);
    case 0xc2: fpCompare(cpu, insn); return true;
    case 0xc3: { // movnti
      if (m !== 0 || !mem) return false;
      const o = reg * 2;
      if (insn.rexW) store64(cpu, insn.ea, cpu.gpr[o], cpu.gpr[o + 1]);
      else cpu.write32(insn.ea, cpu.gpr[o]);
      return true;
    }
    case 0xc4: { // pinsrw
      if (m !== 0x66) return false;
      avail(cpu);
      const v = mem ? cpu.read16(insn.ea) : cpu.gpr[insn.rm * 2];
      loadD(cpu, reg);
      D.u16[insn.imm8 & 7] = v;
      const o = reg << 2; x[o] = d32[0]; x[o + 1] = d32[1]; x[o + 2] = d32[2]; x[o + 3] = d32[3];
      return true;
    }
    case 0xc5: { // pextrw
      if (m !== 0x66 || mem) return false;
      avail(cpu);
      loadD(cpu, insn.rm);
      writeGpr(cpu, reg, D.u16[insn.imm8 & 7], 0, false);
      return true;
    }
    case 0xd7: { // pmovmskb
      if (m !== 0x66 || mem) return false;
      avail(cpu);
      loadD(cpu, insn.rm);
      let v = 0;
      for (let i = 0; i < 16; i++) v |= (D.u8[i] >> 7) << i;
      writeGpr(cpu, reg, v, 0, false);
      return true;
    }
    case 0xf7: { // maskmovdqu: the core supplies DS:rDI as insn.ea
      if (m !== 0x66 || mem) return false;
      avail(cpu);
      loadD(cpu, reg); loadS128(cpu, insn, false);
      let any = false;
      for (let i = 0; i < 16; i++) if (S.u8[i] & 0x80) any = true;
      if (!any) return true;
      cpu.probeWrite(insn.ea, 16);
      for (let i = 0; i < 16; i++) if (S.u8[i] & 0x80) cpu.write8(insn.ea + i, D.u8[i]);
      return true;
    }
  }
  // Remaining 66-prefixed packed-integer ops with xmm/m128 source.
  if (m === 0x66 && INT_OPS[b] === 1) {
    avail(cpu);
    loadS128(cpu, insn, true);
    loadD(cpu, reg);
    intOp(b);
    storeR(cpu, reg);
    return true;
  }
  return false;
}

/**
 * CVTPI2PS xmm, mm/m64 (low two lanes, upper half kept) and CVTPI2PD xmm, mm/m64. Only the MMX-register
 * source makes the x87-to-MMX transition and takes pending x87 exceptions.
 */
function cvtpi2p(cpu: SimdCpu, insn: SimdInsn, pd: boolean): void {
  avail(cpu);
  const f = cpu.fpu as FpuState;
  let a: number, c: number;
  if (insn.mod === 3) { mmxPending(cpu); const r = insn.rm & 7; a = f.mlo[r]; c = f.mhi[r]; mmxEnter(f); }
  else { a = cpu.read32(insn.ea); c = cpu.read32(insn.ea + 4); }
  begin(f.mxcsr);
  if (pd) { // exact: no exceptions
    cvtInt(a, 0, false, true); r32[0] = rLo; r32[1] = rHi;
    cvtInt(c, 0, false, true); r32[2] = rLo; r32[3] = rHi;
    finishFp(cpu);
    storeR(cpu, insn.reg);
    return;
  }
  r32[0] = cvtInt(a, 0, false, false);
  r32[1] = cvtInt(c, 0, false, false);
  finishFp(cpu);
  const o = insn.reg << 2;
  cpu.xmm[o] = r32[0]; cpu.xmm[o + 1] = r32[1];
}

/** CVT(T)PS2PI mm, xmm/m64 and CVT(T)PD2PI mm, xmm/m128 (aligned). */
function cvtp2pi(cpu: SimdCpu, insn: SimdInsn, pd: boolean, truncate: boolean): void {
  avail(cpu);
  mmxPending(cpu);
  const f = cpu.fpu as FpuState;
  if (pd) loadS128(cpu, insn, true); else loadSLow(cpu, insn, 2);
  mmxEnter(f);
  begin(f.mxcsr);
  if (pd) {
    cvtToInt(s32[0], s32[1], false, false, truncate); r32[0] = rLo;
    cvtToInt(s32[2], s32[3], false, false, truncate); r32[1] = rLo;
  } else {
    cvtToInt(s32[0], 0, true, false, truncate); r32[0] = rLo;
    cvtToInt(s32[1], 0, true, false, truncate); r32[1] = rLo;
  }
  finishFp(cpu);
  mmWrite(f, insn.reg & 7, r32[0], r32[1]);
}

function groupAE(cpu: SimdCpu, insn: SimdInsn): boolean {
  const g = insn.reg & 7;
  if (insn.mandatory !== 0) return false;
  if (insn.mod === 3) return g >= 5; // lfence, mfence, sfence: ordering is trivially satisfied here
  const fpu = cpu.fpu as FpuState;
  switch (g) {
    case 0: fxsave(cpu, insn.ea, insn.rexW, insn.long); return true;
    case 1: fxrstor(cpu, insn.ea, insn.rexW, insn.long); return true;
    case 2: {
      avail(cpu);
      const v = cpu.read32(insn.ea);
      if ((v & ~MXCSR_MASK) !== 0) cpu.raise(GP, 0);
      fpu.mxcsr = v & MXCSR_MASK;
      return true;
    }
    case 3: avail(cpu); cpu.write32(insn.ea, fpu.mxcsr); return true;
    case 7: return true; // clflush: no caches to flush
  }
  return false;
}
