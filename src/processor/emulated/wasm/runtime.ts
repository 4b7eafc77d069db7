/**
 * Per-vCPU WebAssembly translator runtime: queues hot blocks, compiles them in batches (one module, one
 * function per block), provides the JS imports the translated code calls (memory operands with the TLB hit
 * path, conditions on flags it does not know, handler calls), and wraps each function in the
 * `TranslatedBlock` signature the run loop already uses.
 */
import type { Cpu } from '../cpu.js';
import type { Block } from '../block-cache.js';
import type { Insn } from '../decoder.js';
import type { TranslatedBlock } from '../jit.js';
import * as mmu from '../mmu.js';
import { getCF, testCondition } from '../flags.js';
import { ModuleBuilder } from './emitter.js';
import { declareImports, translateBlockWasm } from './translate.js';
import { FS_BASE, GS_BASE, LOOP_N, MEM_HI, RIP, STOP, TLB_USER, syncFlags } from './state.js';
import type { WasmLayout } from './translate.js';

/** Blocks per module (more amortizes module overhead; fewer shortens the wait before a block runs translated). */
const BATCH = 32;

export const wasmStats = { modules: 0, blocks: 0, bytes: 0, compileMs: 0, failed: 0 };

type WasmBlockFn = (rip: number, budget: number) => number;

export class WasmJit {
  private queue: Block[] = [];
  private readonly s: Int32Array;
  private readonly d: Float64Array;
  /** The running block and its start address (the imports report faults relative to it). */
  private rip = 0;
  private block: Block | null = null;
  /** Compile each block as soon as it is queued (tests with the threshold at 0). */
  immediate = false;
  private readonly layout: WasmLayout;

  constructor(private readonly cpu: Cpu) {
    this.s = new Int32Array(cpu.stateMem.buffer, cpu.stateBase, 64);
    this.d = new Float64Array(cpu.stateMem.buffer, cpu.stateBase, 32);
    const w = cpu.platform.memory.wasm;
    this.layout = { base: cpu.stateBase, ramBase: cpu.tlbInWasm && w !== null ? w.ramBase : -1 };
  }

  get pending(): boolean { return this.queue.length > 0; }

  enqueue(b: Block): void {
    this.queue.push(b);
    if (this.immediate || this.queue.length >= BATCH) this.flush();
  }

  /** Compile every queued block that is still valid. */
  flush(): void {
    const blocks = this.queue.filter((b) => b.valid && b.jit === null);
    this.queue = [];
    if (blocks.length === 0) return;
    const t0 = performance.now();
    const mb = new ModuleBuilder();
    declareImports(mb);
    const handlers: Insn[] = [];
    for (let k = 0; k < blocks.length; k++) translateBlockWasm(mb, blocks[k], handlers, `b${k}`, this.layout);
    const bytes = mb.build();
    let inst: WebAssembly.Instance;
    try {
      inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { e: this.imports(handlers) });
    } catch (e) {
      // A translator bug must not take the guest down: those blocks stay interpreted.
      wasmStats.failed += blocks.length;
      if (process.env.HYPERTS_JIT_DEBUG) console.error('wasm translation failed:', e);
      return;
    }
    wasmStats.modules++; wasmStats.blocks += blocks.length; wasmStats.bytes += bytes.length;
    wasmStats.compileMs += performance.now() - t0;
    for (let k = 0; k < blocks.length; k++) blocks[k].jit = this.wrap(inst.exports[`b${k}`] as WasmBlockFn);
  }

  private wrap(fn: WasmBlockFn): TranslatedBlock {
    return (cpu: Cpu, b: Block, budget: number): number => this.run(fn, cpu, b, budget);
  }

  private run(fn: WasmBlockFn, cpu: Cpu, b: Block, budget: number): number {
    const s = this.s, d = this.d;
    this.rip = cpu.rip; this.block = b;
    this.segBases();
    s[TLB_USER >> 2] = cpu.cpl === 3 ? 8192 : 0;
    s[LOOP_N >> 2] = 0;
    s[STOP >> 2] = cpu.irqCheck || cpu.exitRequested ? 1 : 0;
    let n: number;
    try {
      n = fn(cpu.rip, budget);
    } catch (e) {
      // cpu.rip was set by the import that faulted; registers are in place, flags in the state page.
      syncFlags(cpu, s);
      b.loopDone = s[LOOP_N >> 2];
      throw e;
    }
    syncFlags(cpu, s);
    cpu.rip = d[RIP >> 3];
    b.loopDone = 0;
    return n;
  }

  /** FS and GS bases as i64 halves for the translated address arithmetic. */
  private segBases(): void {
    const s = this.s, b = this.cpu.segBase;
    const fs = b[4], gs = b[5];
    s[FS_BASE >> 2] = fs >>> 0; s[(FS_BASE >> 2) + 1] = Math.floor(fs / 4294967296) | 0;
    s[GS_BASE >> 2] = gs >>> 0; s[(GS_BASE >> 2) + 1] = Math.floor(gs / 4294967296) | 0;
  }

  /** After a slow memory path: a self-loop must stop when the run loop has something to look at. */
  private slowDone(): void {
    const cpu = this.cpu;
    if (cpu.irqCheck || cpu.exitRequested) this.s[STOP >> 2] = 1;
  }

  private stored(): number {
    this.slowDone();
    return this.block!.valid ? 0 : 1;
  }

  private imports(handlers: Insn[]): Record<string, WebAssembly.ImportValue> {
    const cpu = this.cpu, s = this.s, d = this.d;
    const tag = cpu.tlbTag, add = cpu.tlbAddend;
    return {
      m: cpu.stateMem,
      ld8: (ea: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 1024 : 0) + ((ea >>> 12) & 1023);
        if (tag[x] === ea - (ea & 4095)) return cpu.ram[ea + add[x]];
        cpu.rip = this.rip + off;
        const v = mmu.read8(cpu, ea); this.slowDone(); return v;
      },
      ld16: (ea: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 1024 : 0) + ((ea >>> 12) & 1023), o = ea & 4095;
        if (tag[x] === ea - o && o <= 4094) return cpu.ramView.getUint16(ea + add[x], true);
        cpu.rip = this.rip + off;
        const v = mmu.read16(cpu, ea); this.slowDone(); return v;
      },
      ld32: (ea: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 1024 : 0) + ((ea >>> 12) & 1023), o = ea & 4095;
        if (tag[x] === ea - o && o <= 4092) return cpu.ramView.getInt32(ea + add[x], true);
        cpu.rip = this.rip + off;
        const v = mmu.read32(cpu, ea); this.slowDone(); return v;
      },
      ld64: (ea: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 1024 : 0) + ((ea >>> 12) & 1023), o = ea & 4095;
        if (tag[x] === ea - o && o <= 4088) {
          const p = ea + add[x], v = cpu.ramView;
          s[MEM_HI >> 2] = v.getInt32(p + 4, true);
          return v.getInt32(p, true);
        }
        cpu.rip = this.rip + off;
        const lo = mmu.read64(cpu, ea);
        s[MEM_HI >> 2] = cpu.memHi;
        this.slowDone();
        return lo;
      },
      st8: (ea: number, v: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 3072 : 2048) + ((ea >>> 12) & 1023);
        if (tag[x] === ea - (ea & 4095)) { cpu.ram[ea + add[x]] = v; return 0; }
        cpu.rip = this.rip + off;
        mmu.write8(cpu, ea, v & 255); return this.stored();
      },
      st16: (ea: number, v: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 3072 : 2048) + ((ea >>> 12) & 1023), o = ea & 4095;
        if (tag[x] === ea - o && o <= 4094) { cpu.ramView.setUint16(ea + add[x], v, true); return 0; }
        cpu.rip = this.rip + off;
        mmu.write16(cpu, ea, v & 0xffff); return this.stored();
      },
      st32: (ea: number, v: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 3072 : 2048) + ((ea >>> 12) & 1023), o = ea & 4095;
        if (tag[x] === ea - o && o <= 4092) { cpu.ramView.setInt32(ea + add[x], v, true); return 0; }
        cpu.rip = this.rip + off;
        mmu.write32(cpu, ea, v); return this.stored();
      },
      st64: (ea: number, lo: number, hi: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 3072 : 2048) + ((ea >>> 12) & 1023), o = ea & 4095;
        if (tag[x] === ea - o && o <= 4088) {
          const p = ea + add[x], w = cpu.ramView;
          w.setInt32(p, lo, true); w.setInt32(p + 4, hi, true);
          return 0;
        }
        cpu.rip = this.rip + off;
        mmu.write64(cpu, ea, lo, hi); return this.stored();
      },
      cond: (cc: number): number => { syncFlags(cpu, s); return testCondition(cpu, cc) ? 1 : 0; },
      getcf: (): number => { syncFlags(cpu, s); return getCF(cpu); },
      call: (k: number, off: number, end: number): number => {
        syncFlags(cpu, s);
        const i = handlers[k];
        cpu.rip = this.rip + off; cpu.nextRip = this.rip + end;
        i.fn(cpu, i);
        d[RIP >> 3] = cpu.nextRip;
        // The handler may have changed FS/GS (wrmsr, swapgs) for the translated accesses after it.
        this.segBases();
        return this.block!.valid ? 0 : 1;
      },
    };
  }
}
