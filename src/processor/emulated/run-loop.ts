/**
 * The execution loop: fetch decoded blocks from the cache, run their handlers, deliver interrupts at block
 * boundaries, turn faults into exception delivery, poll the virtual clock.
 */
import type { Cpu } from './cpu.js';
import { F } from './cpu-state.js';
import { deliverFault, deliverInterrupt, deliverNmi } from './exceptions.js';
import { IF } from './decoder.js';

/** Instructions between polls of the virtual clock's timers. */
const POLL_INTERVAL = 4096;

/**
 * Run until `maxInsns` instructions retired, the CPU halts with nothing pending, or an exit is requested.
 * Returns the number of instructions retired.
 */
export function runCpu(cpu: Cpu, maxInsns: number): number {
  const plat = cpu.platform;
  const ic = plat.interrupts[cpu.vp];
  const cache = cpu.blocks;
  let n = 0;
  let nextPoll = POLL_INTERVAL;
  // Devices may have changed state since the last slice.
  cpu.irqCheck = true;
  let ifWasOn = false;
  while (n < maxInsns) {
    try {
      if (cpu.exitRequested) break;
      if (n >= nextPoll) { plat.clock.poll(); nextPoll = n + POLL_INTERVAL; cpu.irqCheck = true; }
      let limit = maxInsns - n;
      const ifOn = (cpu.flagsRest & F.IF) !== 0;
      if (ifOn && !ifWasOn) cpu.irqCheck = true; // IF just became 1 (sti, popf, iret, sysret...)
      ifWasOn = ifOn;
      if (cpu.intShadow) {
        limit = 1; // the instruction after STI / MOV SS runs before any interrupt
      } else if (cpu.irqCheck) {
        // Interrupt state changes only through device accesses, the clock and system instructions, all of
        // which raise irqCheck; between them nothing new can become deliverable.
        cpu.irqCheck = false;
        if (ic !== undefined) {
          if (!cpu.nmiBlocked && ic.nmiPending()) {
            ic.acknowledgeNmi();
            cpu.halted = false;
            deliverNmi(cpu);
            cpu.irqCheck = true;
          } else if (ifOn) {
            if (ic.pendingVector() >= 0) {
              const v = ic.acknowledge();
              if (v >= 0) { cpu.halted = false; deliverInterrupt(cpu, v); }
              cpu.irqCheck = true; // another one may be waiting behind it
            }
          }
        }
        ifWasOn = (cpu.flagsRest & F.IF) !== 0;
      }
      if (cpu.halted) break;
      const lin = cpu.mode === 3 ? cpu.rip : (cpu.segBase[1] + cpu.rip) >>> 0;
      const b = cache.lookup(lin);
      const insns = b.insns;
      const cnt = b.count < limit ? b.count : limit;
      cpu.intShadow = false;
      let i = insns[0];
      for (let k = 0; k < cnt; k++) {
        i = insns[k];
        cpu.nextRip = cpu.rip + i.len;
        i.fn(cpu, i);
        cpu.rip = cpu.nextRip;
        n++;
        if (!b.valid || cpu.halted) break; // code of this block was overwritten / HLT
      }
      if ((i.flags & IF.SYS) !== 0) cpu.irqCheck = true;
    } catch (e) {
      if (e !== cpu.fault) throw e;
      cpu.irqCheck = true;
      if (cpu.stopOnFault) { cpu.faultStopped = true; break; }
      deliverFault(cpu);
    }
  }
  cpu.insnCount += n;
  return n;
}
