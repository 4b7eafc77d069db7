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
import { getArithFlags, getCF, testCondition } from '../flags.js';
import { ModuleBuilder } from './emitter.js';
import { IMPORTS, declareImports, translateBlockWasm } from './translate.js';
import { CUR_RIP, CUR_SLOT, FS_BASE, GS_BASE, LOOP_N, MEM_HI, RIP, STOP, TLB_USER, syncFlags } from './state.js';
import { F } from '../cpu-state.js';
import { IF } from '../decoder.js';
import { retiredBefore } from '../jit.js';
import { T } from './emitter.js';
import type { WasmLayout } from './translate.js';

/** Blocks per module (more amortizes module overhead; fewer shortens the wait before a block runs translated). */
const BATCH = envInt('HYPERTS_WASM_BATCH', 128);
/** Clock polls (4096 instructions each) a partial batch waits before it is compiled anyway. */
const POLLS_PER_FLUSH = envInt('HYPERTS_WASM_POLLS', 256);
/** Handler calls referenced by translated code before everything is dropped and translated afresh. */
let HANDLER_CAP = 1 << 20;

/** Tests: lower the handler-list bound (returns the previous one). */
export function setHandlerCap(n: number): number { const old = HANDLER_CAP; HANDLER_CAP = n; return old; }

function envInt(name: string, dflt: number): number {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : dflt;
}

export const wasmStats = { resets: 0, modules: 0, blocks: 0, bytes: 0, compileMs: 0, failed: 0, emitMs: 0, moduleMs: 0, instanceMs: 0 };

type WasmBlockFn = (rip: number, budget: number, n: number) => number;

export class WasmJit {
  private queue: Block[] = [];
  private readonly s: Int32Array;
  private readonly d: Float64Array;
  /** Compile each block as soon as it is queued (tests with the threshold at 0). */
  immediate = false;
  private readonly layout: WasmLayout;
  /** Chaining: one table slot per block key; the stub returns to the run loop. */
  private readonly table: WebAssembly.Table;
  private readonly slots = new Map<number, number>();
  private readonly slotBlocks: (Block | null)[] = [];
  private readonly stub: WasmBlockFn;
  /** Instructions translated code hands to their handlers (index = the `call` import's first argument). */
  private readonly handlers: Insn[] = [];
  /** What block modules import: the memory, the table, and wasm trampolines to the JS helpers. */
  private readonly linked: Record<string, WebAssembly.ImportValue>;

  constructor(private readonly cpu: Cpu) {
    this.s = new Int32Array(cpu.stateMem.buffer, cpu.stateBase, 64);
    this.d = new Float64Array(cpu.stateMem.buffer, cpu.stateBase, 32);
    const w = cpu.platform.memory.wasm;
    const chain = process.env.HYPERTS_WASM_CHAIN !== 'off';
    this.layout = { base: cpu.stateBase, ramBase: cpu.tlbInWasm && w !== null ? w.ramBase : -1, slotFor: chain ? (k) => this.slotFor(k) : null };
    // The stub: store the target RIP and return the count so far.
    const mb = new ModuleBuilder();
    mb.importMemory('e', 'm', 1);
    const f = mb.func([T.F64, T.I32, T.I32], [T.I32], 'stub');
    f.code.i32(0).get(0).f64Store(cpu.stateBase + RIP).get(2);
    this.stub = new WebAssembly.Instance(new WebAssembly.Module(mb.build()), { e: { m: cpu.stateMem } }).exports.stub as WasmBlockFn;
    this.table = new WebAssembly.Table({ element: 'anyfunc', initial: 1024 }, this.stub);
    // V8 compiles a wasm-to-JS wrapper per import for every new module; block modules import wasm functions
    // of this one hub instead (wasm-to-wasm calls), so only the hub pays for the wrappers, once.
    const hub = new ModuleBuilder();
    const js = this.imports();
    for (const [n, p, r] of IMPORTS) hub.importFunc('e', n, p, r);
    IMPORTS.forEach(([n, p, r], k) => {
      const t = hub.func(p, r, n);
      for (let a = 0; a < p.length; a++) t.code.get(a);
      t.code.call(k);
    });
    const ex = new WebAssembly.Instance(new WebAssembly.Module(hub.build()), { e: js }).exports;
    this.linked = { m: cpu.stateMem, t: this.table };
    for (const [n] of IMPORTS) this.linked[n] = ex[n] as WebAssembly.ImportValue;
  }

  private slotFor(key: number): number {
    let s = this.slots.get(key);
    if (s === undefined) {
      s = this.slots.size;
      this.slots.set(key, s);
      this.slotBlocks.push(null);
      if (s >= this.table.length) {
        this.table.grow(this.table.length, this.stub);
      }
    }
    return s;
  }

  /** Block `b` was invalidated: chained jumps to its key return to the run loop again. */
  drop(b: Block): void {
    const s = this.slots.get(b.key);
    if (s !== undefined && this.slotBlocks[s] === b) { this.table.set(s, this.stub); this.slotBlocks[s] = null; }
  }

  /** Polls of the clock since the queue got its first block. */
  private waited = 0;

  /** Called at every clock poll (every few thousand instructions): a partial batch waits a few polls at most. */
  poll(): void {
    if (this.queue.length > 0 && ++this.waited >= POLLS_PER_FLUSH) this.flush();
  }

  enqueue(b: Block): void {
    this.queue.push(b);
    if (this.immediate || this.queue.length >= BATCH) this.flush();
  }

  /** Compile every queued block that is still valid. */
  flush(): void {
    this.waited = 0;
    if (this.handlers.length > HANDLER_CAP) {
      // Handler indices are baked into modules, so the list only grows; past the cap start over: every block is
      // dropped (their slots return to the stub) and gets decoded and translated again when it is hot again.
      this.queue = [];
      this.handlers.length = 0;
      wasmStats.resets++;
      this.cpu.blocks.clear();
      return;
    }
    const blocks = this.queue.filter((b) => b.valid && b.jit === null);
    this.queue = [];
    if (blocks.length === 0) return;
    const t0 = performance.now();
    const mb = new ModuleBuilder();
    declareImports(mb);
    for (let k = 0; k < blocks.length; k++) {
      const fi = translateBlockWasm(mb, blocks[k], this.handlers, `b${k}`, this.layout);
      // The module fills the block's table slot itself (far cheaper than Table.set from JS).
      if (this.layout.slotFor !== null) mb.elem(this.slotFor(blocks[k].key), fi);
    }
    const bytes = mb.build();
    let inst: WebAssembly.Instance;
    try {
      const t1 = performance.now();
      const mod = new WebAssembly.Module(bytes);
      const t2 = performance.now();
      inst = new WebAssembly.Instance(mod, { e: this.linked });
      wasmStats.emitMs += t1 - t0; wasmStats.moduleMs += t2 - t1; wasmStats.instanceMs += performance.now() - t2;
    } catch (e) {
      // A translator bug must not take the guest down: those blocks stay interpreted.
      wasmStats.failed += blocks.length;
      if (process.env.HYPERTS_JIT_DEBUG) console.error('wasm translation failed:', e);
      return;
    }
    wasmStats.modules++; wasmStats.blocks += blocks.length; wasmStats.bytes += bytes.length;
    wasmStats.compileMs += performance.now() - t0;
    for (let k = 0; k < blocks.length; k++) {
      const b = blocks[k], fn = inst.exports[`b${k}`] as WasmBlockFn;
      b.jit = this.wrap(fn);
      if (this.layout.slotFor !== null) this.slotBlocks[this.slotFor(b.key)] = b;
    }
  }

  private wrap(fn: WasmBlockFn): TranslatedBlock {
    return (cpu: Cpu, b: Block, budget: number): number => this.run(fn, cpu, b, budget);
  }

  private run(fn: WasmBlockFn, cpu: Cpu, b: Block, budget: number): number {
    const s = this.s, d = this.d, start = cpu.rip;
    this.segBases();
    d[CUR_RIP >> 3] = cpu.rip;
    s[CUR_SLOT >> 2] = -1;
    s[TLB_USER >> 2] = cpu.cpl === 3 ? 8192 : 0;
    s[LOOP_N >> 2] = 0;
    s[STOP >> 2] = cpu.irqCheck || cpu.exitRequested ? 1 : 0;
    let n: number;
    try {
      n = fn(cpu.rip, budget, 0);
    } catch (e) {
      // cpu.rip was set by the import that faulted; registers are in place, flags in the state page. The run
      // loop counts retiredBefore(b, cpu.rip - start) + b.loopDone: make that the exact count even when the
      // fault came from a chained block.
      syncFlags(cpu, s);
      const slot = s[CUR_SLOT >> 2];
      const cur = slot < 0 ? b : this.slotBlocks[slot] ?? b;
      const exact = s[LOOP_N >> 2] + retiredBefore(cur, cpu.rip - d[CUR_RIP >> 3]);
      b.loopDone = exact - retiredBefore(b, cpu.rip - start);
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

  /** After a slow store: 1 when it invalidated cached code (the running block may be among it). */
  private stored(): number {
    this.slowDone();
    return this.cpu.codeDirty ? 1 : 0;
  }

  private imports(): Record<string, WebAssembly.ImportValue> {
    const cpu = this.cpu, s = this.s, d = this.d, handlers = this.handlers;
    const tag = cpu.tlbTag, add = cpu.tlbAddend;
    return {
      ld8: (ea: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 1024 : 0) + ((ea >>> 12) & 1023);
        if (tag[x] === ea - (ea & 4095)) return cpu.ram[ea + add[x]];
        cpu.rip = d[CUR_RIP >> 3] + off;
        const v = mmu.read8(cpu, ea); this.slowDone(); return v;
      },
      ld16: (ea: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 1024 : 0) + ((ea >>> 12) & 1023), o = ea & 4095;
        if (tag[x] === ea - o && o <= 4094) return cpu.ramView.getUint16(ea + add[x], true);
        cpu.rip = d[CUR_RIP >> 3] + off;
        const v = mmu.read16(cpu, ea); this.slowDone(); return v;
      },
      ld32: (ea: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 1024 : 0) + ((ea >>> 12) & 1023), o = ea & 4095;
        if (tag[x] === ea - o && o <= 4092) return cpu.ramView.getInt32(ea + add[x], true);
        cpu.rip = d[CUR_RIP >> 3] + off;
        const v = mmu.read32(cpu, ea); this.slowDone(); return v;
      },
      ld64: (ea: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 1024 : 0) + ((ea >>> 12) & 1023), o = ea & 4095;
        if (tag[x] === ea - o && o <= 4088) {
          const p = ea + add[x], v = cpu.ramView;
          s[MEM_HI >> 2] = v.getInt32(p + 4, true);
          return v.getInt32(p, true);
        }
        cpu.rip = d[CUR_RIP >> 3] + off;
        const lo = mmu.read64(cpu, ea);
        s[MEM_HI >> 2] = cpu.memHi;
        this.slowDone();
        return lo;
      },
      st8: (ea: number, v: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 3072 : 2048) + ((ea >>> 12) & 1023);
        if (tag[x] === ea - (ea & 4095)) { cpu.ram[ea + add[x]] = v; return 0; }
        cpu.rip = d[CUR_RIP >> 3] + off;
        mmu.write8(cpu, ea, v & 255); return this.stored();
      },
      st16: (ea: number, v: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 3072 : 2048) + ((ea >>> 12) & 1023), o = ea & 4095;
        if (tag[x] === ea - o && o <= 4094) { cpu.ramView.setUint16(ea + add[x], v, true); return 0; }
        cpu.rip = d[CUR_RIP >> 3] + off;
        mmu.write16(cpu, ea, v & 0xffff); return this.stored();
      },
      st32: (ea: number, v: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 3072 : 2048) + ((ea >>> 12) & 1023), o = ea & 4095;
        if (tag[x] === ea - o && o <= 4092) { cpu.ramView.setInt32(ea + add[x], v, true); return 0; }
        cpu.rip = d[CUR_RIP >> 3] + off;
        mmu.write32(cpu, ea, v); return this.stored();
      },
      st64: (ea: number, lo: number, hi: number, off: number): number => {
        const x = (cpu.cpl === 3 ? 3072 : 2048) + ((ea >>> 12) & 1023), o = ea & 4095;
        if (tag[x] === ea - o && o <= 4088) {
          const p = ea + add[x], w = cpu.ramView;
          w.setInt32(p, lo, true); w.setInt32(p + 4, hi, true);
          return 0;
        }
        cpu.rip = d[CUR_RIP >> 3] + off;
        mmu.write64(cpu, ea, lo, hi); return this.stored();
      },
      cond: (cc: number): number => { syncFlags(cpu, s); return testCondition(cpu, cc) ? 1 : 0; },
      getcf: (): number => { syncFlags(cpu, s); return getCF(cpu); },
      flags: (): number => { syncFlags(cpu, s); return getArithFlags(cpu); },
      call: (k: number, off: number, end: number): number => {
        syncFlags(cpu, s);
        const i = handlers[k], r = d[CUR_RIP >> 3];
        cpu.rip = r + off; cpu.nextRip = r + end;
        cpu.codeDirty = false;
        i.fn(cpu, i);
        d[RIP >> 3] = cpu.nextRip;
        if ((i.flags & IF.SYS) !== 0) cpu.irqCheck = true;
        // Whatever the run loop looks at between blocks stops chaining.
        if (cpu.irqCheck || cpu.exitRequested || cpu.intShadow || cpu.halted || ((cpu.flagsRest & F.TF) | cpu.debugArmed) !== 0 ||
          ((cpu.flagsRest & F.IF) !== 0) !== cpu.ifWasOn) s[STOP >> 2] = 1;
        // The handler may have changed FS/GS (wrmsr, swapgs) for the translated accesses after it.
        this.segBases();
        return cpu.codeDirty ? 1 : 0;
      },
    };
  }
}
