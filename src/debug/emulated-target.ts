/**
 * GDB debug target for the vCPUs of the emulated processor inside a running partition (GDB thread k+1 is
 * vCPU k). The partition's scheduler owns the CPUs; this target stops and starts them through `DebugControl`:
 *  - all-stop: when one vCPU stops (breakpoint, Ctrl-C) the scheduler runs none until GDB continues;
 *  - software breakpoints are INT3 bytes patched into guest memory (GDB sees the original bytes), caught by
 *    every vCPU's breakpointHook before the guest's IDT sees them;
 *  - single step runs exactly one instruction of one vCPU while the others stay where they are;
 *  - interrupt (Ctrl-C in GDB) stops the vCPUs at the next slice boundary.
 */
import type { DebugTarget, GdbRegName, StopReason } from './gdb-stub.js';
import type { EmulatedVcpu } from '../processor/emulated/processor.js';
import type { GuestMemory } from '../platform/memory.js';
import type { VcpuRunState } from '../platform/vcpu-scheduler.js';
import { runCpu } from '../processor/emulated/run-loop.js';
import { getRflags, setRflags } from '../processor/emulated/flags.js';
import { debugTranslate } from '../processor/emulated/mmu.js';
import type { CpuState } from '../processor/emulated/cpu-state.js';

/** Coordination between the partition scheduler and the debugger. */
export class DebugControl {
  /** True while the debugger holds the vCPUs stopped. */
  stopped = true;
  /** Called between run slices while the vCPUs run under the debugger. */
  onSlice: (() => void) | null = null;
  /** The vCPU that hit a breakpoint in the last slice, or -1. */
  breakpointVcpu = -1;
  interruptRequested = false;
  private waiter: ((r: StopReason) => void) | null = null;

  /** The scheduler reports why the vCPUs stopped. */
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

/** What the target needs from the partition. */
export interface DebugHost {
  runState(vcpu: number): VcpuRunState;
  /** Runs `fn` as that vCPU (its local APIC selected), for single steps outside the scheduler's turns. */
  asVcpu<T>(vcpu: number, fn: () => T): T;
  /** Makes the scheduler loop look again (every vCPU leaves its slice). */
  kick(): void;
  /** GDB's kill: end the VM (as QEMU does). */
  kill?(): void;
}

const RUN_STATE_NAME: Record<VcpuRunState, string> = { 'runnable': 'running', 'halted': 'halted', 'wait-for-sipi': 'wait-for-SIPI' };

const GPR_INDEX: Partial<Record<GdbRegName, number>> = {
  rax: 0, rcx: 1, rdx: 2, rbx: 3, rsp: 4, rbp: 5, rsi: 6, rdi: 7,
  r8: 8, r9: 9, r10: 10, r11: 11, r12: 12, r13: 13, r14: 14, r15: 15,
};
const SEG_INDEX: Partial<Record<GdbRegName, number>> = { es: 0, cs: 1, ss: 2, ds: 3, fs: 4, gs: 5 };

const toLinear = (a: bigint): number => Number(BigInt.asIntN(64, a));

export class EmulatedDebugTarget implements DebugTarget {
  readonly vcpuCount: number;
  readonly kill?: () => void;
  /** Breakpoint linear address -> physical address and the original byte. */
  private readonly bps = new Map<number, { phys: number; orig: number }>();
  /**
   * Breakpoints whose address is not mapped yet (e.g. kernel symbols before the kernel builds its page
   * tables): patched in by `refresh()` as soon as the address translates on some vCPU.
   */
  private readonly pending = new Set<number>();
  private readonly hook = (cpu: CpuState): boolean => {
    const bp = this.bps.get(cpu.rip);
    // Only our INT3: vCPUs with other page tables may map the address to a frame holding the guest's own.
    if (!bp || debugTranslate(cpu, cpu.rip) !== bp.phys) return false;
    if (this.control.breakpointVcpu < 0) this.control.breakpointVcpu = cpu.vp;
    return true;
  };

  constructor(private readonly vcpus: readonly EmulatedVcpu[], private readonly memory: GuestMemory, readonly control: DebugControl,
    private readonly host: DebugHost) {
    this.vcpuCount = vcpus.length;
    if (host.kill) this.kill = () => host.kill!();
    for (const v of vcpus) v.cpu.breakpointHook = this.hook;
    control.onSlice = () => { if (this.pending.size > 0) this.refresh(); };
  }

  describeVcpu(i: number): string { return `CPU#${i} [${RUN_STATE_NAME[this.host.runState(i)]}]`; }

  private cpu(i: number): EmulatedVcpu['cpu'] {
    const v = this.vcpus[i];
    if (!v) throw new RangeError(`no vCPU ${i}`);
    return v.cpu;
  }

  readRegister(name: GdbRegName, vcpu: number): bigint {
    const c = this.cpu(vcpu);
    const g = GPR_INDEX[name];
    if (g !== undefined) return (BigInt(c.gpr[2 * g + 1] >>> 0) << 32n) | BigInt(c.gpr[2 * g] >>> 0);
    if (name === 'rip') return BigInt.asUintN(64, BigInt(c.rip));
    if (name === 'eflags') return BigInt(getRflags(c) >>> 0);
    return BigInt(c.segSel[SEG_INDEX[name]!]);
  }

  writeRegister(name: GdbRegName, v: bigint, vcpu: number): void {
    const c = this.cpu(vcpu);
    const g = GPR_INDEX[name];
    if (g !== undefined) {
      c.gpr[2 * g] = Number(v & 0xffffffffn) | 0;
      c.gpr[2 * g + 1] = Number((v >> 32n) & 0xffffffffn) | 0;
    } else if (name === 'rip') c.rip = toLinear(v);
    else if (name === 'eflags') setRflags(c, Number(v & 0xffffffffn));
    // Segment selectors are not writable from GDB: loading them needs descriptor checks.
  }

  /** Physical address of a linear address through that vCPU's page tables and its RAM offset, or null. */
  private translate(lin: number, vcpu: number): { phys: number; off: number } | null {
    const phys = debugTranslate(this.cpu(vcpu), lin);
    const off = phys < 0 ? -1 : this.memory.offsetOf(phys);
    return off < 0 ? null : { phys, off };
  }

  readMemory(addr: bigint, length: number, vcpu: number): Uint8Array | null {
    const out = new Uint8Array(length);
    const base = toLinear(addr);
    for (let i = 0; i < length; i++) {
      const t = this.translate(base + i, vcpu);
      if (!t) return i === 0 ? null : out.subarray(0, i);
      const bp = this.bps.get(base + i);
      out[i] = bp && bp.phys === t.phys ? bp.orig : this.memory.bytes[t.off];
    }
    return out;
  }

  writeMemory(addr: bigint, data: Uint8Array, vcpu: number): boolean {
    const base = toLinear(addr);
    for (let i = 0; i < data.length; i++) {
      const t = this.translate(base + i, vcpu);
      if (!t) return false;
      const bp = this.bps.get(base + i);
      if (bp && bp.phys === t.phys) bp.orig = data[i]; else this.memory.bytes[t.off] = data[i];
      this.codeChanged(t.phys);
    }
    return true;
  }

  /** Drop every vCPU's decoded blocks of a page whose bytes the debugger changed. */
  private codeChanged(phys: number): void {
    const ppn = Math.floor(phys / 4096);
    for (const v of this.vcpus) if (v.cpu.codePages[ppn]) v.cpu.onCodeWrite(ppn);
  }

  /** Patches INT3 at `addr` as translated by `vcpu` (then by the others); pending while no vCPU maps it. */
  insertBreakpoint(addr: bigint, vcpu: number): boolean {
    const lin = toLinear(addr);
    if (this.bps.has(lin)) return true;
    let t = this.translate(lin, vcpu);
    for (let i = 0; !t && i < this.vcpus.length; i++) t = this.translate(lin, i);
    if (!t) { this.pending.add(lin); return true; }
    this.pending.delete(lin);
    this.bps.set(lin, { phys: t.phys, orig: this.memory.bytes[t.off] });
    this.memory.bytes[t.off] = 0xcc;
    this.codeChanged(t.phys);
    return true;
  }

  /** Patch pending breakpoints whose addresses became mapped (the scheduler calls this between slices). */
  refresh(): void {
    for (const lin of this.pending) this.insertBreakpoint(BigInt.asUintN(64, BigInt(lin)), 0);
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

  async step(vcpu: number): Promise<StopReason> {
    const cpu = this.cpu(vcpu);
    // An AP waiting for its startup IPI has no code to run yet; GDB still gets its stop.
    if (this.host.runState(vcpu) === 'wait-for-sipi') return { signal: 5, vcpu };
    // A breakpoint on the instruction being stepped over must not trigger.
    const at = BigInt.asUintN(64, BigInt(cpu.rip));
    const had = this.removeBreakpoint(at);
    cpu.breakpointHook = null;
    try {
      this.host.asVcpu(vcpu, () => runCpu(cpu, 1));
    } finally {
      cpu.breakpointHook = this.hook;
      if (had) this.insertBreakpoint(at, vcpu);
      cpu.exitRequested = false;
    }
    return { signal: 5, vcpu };
  }

  resume(): Promise<StopReason> {
    const p = this.control.resume();
    this.host.kick();
    return p;
  }

  interrupt(): void {
    this.control.interruptRequested = true;
    this.host.kick();
  }
}
