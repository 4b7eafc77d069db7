/**
 * Exceptions and interrupt delivery through the IVT (real mode) or IDT (protected/long mode, TSS stack
 * switch, IST), #DF escalation and triple fault (-> platform.onReset). OWNER: core-system.
 */
import type { CpuState } from './cpu-state.js';

/** Vectors that push an error code in protected/long mode (#DF #TS #NP #SS #GP #PF #AC). */
export function vectorHasErrorCode(v: number): boolean {
  return v === 8 || (v >= 10 && v <= 14) || v === 17;
}

/** Fill cpu.fault and throw it. `cpu.rip` must still point at the faulting instruction (the core guarantees it). */
export function raise(cpu: CpuState, vector: number, errorCode?: number): never {
  const f = cpu.fault;
  f.vector = vector;
  f.hasError = errorCode !== undefined || vectorHasErrorCode(vector);
  f.errorCode = errorCode === undefined ? 0 : errorCode & 0xffff_ffff;
  throw f;
}

/** Deliver the fault in cpu.fault (called by the run loop after catching it). */
export function deliverFault(cpu: CpuState): void { throw new Error('emulated processor: deliverFault not implemented'); }

/** Deliver an external interrupt (already acknowledged at the interrupt controller). cpu.rip = return address. */
export function deliverInterrupt(cpu: CpuState, vector: number): void { throw new Error('emulated processor: deliverInterrupt not implemented'); }

/** INT n / INT3 / INTO / INT1: software interrupt; `nextRip` is the return address. */
export function softwareInterrupt(cpu: CpuState, vector: number, nextRip: number, kind: 'int' | 'int3' | 'into' | 'int1'): void { throw new Error('emulated processor: softwareInterrupt not implemented'); }

export function deliverNmi(cpu: CpuState): void { throw new Error('emulated processor: deliverNmi not implemented'); }
