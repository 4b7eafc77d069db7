/**
 * GDB debug target for a vCPU of the emulated processor inside a running partition. The partition's
 * scheduler owns the CPU; this target stops and starts it through `DebugControl`:
 *  - software breakpoints are INT3 bytes patched into guest memory (GDB sees the original bytes), caught by
 *    the processor's breakpointHook before the guest's IDT sees them;
 *  - single step runs exactly one instruction;
 *  - interrupt (Ctrl-C in GDB) stops the vCPU at the next slice boundary.
 */
import type { DebugTarget, GdbRegName, StopReason } from './gdb-stub.js';
import type { EmulatedVcpu } from '../processor/emulated/processor.js';
import type { GuestMemory } from '../platform/memory.js';
import { runCpu } from '../processor/emulated/run-loop.js';
import { getRflags, setRflags } from '../processor/emulated/flags.js';
import { debugTranslate } from '../processor/emulated/mmu.js';

/** Coordination between the partition scheduler and the debugger. */
export class DebugControl {
  /** True while the debugger holds the vCPU stopped. */
  stopped = true;
  /** Called between run slices while the vCPU runs under the debugger. */
  onSlice: (() => void) | null = null;
  breakpointHit = false;
  interruptRequested = false;
  private waiter: ((r: StopReason) => void) | null = null;

  /** The scheduler reports why the vCPU stopped. */
  reportStop(r: StopReason): void {
    this.stopped = true;
    const w = this.waiter;
    this.waiter = null;
    w?.(r);
  }

  resume(): Promise<StopReason> {
    return new Promise((resolve) => { this.waiter = resolve; this.stopped = false; });
  }
}

const GPR_INDEX: Partial<Record<GdbRegName, number>> = {
  rax: 0, rcx: 1, rdx: 2, rbx: 3, rsp: 4, rbp: 5, rsi: 6, rdi: 7,
  r8: 8, r9: 9, r10: 10, r11: 11, r12: 12, r13: 13, r14: 14, r15: 15,
};
const SEG_INDEX: Partial<Record<GdbRegName, number>> = { es: 0, cs: 1, ss: 2, ds: 3, fs: 4, gs: 5 };

const toLinear = (a: bigint): number => Number(BigInt.asIntN(64, a));

export class EmulatedDebugTarget implements DebugTarget {
  /** Breakpoint linear address -> physical address and the original byte. */
  private readonly bps = new Map<number, { phys: number; orig: number }>();
  /**
   * Breakpoints whose address is not mapped yet (e.g. kernel symbols before the kernel builds its page
   * tables): patched in by `refresh()` as soon as the address translates.
   */
  private readonly pending = new Set<number>();
  private readonly hook = (cpu: { rip: number }): boolean => {
    if (!this.bps.has(cpu.rip)) return false;
    this.control.breakpointHit = true;
    return true;
  };

  constructor(private readonly vcpu: EmulatedVcpu, private readonly memory: GuestMemory, readonly control: DebugControl,
    private readonly kick: () => void, readonly kill?: () => void) {
    vcpu.cpu.breakpointHook = this.hook;
    control.onSlice = () => { if (this.pending.size > 0) this.refresh(); };
  }

  readRegister(name: GdbRegName): bigint {
    const c = this.vcpu.cpu;
    const g = GPR_INDEX[name];
    if (g !== undefined) return (BigInt(c.gpr[2 * g + 1] >>> 0) << 32n) | BigInt(c.gpr[2 * g] >>> 0);
    if (name === 'rip') return BigInt.asUintN(64, BigInt(c.rip));
    if (name === 'eflags') return BigInt(getRflags(c) >>> 0);
    return BigInt(c.segSel[SEG_INDEX[name]!]);
  }

  writeRegister(name: GdbRegName, v: bigint): void {
    const c = this.vcpu.cpu;
    const g = GPR_INDEX[name];
    if (g !== undefined) {
      c.gpr[2 * g] = Number(v & 0xffffffffn) | 0;
      c.gpr[2 * g + 1] = Number((v >> 32n) & 0xffffffffn) | 0;
    } else if (name === 'rip') c.rip = toLinear(v);
    else if (name === 'eflags') setRflags(c, Number(v & 0xffffffffn));
    // Segment selectors are not writable from GDB: loading them needs descriptor checks.
  }

  /** RAM offset of a linear address through the current page tables, or -1. */
  private ramOffset(lin: number): number {
    const p = debugTranslate(this.vcpu.cpu, lin);
    return p < 0 ? -1 : this.memory.offsetOf(p);
  }

  readMemory(addr: bigint, length: number): Uint8Array | null {
    const out = new Uint8Array(length);
    const base = toLinear(addr);
    for (let i = 0; i < length; i++) {
      const o = this.ramOffset(base + i);
      if (o < 0) return i === 0 ? null : out.subarray(0, i);
      const bp = this.bps.get(base + i);
      out[i] = bp ? bp.orig : this.memory.bytes[o];
    }
    return out;
  }

  writeMemory(addr: bigint, data: Uint8Array): boolean {
    const base = toLinear(addr);
    for (let i = 0; i < data.length; i++) {
      const phys = debugTranslate(this.vcpu.cpu, base + i);
      const o = phys < 0 ? -1 : this.memory.offsetOf(phys);
      if (o < 0) return false;
      const bp = this.bps.get(base + i);
      if (bp) bp.orig = data[i]; else this.memory.bytes[o] = data[i];
      this.codeChanged(phys);
    }
    return true;
  }

  /** Drop decoded blocks of a page whose bytes the debugger changed. */
  private codeChanged(phys: number): void {
    const cpu = this.vcpu.cpu;
    const ppn = Math.floor(phys / 4096);
    if (cpu.codePages[ppn]) cpu.onCodeWrite(ppn);
  }

  insertBreakpoint(addr: bigint): boolean {
    const lin = toLinear(addr);
    if (this.bps.has(lin)) return true;
    const phys = debugTranslate(this.vcpu.cpu, lin);
    const o = phys < 0 ? -1 : this.memory.offsetOf(phys);
    if (o < 0) { this.pending.add(lin); return true; }
    this.pending.delete(lin);
    this.bps.set(lin, { phys, orig: this.memory.bytes[o] });
    this.memory.bytes[o] = 0xcc;
    this.codeChanged(phys);
    return true;
  }

  /** Patch pending breakpoints whose addresses became mapped (the scheduler calls this between slices). */
  refresh(): void {
    for (const lin of this.pending) this.insertBreakpoint(BigInt.asUintN(64, BigInt(lin)));
  }

  removeBreakpoint(addr: bigint): boolean {
    const lin = toLinear(addr);
    if (this.pending.delete(lin)) return true;
    const bp = this.bps.get(lin);
    if (!bp) return false;
    this.bps.delete(lin);
    const o = this.memory.offsetOf(bp.phys);
    if (o >= 0 && this.memory.bytes[o] === 0xcc) this.memory.bytes[o] = bp.orig;
    this.codeChanged(bp.phys);
    return true;
  }

  async step(): Promise<StopReason> {
    const cpu = this.vcpu.cpu;
    // A breakpoint on the instruction being stepped over must not trigger.
    const at = BigInt.asUintN(64, BigInt(cpu.rip));
    const had = this.removeBreakpoint(at);
    cpu.breakpointHook = null;
    try {
      runCpu(cpu, 1);
    } finally {
      cpu.breakpointHook = this.hook;
      if (had) this.insertBreakpoint(at);
      cpu.exitRequested = false;
    }
    return { signal: 5 };
  }

  resume(): Promise<StopReason> {
    const p = this.control.resume();
    this.kick();
    return p;
  }

  interrupt(): void {
    this.control.interruptRequested = true;
    this.vcpu.requestExit();
  }
}
