/**
 * MMU: linear -> physical translation (4-level paging, PAE legacy paging, paging off), TLB, memory access
 * helpers used by every instruction. OWNER: core-system. (Stub signatures; replace with the implementation.)
 */
import type { CpuState } from './cpu-state.js';

const todo = (what: string): never => { throw new Error(`emulated processor: ${what} not implemented`); };

export function read8(cpu: CpuState, lin: number): number { return todo('read8'); }
export function read16(cpu: CpuState, lin: number): number { return todo('read16'); }
export function read32(cpu: CpuState, lin: number): number { return todo('read32'); }
/** Returns the low 32 bits; the high 32 bits are left in cpu.memHi. */
export function read64(cpu: CpuState, lin: number): number { return todo('read64'); }
export function write8(cpu: CpuState, lin: number, v: number): void { todo('write8'); }
export function write16(cpu: CpuState, lin: number, v: number): void { todo('write16'); }
export function write32(cpu: CpuState, lin: number, v: number): void { todo('write32'); }
export function write64(cpu: CpuState, lin: number, lo: number, hi: number): void { todo('write64'); }
/** Raise #PF now (without writing) if [lin, lin+len) is not writable at the current privilege. */
export function probeWrite(cpu: CpuState, lin: number, len: number): void { todo('probeWrite'); }
/** Physical address for an instruction fetch at `lin` (checks NX/U), raising #PF. */
export function translateFetch(cpu: CpuState, lin: number): number { return todo('translateFetch'); }
/** Supervisor-implicit accesses (descriptor tables, TSS, IDT) ignore CPL for the U/S check. */
export function readSys32(cpu: CpuState, lin: number): number { return todo('readSys32'); }
export function writeSys32(cpu: CpuState, lin: number, v: number): void { todo('writeSys32'); }
export function flushTlb(cpu: CpuState, includingGlobal: boolean): void { todo('flushTlb'); }
export function invlpg(cpu: CpuState, lin: number): void { todo('invlpg'); }
