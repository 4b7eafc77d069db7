/**
 * System and miscellaneous opcodes: routing to system.ts (descriptor tables, control/debug registers, MSRs,
 * CPUID, TSC, fast system calls, HLT, CLI/STI), the SIMD/x87 unit (simd/), NOP forms, #UD/#GP stubs.
 */
import type { Cpu } from './cpu.js';
import type { Insn } from './decoder.js';
import type { SimdCpu, SimdInsn, FpuStateLike } from './simd/contract.js';
import { F } from './cpu-state.js';
import { ea, readRM, storeRM, setReg, getReg, ud, gp0, writeMem } from './exec-common.js';
import { getArithFlags, setArithFlags } from './flags.js';
import * as sys from './system.js';
import { raise } from './exceptions.js';

/** Entry points of the SIMD unit (simd/index.ts), loaded when present so the core runs without it. */
interface SimdUnit {
  createFpuState(): FpuStateLike;
  resetFpuState(s: FpuStateLike): void;
  execSse(cpu: SimdCpu, insn: SimdInsn): boolean;
  execX87(cpu: SimdCpu, insn: SimdInsn): boolean;
  fwait?(cpu: SimdCpu): void;
  fxsave(cpu: SimdCpu, lin: number, rexW: boolean): void;
  fxrstor(cpu: SimdCpu, lin: number, rexW: boolean): void;
}
const simdPath = './simd/index.js';
export const simd: SimdUnit | null = await import(simdPath).then((m) => m as SimdUnit, () => null);

export function opUD(cpu: Cpu): void { ud(cpu); }
export function opGP(cpu: Cpu): void { gp0(cpu); }
export function nop(): void {}
/** PAUSE: a spin-wait hint; with several vCPUs taking turns, a long spin gives the thread to the others. */
export function pause(cpu: Cpu): void {
  if (cpu.pauseExitAfter !== 0 && ++cpu.pauseCount >= cpu.pauseExitAfter) { cpu.pauseCount = 0; cpu.exitRequested = true; }
}
export function ud2(cpu: Cpu): void { ud(cpu); }

function needCpl0(cpu: Cpu): void { if (cpu.cpl !== 0) gp0(cpu); }

export function hlt(cpu: Cpu): void { needCpl0(cpu); sys.hlt(cpu); }
export function cli(cpu: Cpu): void { sys.cli(cpu); }
export function sti(cpu: Cpu): void {
  const wasOff = (cpu.flagsRest & F.IF) === 0;
  sys.sti(cpu);
  if (wasOff && (cpu.flagsRest & F.IF) !== 0) cpu.intShadow = true;
}

// ---- SIMD / x87

export function sse(cpu: Cpu, i: Insn): void {
  if (i.mod !== 3) i.ea = ea(cpu, i);
  else if (i.op === 0x1f7) i.ea = maskmovDest(cpu, i);
  if (simd === null || !simd.execSse(cpu, i)) ud(cpu);
}
/** MASKMOVQ/MASKMOVDQU store to DS:rDI (segment override and address size apply). */
function maskmovDest(cpu: Cpu, i: Insn): number {
  const g = cpu.gpr;
  const off = i.asz === 8 ? g[15] * 4294967296 + (g[14] >>> 0) : i.asz === 4 ? g[14] >>> 0 : g[14] & 0xffff;
  const seg = i.segOv >= 0 ? i.segOv : 3;
  if (i.long) return seg >= 4 ? off + cpu.segBase[seg] : off;
  return (off + cpu.segBase[seg]) >>> 0;
}
export function x87(cpu: Cpu, i: Insn): void {
  if (i.mod !== 3) i.ea = ea(cpu, i);
  if (simd === null || !simd.execX87(cpu, i)) ud(cpu);
}
export function fwait(cpu: Cpu): void {
  if (simd !== null && simd.fwait) simd.fwait(cpu);
}
export function fxsaveRstor(cpu: Cpu, i: Insn): void {
  const lin = ea(cpu, i);
  if (simd === null) ud(cpu);
  if ((i.reg & 7) === 0) simd.fxsave(cpu, lin, i.rexW); else simd.fxrstor(cpu, lin, i.rexW);
}
export function clflush(cpu: Cpu, i: Insn): void {
  ea(cpu, i); // no caches to flush; the address form is still checked by decoding
}

// ---- 0F 00: sldt str lldt ltr verr verw

export function group6(cpu: Cpu, i: Insn): void {
  const r = i.reg & 7;
  if (cpu.mode === 0) ud(cpu); // not recognized in real mode
  switch (r) {
    case 0: case 1: {
      const v = r === 0 ? cpu.ldtrSel : cpu.trSel;
      if (i.mod === 3) setReg(cpu, i.rm, i.osz === 1 ? 2 : (i.osz), v, 0);
      else writeMem(cpu, ea(cpu, i), 2, v, 0);
      return;
    }
    case 2: case 3: {
      needCpl0(cpu);
      const sel = readRM(cpu, i) & 0xffff;
      if (r === 2) sys.lldt(cpu, sel); else sys.ltr(cpu, sel);
      return;
    }
    case 4: case 5: {
      const sel = readRM(cpu, i) & 0xffff;
      const ok = sys.verr(cpu, sel, r === 5);
      setZf(cpu, ok);
      return;
    }
    default: ud(cpu);
  }
}

function setZf(cpu: Cpu, on: boolean): void {
  const f = getArithFlags(cpu);
  setArithFlags(cpu, on ? f | F.ZF : f & ~F.ZF);
}

export function lar(cpu: Cpu, i: Insn): void {
  if (cpu.mode === 0) ud(cpu);
  const sel = (i.mod === 3 ? getReg(cpu, i.rm, 2) : readRM16(cpu, i)) & 0xffff;
  const v = sys.lar(cpu, sel);
  setZf(cpu, v !== -1);
  if (v !== -1) setReg(cpu, i.reg, i.osz, v, 0);
}
export function lsl(cpu: Cpu, i: Insn): void {
  if (cpu.mode === 0) ud(cpu);
  const sel = (i.mod === 3 ? getReg(cpu, i.rm, 2) : readRM16(cpu, i)) & 0xffff;
  const v = sys.lsl(cpu, sel);
  setZf(cpu, v !== -1);
  if (v !== -1) setReg(cpu, i.reg, i.osz, v, 0);
}
function readRM16(cpu: Cpu, i: Insn): number { return cpu.read16(ea(cpu, i)); }

// ---- 0F 01

export function group7(cpu: Cpu, i: Insn): void {
  const r = i.reg & 7;
  if (i.mod !== 3) {
    switch (r) {
      case 0: sys.sgdt(cpu, ea(cpu, i)); return;
      case 1: sys.sidt(cpu, ea(cpu, i)); return;
      case 2: needCpl0(cpu); sys.lgdt(cpu, ea(cpu, i)); return;
      case 3: needCpl0(cpu); sys.lidt(cpu, ea(cpu, i)); return;
      case 4: writeMem(cpu, ea(cpu, i), 2, cpu.cr0 & 0xffff, 0); return;
      case 6: { needCpl0(cpu); const v = cpu.read16(ea(cpu, i)); sys.lmsw(cpu, v); return; }
      case 7: needCpl0(cpu); sys.invlpgInsn(cpu, ea(cpu, i)); return;
      default: ud(cpu);
    }
  }
  const rm = i.rm & 7;
  switch (r) {
    case 0: if (rm === 1) { sys.vmcall(cpu); return; } break;
    case 1: if (rm === 2 || rm === 3) { sys.setAc(cpu, rm === 3); return; } break; // CLAC, STAC
    case 2:
      if (rm === 0) { sys.xgetbv(cpu); return; }
      if (rm === 1) { needCpl0(cpu); sys.xsetbv(cpu); return; }
      break;
    case 3: if (rm === 1) { sys.vmcall(cpu); return; } break; // VMMCALL
    case 4: setReg(cpu, i.rm, i.osz, cpu.cr0 & (i.osz === 2 ? 0xffff : -1), 0); return; // smsw reg
    case 5:
      if (rm === 6 && i.rep === 0 && i.mandatory === 0) { sys.rdpkru(cpu); return; }
      if (rm === 7 && i.rep === 0 && i.mandatory === 0) { sys.wrpkru(cpu); return; }
      break;
    case 6: needCpl0(cpu); sys.lmsw(cpu, cpu.gpr[i.rm << 1] & 0xffff); return;
    case 7:
      if (rm === 0 && i.long) { needCpl0(cpu); sys.swapgs(cpu); return; }
      if (rm === 1) { sys.rdtscp(cpu); return; }
      break;
  }
  ud(cpu);
}

// ---- control and debug registers

export function movFromCr(cpu: Cpu, i: Insn): void {
  const n = i.reg;
  if (n !== 0 && n !== 2 && n !== 3 && n !== 4 && n !== 8) ud(cpu);
  needCpl0(cpu);
  const lo = sys.movFromCr(cpu, n);
  if (i.long) setReg(cpu, i.rm, 8, lo, cpu.memHi); else setReg(cpu, i.rm, 4, lo, 0);
}
export function movToCr(cpu: Cpu, i: Insn): void {
  const n = i.reg;
  if (n !== 0 && n !== 2 && n !== 3 && n !== 4 && n !== 8) ud(cpu);
  needCpl0(cpu);
  const g = cpu.gpr;
  sys.movToCr(cpu, n, g[i.rm << 1], i.long ? g[(i.rm << 1) + 1] : 0);
}
export function movFromDr(cpu: Cpu, i: Insn): void {
  if (i.reg > 7) ud(cpu);
  needCpl0(cpu);
  const lo = sys.movFromDr(cpu, i.reg);
  if (i.long) setReg(cpu, i.rm, 8, lo, cpu.memHi); else setReg(cpu, i.rm, 4, lo, 0);
}
export function movToDr(cpu: Cpu, i: Insn): void {
  if (i.reg > 7) ud(cpu);
  needCpl0(cpu);
  const g = cpu.gpr;
  sys.movToDr(cpu, i.reg, g[i.rm << 1], i.long ? g[(i.rm << 1) + 1] : 0);
}

export function clts(cpu: Cpu): void { needCpl0(cpu); sys.clts(cpu); }
export function wbinvd(cpu: Cpu): void { needCpl0(cpu); }
export function wrmsr(cpu: Cpu): void { needCpl0(cpu); sys.wrmsr(cpu); }
export function rdmsr(cpu: Cpu): void { needCpl0(cpu); sys.rdmsr(cpu); }
export function rdtsc(cpu: Cpu): void { sys.rdtsc(cpu); }
export function rdpmc(cpu: Cpu): void { sys.rdpmc(cpu); }
export function cpuid(cpu: Cpu): void { sys.cpuid(cpu); }
export function syscall(cpu: Cpu): void { sys.syscall(cpu, cpu.nextRip); cpu.nextRip = cpu.rip; }
export function sysret(cpu: Cpu, i: Insn): void { sys.sysret(cpu, i.rexW); cpu.nextRip = cpu.rip; }
export function sysenter(cpu: Cpu): void { sys.sysenter(cpu); cpu.nextRip = cpu.rip; }
export function sysexit(cpu: Cpu, i: Insn): void { sys.sysexit(cpu, i.rexW); cpu.nextRip = cpu.rip; }

/** arpl r/m16, r16 (protected mode, legacy only). */
export function arpl(cpu: Cpu, i: Insn): void {
  const d = readRM(cpu, i) & 0xffff;
  const s = getReg(cpu, i.reg, 2);
  if ((d & 3) < (s & 3)) {
    storeRM(cpu, i, (d & ~3) | (s & 3), 0);
    setZf(cpu, true);
  } else setZf(cpu, false);
}

export { raise };
