/**
 * System instructions and state: segment loading, far control transfers, IRET, descriptor tables, control
 * and debug registers, port I/O with IOPL/TSS checks, MSRs, CPUID, TSC, SYSCALL/SYSRET/SYSENTER/SWAPGS,
 * HLT, mode recomputation, reset. OWNER: core-system. (Stub signatures; the execution core calls these.)
 *
 * Conventions: `nextRip` is the address after the instruction; functions that transfer control set cpu.rip.
 * 64-bit results: low half returned, high half in cpu.memHi.
 */
import { type CpuState, Mode, Seg, F } from './cpu-state.js';
import type { BootCpuState } from '../backend.js';

const todo = (what: string): never => { throw new Error(`emulated processor: ${what} not implemented`); };

export function resetCpu(cpu: CpuState): void { todo('resetCpu'); }
export function applyBootState(cpu: CpuState, s: BootCpuState): void { todo('applyBootState'); }
/** Recompute cpu.mode / cpu.codeBits / cpu.cpl after CR0, EFER or CS changed. */
export function recomputeMode(cpu: CpuState): void {
  // codeBits is the default operand size of CS in bits (16/32/64). CPL is tracked separately (it only changes
  // through CS loads, gates, SYSCALL/SYSRET...), like hardware, except that real mode forces 0 and VM86 3.
  if ((cpu.cr0 & 1) === 0) { cpu.mode = Mode.Real; cpu.codeBits = 16; cpu.cpl = 0; return; }
  const cs = cpu.segAttr[Seg.CS];
  if ((cpu.efer & 0x400) !== 0 && (cs & 0x2000) !== 0) { cpu.mode = Mode.Long64; cpu.codeBits = 64; }
  else if ((cs & 0x4000) !== 0) { cpu.mode = Mode.Protected32; cpu.codeBits = 32; }
  else { cpu.mode = Mode.Protected16; cpu.codeBits = 16; }
  if ((cpu.flagsRest & F.VM) !== 0) cpu.cpl = 3;
}

// Segments and far transfers
export function loadSegment(cpu: CpuState, seg: number, selector: number): void { todo('loadSegment'); }
export function farJump(cpu: CpuState, selector: number, offset: number, nextRip: number): void { todo('farJump'); }
export function farCall(cpu: CpuState, selector: number, offset: number, opsize: number, nextRip: number): void { todo('farCall'); }
export function farReturn(cpu: CpuState, opsize: number, popBytes: number): void { todo('farReturn'); }
export function iret(cpu: CpuState, opsize: number): void { todo('iret'); }

// Descriptor tables (memory operand at linear address `lin`)
export function lgdt(cpu: CpuState, lin: number): void { todo('lgdt'); }
export function lidt(cpu: CpuState, lin: number): void { todo('lidt'); }
export function sgdt(cpu: CpuState, lin: number): void { todo('sgdt'); }
export function sidt(cpu: CpuState, lin: number): void { todo('sidt'); }
export function lldt(cpu: CpuState, selector: number): void { todo('lldt'); }
export function ltr(cpu: CpuState, selector: number): void { todo('ltr'); }
/** LAR / LSL / VERR / VERW: result in ZF (set via flags.ts) and value returned (-1 when ZF=0). */
export function lar(cpu: CpuState, selector: number): number { return todo('lar'); }
export function lsl(cpu: CpuState, selector: number): number { return todo('lsl'); }
export function verr(cpu: CpuState, selector: number, write: boolean): boolean { return todo('verr'); }

// Control / debug registers
export function movToCr(cpu: CpuState, n: number, lo: number, hi: number): void { todo('movToCr'); }
export function movFromCr(cpu: CpuState, n: number): number { return todo('movFromCr'); }
export function movToDr(cpu: CpuState, n: number, lo: number, hi: number): void { todo('movToDr'); }
export function movFromDr(cpu: CpuState, n: number): number { return todo('movFromDr'); }
export function lmsw(cpu: CpuState, v: number): void { todo('lmsw'); }
export function clts(cpu: CpuState): void { todo('clts'); }
export function invlpgInsn(cpu: CpuState, lin: number): void { todo('invlpg'); }

// Privileged and model-specific
/** RDMSR/WRMSR operate on ECX and EDX:EAX directly. */
export function rdmsr(cpu: CpuState): void { todo('rdmsr'); }
export function wrmsr(cpu: CpuState): void { todo('wrmsr'); }
/** CPUID operates on EAX/ECX -> EAX/EBX/ECX/EDX. */
export function cpuid(cpu: CpuState): void { todo('cpuid'); }
export function rdtsc(cpu: CpuState): void { todo('rdtsc'); }
export function rdtscp(cpu: CpuState): void { todo('rdtscp'); }
export function rdpmc(cpu: CpuState): void { todo('rdpmc'); }
export function xgetbv(cpu: CpuState): void { todo('xgetbv'); }
export function xsetbv(cpu: CpuState): void { todo('xsetbv'); }
export function hlt(cpu: CpuState): void { todo('hlt'); }
/** VMCALL/VMMCALL: hypercall to platform.hypercall (or #UD when none). */
export function vmcall(cpu: CpuState): void { todo('vmcall'); }

// Fast system calls
export function syscall(cpu: CpuState, nextRip: number): void { todo('syscall'); }
export function sysret(cpu: CpuState, rexW: boolean): void { todo('sysret'); }
export function sysenter(cpu: CpuState): void { todo('sysenter'); }
export function sysexit(cpu: CpuState, rexW: boolean): void { todo('sysexit'); }
export function swapgs(cpu: CpuState): void { todo('swapgs'); }

// Flags with privilege rules
export function cli(cpu: CpuState): void { todo('cli'); }
export function sti(cpu: CpuState): void { todo('sti'); }
/** POPF/IRET-style write of RFLAGS honouring CPL/IOPL/VM rules; `opsize` 2, 4 or 8. */
export function writeFlagsChecked(cpu: CpuState, value: number, opsize: number): void { todo('writeFlagsChecked'); }

// Port I/O with IOPL / TSS bitmap checks
export function portIn(cpu: CpuState, port: number, size: 1 | 2 | 4): number { return todo('portIn'); }
export function portOut(cpu: CpuState, port: number, size: 1 | 2 | 4, value: number): void { todo('portOut'); }
