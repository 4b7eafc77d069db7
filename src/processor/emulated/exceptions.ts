/**
 * Exceptions and interrupt delivery through the IVT (real mode) or IDT (protected/long mode, TSS stack
 * switch, IST), #DF escalation and triple fault (-> platform.onReset). OWNER: core-system. (Stub signatures.)
 */
import type { CpuState } from './cpu-state.js';

const todo = (what: string): never => { throw new Error(`emulated processor: ${what} not implemented`); };

/** Fill cpu.fault and throw it. `cpu.rip` must still point at the faulting instruction (the core guarantees it). */
export function raise(cpu: CpuState, vector: number, errorCode?: number): never { return todo('raise'); }

/** Deliver the fault in cpu.fault (called by the run loop after catching it). */
export function deliverFault(cpu: CpuState): void { todo('deliverFault'); }

/** Deliver an external interrupt (already acknowledged at the interrupt controller). cpu.rip = return address. */
export function deliverInterrupt(cpu: CpuState, vector: number): void { todo('deliverInterrupt'); }

/** INT n / INT3 / INTO / INT1: software interrupt; `nextRip` is the return address. */
export function softwareInterrupt(cpu: CpuState, vector: number, nextRip: number, kind: 'int' | 'int3' | 'into' | 'int1'): void { todo('softwareInterrupt'); }

export function deliverNmi(cpu: CpuState): void { todo('deliverNmi'); }
