/**
 * The execution loop: fetch decoded blocks from the cache, run their handlers, deliver interrupts at block
 * boundaries, turn faults into exception delivery, poll the virtual clock.
 */
import type { Cpu } from './cpu.js';
import { F } from './cpu-state.js';
import { deliverFault, deliverInterrupt, deliverNmi } from './exceptions.js';
import { IF } from './decoder.js';
import { debugStep } from './debug.js';
import type { Block } from './block-cache.js';
import { jitThreshold, jitEngine, jitStats, translateBlock, retiredBefore, type TranslatedBlock } from './jit.js';
import { WasmJit } from './wasm/runtime.js';

/** Instructions between polls of the virtual clock's timers. */
const POLL_INTERVAL = 4096;

/**
 * Run until `maxInsns` instructions retired, the CPU halts with nothing pending, or an exit is requested.
 * Returns the number of instructions retired.
 *
 * The loop itself stays small and monomorphic (V8 keeps it optimized); everything that runs rarely or with
 * varying types (interrupt delivery, translation, the interpreter's handler calls, fault delivery) lives in
 * separate functions, so a first use of a rare path does not throw the loop's optimized code away.
 */
export function runCpu(cpu: Cpu, maxInsns: number): number {
  const cache = cpu.blocks;
  let n = 0;
  // Poll first: timers that came due at the previous call's end fire at this instruction whether or not the
  // caller polled in between (it does only when host time allows), which keeps icount runs reproducible.
  let nextPoll = 0;
  // Devices may have changed state since the last slice.
  cpu.irqCheck = true;
  cpu.ifWasOn = false;
  // The block running now and its start address (to count what retired before a fault).
  let cur: Block | null = null, curRip = 0;
  while (n < maxInsns) {
    try {
      if (cpu.exitRequested) break;
      if (n >= nextPoll) { pollClock(cpu); nextPoll = n + POLL_INTERVAL; }
      let limit = maxInsns - n;
      if (cpu.intShadow) limit = 1; // the instruction after STI / MOV SS runs before any interrupt
      else if (cpu.irqCheck || ((cpu.flagsRest & F.IF) !== 0) !== cpu.ifWasOn) serviceInterrupts(cpu);
      if (cpu.halted) break;
      // Single-step (TF) or an armed debug register: one instruction at a time through debug.ts.
      if (((cpu.flagsRest & F.TF) | cpu.debugArmed) !== 0) { cur = null; n += debugStep(cpu); continue; }
      const lin = cpu.mode === 3 ? cpu.rip : (cpu.segBase[1] + cpu.rip) >>> 0;
      const b = cache.lookup(lin);
      cpu.intShadow = false;
      cur = b; curRip = cpu.rip;
      if (b.count <= limit) {
        let t = b.jit;
        if (t === null && ++b.hits > jitThreshold) t = translateNow(cpu, b);
        if (t !== null) {
          const k = t(cpu, b, limit < nextPoll - n ? limit : nextPoll - n);
          jitStats.insns += k;
          n += k;
          if (b.sys) cpu.irqCheck = true;
          continue;
        }
        n += interpret(cpu, b, b.count);
      } else n += interpret(cpu, b, limit);
    } catch (e) {
      n += faulted(cpu, e, cur, curRip);
      cur = null;
      if (cpu.stopOnFault && cpu.faultStopped) break;
    }
  }
  cpu.insnCount += n;
  return n;
}

function pollClock(cpu: Cpu): void {
  // Blocks waiting for a wasm batch get compiled at least this often.
  if (cpu.wasmJit !== null) cpu.wasmJit.poll();
  cpu.platform.clock.poll();
  cpu.irqCheck = true;
}

/** Deliver a pending NMI or (IF=1) external interrupt. Interrupt state changes only through device accesses,
 * the clock and system instructions, all of which raise irqCheck, or IF becoming 1; otherwise nothing new
 * can have become deliverable. */
function serviceInterrupts(cpu: Cpu): void {
  cpu.irqCheck = false;
  const ic = cpu.platform.interrupts[cpu.vp];
  if (ic !== undefined) {
    if (!cpu.nmiBlocked && ic.nmiPending()) {
      ic.acknowledgeNmi();
      cpu.halted = false;
      deliverNmi(cpu);
      cpu.irqCheck = true;
    } else if ((cpu.flagsRest & F.IF) !== 0 && ic.pendingVector() >= 0) {
      const v = ic.acknowledge();
      if (v >= 0) { cpu.halted = false; deliverInterrupt(cpu, v); }
      cpu.irqCheck = true; // another one may be waiting behind it
    }
  }
  cpu.ifWasOn = (cpu.flagsRest & F.IF) !== 0;
}

function translateNow(cpu: Cpu, b: Block): TranslatedBlock | null {
  if (b.mode !== 3 || b === cpu.blocks.uncached) { b.hits = -Infinity; return null; }
  if (jitEngine === 'wasm') {
    // Queued for the next batch (this call may compile it at once); interpreted until then.
    b.hits = -Infinity;
    let w = cpu.wasmJit;
    if (w === null) w = cpu.wasmJit = new WasmJit(cpu);
    w.immediate = jitThreshold === 0;
    w.enqueue(b);
    return b.jit;
  }
  const t = translateBlock(b);
  if (t === null) b.hits = -Infinity; // not translatable: stop trying
  else b.jit = t;
  return t;
}

/** Run the first `cnt` instructions of `b` through their handlers; returns the number retired. */
function interpret(cpu: Cpu, b: Block, cnt: number): number {
  const insns = b.insns;
  let i = insns[0];
  let k = 0;
  while (k < cnt) {
    i = insns[k];
    cpu.nextRip = cpu.rip + i.len;
    i.fn(cpu, i);
    cpu.rip = cpu.nextRip;
    k++;
    if (!b.valid || cpu.halted) break; // code of this block was overwritten / HLT
  }
  if ((i.flags & IF.SYS) !== 0) cpu.irqCheck = true;
  return k;
}

/** A throw out of an instruction: count what retired before it, then deliver the fault (or stop, in tests). */
function faulted(cpu: Cpu, e: unknown, b: Block | null, startRip: number): number {
  let done = 0;
  if (b !== null) { done = retiredBefore(b, cpu.rip - startRip) + b.loopDone; b.loopDone = 0; }
  if (e !== cpu.fault) { cpu.insnCount += done; throw e; }
  cpu.irqCheck = true;
  if (cpu.stopOnFault) { cpu.faultStopped = true; return done; }
  deliverFault(cpu);
  return done;
}
