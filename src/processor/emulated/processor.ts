/**
 * The emulated backend: each vCPU is a `Cpu` run synchronously in slices by the partition's scheduler.
 */
import type { BootCpuState, PlatformServices, ProcessorBackend, RunOutcome, VirtualProcessor } from '../backend.js';
import { Cpu } from './cpu.js';
import { runCpu } from './run-loop.js';
import * as sys from './system.js';
import * as mmu from './mmu.js';
import { getRflags } from './flags.js';
import { F } from './cpu-state.js';
import { simd } from './exec-system.js';
import { saveCpu, restoreCpu, type CpuSnapshot } from './cpu-snapshot.js';

/** Instructions per runCpu call between host-time checks. */
const SLICE = 100_000;

export class EmulatedVcpu implements VirtualProcessor {
  readonly cpu: Cpu;

  constructor(readonly index: number, platform: PlatformServices) {
    this.cpu = new Cpu(index, platform);
    if (simd !== null) this.cpu.fpu = simd.createFpuState();
    sys.resetCpu(this.cpu);
  }

  setBootState(s: BootCpuState): void {
    sys.applyBootState(this.cpu, s);
    this.cpu.blocks.clear();
  }

  run(budgetMs: number): RunOutcome {
    const cpu = this.cpu;
    const t0 = performance.now();
    for (;;) {
      runCpu(cpu, SLICE);
      if (cpu.exitRequested) { cpu.exitRequested = false; return { kind: 'yield' }; }
      if (cpu.halted) return { kind: 'halted' };
      if (performance.now() - t0 >= budgetMs) return { kind: 'yield' };
    }
  }

  /**
   * One turn among several vCPUs: at most `maxInsns` instructions (so turns, and with an icount clock the
   * whole run, do not depend on host speed) or `budgetMs` of host time, whichever ends first.
   */
  runQuantum(budgetMs: number, maxInsns: number): RunOutcome {
    const cpu = this.cpu;
    const t0 = performance.now();
    let left = maxInsns;
    cpu.pauseCount = 0;
    // A kick meant for another vCPU's turn (the partition looks at its own state between turns).
    cpu.exitRequested = false;
    while (left > 0) {
      left -= runCpu(cpu, Math.min(left, SLICE));
      if (cpu.exitRequested) { cpu.exitRequested = false; return { kind: 'yield' }; }
      if (cpu.halted) return { kind: 'halted' };
      if (performance.now() - t0 >= budgetMs) break;
    }
    return { kind: 'yield' };
  }

  requestExit(): void { this.cpu.exitRequested = true; }

  init(): void {
    const keepInsns = this.cpu.insnCount;
    sys.resetCpu(this.cpu);
    this.cpu.insnCount = keepInsns;
    this.cpu.blocks.clear();
  }

  startup(vector: number): void {
    sys.startupIpi(this.cpu, vector);
    this.cpu.blocks.clear();
  }

  /** Remote TLB flush (Hyper-V hypercall from another vCPU, which runs while this one waits its turn). */
  flushTlb(nonGlobalOnly: boolean): void { mmu.flushTlb(this.cpu, !nonGlobalOnly); }

  get halted(): boolean { return this.cpu.halted; }
  get interruptsEnabled(): boolean { return (this.cpu.flagsRest & F.IF) !== 0; }
  get instructions(): number { return this.cpu.insnCount; }
  setPauseExit(count: number): void { this.cpu.pauseExitAfter = count; }

  /** Saved state (Save-VM); call between runs, when the processor sits at an instruction boundary. */
  saveState(): CpuSnapshot { return saveCpu(this.cpu); }
  restoreState(s: CpuSnapshot): void { restoreCpu(this.cpu, s); }

  snapshot(): Record<string, number | bigint> {
    const c = this.cpu;
    const names = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
    const out: Record<string, number | bigint> = {};
    for (let r = 0; r < 16; r++) out[names[r]] = (BigInt(c.gpr[2 * r + 1] >>> 0) << 32n) | BigInt(c.gpr[2 * r] >>> 0);
    out.rip = BigInt.asUintN(64, BigInt(c.rip));
    out.eflags = getRflags(c);
    const segs = ['es', 'cs', 'ss', 'ds', 'fs', 'gs'];
    for (let s = 0; s < 6; s++) out[segs[s]] = c.segSel[s];
    out.fs_base = BigInt.asUintN(64, BigInt(c.segBase[4]));
    out.gs_base = BigInt.asUintN(64, BigInt(c.segBase[5]));
    out.k_gs_base = BigInt.asUintN(64, BigInt(c.kernelGsBase));
    out.cr0 = c.cr0 >>> 0; out.cr2 = BigInt.asUintN(64, BigInt(c.cr2)); out.cr3 = c.cr3; out.cr4 = c.cr4 >>> 0;
    out.efer = c.efer; out.cpl = c.cpl; out.mode = c.mode;
    out.insns = c.insnCount;
    return out;
  }
}

export class EmulatedBackend implements ProcessorBackend {
  readonly kind = 'emulated' as const;
  private readonly vcpus: EmulatedVcpu[] = [];

  createVcpu(index: number, platform: PlatformServices): EmulatedVcpu {
    const v = new EmulatedVcpu(index, platform);
    this.vcpus.push(v);
    if (this.vcpus.length > 1) this.shareCodePages();
    return v;
  }

  /**
   * Cross-modifying code: one set of code-page flags for all vCPUs. A vCPU that starts caching a page drops
   * every vCPU's write mappings to it, and a store by any vCPU to such a page drops every vCPU's blocks there
   * (text_poke on one CPU, then the patched code runs on another).
   */
  private shareCodePages(): void {
    const cpus = this.vcpus.map((x) => x.cpu);
    const pages = cpus[0].codePages;
    for (const c of cpus) {
      c.codePages = pages;
      c.codePagesShared = true;
      c.onCodeWrite = (ppn) => { for (const o of cpus) o.blocks.invalidatePage(ppn); };
      c.onCodeCached = (ppn) => { for (const o of cpus) mmu.dropWriteMappings(o, ppn); };
    }
  }

  destroy(): void { this.vcpus.length = 0; }
}
