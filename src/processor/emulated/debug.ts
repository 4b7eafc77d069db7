/**
 * Debug facilities: DR0-DR3/DR6/DR7 breakpoints and single-step (RFLAGS.TF). OWNER: core-system.
 *
 * Nothing here runs while nothing is armed: the run loop sends execution through `debugStep` (one instruction
 * at a time, interpreter only) only when RFLAGS.TF is set or `cpu.debugArmed` is nonzero (a DR7 breakpoint is
 * enabled or a #DB trap is pending). Data breakpoints cost nothing on the TLB fast path: the MMU never caches a
 * translation of a watched linear page, so accesses to it take the slow path, which reports them here.
 *
 * Semantics (SDM vol. 3 ch. 17, AMD APM vol. 2 ch. 13):
 *  - instruction breakpoints are faults checked before the instruction, suppressed by RFLAGS.RF (which is
 *    cleared when the next instruction completes); data and I/O breakpoints are traps after the instruction;
 *  - single-step traps after an instruction that began with TF=1; SYSCALL/SYSRET instead trap when TF is set
 *    after them (so SYSRET to a TF=1 user context traps at once, in user mode); software interrupts (INT n,
 *    INT3, INTO, ICEBP) enter their handler with TF clear and no single-step trap;
 *  - MOV SS / POP SS inhibit debug traps until the instruction after them has run: their single-step trap is
 *    dropped, their data-breakpoint hits wait and are reported with the next instruction's (or, when that one
 *    delivers an interrupt, at the handler's first instruction); a fault discards them;
 *  - DR6.B0-B3 are rewritten on every breakpoint #DB; BS/BD stay set until software clears them;
 *  - DR7.GD makes any MOV DRn a #DB fault with DR6.BD (GD is cleared for the handler).
 */
import type { Cpu } from './cpu.js';
import { type CpuState, F } from './cpu-state.js';
import { raise } from './exceptions.js';
import { flushTlb } from './mmu.js';

export const DR6_BS = 0x4000, DR6_BD = 0x2000;
const DR7_GD = 0x2000;
const DR6_FIXED = 0xffff0ff0;

/** Bytes covered by a breakpoint's LEN field (00 1, 01 2, 10 8, 11 4). */
const BP_LEN = [1, 2, 8, 4];

const floorTo = (v: number, m: number): number => v - (((v % m) + m) % m);

/**
 * Recompute what is armed after DR0-DR3/DR7 or the pending trap changed: the run-loop flag, the count of
 * enabled data breakpoints and their linear pages. Flushes the TLB when data watching starts, stops or moves,
 * so no cached translation bypasses the check.
 */
export function updateDebugArm(cpu: CpuState): void {
  const dr7 = cpu.dr[7];
  const pages = cpu.dbgWatchPage;
  let watch = 0, moved = false;
  for (let n = 0; n < 4; n++) {
    let page = NaN;
    if (((dr7 >>> (2 * n)) & 3) !== 0 && (((dr7 >>> (16 + 4 * n)) & 1) !== 0)) { // RW 01 or 11: data
      const len = BP_LEN[(dr7 >>> (18 + 4 * n)) & 3];
      page = floorTo(floorTo(cpu.dr[n], len), 4096);
      watch++;
    }
    if (!(page === pages[n] || (page !== page && pages[n] !== pages[n]))) { pages[n] = page; moved = true; }
  }
  if (moved) flushTlb(cpu, true);
  cpu.dbgWatch = watch;
  cpu.debugArmed = ((dr7 & 0xff) !== 0 ? 1 : 0) | (cpu.dbgPending !== 0 ? 2 : 0);
}

/** Is linear page `page` watched by an enabled data breakpoint? (MMU: do not cache it.) */
export function watchedPage(cpu: CpuState, page: number): boolean {
  const p = cpu.dbgWatchPage;
  return p[0] === page || p[1] === page || p[2] === page || p[3] === page;
}

/** MMU slow path: a data access of `size` bytes at `lin`; records matching data breakpoints in dbgHits. */
export function watchAccess(cpu: CpuState, lin: number, size: number, write: boolean): void {
  const dr7 = cpu.dr[7];
  for (let n = 0; n < 4; n++) {
    if (((dr7 >>> (2 * n)) & 3) === 0) continue;
    const rw = (dr7 >>> (16 + 4 * n)) & 3;
    if (rw !== 3 && !(rw === 1 && write)) continue;
    const len = BP_LEN[(dr7 >>> (18 + 4 * n)) & 3];
    const a = floorTo(cpu.dr[n], len);
    if (lin < a + len && a < lin + size) cpu.dbgHits |= 1 << n;
  }
}

/** Port I/O (only called while armed): I/O breakpoints (RW = 10, defined only with CR4.DE). */
export function watchPort(cpu: CpuState, port: number, size: number): void {
  if ((cpu.cr4 & 8) === 0) return;
  const dr7 = cpu.dr[7];
  for (let n = 0; n < 4; n++) {
    if (((dr7 >>> (2 * n)) & 3) === 0 || ((dr7 >>> (16 + 4 * n)) & 3) !== 2) continue;
    const len = BP_LEN[(dr7 >>> (18 + 4 * n)) & 3];
    const a = floorTo(cpu.dr[n] % 65536, len);
    if (port < a + len && a < port + size) cpu.dbgHits |= 1 << n;
  }
}

/** MOV to/from DRn with DR7.GD set: #DB fault with DR6.BD; GD is cleared so the handler can use the registers. */
export function generalDetect(cpu: CpuState): void {
  if ((cpu.dr[7] & DR7_GD) === 0) return;
  cpu.dr[6] = (cpu.dr[6] | DR6_BD | DR6_FIXED) >>> 0;
  cpu.dr[7] = (cpu.dr[7] & ~DR7_GD) >>> 0;
  raise(cpu, 1);
}

/** Queue a #DB trap (DR6 bits) for the next instruction boundary (SYSCALL/SYSRET leaving TF set). */
export function queueDebugTrap(cpu: CpuState, bits: number): void {
  cpu.dbgPending |= bits;
  cpu.debugArmed |= 2;
}

/**
 * ICEBP: its #DB carries the data-breakpoint hits still waiting from a preceding MOV SS (one #DB, not two).
 * Every software interrupt also tells the step that its handler starts without a single-step trap.
 */
export function softwareInterruptDebug(cpu: CpuState, icebp: boolean): void {
  cpu.dbgEvent = 1;
  if (icebp && cpu.dbgPending !== 0) {
    cpu.dr[6] = ((cpu.dr[6] & ~0xf) | (cpu.dbgPending & 0xf) | DR6_FIXED) >>> 0;
    cpu.dbgPending = 0;
    cpu.debugArmed &= ~2;
  }
}

/** Raise the pending #DB trap (RIP already at the next instruction). */
function deliverPending(cpu: CpuState): never {
  const bits = cpu.dbgPending;
  cpu.dbgPending = 0;
  cpu.debugArmed &= ~2;
  cpu.dr[6] = ((cpu.dr[6] & ~0xf) | bits | DR6_FIXED) >>> 0;
  return raise(cpu, 1);
}

/** Instruction breakpoints enabled at `lin`: #DB fault (RIP stays on the instruction). */
function checkInstructionBreakpoints(cpu: CpuState, lin: number): void {
  const dr7 = cpu.dr[7];
  let hits = 0;
  for (let n = 0; n < 4; n++) {
    if (((dr7 >>> (2 * n)) & 3) !== 0 && ((dr7 >>> (16 + 4 * n)) & 3) === 0 && cpu.dr[n] === lin) hits |= 1 << n;
  }
  if (hits === 0) return;
  cpu.dr[6] = ((cpu.dr[6] & ~0xf) | hits | DR6_FIXED) >>> 0;
  raise(cpu, 1);
}

/**
 * Run one instruction with every debug check (called by the run loop instead of a block while TF is set or
 * something is armed). Returns the instructions retired (0 or 1); #DB and faults are thrown as cpu.fault.
 */
export function debugStep(cpu: Cpu): number {
  // MOV SS shadow: set by the previous instruction and still live (the normal path clears intShadow).
  const shadow = cpu.dbgMovSs && cpu.intShadow;
  cpu.dbgMovSs = false;
  if (cpu.dbgPending !== 0 && !shadow) deliverPending(cpu);
  const rf0 = (cpu.flagsRest & F.RF) !== 0;
  const tf0 = (cpu.flagsRest & F.TF) !== 0;
  try {
    const lin = cpu.mode === 3 ? cpu.rip : (cpu.segBase[1] + cpu.rip) >>> 0;
    const i = cpu.blocks.lookup(lin).insns[0];
    if (!rf0 && !shadow && (cpu.dr[7] & 0xff) !== 0) checkInstructionBreakpoints(cpu, lin);
    cpu.intShadow = false;
    cpu.dbgHits = 0;
    cpu.dbgEvent = 0;
    cpu.nextRip = cpu.rip + i.len;
    i.fn(cpu, i);
    cpu.rip = cpu.nextRip;
  } catch (e) {
    // A fault (or the breakpoint itself) ends the instruction: traps waiting for it are lost.
    if (e === cpu.fault) { cpu.dbgPending = 0; cpu.debugArmed &= ~2; }
    throw e;
  }
  cpu.irqCheck = true;
  if (rf0) cpu.flagsRest &= ~F.RF;
  let bits = cpu.dbgHits;
  if (cpu.dbgMovSs && cpu.intShadow) {
    // MOV SS / POP SS: single-step dropped, breakpoint hits wait one instruction.
    cpu.dbgPending |= bits;
    cpu.debugArmed = (cpu.debugArmed & ~2) | (cpu.dbgPending !== 0 ? 2 : 0);
    return 1;
  }
  cpu.dbgMovSs = false;
  if (tf0 && cpu.dbgEvent === 0) bits |= DR6_BS;
  cpu.dbgPending |= bits;
  if (cpu.dbgPending !== 0) {
    cpu.insnCount++; // retired, though the trap leaves the run loop through its fault path
    deliverPending(cpu);
  }
  return 1;
}
